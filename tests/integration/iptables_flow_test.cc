// The L4 flow table (l4_flow_table.h) against `capstan --proxy-mode=iptables`, one test per
// case: the daemon programs kube-proxy-compatible iptables rules in a node namespace, and real
// TCP and UDP flows from a client namespace must reach the right echo backends.
#include <gtest/gtest.h>

#include "tests/integration/l4_flow_table.h"

namespace capstan::integration {
namespace {

class IptablesFlowTest : public testing::TestWithParam<FlowCase> {};

TEST_P(IptablesFlowTest, Flows) { runFlowCase(GetParam(), capstanDaemon("iptables")); }

INSTANTIATE_TEST_SUITE_P(Iptables, IptablesFlowTest, testing::ValuesIn(l4FlowCases()),
                         flowCaseName);

}  // namespace
}  // namespace capstan::integration
