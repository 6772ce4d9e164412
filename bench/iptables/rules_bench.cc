// Rule generation of the iptables mode (iptables/rules.cc), no root needed: the full ruleset, and
// the partial payload after one endpoint of one Service changed, for 1,000, 10,000 and 30,000
// Services of 10 endpoints each (bench/iptables/bench_cluster.h: a third of them have two ports,
// so 1,334 / 13,334 / 40,000 service ports).
//
// Counters: bytes and rules of the payload; for the partial payload also the anchors, computed
// with the same generator in the same run:
//   kp_full_bytes  kube-proxy before 1.28: every sync restores the whole ruleset (= a full
//                  payload);
//   kp128_bytes    kube-proxy 1.28+: every sync rewrites all top-level chains (one KUBE-SERVICES
//                  rule per service port) plus the chains of the changed Service;
// and Capstan's bytes divided by each (x_full, x_kp128).
//
//   build/release/bench/rules_bench [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <map>
#include <memory>

#include "bench/iptables/bench_cluster.h"
#include "iptables/rules.h"

namespace capstan::bench {
namespace {

constexpr size_t kEndpoints = 10;

const BenchCluster& cluster(size_t services) {
  static std::map<size_t, std::unique_ptr<BenchCluster>> clusters;
  auto& c = clusters[services];
  if (!c) c = std::make_unique<BenchCluster>(services, kEndpoints);
  return *c;
}

iptables::RuleOptions options() {
  iptables::RuleOptions o;
  o.family = IpFamily::kV4;
  o.clusterCIDR = *Cidr::parse("10.128.0.0/9");  // the generator's pod addresses
  return o;
}

void BM_FullPayload(benchmark::State& st) {
  const BenchCluster& c = cluster(static_cast<size_t>(st.range(0)));
  const iptables::RuleOptions o = options();
  iptables::Payload p;
  for (auto _ : st) {
    iptables::AppliedRules applied;
    p = iptables::fullPayload(*c.state(), o, {}, applied);
    benchmark::DoNotOptimize(p.text.data());
  }
  st.counters["bytes"] = static_cast<double>(p.text.size());
  st.counters["rules"] = static_cast<double>(p.rules);
  st.counters["ports"] = static_cast<double>(c.servicePortCount());
  st.counters["endpoints"] = static_cast<double>(c.endpointCount());
  st.SetBytesProcessed(st.iterations() * static_cast<int64_t>(p.text.size()));
}

void BM_PartialPayload(benchmark::State& st) {
  const BenchCluster& c = cluster(static_cast<size_t>(st.range(0)));
  const iptables::RuleOptions o = options();
  iptables::AppliedRules before;
  iptables::fullPayload(*c.state(), o, {}, before);
  const auto next = c.withRevision(1);
  const std::vector<ServicePortName> changed = c.changedPorts();
  iptables::Payload p;
  for (auto _ : st) {
    iptables::AppliedUpdates updates;
    p = iptables::partialPayload(*next, o, changed, before, updates);
    benchmark::DoNotOptimize(p.text.data());
  }
  if (p.text.empty()) {
    st.SkipWithError("the changed endpoint changed no rule");
    return;
  }

  // The anchors, from the same generator.
  iptables::AppliedRules after;
  const iptables::Payload full = iptables::fullPayload(*next, o, {}, after);
  std::set<std::string> oldChains = chainsOf(before, changed);
  std::set<std::string> newChains = chainsOf(after, changed);
  std::set<std::string> removed;
  for (const std::string& chain : oldChains) {
    if (!newChains.count(chain)) removed.insert(chain);
  }
  const iptables::Payload kp128 = kubeProxyPartialPayload(full.text, newChains, removed);

  const auto bytes = static_cast<double>(p.text.size());
  st.counters["bytes"] = bytes;
  st.counters["rules"] = static_cast<double>(p.rules);
  st.counters["kp_full_bytes"] = static_cast<double>(full.text.size());
  st.counters["kp128_bytes"] = static_cast<double>(kp128.text.size());
  st.counters["kp128_rules"] = static_cast<double>(kp128.rules);
  st.counters["x_full"] = bytes / static_cast<double>(full.text.size());
  st.counters["x_kp128"] = bytes / static_cast<double>(kp128.text.size());
}

BENCHMARK(BM_FullPayload)->Arg(1'000)->Arg(10'000)->Arg(30'000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PartialPayload)->Arg(1'000)->Arg(10'000)->Arg(30'000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace capstan::bench
