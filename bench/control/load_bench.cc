// Loading Services and EndpointSlices: control/document_reader.h + control/decoder.h (read and
// decode), control/change_tracker.h (the ProxyState) and control/manifest/manifest_source.h
// (the two together, from files).
//
// Goal (the foundation issue): 10,000 Services and 10,000 EndpointSlices of 10 endpoints each,
// decoded from YAML or from JSON and built into a ProxyState, in under 1 s; resident memory under
// 200 MB for the daemon holding it (that half is measured by bench/macro/daemon_load).
//
// Peers, measured in the same run on the same bytes: yaml-cpp's YAML::LoadAll (the YAML library
// most C++ projects reach for) and nlohmann::json::parse. They only build their own DOM; Capstan's
// figures cover parse + decode into model values (Service, EndpointSlice), which is more work.
// The manifests come from bench/control/manifest_gen.h, in `kubectl get -o yaml/-o json` shape.
// Freeing the results is not timed (for Capstan or the peers). main() prints the ratios (of CPU
// time: all of this is single-threaded) and the goal.
#include <benchmark/benchmark.h>
#include <simdjson.h>
#include <stdlib.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>
#include <yaml.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "bench/control/manifest_gen.h"
#include "bench/support/recording_reporter.h"
#include "control/change_tracker.h"
#include "control/decoder.h"
#include "control/document_reader.h"
#include "control/manifest/manifest_source.h"

namespace capstan::control {
namespace {

using bench::ManifestFormat;
using bench::ManifestGenerator;
using bench::ManifestSpec;

constexpr size_t kEndpointsPerSlice = 10;
constexpr size_t kObjectsPerFile = 1000;  // the daemon refuses files over 32 MiB by default

// The whole set as one JSON `kind: List` holds about 2.2 million values, over the readers'
// default limit of 2 million per document (which the daemon keeps: it reads files of 1,000
// objects here). The in-memory figures raise it so Capstan reads the same bytes as the peer.
constexpr ReaderLimits kLimits{.maxDepth = 200, .maxValuesPerDocument = 50'000'000};

// Decodes every document of `text` into `out`; counts what was not kOk.
size_t readAndDecode(std::string_view text, bool json, const ObjectDecoder& decoder,
                     std::vector<Decoded>& out, std::string* firstProblem = nullptr) {
  size_t bad = 0;
  auto onDocument = [&](const Value& document, size_t) -> Status {
    for (Decoded& d : decoder.decodeDocument(document)) {
      if (d.outcome != Decoded::Outcome::kOk && bad++ == 0 && firstProblem) {
        *firstProblem = d.message;
      }
      out.push_back(std::move(d));
    }
    return okStatus();
  };
  Status st = json ? readJsonDocuments(text, onDocument, kLimits)
                   : readYamlDocuments(text, onDocument, kLimits);
  if (!st.ok()) {
    if (firstProblem) *firstProblem = st.error().message();
    return out.size() + 1;
  }
  return bad;
}

std::vector<ObjectEvent> toEvents(std::vector<Decoded>& decoded) {
  std::vector<ObjectEvent> events;
  events.reserve(decoded.size());
  for (Decoded& d : decoded) {
    events.push_back({ObjectEvent::Type::kUpsert, *d.key, std::move(d.object), 0});
  }
  return events;
}

std::string writeFiles(const ManifestGenerator& generator, ManifestFormat format,
                       const std::string& dir) {
  std::filesystem::create_directories(dir);
  const char* extension = format == ManifestFormat::kYaml ? ".yaml" : ".json";
  for (size_t begin = 0, n = 0; begin < generator.objectCount(); begin += kObjectsPerFile, ++n) {
    size_t end = std::min(generator.objectCount(), begin + kObjectsPerFile);
    std::ofstream(dir + "/objects-" + bench::manifest_detail::zeroPad(n, 5) + extension,
                  std::ios::binary)
        << generator.render(format, begin, end);
  }
  return dir;
}

std::string& tempRoot() {
  static std::string root;
  return root;
}

// Everything the benchmarks of one size share, built on first use (not timed).
struct Corpus {
  explicit Corpus(size_t services)
      : generator(ManifestSpec{services, kEndpointsPerSlice}),
        yaml(generator.render(ManifestFormat::kYaml)),
        jsonList(generator.render(ManifestFormat::kJsonList)),
        jsonStream(generator.render(ManifestFormat::kJsonStream)) {
    ObjectDecoder decoder;
    std::vector<Decoded> decoded;
    std::string problem;
    if (size_t bad = readAndDecode(yaml, false, decoder, decoded, &problem); bad > 0) {
      error = "generated YAML does not decode: " + problem;
      return;
    }
    if (decoded.size() != generator.objectCount()) {
      error = "generated YAML decodes to " + std::to_string(decoded.size()) + " objects";
      return;
    }
    events = toEvents(decoded);
    // Later versions of a few slices, for the partial-sync figure.
    for (size_t i = 0; i < 64 && i < services; ++i) {
      std::vector<Decoded> changed;
      readAndDecode(bench::toYaml(generator.endpointSlice(i * (services / 64 + 1) % services, 1)),
                    false, decoder, changed);
      changedSlices.push_back(toEvents(changed).at(0));
    }
    if (tempRoot().empty()) {
      std::string pattern =
          (std::filesystem::temp_directory_path() / "capstan-load-bench-XXXXXX").string();
      if (!::mkdtemp(pattern.data())) {
        error = "mkdtemp failed";
        return;
      }
      tempRoot() = pattern;
    }
    std::string base = tempRoot() + "/" + std::to_string(services);
    yamlDir = writeFiles(generator, ManifestFormat::kYaml, base + "-yaml");
    jsonDir = writeFiles(generator, ManifestFormat::kJsonList, base + "-json");
  }

  ManifestGenerator generator;
  std::string yaml;
  std::string jsonList;
  std::string jsonStream;
  std::vector<ObjectEvent> events;         // all objects, decoded once
  std::vector<ObjectEvent> changedSlices;  // revision 1 of 64 slices spread over the set
  std::string yamlDir;
  std::string jsonDir;
  std::string error;
};

const Corpus& corpus(benchmark::State& state) {
  static std::map<size_t, std::unique_ptr<Corpus>> cache;
  auto services = static_cast<size_t>(state.range(0));
  auto& slot = cache[services];
  if (!slot) slot = std::make_unique<Corpus>(services);
  if (!slot->error.empty()) state.SkipWithError(slot->error.c_str());
  return *slot;
}

void setThroughput(benchmark::State& state, const Corpus& c, size_t bytes) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * c.generator.objectCount()));
  state.counters["MB"] = static_cast<double>(bytes) / 1e6;
}

// --- Read + decode: Capstan --------------------------------------------------------------------

void decodeBenchmark(benchmark::State& state, const std::string Corpus::*text, bool json) {
  const Corpus& c = corpus(state);
  if (!c.error.empty()) return;
  ObjectDecoder decoder;
  for (auto _ : state) {
    std::vector<Decoded> out;
    out.reserve(c.generator.objectCount());
    std::string problem;
    size_t bad = readAndDecode(c.*text, json, decoder, out, &problem);
    state.PauseTiming();
    bool ok = bad == 0 && out.size() == c.generator.objectCount();
    out = {};
    state.ResumeTiming();
    if (!ok) {
      state.SkipWithError(("decoding failed: " + problem).c_str());
      break;
    }
  }
  setThroughput(state, c, (c.*text).size());
  state.SetLabel("parse + decode into model values");
}

void BM_YamlDecode(benchmark::State& state) { decodeBenchmark(state, &Corpus::yaml, false); }
void BM_JsonListDecode(benchmark::State& state) { decodeBenchmark(state, &Corpus::jsonList, true); }
void BM_JsonStreamDecode(benchmark::State& state) {
  decodeBenchmark(state, &Corpus::jsonStream, true);
}

// --- Read + decode: the peers -----------------------------------------------------------------

void BM_YamlCppLoadAll(benchmark::State& state) {
  const Corpus& c = corpus(state);
  if (!c.error.empty()) return;
  for (auto _ : state) {
    std::vector<YAML::Node> documents = YAML::LoadAll(c.yaml);
    state.PauseTiming();
    bool ok = documents.size() == c.generator.objectCount();
    documents = {};
    state.ResumeTiming();
    if (!ok) {
      state.SkipWithError("wrong document count");
      break;
    }
  }
  setThroughput(state, c, c.yaml.size());
  state.SetLabel("peer: parse into yaml-cpp's DOM only");
}

void BM_NlohmannParse(benchmark::State& state) {
  const Corpus& c = corpus(state);
  if (!c.error.empty()) return;
  for (auto _ : state) {
    nlohmann::json list = nlohmann::json::parse(c.jsonList);
    state.PauseTiming();
    bool ok = list["items"].size() == c.generator.objectCount();
    list = nullptr;
    state.ResumeTiming();
    if (!ok) {
      state.SkipWithError("wrong item count");
      break;
    }
  }
  setThroughput(state, c, c.jsonList.size());
  state.SetLabel("peer: parse into nlohmann::json's DOM only");
}

// --- Where Capstan's time goes (no goal, no peer) -----------------------------------------------

// The Value trees alone, no decoding.
void treeBenchmark(benchmark::State& state, const std::string Corpus::*text, bool json) {
  const Corpus& c = corpus(state);
  if (!c.error.empty()) return;
  for (auto _ : state) {
    size_t documents = 0;
    auto count = [&](const Value&, size_t) -> Status {
      ++documents;
      return okStatus();
    };
    Status st = json ? readJsonDocuments(c.*text, count, kLimits)
                     : readYamlDocuments(c.*text, count, kLimits);
    benchmark::DoNotOptimize(documents);
    if (!st.ok()) {
      state.SkipWithError(st.error().message().c_str());
      break;
    }
  }
  setThroughput(state, c, (c.*text).size());
  state.SetLabel("breakdown: Value trees only (tree freed per document)");
}
void BM_YamlValueTrees(benchmark::State& state) { treeBenchmark(state, &Corpus::yaml, false); }
void BM_JsonListValueTrees(benchmark::State& state) {
  treeBenchmark(state, &Corpus::jsonList, true);
}

// libyaml's event parser alone: the floor of any reader built on it.
void BM_LibyamlEvents(benchmark::State& state) {
  const Corpus& c = corpus(state);
  if (!c.error.empty()) return;
  for (auto _ : state) {
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, reinterpret_cast<const unsigned char*>(c.yaml.data()),
                                 c.yaml.size());
    size_t events = 0;
    bool failed = false;
    for (bool done = false; !done && !failed;) {
      yaml_event_t event;
      failed = !yaml_parser_parse(&parser, &event);
      if (failed) break;
      done = event.type == YAML_STREAM_END_EVENT;
      yaml_event_delete(&event);
      ++events;
    }
    yaml_parser_delete(&parser);
    benchmark::DoNotOptimize(events);
    if (failed) {
      state.SkipWithError("libyaml parse error");
      break;
    }
  }
  setThroughput(state, c, c.yaml.size());
  state.SetLabel("breakdown: libyaml events only");
}

// simdjson's DOM alone: the floor of the JSON reader.
void BM_SimdjsonDom(benchmark::State& state) {
  const Corpus& c = corpus(state);
  if (!c.error.empty()) return;
  simdjson::padded_string padded(c.jsonList);
  simdjson::dom::parser parser;
  for (auto _ : state) {
    simdjson::dom::element root;
    if (parser.parse(padded).get(root)) {
      state.SkipWithError("simdjson parse error");
      break;
    }
    benchmark::DoNotOptimize(root);
  }
  setThroughput(state, c, c.jsonList.size());
  state.SetLabel("breakdown: simdjson DOM only (parser reused)");
}

// --- The ProxyState ---------------------------------------------------------------------------

TrackerOptions trackerOptions() { return {.nodeName = "node-001", .ingressClass = {}}; }

// A fresh tracker fed every object, then the first (full) commit.
void BM_TrackerBuild(benchmark::State& state) {
  const Corpus& c = corpus(state);
  if (!c.error.empty()) return;
  size_t ports = 0;
  for (auto _ : state) {
    auto tracker = std::make_unique<ChangeTracker>(trackerOptions());
    for (const ObjectEvent& event : c.events) tracker->apply(event);
    auto commit = tracker->commit(true);
    state.PauseTiming();
    ports = commit.state->servicePorts().size();
    commit = {};
    tracker.reset();
    state.ResumeTiming();
    if (ports != c.generator.servicePortCount()) {
      state.SkipWithError("wrong service port count");
      break;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * c.events.size()));
  state.counters["service_ports"] = static_cast<double>(ports);
  state.SetLabel("apply every object + commit(full) from decoded objects");
}

// The whole load as the daemon does it: ManifestSource::reload() over files of 1,000 objects
// (page cache warm), every event into a fresh tracker, the first commit.
void endToEnd(benchmark::State& state, const std::string Corpus::*dir, const char* label) {
  const Corpus& c = corpus(state);
  if (!c.error.empty()) return;
  size_t bytes = 0;
  for (const auto& entry : std::filesystem::directory_iterator(c.*dir)) bytes += entry.file_size();
  for (auto _ : state) {
    auto source = std::make_unique<ManifestSource>(ManifestOptions{.paths = {c.*dir}});
    auto tracker = std::make_unique<ChangeTracker>(trackerOptions());
    auto reload = source->reload(0);
    for (const ObjectEvent& event : reload.events) tracker->apply(event);
    auto commit = tracker->commit(true);
    state.PauseTiming();
    std::string problem;
    if (!reload.diagnostics.empty()) {
      problem = reload.diagnostics[0].toString();
    } else if (reload.events.size() != c.generator.objectCount() ||
               commit.state->servicePorts().size() != c.generator.servicePortCount()) {
      problem = "wrong object or service port count";
    }
    commit = {};
    reload = {};
    tracker.reset();
    source.reset();
    state.ResumeTiming();
    if (!problem.empty()) {
      state.SkipWithError(problem.c_str());
      break;
    }
  }
  setThroughput(state, c, bytes);
  state.SetLabel(label);
}
void BM_EndToEndYaml(benchmark::State& state) {
  endToEnd(state, &Corpus::yamlDir,
           "ManifestSource::reload + tracker commit, YAML files; goal < 1 s");
}
void BM_EndToEndJson(benchmark::State& state) {
  endToEnd(state, &Corpus::jsonDir,
           "ManifestSource::reload + tracker commit, JSON List files; goal < 1 s");
}

// With everything loaded and committed: one EndpointSlice changes (one endpoint's readiness),
// then a partial commit. Structural sharing should make this independent of the 10,000 others.
void BM_PartialSyncOneSlice(benchmark::State& state) {
  const Corpus& c = corpus(state);
  if (!c.error.empty()) return;
  ChangeTracker tracker(trackerOptions());
  for (const ObjectEvent& event : c.events) tracker.apply(event);
  (void)tracker.commit(true);
  // Slice k's original version, to flip back to.
  std::vector<const ObjectEvent*> original;
  for (const ObjectEvent& changed : c.changedSlices) {
    for (const ObjectEvent& event : c.events) {
      if (event.key == changed.key) original.push_back(&event);
    }
  }
  std::vector<bool> flipped(c.changedSlices.size());
  size_t i = 0, changedPorts = 0;
  for (auto _ : state) {
    size_t k = i++ % c.changedSlices.size();
    tracker.apply(flipped[k] ? *original[k] : c.changedSlices[k]);
    flipped[k] = !flipped[k];
    auto commit = tracker.commit(false);
    changedPorts += commit.changes.changed.size();
    benchmark::DoNotOptimize(commit);
    if (commit.changes.changed.empty()) {
      state.SkipWithError("the change was not seen");
      break;
    }
  }
  state.counters["ports_changed_per_commit"] =
      static_cast<double>(changedPorts) / static_cast<double>(state.iterations());
  state.SetLabel("apply one changed slice + commit(partial), 10,000 Services loaded");
}

// The periodic full sync's commit with nothing changed: every ServicePort rebuilt and compared.
void BM_FullCommitUnchanged(benchmark::State& state) {
  const Corpus& c = corpus(state);
  if (!c.error.empty()) return;
  ChangeTracker tracker(trackerOptions());
  for (const ObjectEvent& event : c.events) tracker.apply(event);
  (void)tracker.commit(true);
  for (auto _ : state) {
    auto commit = tracker.commit(true);
    benchmark::DoNotOptimize(commit);
    if (!commit.changes.changed.empty()) {
      state.SkipWithError("unexpected changes");
      break;
    }
  }
  state.SetLabel("commit(full) with nothing changed (periodic full sync)");
}

constexpr int64_t kServices = 10'000;
#define LOAD_BENCHMARK(fn) \
  BENCHMARK(fn)->Arg(kServices)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0)

LOAD_BENCHMARK(BM_YamlDecode);
LOAD_BENCHMARK(BM_YamlCppLoadAll)->MinTime(0.1);  // one iteration takes seconds
LOAD_BENCHMARK(BM_JsonListDecode);
LOAD_BENCHMARK(BM_JsonStreamDecode);
LOAD_BENCHMARK(BM_NlohmannParse);
LOAD_BENCHMARK(BM_YamlValueTrees);
LOAD_BENCHMARK(BM_JsonListValueTrees);
LOAD_BENCHMARK(BM_LibyamlEvents);
LOAD_BENCHMARK(BM_SimdjsonDom);
LOAD_BENCHMARK(BM_TrackerBuild);
LOAD_BENCHMARK(BM_EndToEndYaml);
LOAD_BENCHMARK(BM_EndToEndJson);
BENCHMARK(BM_PartialSyncOneSlice)->Arg(kServices)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_FullCommitUnchanged)->Arg(kServices)->Unit(benchmark::kMillisecond)->UseRealTime();

// --- Ratios -----------------------------------------------------------------------------------

using bench::RecordingReporter;

// Ratios on CPU time: every benchmark here is single-threaded, and on a shared machine CPU time
// does not count the waits for a core that inflate wall time unevenly over the run.
void printRatio(const RecordingReporter& r, const char* what, const char* capstan, const char* peer,
                const char* peerName) {
  auto a = r.times(capstan), b = r.times(peer);
  if (a.runs == 0 || b.runs == 0) return;
  std::printf("  %-32s %7.1f ms  vs %-22s %7.1f ms  -> Capstan/peer %.3f (%.1fx faster)\n", what,
              a.cpu * 1e3, peerName, b.cpu * 1e3, a.cpu / b.cpu, b.cpu / a.cpu);
}

void printGoal(const RecordingReporter& r, const char* what, const char* name, double goal) {
  auto t = r.times(name);
  if (t.runs == 0) return;
  std::printf("  %-32s %7.1f ms wall (%.1f ms CPU)  goal < %.0f ms: %s\n", what, t.real * 1e3,
              t.cpu * 1e3, goal * 1e3, t.real < goal ? "PASS" : "FAIL");
}

}  // namespace
}  // namespace capstan::control

int main(int argc, char** argv) {
  using namespace capstan::control;
  const bool color = capstan::bench::consoleColor(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RecordingReporter reporter(color);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::printf(
      "\nSame run, same bytes (10,000 Services + 10,000 EndpointSlices x 10 endpoints). Capstan's\n"
      "figures are parse + decode into model values; the peers' are parse into their DOM only.\n"
      "Ratios of CPU time per load:\n");
  printRatio(reporter, "YAML: Capstan read+decode", "BM_YamlDecode", "BM_YamlCppLoadAll",
             "yaml-cpp LoadAll");
  printRatio(reporter, "JSON List: Capstan read+decode", "BM_JsonListDecode", "BM_NlohmannParse",
             "nlohmann::json::parse");
  std::printf("Goal: the whole load (read, decode, ProxyState) under 1 s:\n");
  printGoal(reporter, "end to end, YAML files", "BM_EndToEndYaml", 1.0);
  printGoal(reporter, "end to end, JSON List files", "BM_EndToEndJson", 1.0);
  benchmark::Shutdown();
  if (!tempRoot().empty()) {
    std::error_code ec;
    std::filesystem::remove_all(tempRoot(), ec);
  }
  return 0;
}
