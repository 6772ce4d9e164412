// splitEalArgs (dataplane/dpdk/eal.h): --dpdk-eal-args split into words as a shell would.
#include "dataplane/dpdk/eal.h"

#include <gtest/gtest.h>

namespace capstan::dataplane::dpdk {
namespace {

using Words = std::vector<std::string>;

TEST(SplitEalArgs, Words) {
  EXPECT_EQ(*splitEalArgs("  -l 0,1\t--no-huge  -m 256\n"),
            (Words{"-l", "0,1", "--no-huge", "-m", "256"}));
  EXPECT_EQ(*splitEalArgs(""), Words{});
}

TEST(SplitEalArgs, QuotesAndEscapes) {
  EXPECT_EQ(*splitEalArgs(R"x(--vdev 'net_pcap0,rx_pcap=/tmp/a b.pcap' --lcores "0@(0,1)")x"),
            (Words{"--vdev", "net_pcap0,rx_pcap=/tmp/a b.pcap", "--lcores", "0@(0,1)"}));
  EXPECT_EQ(*splitEalArgs(R"(a\ b "" c'd'e)"), (Words{"a b", "", "cde"}));
}

TEST(SplitEalArgs, Errors) {
  ASSERT_FALSE(splitEalArgs("--vdev 'net_pcap0"));
  EXPECT_EQ(splitEalArgs("--vdev 'net_pcap0").error().message(),
            "--dpdk-eal-args: unterminated ' quote");
  EXPECT_FALSE(splitEalArgs("-l 0\\"));
}

}  // namespace
}  // namespace capstan::dataplane::dpdk
