// capstan_kube_standin: the tests' Kubernetes API server stand-in (tests/support/
// kube_api_server.h: real lists with continue tokens, chunked watches) as a process, filled with
// the generated cluster of bench/control/manifest_gen.h, for the kube_sync macro benchmark.
//
//   capstan_kube_standin [--services 10000] [--endpoints 10] [--node node-001]
//
// Prints "url=http://127.0.0.1:PORT" and the expected figures (service_ports=, endpoints=) once
// the objects are stored, then reads commands on stdin, one a line:
//   burst N [REVISION]  changes the EndpointSlices of Services 0..N-1 at once (one endpoint of
//                       each flips its readiness; REVISION, default 1, picks which), prints
//                       "burst_done"
//   quit                (or end of input) stops.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>

#include "bench/control/manifest_gen.h"
#include "tests/support/kube_api_server.h"

namespace {

[[noreturn]] void usage(const std::string& problem) {
  std::fprintf(stderr,
               "capstan_kube_standin: %s\n"
               "usage: capstan_kube_standin [--services N] [--endpoints E] [--node NAME]\n",
               problem.c_str());
  std::exit(2);
}

size_t number(std::string_view flag, const char* text) {
  char* end = nullptr;
  unsigned long long v = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0' || v == 0) usage(std::string(flag) + ": expected a count");
  return static_cast<size_t>(v);
}

}  // namespace

int main(int argc, char** argv) {
  capstan::bench::ManifestSpec spec;
  std::string node = "node-001";
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (i + 1 >= argc) usage(std::string(arg) + ": needs a value");
    if (arg == "--services") {
      spec.services = number(arg, argv[++i]);
    } else if (arg == "--endpoints") {
      spec.endpointsPerSlice = number(arg, argv[++i]);
    } else if (arg == "--node") {
      node = argv[++i];
    } else {
      usage("unknown argument \"" + std::string(arg) + "\"");
    }
  }
  capstan::bench::ManifestGenerator generator(spec);
  capstan::support::KubeApiServer server;
  for (size_t k = 0; k < generator.objectCount(); ++k) {
    server.upsert(capstan::bench::toJson(generator.object(k), 0));
  }
  server.upsert(
      R"({"kind":"Node","apiVersion":"v1","metadata":{"name":")" + node +
      R"("},"spec":{},"status":{"addresses":[{"type":"InternalIP","address":"192.0.2.10"}]}})");
  std::printf("url=%s\nservice_ports=%zu\nendpoints=%zu\n", server.url().c_str(),
              generator.servicePortCount(), generator.endpointCount());
  std::fflush(stdout);
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line == "quit") break;
    if (line.starts_with("burst ")) {
      size_t n = 0, revision = 1;
      if (std::sscanf(line.c_str(), "burst %zu %zu", &n, &revision) < 1) continue;
      for (size_t i = 0; i < n && i < spec.services; ++i) {
        server.upsert(capstan::bench::toJson(generator.endpointSlice(i, revision), 0));
      }
      std::printf("burst_done\n");
      std::fflush(stdout);
    }
  }
  return 0;
}
