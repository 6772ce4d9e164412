// DpdkProxier (--proxy-mode=dpdk) in process: render() prints the VIP table without DPDK; the
// first sync starts the shell on a net_pcap port and the loop's idle exit shows as finished();
// start-up errors name the flag to fix.
#include "dataplane/dpdk/dpdk_proxier.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "tests/dataplane/packet_checks.h"
#include "tests/dataplane/state_builder.h"
#include "tests/dataplane/dpdk/eal_fixture.h"
#include "tests/dataplane/dpdk/pcap_file.h"
#include "tests/dataplane/dpdk/test_eal.h"

namespace capstan::dataplane {
namespace {

using dpdk::DpdkProxier;
using dpdk::DpdkProxierConfig;
using test::Frame;
using test::ip;
using test::PacketBuilder;
using test::StateBuilder;
using test::TestService;

constexpr const char* kVip = "203.0.113.10";
constexpr const char* kNat = "192.0.2.1";

std::shared_ptr<const ProxyState> webState() {
  TestService web;
  web.type = ServiceType::kLoadBalancer;
  web.loadBalancerIPs = {kVip};
  web.nodePort = 30080;
  web.endpoints = {{"10.244.1.2"}, {"10.244.1.1"}};
  return StateBuilder().add(web).build(1);
}

ChangeSet fullChange() {
  ChangeSet changes;
  changes.full = true;
  return changes;
}

TEST(DpdkProxierRenderTest, ListsEveryVipWithItsEndpoints) {
  DpdkProxierConfig config;
  config.natAddressV4 = ip(kNat);
  DpdkProxier proxier(config);
  auto text = proxier.render(*webState());
  ASSERT_TRUE(text) << text.error().message();
  EXPECT_EQ(*text,
            "# dpdk VIP table: 2 VIPs\n"
            "192.0.2.1:30080/TCP NodePort default/web:p -> 10.244.1.1:8080 10.244.1.2:8080\n"
            "203.0.113.10:80/TCP LoadBalancerIP default/web:p -> 10.244.1.1:8080 "
            "10.244.1.2:8080\n");
  EXPECT_TRUE(proxier.cleanup());
  EXPECT_FALSE(proxier.finished());
}

class DpdkProxierTest : public test::EalTest {
 protected:
  DpdkProxierConfig config(const std::string& port) const {
    DpdkProxierConfig c;
    c.ealArgs = test::testEalArgs();
    c.port = port;
    c.natAddressV4 = ip(kNat);
    c.exitWhenIdlePolls = 1000;
    return c;
  }
};

TEST_F(DpdkProxierTest, FirstSyncStartsTheShellAndAnIdleLoopFinishes) {
  const Frame syn = PacketBuilder().ipv4("198.18.0.7", kVip).tcp(40000, 80, kTcpSyn).build();
  ASSERT_TRUE(test::writePcap(path("in.pcap"), {syn}));
  {
    DpdkProxier proxier(
        config("net_pcap10,rx_pcap=" + path("in.pcap") + ",tx_pcap=" + path("out.pcap")));
    auto stats = proxier.sync(*webState(), fullChange());
    ASSERT_TRUE(stats) << stats.error().message();
    EXPECT_TRUE(stats->full);
    EXPECT_EQ(stats->servicePorts, 1u);
    EXPECT_EQ(stats->rulesWritten, 2u);
    EXPECT_TRUE(stats->warnings.empty());
    // A later sync publishes a new table to the running loop.
    ASSERT_TRUE(proxier.sync(*webState(), fullChange()));
    std::optional<std::string> summary;
    for (int i = 0; i < 2000 && !summary; ++i) {
      summary = proxier.finished();
      if (!summary) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(summary) << "the loop did not go idle within 20 s";
    EXPECT_NE(summary->find("rx 1 packets, forwarded 1"), std::string::npos) << *summary;
  }  // closing the port flushes out.pcap
  auto out = test::readPcap(path("out.pcap"));
  ASSERT_TRUE(out) << out.error().message();
  ASSERT_EQ(out->size(), 1u);
  EXPECT_TRUE(test::checksumsValid((*out)[0]));
}

TEST_F(DpdkProxierTest, StartupErrorsNameTheFlag) {
  DpdkProxier badPort(config("net_nosuchdriver1"));
  auto r = badPort.sync(*webState(), fullChange());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("--dpdk-port"), std::string::npos) << r.error().message();

  DpdkProxierConfig many = config("net_null5");
  many.workers = 64;
  DpdkProxier tooMany(many);
  r = tooMany.sync(*webState(), fullChange());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("--dpdk-workers"), std::string::npos) << r.error().message();
}

}  // namespace
}  // namespace capstan::dataplane
