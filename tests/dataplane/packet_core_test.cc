// PacketCore (dataplane/packet_core.h) as packet tables: a frame in, the verdict and the frame out.
// A SYN to a VIP leaves NATed to an endpoint, the endpoint's reply leaves translated back, for TCP,
// UDP and IPv6; frames not for a VIP go to the kernel; bad ones are dropped and counted; flows
// keep or lose their endpoint as the table changes; the clock is a plain number.
#include "dataplane/packet_core.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "dataplane/bytes.h"
#include "tests/dataplane/packet_checks.h"
#include "tests/dataplane/state_builder.h"

namespace capstan::dataplane {
namespace {

using test::Frame;
using test::ip;
using test::PacketBuilder;
using test::StateBuilder;
using test::TestService;

constexpr uint64_t kSecond = kNanosPerSecond;
constexpr const char* kVip = "203.0.113.10";
constexpr const char* kVip6 = "2001:db8:1::10";
constexpr const char* kNat = "192.0.2.1";
constexpr const char* kNat6 = "2001:db8::1";
constexpr const char* kClient = "198.18.0.7";
constexpr const char* kClient6 = "2001:db8:ff::7";

TestService web() {
  TestService s;
  s.type = ServiceType::kLoadBalancer;
  s.clusterIPs = {"10.96.0.10", "fd00:96::10"};
  s.loadBalancerIPs = {kVip, kVip6};
  s.nodePort = 30080;
  s.endpoints = {{"10.244.1.1"}, {"10.244.1.2"}, {"10.244.2.1"}, {"fd00:244::1"}, {"fd00:244::2"}};
  return s;
}

TestService dns() {
  TestService s = web();
  s.name = "dns";
  s.protocol = Protocol::kUDP;
  s.port = 53;
  s.targetPort = 5353;
  s.nodePort = 0;
  return s;
}

std::string addressText(const FlowKey& k, bool source) {
  return (source ? k.srcAddress() : k.dstAddress()).toString();
}

class PacketCoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config.flows.capacity = 1024;
    config.natAddressV4 = ip(kNat);
    config.natAddressV6 = ip(kNat6);
    config.natPortFirst = 20000;
    config.natPortLast = 29999;
    core = std::make_unique<PacketCore>(config);
    publish({web(), dns()});
  }

  void publish(const std::vector<TestService>& services, uint64_t generation = 1) {
    StateBuilder builder;
    for (const TestService& s : services) builder.add(s);
    VipTableConfig vc;
    vc.nodePortAddresses = {ip(kNat), ip(kNat6)};
    vc.maglevSize = 251;
    auto built = VipTable::build(*builder.build(generation), vc);
    ASSERT_TRUE(built.problems.empty()) << built.problems[0];
    core->setVipTable(built.table);
  }

  // Processes `frame` in place; returns the verdict.
  Verdict run(Frame& frame, uint64_t now = 0) { return core->process(frame, now); }

  static ParsedPacket parsed(const Frame& frame) {
    ParsedPacket p;
    EXPECT_EQ(parsePacket(frame, p), DropReason::kNone);
    return p;
  }

  // Sends a client SYN through the core; returns the translated packet's key.
  FlowKey connect(uint16_t clientPort, const char* client = kClient, const char* vip = kVip,
                  uint64_t now = 0) {
    Frame syn = PacketBuilder().ipv4(client, vip).tcp(clientPort, 80, kTcpSyn).build();
    EXPECT_EQ(run(syn, now).action, Action::kForward);
    EXPECT_TRUE(test::checksumsValid(syn));
    return parsed(syn).key;
  }

  const VipCounters& countersOf(const char* vip, uint16_t port, uint8_t protocol = kIpProtoTcp) {
    FlowKey k;
    k.family = ip(vip).family();
    k.setDst(ip(vip));
    k.dstPort = port;
    k.protocol = protocol;
    const uint32_t i = core->vipTable()->find(k);
    EXPECT_NE(i, VipTable::kNoVip);
    return core->vipCounters(i);
  }

  PacketCoreConfig config;
  std::unique_ptr<PacketCore> core;
};

TEST_F(PacketCoreTest, SynToAVipLeavesTranslatedToAnEndpoint) {
  Frame syn = PacketBuilder().ipv4(kClient, kVip, 57).tcp(40000, 80, kTcpSyn).payload("").build();
  const Verdict v = run(syn);
  EXPECT_EQ(v.action, Action::kForward);
  EXPECT_TRUE(test::checksumsValid(syn));
  const ParsedPacket out = parsed(syn);
  EXPECT_EQ(addressText(out.key, true), kNat);
  EXPECT_GE(out.key.srcPort, 20000);
  EXPECT_LE(out.key.srcPort, 29999);
  const std::set<std::string> endpoints = {"10.244.1.1", "10.244.1.2", "10.244.2.1"};
  EXPECT_TRUE(endpoints.count(addressText(out.key, false))) << addressText(out.key, false);
  EXPECT_EQ(out.key.dstPort, 8080);
  EXPECT_EQ(out.tcpFlags, kTcpSyn);
  EXPECT_EQ(out.ttl, 57);  // the core NATs; it does not route
  // Byte for byte what the builder makes for the translated tuple.
  EXPECT_EQ(syn, PacketBuilder()
                     .ipv4(kNat, addressText(out.key, false), 57)
                     .tcp(out.key.srcPort, 8080, kTcpSyn)
                     .build());
  EXPECT_EQ(core->counters().newFlows, 1u);
  EXPECT_EQ(core->counters().forwarded, 1u);
  EXPECT_EQ(core->flows().size(), 1u);
  EXPECT_EQ(countersOf(kVip, 80).newFlows, 1u);
  EXPECT_EQ(countersOf(kVip, 80).packets, 1u);
}

TEST_F(PacketCoreTest, TheEndpointsReplyLeavesTranslatedBack) {
  const FlowKey sent = connect(40000);
  const std::string endpoint = addressText(sent, false);
  Frame synAck = PacketBuilder()
                     .ipv4(endpoint, kNat)
                     .tcp(8080, sent.srcPort, kTcpSyn | kTcpAck, 9000, 1001)
                     .build();
  EXPECT_EQ(run(synAck, 1).action, Action::kForward);
  EXPECT_EQ(
      synAck,
      PacketBuilder().ipv4(kVip, kClient).tcp(80, 40000, kTcpSyn | kTcpAck, 9000, 1001).build());
  EXPECT_TRUE(test::checksumsValid(synAck));

  // The handshake completes and data flows both ways through the same flow.
  Frame ack = PacketBuilder()
                  .ipv4(kClient, kVip)
                  .tcp(40000, 80, kTcpAck, 1001, 9001)
                  .payload("GET /")
                  .build();
  EXPECT_EQ(run(ack, 2).action, Action::kForward);
  EXPECT_EQ(ack, PacketBuilder()
                     .ipv4(kNat, endpoint)
                     .tcp(sent.srcPort, 8080, kTcpAck, 1001, 9001)
                     .payload("GET /")
                     .build());
  const FlowTable::Match m = core->flows().find(parsed(ack).key.reversed(), 2);
  ASSERT_NE(m.flow, nullptr);
  EXPECT_EQ(m.flow->tcpState, TcpState::kEstablished);
  EXPECT_EQ(core->counters().newFlows, 1u);
  EXPECT_EQ(countersOf(kVip, 80).packets, 3u);
}

TEST_F(PacketCoreTest, UdpBothWays) {
  Frame query = PacketBuilder().ipv4(kClient, kVip).udp(5000, 53).payload("query").build();
  EXPECT_EQ(run(query).action, Action::kForward);
  const FlowKey sent = parsed(query).key;
  EXPECT_EQ(sent.dstPort, 5353);
  EXPECT_EQ(addressText(sent, true), kNat);
  EXPECT_TRUE(test::checksumsValid(query));
  Frame answer = PacketBuilder()
                     .ipv4(addressText(sent, false), kNat)
                     .udp(5353, sent.srcPort)
                     .payload("answer")
                     .build();
  EXPECT_EQ(run(answer, kSecond).action, Action::kForward);
  EXPECT_EQ(answer, PacketBuilder().ipv4(kVip, kClient).udp(53, 5000).payload("answer").build());
  EXPECT_EQ(countersOf(kVip, 53, kIpProtoUdp).packets, 2u);
}

TEST_F(PacketCoreTest, Ipv6BothWays) {
  Frame syn = PacketBuilder().ipv6(kClient6, kVip6).tcp(40000, 80, kTcpSyn).build();
  EXPECT_EQ(run(syn).action, Action::kForward);
  EXPECT_TRUE(test::checksumsValid(syn));
  const FlowKey sent = parsed(syn).key;
  EXPECT_EQ(addressText(sent, true), kNat6);
  EXPECT_EQ(addressText(sent, false).rfind("fd00:244::", 0), 0u);
  Frame synAck = PacketBuilder()
                     .ipv6(addressText(sent, false), kNat6)
                     .tcp(8080, sent.srcPort, kTcpSyn | kTcpAck)
                     .build();
  EXPECT_EQ(run(synAck).action, Action::kForward);
  EXPECT_EQ(synAck,
            PacketBuilder().ipv6(kVip6, kClient6).tcp(80, 40000, kTcpSyn | kTcpAck).build());

  Frame udp = PacketBuilder().vlan(100).ipv6(kClient6, kVip6).udp(7, 53).payload("q").build();
  EXPECT_EQ(run(udp).action, Action::kForward);
  EXPECT_TRUE(test::checksumsValid(udp));
  EXPECT_EQ(parsed(udp).vlanTci, 100);  // layer 2 untouched
}

TEST_F(PacketCoreTest, NodePortsAreServedOnTheNodeAddress) {
  Frame syn = PacketBuilder().ipv4(kClient, kNat).tcp(40000, 30080, kTcpSyn).build();
  EXPECT_EQ(run(syn).action, Action::kForward);
  const FlowKey sent = parsed(syn).key;
  EXPECT_EQ(sent.dstPort, 8080);
  Frame reply = PacketBuilder()
                    .ipv4(addressText(sent, false), kNat)
                    .tcp(8080, sent.srcPort, kTcpSyn | kTcpAck)
                    .build();
  EXPECT_EQ(run(reply).action, Action::kForward);
  EXPECT_EQ(reply,
            PacketBuilder().ipv4(kNat, kClient).tcp(30080, 40000, kTcpSyn | kTcpAck).build());
}

TEST_F(PacketCoreTest, WhatIsNotForAVipGoesToTheKernel) {
  std::vector<Frame> frames = {
      PacketBuilder().ipv4(kClient, "203.0.113.99").tcp(40000, 80).build(),  // no such VIP
      PacketBuilder().ipv4(kClient, kVip).tcp(40000, 22).build(),            // VIP, other port
      PacketBuilder().ipv4(kClient, kVip).udp(40000, 80).build(),            // VIP, other protocol
      PacketBuilder().ipv4(kClient, "10.96.0.10").tcp(40000, 80).build(),  // ClusterIPs not served
      PacketBuilder().ipv4(kClient, kNat).tcp(40000, 22).build(),          // the node's own ssh
      PacketBuilder().ipv4("10.244.1.1", kNat).tcp(8080, 20000, kTcpAck).build(),  // no such flow
      PacketBuilder().ipv4(kClient, kVip).icmpEcho(1, 1).build(),
      PacketBuilder().ipv4(kClient, kVip).protocol(47).payload("gre").build(),
      PacketBuilder().etherType(kEtherTypeArp).payload(std::string(28, 'a')).build(),
      PacketBuilder().ipv4(kClient, kVip).ipv4Fragment(0, true).tcp(40000, 80).build(),
  };
  for (size_t i = 0; i < frames.size(); ++i) {
    const Frame before = frames[i];
    EXPECT_EQ(run(frames[i]).action, Action::kToKernel) << i;
    EXPECT_EQ(frames[i], before) << i;  // untouched
  }
  EXPECT_EQ(core->counters().toKernel, frames.size());
  EXPECT_EQ(core->counters().fragmentsToKernel, 1u);
  EXPECT_EQ(core->flows().size(), 0u);
}

TEST_F(PacketCoreTest, MalformedFramesAreDroppedAndCountedByReason) {
  Frame good = PacketBuilder().ipv4(kClient, kVip).tcp(40000, 80).build();
  Frame truncated = test::truncated(good, 40);
  Frame badChecksum = test::withByte(good, 22, 1);
  Frame garbage(9, 0xab);
  EXPECT_EQ(run(truncated).reason, DropReason::kIpv4Truncated);
  EXPECT_EQ(run(badChecksum).reason, DropReason::kIpv4BadChecksum);
  const Verdict v = run(garbage);
  EXPECT_EQ(v.action, Action::kDrop);
  EXPECT_EQ(v.reason, DropReason::kEthernetTruncated);
  EXPECT_EQ(core->counters().dropped, 3u);
  EXPECT_EQ(core->counters().drops[static_cast<size_t>(DropReason::kIpv4Truncated)], 1u);
  EXPECT_EQ(core->counters().drops[static_cast<size_t>(DropReason::kEthernetTruncated)], 1u);
  EXPECT_EQ(core->flows().size(), 0u);
}

TEST_F(PacketCoreTest, VipsWithoutUsableEndpointsDrop) {
  TestService none = web();
  none.endpoints.clear();
  TestService restricted = dns();
  restricted.sourceRanges = {"192.0.2.0/24"};
  publish({none, restricted});
  Frame syn = PacketBuilder().ipv4(kClient, kVip).tcp(40000, 80).build();
  EXPECT_EQ(run(syn).reason, DropReason::kNoEndpoints);
  Frame query = PacketBuilder().ipv4(kClient, kVip).udp(5000, 53).build();
  EXPECT_EQ(run(query).reason, DropReason::kSourceNotAllowed);
  Frame allowed = PacketBuilder().ipv4("192.0.2.50", kVip).udp(5000, 53).build();
  EXPECT_EQ(run(allowed).action, Action::kForward);
  EXPECT_EQ(countersOf(kVip, 80).drops, 1u);
  EXPECT_EQ(countersOf(kVip, 53, kIpProtoUdp).drops, 1u);
  EXPECT_EQ(countersOf(kVip, 53, kIpProtoUdp).packets, 2u);
}

TEST_F(PacketCoreTest, AnEndpointRemovedMidFlowMovesOnlyItsFlows) {
  std::map<uint16_t, std::string> backendOf;
  for (uint16_t port = 40000; port < 40060; ++port)
    backendOf[port] = addressText(connect(port), false);
  // 10.244.1.2 leaves; 10.244.3.1 joins (Maglev's table changes for many hashes).
  TestService changed = web();
  changed.endpoints = {{"10.244.1.1"}, {"10.244.2.1"}, {"10.244.3.1"}, {"fd00:244::1"}};
  publish({changed, dns()}, 2);
  int moved = 0;
  for (const auto& [port, before] : backendOf) {
    Frame data = PacketBuilder().ipv4(kClient, kVip).tcp(port, 80, kTcpAck).payload("more").build();
    ASSERT_EQ(run(data, kSecond).action, Action::kForward);
    const std::string now = addressText(parsed(data).key, false);
    if (before == "10.244.1.2") {
      EXPECT_NE(now, "10.244.1.2");
      ++moved;
    } else {
      EXPECT_EQ(now, before) << port;  // established flows keep their endpoint
    }
  }
  EXPECT_GT(moved, 0);
  EXPECT_EQ(core->counters().flowsRescheduled, static_cast<uint64_t>(moved));
}

TEST_F(PacketCoreTest, TerminatingEndpointsKeepTheirFlowsAndGetNoNewOnes) {
  std::map<uint16_t, std::string> backendOf;
  for (uint16_t port = 40000; port < 40030; ++port)
    backendOf[port] = addressText(connect(port), false);
  TestService draining = web();
  draining.endpoints[0] = {"10.244.1.1", false, true, true};  // terminating, still serving
  publish({draining, dns()}, 2);
  for (const auto& [port, before] : backendOf) {
    Frame data = PacketBuilder().ipv4(kClient, kVip).tcp(port, 80, kTcpAck).build();
    ASSERT_EQ(run(data).action, Action::kForward);
    EXPECT_EQ(addressText(parsed(data).key, false), before);
  }
  EXPECT_EQ(core->counters().flowsRescheduled, 0u);
  for (uint16_t port = 50000; port < 50100; ++port) {
    EXPECT_NE(addressText(connect(port), false), "10.244.1.1");
  }
}

TEST_F(PacketCoreTest, FlowsExpireOnTheClock) {
  const FlowKey sent = connect(40000, kClient, kVip, 0);
  const uint64_t synTimeout = config.flows.timeouts.tcpSynNs;
  Frame lateReply = PacketBuilder()
                        .ipv4(addressText(sent, false), kNat)
                        .tcp(8080, sent.srcPort, kTcpSyn | kTcpAck)
                        .build();
  EXPECT_EQ(run(lateReply, synTimeout).action, Action::kToKernel);
  EXPECT_EQ(core->flows().size(), 0u);
  EXPECT_EQ(core->flows().counters().expired, 1u);

  // UDP stays while it talks, and goes after udpNs of silence.
  uint64_t now = synTimeout;
  for (int i = 0; i < 5; ++i) {
    Frame q = PacketBuilder().ipv4(kClient, kVip).udp(5000, 53).build();
    ASSERT_EQ(run(q, now).action, Action::kForward);
    now += config.flows.timeouts.udpNs - kSecond;
  }
  EXPECT_EQ(core->counters().newFlows, 2u);
  now += 2 * kSecond;
  Frame q = PacketBuilder().ipv4(kClient, kVip).udp(5000, 53).build();
  ASSERT_EQ(run(q, now).action, Action::kForward);
  EXPECT_EQ(core->counters().newFlows, 3u);
}

TEST_F(PacketCoreTest, ANewSynOnAClosedFlowIsANewConnection) {
  connect(40000);
  Frame rst = PacketBuilder().ipv4(kClient, kVip).tcp(40000, 80, kTcpRst).build();
  EXPECT_EQ(run(rst, 1).action, Action::kForward);
  connect(40000, kClient, kVip, 2);
  EXPECT_EQ(core->counters().newFlows, 2u);
  EXPECT_EQ(core->flows().size(), 1u);
}

TEST_F(PacketCoreTest, TwoCoresFedTheSamePacketsChooseTheSameEndpoints) {
  PacketCore other(config);
  other.setVipTable(std::const_pointer_cast<const VipTable>(
      VipTable::build(*StateBuilder().add(web()).add(dns()).build(),
                      [] {
                        VipTableConfig vc;
                        vc.nodePortAddresses = {ip(kNat), ip(kNat6)};
                        vc.maglevSize = 251;
                        return vc;
                      }())
          .table));
  for (uint16_t port = 40000; port < 40200; ++port) {
    Frame a = PacketBuilder().ipv4(kClient, kVip).tcp(port, 80).build();
    Frame b = a;
    ASSERT_EQ(run(a).action, Action::kForward);
    ASSERT_EQ(other.process(b, 0).action, Action::kForward);
    EXPECT_EQ(addressText(parsed(a).key, false), addressText(parsed(b).key, false));
  }
}

TEST_F(PacketCoreTest, IcmpFragmentationNeededForANatedFlowReachesTheClient) {
  const FlowKey sent = connect(40000);
  const std::string endpoint = addressText(sent, false);
  // A router on the endpoint side cannot forward our 1500-byte packet N:np -> E:8080.
  std::vector<uint8_t> quote = PacketBuilder()
                                   .ipv4(kNat, endpoint)
                                   .tcp(sent.srcPort, 8080, kTcpAck, 1001, 9001)
                                   .payload(std::string(100, 'x'))
                                   .buildIp();
  quote.resize(28);
  Frame error = PacketBuilder().ipv4("10.244.0.254", kNat).icmpError(3, 4, quote, 1400).build();
  EXPECT_EQ(run(error).action, Action::kForward);
  std::vector<uint8_t> expectedQuote = PacketBuilder()
                                           .ipv4(kClient, kVip)
                                           .tcp(40000, 80, kTcpAck, 1001, 9001)
                                           .payload(std::string(100, 'x'))
                                           .buildIp();
  expectedQuote.resize(28);
  EXPECT_EQ(error,
            PacketBuilder().ipv4(kVip, kClient).icmpError(3, 4, expectedQuote, 1400).build());
  EXPECT_TRUE(test::checksumsValid(error));
  EXPECT_EQ(core->counters().icmpErrorsTranslated, 1u);

  // An error about a flow nobody has: the kernel's.
  std::vector<uint8_t> stranger = PacketBuilder().ipv4(kNat, endpoint).tcp(29999, 8080).buildIp();
  Frame unknown = PacketBuilder().ipv4("10.244.0.254", kNat).icmpError(3, 4, stranger).build();
  EXPECT_EQ(run(unknown).action, Action::kToKernel);
}

TEST_F(PacketCoreTest, RunningOutOfNatPortsOrAddressesDrops) {
  config.natPortFirst = config.natPortLast = 20000;
  config.natAddressV6.reset();
  core = std::make_unique<PacketCore>(config);
  TestService one = web();
  one.endpoints = {{"10.244.1.1"}, {"fd00:244::1"}};
  publish({one});
  connect(40000);
  Frame second = PacketBuilder().ipv4(kClient, kVip).tcp(40001, 80).build();
  EXPECT_EQ(run(second).reason, DropReason::kNoSourcePort);
  Frame v6 = PacketBuilder().ipv6(kClient6, kVip6).tcp(40000, 80).build();
  EXPECT_EQ(run(v6).reason, DropReason::kNoNatAddress);
}

TEST_F(PacketCoreTest, VipCountersFollowTheirVipIntoANewTable) {
  connect(40000);
  connect(40001);
  TestService moved = web();
  moved.name = "a-first";  // sorts first: the VIP's index changes
  moved.loadBalancerIPs = {"203.0.113.77"};
  moved.nodePort = 0;
  publish({moved, web(), dns()}, 2);
  EXPECT_EQ(countersOf(kVip, 80).newFlows, 2u);
  EXPECT_EQ(countersOf("203.0.113.77", 80).newFlows, 0u);
}

TEST_F(PacketCoreTest, AFullFlowTableEvictsAndKeepsForwarding) {
  config.flows.capacity = 16;
  core = std::make_unique<PacketCore>(config);
  publish({web(), dns()});
  for (uint16_t port = 40000; port < 40100; ++port) connect(port, kClient, kVip, port);
  EXPECT_EQ(core->flows().size(), 16u);
  EXPECT_EQ(core->flows().counters().evicted, 100u - 16u);
  EXPECT_EQ(core->counters().newFlows, 100u);
}

// processBurst() gives the verdicts and frames of process() one frame at a time, for bursts longer
// than kMaxBurst mixing new flows, replies, repeats, junk and frames for the kernel.
TEST_F(PacketCoreTest, ABurstIsProcessedAsItsFramesOneByOne) {
  PacketCore single(config);
  single.setVipTable(std::make_shared<const VipTable>(*core->vipTable()));
  std::vector<Frame> first;
  for (uint16_t i = 0; i < 150; ++i) {
    if (i % 10 == 3) {
      first.push_back(Frame(20, 0x42));
    } else if (i % 10 == 7) {
      first.push_back(PacketBuilder().ipv4(kClient, "203.0.113.99").tcp(i, 80).build());
    } else if (i % 10 == 9) {
      first.push_back(first[i - 1]);  // the same SYN again, in the same burst
    } else {
      first.push_back(PacketBuilder().ipv4(kClient, kVip).tcp(40000 + i, 80).build());
    }
  }
  auto runBoth = [&](std::vector<Frame> frames) {
    std::vector<Frame> one = frames;
    std::vector<Verdict> expected;
    for (Frame& f : one) expected.push_back(single.process(f, 5));
    std::vector<std::span<uint8_t>> spans(frames.begin(), frames.end());
    std::vector<Verdict> verdicts(frames.size());
    core->processBurst(spans, 5, verdicts);
    for (size_t i = 0; i < frames.size(); ++i) {
      EXPECT_EQ(verdicts[i].action, expected[i].action) << i;
      EXPECT_EQ(verdicts[i].reason, expected[i].reason) << i;
      EXPECT_EQ(frames[i], one[i]) << i;
    }
    return frames;
  };
  const std::vector<Frame> out = runBoth(first);
  std::vector<Frame> replies;
  for (const Frame& f : out) {
    ParsedPacket p;
    if (parsePacket(f, p) != DropReason::kNone || addressText(p.key, true) != kNat) continue;
    replies.push_back(PacketBuilder()
                          .ipv4(addressText(p.key, false), kNat)
                          .tcp(8080, p.key.srcPort, kTcpSyn | kTcpAck)
                          .build());
  }
  ASSERT_GT(replies.size(), 64u);
  runBoth(replies);
  EXPECT_EQ(core->counters().forwarded, single.counters().forwarded);
  EXPECT_EQ(core->counters().newFlows, single.counters().newFlows);
  EXPECT_EQ(core->flows().size(), single.flows().size());
}

}  // namespace
}  // namespace capstan::dataplane
