// Maglev table build and lookup (model/maglev.h).
//
// Goal for the build: M = 65537 with 1000 equal-weight backends in under 2 ms on one core (the
// paper, section 5.3, reports 1.8 ms). The input is shuffled, as endpoints arrive from the API
// server, so the time includes sorting by name. Copying the input is not timed.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "model/hash.h"
#include "model/maglev.h"

namespace capstan {
namespace {

std::vector<MaglevBackend> shuffledBackends(uint32_t n, bool weighted) {
  std::vector<MaglevBackend> out;
  for (uint32_t i = 0; i < n; ++i) {
    out.push_back({"10." + std::to_string(i / 65536) + "." + std::to_string(i / 256 % 256) + "." +
                       std::to_string(i % 256) + ":8080",
                   weighted ? i % 4 + 1 : 1});
  }
  std::shuffle(out.begin(), out.end(), std::mt19937(1));
  return out;
}

void buildTable(benchmark::State& state, bool weighted, const char* label) {
  const std::vector<MaglevBackend> input =
      shuffledBackends(static_cast<uint32_t>(state.range(0)), weighted);
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<MaglevBackend> copy = input;
    state.ResumeTiming();
    Result<MaglevTable> table = MaglevTable::build(std::move(copy));
    if (!table.ok()) state.SkipWithError(table.error().message().c_str());
    benchmark::DoNotOptimize(table);
  }
  state.SetLabel(label);
}

void BM_MaglevBuild(benchmark::State& state) {
  buildTable(state, false, "M=65537, goal < 2 ms for 1000 backends (paper: 1.8 ms)");
  state.counters["goal_ms"] = 2.0;
}
BENCHMARK(BM_MaglevBuild)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);

// Weights 1..4 cycling: the weighted schedule's extra cost (no goal, for comparison).
void BM_MaglevBuildWeighted(benchmark::State& state) {
  buildTable(state, true, "M=65537, weights 1..4, no goal");
}
BENCHMARK(BM_MaglevBuildWeighted)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond);

// Lookups of precomputed flow hashes: the per-packet cost once the 5-tuple is hashed.
void BM_MaglevLookup(benchmark::State& state) {
  Result<MaglevTable> table =
      MaglevTable::build(shuffledBackends(static_cast<uint32_t>(state.range(0)), false));
  if (!table.ok()) {
    state.SkipWithError(table.error().message().c_str());
    return;
  }
  std::vector<uint64_t> hashes(4096);
  for (size_t i = 0; i < hashes.size(); ++i) hashes[i] = mixHash64(i);
  for (auto _ : state) {
    for (uint64_t h : hashes) benchmark::DoNotOptimize(table->lookup(h));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * hashes.size()));
}
BENCHMARK(BM_MaglevLookup)->Arg(100)->Arg(1000);

}  // namespace
}  // namespace capstan
