// capstan_manifest_gen: writes N Services and their N EndpointSlices (see
// bench/control/manifest_gen.h) as manifest files into a directory, for the daemon_load macro
// benchmark or for trying `capstan --manifests DIR` at scale.
//
//   capstan_manifest_gen --out DIR [--services 10000] [--endpoints 10] [--namespaces 100]
//                        [--nodes 100] [--format yaml|json|json-stream] [--compact]
//                        [--objects-per-file 1000 (0: one file)]
//
// Prints what it wrote and what capstan should then program, as key=value lines
// (files, bytes, services, endpoint_slices, service_ports, endpoints) for scripts to read.
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "bench/control/manifest_gen.h"

namespace {

using capstan::bench::ManifestFormat;
using capstan::bench::ManifestGenerator;
using capstan::bench::ManifestSpec;

[[noreturn]] void usage(const std::string& problem) {
  std::fprintf(stderr,
               "capstan_manifest_gen: %s\n"
               "usage: capstan_manifest_gen --out DIR [--services N] [--endpoints E] "
               "[--namespaces N] [--nodes N] [--format yaml|json|json-stream] [--compact] "
               "[--objects-per-file K (0: one file)]\n",
               problem.c_str());
  std::exit(2);
}

size_t number(std::string_view flag, const char* text, size_t min) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < min) {
    usage(std::string(flag) + ": expected an integer >= " + std::to_string(min) + ", got \"" +
          text + "\"");
  }
  return static_cast<size_t>(v);
}

bool writeFile(const std::string& path, const std::string& content) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  bool ok = std::fwrite(content.data(), 1, content.size(), f) == content.size();
  return std::fclose(f) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  ManifestSpec spec;
  ManifestFormat format = ManifestFormat::kYaml;
  bool compact = false;
  size_t perFile = 1000;
  std::string out;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage(std::string(arg) + ": needs a value");
      return argv[++i];
    };
    if (arg == "--out") {
      out = value();
    } else if (arg == "--services") {
      spec.services = number(arg, value(), 1);
    } else if (arg == "--endpoints") {
      spec.endpointsPerSlice = number(arg, value(), 1);
    } else if (arg == "--namespaces") {
      spec.namespaces = number(arg, value(), 1);
    } else if (arg == "--nodes") {
      spec.nodes = number(arg, value(), 1);
    } else if (arg == "--objects-per-file") {
      perFile = number(arg, value(), 0);
    } else if (arg == "--compact") {
      compact = true;
    } else if (arg == "--format") {
      std::string_view f = value();
      if (f == "yaml") {
        format = ManifestFormat::kYaml;
      } else if (f == "json") {
        format = ManifestFormat::kJsonList;
      } else if (f == "json-stream") {
        format = ManifestFormat::kJsonStream;
      } else {
        usage("--format: expected yaml, json or json-stream, got \"" + std::string(f) + "\"");
      }
    } else if (arg == "--help" || arg == "-h") {
      usage("writes generated manifests");
    } else {
      usage("unknown argument \"" + std::string(arg) + "\"");
    }
  }
  if (out.empty()) usage("--out: required");
  if (::mkdir(out.c_str(), 0755) != 0 && errno != EEXIST) {
    std::fprintf(stderr, "capstan_manifest_gen: %s: %s\n", out.c_str(), std::strerror(errno));
    return 1;
  }

  ManifestGenerator generator(spec);
  const size_t total = generator.objectCount();
  const size_t chunk = perFile == 0 ? total : perFile;
  const char* extension = format == ManifestFormat::kYaml ? ".yaml" : ".json";
  size_t files = 0, bytes = 0;
  for (size_t begin = 0; begin < total; begin += chunk) {
    size_t end = std::min(total, begin + chunk);
    std::string content = generator.render(format, begin, end, compact);
    std::string path =
        out + "/objects-" + capstan::bench::manifest_detail::zeroPad(files, 5) + extension;
    if (!writeFile(path, content)) {
      std::fprintf(stderr, "capstan_manifest_gen: %s: %s\n", path.c_str(), std::strerror(errno));
      return 1;
    }
    ++files;
    bytes += content.size();
  }
  std::printf(
      "files=%zu\nbytes=%zu\nservices=%zu\nendpoint_slices=%zu\nservice_ports=%zu\n"
      "endpoints=%zu\n",
      files, bytes, spec.services, spec.services, generator.servicePortCount(),
      generator.endpointCount());
  return 0;
}
