// The route table (l7/route_table.h) at a size a large shared ingress tier sees: 10,000 hosts
// (9,000 exact, 1,000 wildcards "*.tenant-N.example.net"), each with 10 paths (8 Prefix, 2 Exact,
// up to 3 segments deep), one Ingress per host, 1,000 Services of 3 endpoints: 100,000 routes.
//
//  - BM_MatchExactHost: requests to the exact hosts, paths 1 to 5 segments deep with a query
//    ("/api/v1/users/4711?page=2"), over 4,096 distinct requests in random order.
//  - BM_MatchWildcardHost: the same to one-label names under the wildcards (an exact-host miss
//    first, then the wildcard).
//  - BM_MatchMiss: hosts no rule names, no rule without host, no defaultBackend: three host probes
//    (exact, wildcard, any host) and a 404.
//  - BM_Build: RouteTable::build from the ProxyState (built once, not timed), the control
//    thread's cost on every ingress or endpoint change.
//  - BM_StatsLayoutBuild: which per-route and per-endpoint stats (l7/ingress_metrics.h) a new
//    table has and which of the previous table's they continue: the control thread's cost on
//    every publish.
//  - BM_WorkerStatsSwap: a worker's stats moving to a newly published table of the same routes,
//    the worker's own cost of a swap (requests on that worker wait meanwhile).
//
// Goal: a lookup well under a microsecond, so routing is noise beside parsing the request; a build
// fast enough for a sync per second at this size.
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "l7/ingress_metrics.h"
#include "l7/route_table.h"
#include "tests/l7/ingress_state_builder.h"

namespace capstan::l7 {
namespace {

constexpr int kHosts = 10000;
constexpr int kWildcardHosts = 1000;  // of kHosts
constexpr int kServices = 1000;
constexpr size_t kRequests = 4096;

struct PathSpec {
  PathType type;
  const char* path;
};
constexpr PathSpec kPaths[] = {
    {PathType::kPrefix, "/"},
    {PathType::kPrefix, "/api"},
    {PathType::kPrefix, "/api/v1"},
    {PathType::kPrefix, "/api/v2"},
    {PathType::kPrefix, "/api/v1/users"},
    {PathType::kExact, "/healthz"},
    {PathType::kPrefix, "/static"},
    {PathType::kPrefix, "/static/img"},
    {PathType::kExact, "/login"},
    {PathType::kPrefix, "/admin/reports"},
};
constexpr const char* kRequestPaths[] = {
    "/",
    "/api/v1/users/4711?page=2",
    "/api/v2/orders/17/lines/3",
    "/healthz",
    "/login",
    "/static/img/logo.png",
    "/static/app.js",
    "/admin/reports/2024",
    "/about",
    "/api",
};

std::string exactHost(int i) { return "host-" + std::to_string(i) + ".example.com"; }
std::string wildcardDomain(int i) { return "tenant-" + std::to_string(i) + ".example.net"; }

const std::shared_ptr<const ProxyState>& state() {
  static const std::shared_ptr<const ProxyState> s = [] {
    test::IngressStateBuilder builder;
    for (int i = 0; i < kServices; ++i) {
      test::TestService svc{.name = "svc-" + std::to_string(i)};
      for (int e = 0; e < 3; ++e) {
        svc.endpoints.push_back({"10." + std::to_string(i / 250) + "." + std::to_string(i % 250) +
                                 "." + std::to_string(e + 1)});
      }
      builder.service(svc);
    }
    for (int h = 0; h < kHosts; ++h) {
      const bool wildcard = h >= kHosts - kWildcardHosts;
      IngressRule rule{.host = wildcard ? "*." + wildcardDomain(h) : exactHost(h)};
      for (size_t p = 0; p < std::size(kPaths); ++p) {
        const std::string svc = "svc-" + std::to_string((h * 7 + p) % kServices);
        // Half the backends by port number, half by port name.
        rule.paths.push_back(test::path(kPaths[p].type, kPaths[p].path,
                                        p % 2 ? test::serviceBackend(svc, uint16_t{80})
                                              : test::serviceBackend(svc, std::string("http"))));
      }
      builder.ingress(
          {.name = {"default", "ing-" + std::to_string(h)}, .rules = {std::move(rule)}});
    }
    return builder.build();
  }();
  return s;
}

const std::shared_ptr<const RouteTable>& table() {
  static const std::shared_ptr<const RouteTable> t = RouteTable::build(*state());
  return t;
}

using Requests = std::vector<std::pair<std::string, std::string>>;

template <typename HostOf>
Requests requests(HostOf hostOf) {
  std::mt19937 rng(42);
  Requests out;
  for (size_t i = 0; i < kRequests; ++i) {
    out.emplace_back(hostOf(rng), kRequestPaths[rng() % std::size(kRequestPaths)]);
  }
  return out;
}

void runMatches(benchmark::State& st, const Requests& reqs, bool expectHit) {
  const RouteTable& t = *table();
  if (!t.warnings().empty()) {
    st.SkipWithError(("the table has warnings: " + t.warnings().front()).c_str());
    return;
  }
  for (const auto& [host, path] : reqs) {
    if ((t.match(host, path) != nullptr) != expectHit) {
      st.SkipWithError(("unexpected answer for " + host + path).c_str());
      return;
    }
  }
  size_t i = 0;
  for (auto _ : st) {
    const auto& [host, path] = reqs[i];
    benchmark::DoNotOptimize(t.match(host, path));
    i = (i + 1) & (kRequests - 1);
  }
  st.SetItemsProcessed(st.iterations());
}

void BM_MatchExactHost(benchmark::State& st) {
  static const Requests reqs =
      requests([](std::mt19937& rng) { return exactHost(rng() % (kHosts - kWildcardHosts)); });
  runMatches(st, reqs, true);
}
BENCHMARK(BM_MatchExactHost);

void BM_MatchWildcardHost(benchmark::State& st) {
  static const Requests reqs = requests([](std::mt19937& rng) {
    return "app" + std::to_string(rng() % 100) + "." +
           wildcardDomain(kHosts - kWildcardHosts + rng() % kWildcardHosts);
  });
  runMatches(st, reqs, true);
}
BENCHMARK(BM_MatchWildcardHost);

void BM_MatchMiss(benchmark::State& st) {
  static const Requests reqs = requests([](std::mt19937& rng) {
    return "unknown-" + std::to_string(rng() % 100000) + ".example.org";
  });
  runMatches(st, reqs, false);
}
BENCHMARK(BM_MatchMiss);

// A chain of layouts alternating between two tables of the same routes, as publishing builds them.
std::vector<std::shared_ptr<const StatsLayout>> layoutChain(size_t n) {
  const std::shared_ptr<const RouteTable> tables[2] = {table(), RouteTable::build(*state())};
  static std::vector<std::shared_ptr<const RouteTable>> keep;  // the layouts point into them
  keep.assign(std::begin(tables), std::end(tables));
  std::vector<std::shared_ptr<const StatsLayout>> chain;
  for (size_t i = 0; i < n; ++i) {
    chain.push_back(StatsLayout::build(tables[i % 2].get(), i ? chain.back().get() : nullptr));
  }
  return chain;
}

void BM_StatsLayoutBuild(benchmark::State& st) {
  const auto chain = layoutChain(1);
  const std::shared_ptr<const RouteTable> next = RouteTable::build(*state());
  for (auto _ : st) benchmark::DoNotOptimize(StatsLayout::build(next.get(), chain[0].get()));
}
BENCHMARK(BM_StatsLayoutBuild)->Unit(benchmark::kMillisecond);

constexpr size_t kSwaps = 20;
void BM_WorkerStatsSwap(benchmark::State& st) {
  const auto chain = layoutChain(kSwaps + 1);
  WorkerStats stats;
  stats.setLayout(chain[0]);
  size_t i = 0;
  for (auto _ : st) stats.setLayout(chain[++i]);
  st.counters["routes"] = static_cast<double>(table()->routes().size());
}
BENCHMARK(BM_WorkerStatsSwap)->Unit(benchmark::kMillisecond)->Iterations(kSwaps);

void BM_Build(benchmark::State& st) {
  const ProxyState& s = *state();
  size_t routes = 0;
  size_t bytes = 0;
  size_t warnings = 0;
  for (auto _ : st) {
    auto t = RouteTable::build(s);
    routes = t->routes().size();
    bytes = t->indexBytes();
    warnings = t->warnings().size();
    benchmark::DoNotOptimize(t);
  }
  st.counters["routes"] = static_cast<double>(routes);
  st.counters["index_MB"] = static_cast<double>(bytes) / 1e6;
  st.counters["warnings"] = static_cast<double>(warnings);
}
BENCHMARK(BM_Build)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace capstan::l7
