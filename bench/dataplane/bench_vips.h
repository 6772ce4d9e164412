// The VIP table both dataplane benchmarks run on (bench/dataplane/packet_core_bench.cc, the
// packet core alone, and bench/dataplane/dpdk/shell_bench.cc, through DPDK): 100 LoadBalancer
// VIPs 203.0.113.<v>:80, each with 100 endpoints 10.<v>.0.<e>, built through the model.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dataplane/vip_table.h"
#include "tests/dataplane/state_builder.h"

namespace capstan::dataplane::bench {

inline constexpr uint32_t kVips = 100;
inline constexpr uint32_t kEndpointsPerVip = 100;

inline std::shared_ptr<const VipTable> buildBenchVipTable() {
  test::StateBuilder builder;
  for (uint32_t v = 0; v < kVips; ++v) {
    test::TestService s;
    s.name = "svc-" + std::to_string(v);
    s.type = ServiceType::kLoadBalancer;
    s.clusterIPs = {"10.96.0." + std::to_string(v)};
    s.loadBalancerIPs = {"203.0.113." + std::to_string(v)};
    for (uint32_t e = 0; e < kEndpointsPerVip; ++e) {
      s.endpoints.push_back({"10." + std::to_string(v) + ".0." + std::to_string(e + 1)});
    }
    builder.add(s);
  }
  return VipTable::build(*builder.build(), VipTableConfig{}).table;
}

}  // namespace capstan::dataplane::bench
