// The DPDK shell (dataplane/dpdk/) for real, on virtual devices: an input pcap made with the packet
// builder goes through net_pcap, the worker lcore's PacketCore and out to the data port's and the
// exception port's output pcaps, compared frame by frame with what the builder makes for the
// expected (NATed, checksummed) frames; and VIP tables published while a loop runs flat out on
// net_null.
#include "dataplane/dpdk/shell.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "dataplane/dpdk/eal.h"
#include "dataplane/dpdk/port.h"
#include "tests/dataplane/packet_checks.h"
#include "tests/dataplane/state_builder.h"
#include "tests/dataplane/dpdk/eal_fixture.h"
#include "tests/dataplane/dpdk/pcap_file.h"
#include "tests/dataplane/dpdk/test_eal.h"

namespace capstan::dataplane {
namespace {

using dpdk::Port;
using dpdk::PortConfig;
using dpdk::Shell;
using dpdk::ShellConfig;
using test::Frame;
using test::ip;
using test::PacketBuilder;
using test::StateBuilder;
using test::TestService;

constexpr const char* kVip = "203.0.113.10";
constexpr const char* kNat = "192.0.2.1";
constexpr const char* kClient = "198.18.0.7";
constexpr uint16_t kNatPort = 20000;
constexpr std::array<uint8_t, 6> kNextHop = {0x02, 0, 0, 0, 0, 0xfe};

std::shared_ptr<const VipTable> buildTable(const std::vector<std::string>& endpoints,
                                           uint64_t generation = 1) {
  TestService web;
  web.type = ServiceType::kLoadBalancer;
  web.loadBalancerIPs = {kVip};
  for (const std::string& e : endpoints) web.endpoints.push_back({e});
  TestService dns = web;
  dns.name = "dns";
  dns.protocol = Protocol::kUDP;
  dns.port = 53;
  dns.targetPort = 5353;
  VipTableConfig config;
  config.maglevSize = 251;
  auto built = VipTable::build(*StateBuilder().add(web).add(dns).build(generation), config);
  EXPECT_TRUE(built.problems.empty());
  return built.table;
}

// The endpoint the table gives the new flow of `frame` (a client's first packet to a VIP).
std::string endpointFor(const VipTable& table, const Frame& frame) {
  ParsedPacket p;
  EXPECT_EQ(parsePacket(frame, p), DropReason::kNone);
  const uint32_t vip = table.find(p.key);
  EXPECT_NE(vip, VipTable::kNoVip);
  const Backend* backend = VipTable::chooseBackend(table.vip(vip), p.key);
  EXPECT_NE(backend, nullptr);
  FlowKey k;
  k.family = p.key.family;
  k.dst = backend->address;
  return k.dstAddress().toString();
}

// As the shell sends a forwarded frame: to the next hop, from the data port.
Frame routed(Frame frame, const std::array<uint8_t, 6>& portMac) {
  std::copy(kNextHop.begin(), kNextHop.end(), frame.begin());
  std::copy(portMac.begin(), portMac.end(), frame.begin() + 6);
  return frame;
}

std::string hex(const Frame& frame) {
  std::string out;
  char buf[4];
  for (uint8_t b : frame) {
    std::snprintf(buf, sizeof(buf), "%02x", b);
    out += buf;
  }
  return out;
}

class DpdkShellTest : public test::EalTest {
 protected:
  static ShellConfig shellConfig() {
    ShellConfig config;
    config.core.flows.capacity = 1024;
    config.core.natAddressV4 = ip(kNat);
    // One source port: the NAT's choice is known before the run, so the endpoint's reply can be in
    // the same input file as the client's SYN.
    config.core.natPortFirst = kNatPort;
    config.core.natPortLast = kNatPort;
    config.core.natPortProbes = 1;
    config.lcores = {1};
    config.exitWhenIdlePolls = 1000;
    config.nextHopMac = kNextHop;
    return config;
  }
};

TEST_F(DpdkShellTest, GoldenPcapThroughNetPcap) {
  const auto table = buildTable({"10.244.1.1", "10.244.1.2", "10.244.2.1"});
  const Frame syn = PacketBuilder().ipv4(kClient, kVip, 57).tcp(40000, 80, kTcpSyn).build();
  const std::string webEndpoint = endpointFor(*table, syn);
  const Frame synAck = PacketBuilder()
                           .ipv4(webEndpoint, kNat)
                           .tcp(8080, kNatPort, kTcpSyn | kTcpAck, 9000, 1001)
                           .build();
  const Frame query = PacketBuilder().ipv4(kClient, kVip).udp(5000, 53).payload("query").build();
  const std::string dnsEndpoint = endpointFor(*table, query);
  const Frame noVip = PacketBuilder().ipv4(kClient, "198.51.100.99").tcp(40001, 22).build();
  const Frame arp = PacketBuilder()
                        .etherType(kEtherTypeArp)
                        .payload(std::vector<uint8_t>(28, 0x01))
                        .padTo(60)
                        .build();
  const Frame cut = test::truncated(syn, 30);  // 16 bytes of a 20-byte IPv4 header
  const Frame fromKernel = PacketBuilder().ipv4(kNat, "198.51.100.1").tcp(33000, 443).build();
  ASSERT_TRUE(test::writePcap(path("in.pcap"), {syn, synAck, query, noVip, arp, cut}));
  ASSERT_TRUE(test::writePcap(path("kernel-in.pcap"), {fromKernel}));

  auto data = Port::open(
      {.device = "net_pcap0,rx_pcap=" + path("in.pcap") + ",tx_pcap=" + path("out.pcap")});
  ASSERT_TRUE(data) << data.error().message();
  auto kernel = Port::open({.device = "net_pcap1,rx_pcap=" + path("kernel-in.pcap") +
                                      ",tx_pcap=" + path("kernel-out.pcap")});
  ASSERT_TRUE(kernel) << kernel.error().message();
  const std::array<uint8_t, 6> mac = (*data)->mac();

  auto shell = Shell::create(**data, kernel->get(), shellConfig());
  ASSERT_TRUE(shell) << shell.error().message();
  ASSERT_TRUE((*shell)->publish(table));
  ASSERT_TRUE((*shell)->start());
  const bool exited = (*shell)->waitForExit(std::chrono::seconds(20));
  (*shell)->stop();
  ASSERT_TRUE(exited) << "the loop did not go idle within 20 s";

  const dpdk::WorkerCounters c = (*shell)->counters().total();
  EXPECT_EQ(c.rxPackets, 6u);
  EXPECT_EQ(c.core.forwarded, 3u);
  EXPECT_EQ(c.core.newFlows, 2u);
  EXPECT_EQ(c.core.toKernel, 2u);
  EXPECT_EQ(c.core.dropped, 1u);
  EXPECT_EQ(c.core.drops[static_cast<size_t>(DropReason::kIpv4Truncated)], 1u);
  EXPECT_EQ(c.txForwarded, 3u);
  EXPECT_EQ(c.txToKernel, 2u);
  EXPECT_EQ(c.fromKernel, 1u);
  EXPECT_EQ(c.txFull, 0u);
  EXPECT_EQ(c.flowsInUse, 2u);
  EXPECT_EQ(c.tableGeneration, table->generation());
  EXPECT_GE(c.idlePolls, 1000u);
  EXPECT_GT(c.busyNs, 0u);

  // Closing flushes the output pcaps.
  (*data)->close();
  (*kernel)->close();
  auto out = test::readPcap(path("out.pcap"));
  ASSERT_TRUE(out) << out.error().message();
  const std::vector<Frame> expectedOut = {
      routed(PacketBuilder().ipv4(kNat, webEndpoint, 57).tcp(kNatPort, 8080, kTcpSyn).build(), mac),
      routed(
          PacketBuilder().ipv4(kVip, kClient).tcp(80, 40000, kTcpSyn | kTcpAck, 9000, 1001).build(),
          mac),
      routed(PacketBuilder().ipv4(kNat, dnsEndpoint).udp(kNatPort, 5353).payload("query").build(),
             mac),
      fromKernel,  // the kernel's own frame, untouched
  };
  ASSERT_EQ(out->size(), expectedOut.size());
  for (size_t i = 0; i < expectedOut.size(); ++i) {
    EXPECT_EQ(hex((*out)[i]), hex(expectedOut[i])) << "data port frame " << i;
    EXPECT_TRUE(test::checksumsValid((*out)[i])) << "data port frame " << i;
  }
  auto toKernel = test::readPcap(path("kernel-out.pcap"));
  ASSERT_TRUE(toKernel) << toKernel.error().message();
  ASSERT_EQ(toKernel->size(), 2u);
  EXPECT_EQ(hex((*toKernel)[0]), hex(noVip));
  EXPECT_EQ(hex((*toKernel)[1]), hex(arp));
}

TEST_F(DpdkShellTest, WithoutAnExceptionPortKernelFramesAreDroppedAndCounted) {
  const Frame noVip = PacketBuilder().ipv4(kClient, "198.51.100.99").tcp(40001, 22).build();
  ASSERT_TRUE(test::writePcap(path("in.pcap"), {noVip, noVip}));
  auto data = Port::open(
      {.device = "net_pcap2,rx_pcap=" + path("in.pcap") + ",tx_pcap=" + path("out.pcap")});
  ASSERT_TRUE(data) << data.error().message();
  auto shell = Shell::create(**data, nullptr, shellConfig());
  ASSERT_TRUE(shell) << shell.error().message();
  ASSERT_TRUE((*shell)->start());
  ASSERT_TRUE((*shell)->waitForExit(std::chrono::seconds(20)));
  const dpdk::WorkerCounters c = (*shell)->counters().total();
  EXPECT_EQ(c.core.toKernel, 2u);
  EXPECT_EQ(c.noKernelPort, 2u);
  EXPECT_EQ(c.txForwarded, 0u);
  (*data)->close();
  auto out = test::readPcap(path("out.pcap"));
  ASSERT_TRUE(out) << out.error().message();
  EXPECT_TRUE(out->empty());
}

// Two loops busy on net_null (64-byte frames of zeros: not IP, so the kernel's, dropped for want
// of an exception port) while the control thread publishes table after table: every publish
// completes its grace period, every loop ends on the last table, and stop() returns.
TEST_F(DpdkShellTest, TablesPublishedWhileTheLoopsRun) {
  auto data = Port::open({.device = "net_null0,size=64", .queues = 2});
  ASSERT_TRUE(data) << data.error().message();
  ShellConfig config = shellConfig();
  config.lcores = {1, 2};
  config.core.natPortLast = kNatPort + 99;
  config.exitWhenIdlePolls = 0;
  auto shell = Shell::create(**data, nullptr, config);
  ASSERT_TRUE(shell) << shell.error().message();
  ASSERT_TRUE((*shell)->publish(buildTable({"10.244.1.1"})));
  ASSERT_TRUE((*shell)->start());
  std::shared_ptr<const VipTable> last;
  std::weak_ptr<const VipTable> first;
  for (int i = 0; i < 50; ++i) {
    last = buildTable({"10.244.1." + std::to_string(i % 3 + 1)}, static_cast<uint64_t>(i + 2));
    if (i == 0) first = last;
    const Status published = (*shell)->publish(last);
    ASSERT_TRUE(published) << published.error().message();
  }
  // The loops switched away from the first table and the control thread released it.
  EXPECT_TRUE(first.expired());
  EXPECT_TRUE((*shell)->running());
  // On a loaded machine the 50 grace periods can all end before a loop's first burst: give each
  // loop a bounded moment to receive before stopping.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (int i = 0; i < 500 && std::chrono::steady_clock::now() < deadline; ++i) {
    const dpdk::ShellCounters now = (*shell)->counters();
    if (std::all_of(now.workers.begin(), now.workers.end(),
                    [](const dpdk::WorkerCounters& w) { return w.rxPackets > 0; })) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  (*shell)->stop();
  EXPECT_FALSE((*shell)->running());
  const dpdk::ShellCounters counters = (*shell)->counters();
  ASSERT_EQ(counters.workers.size(), 2u);
  for (const dpdk::WorkerCounters& w : counters.workers) {
    EXPECT_EQ(w.tableGeneration, last->generation());
    EXPECT_GE(w.tableSwitches, 1u);
    EXPECT_GT(w.rxPackets, 0u);
    EXPECT_EQ(w.noKernelPort, w.core.toKernel);
  }
  (*data)->close();
}

TEST_F(DpdkShellTest, ClearErrors) {
  auto bad = Port::open({.device = "net_nosuchdriver0"});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("net_nosuchdriver0"), std::string::npos)
      << bad.error().message();
  auto missing = Port::open({.device = "net_pcap3,rx_pcap=" + path("absent.pcap")});
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("rte_dev_probe"), std::string::npos)
      << missing.error().message();

  const Status again = dpdk::Eal::init("--no-huge -m 64");
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message().find("already initialised"), std::string::npos)
      << again.error().message();

  auto data = Port::open({.device = "net_null1"});
  ASSERT_TRUE(data) << data.error().message();
  ShellConfig config = shellConfig();
  config.lcores = {0};  // the main lcore: the control thread's
  auto shell = Shell::create(**data, nullptr, config);
  ASSERT_FALSE(shell);
  EXPECT_NE(shell.error().message().find("not a worker lcore"), std::string::npos)
      << shell.error().message();
  config.lcores = {1, 2};  // two workers, one queue
  shell = Shell::create(**data, nullptr, config);
  ASSERT_FALSE(shell);
  EXPECT_NE(shell.error().message().find("queues"), std::string::npos) << shell.error().message();
}

}  // namespace
}  // namespace capstan::dataplane
