// The NAT (dataplane/nat.h): a rewritten packet is byte for byte the packet the builder makes
// with the new addresses and ports (so every incrementally updated checksum equals a from-scratch
// one), for TCP, UDP, IPv4, IPv6 and ICMP errors, on randomized inputs (bounded, fixed seeds).
#include "dataplane/nat.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "dataplane/bytes.h"
#include "tests/dataplane/packet_checks.h"

namespace capstan::dataplane {
namespace {

using test::Frame;
using test::PacketBuilder;

struct Tuple {
  std::string src, dst;
  uint16_t srcPort, dstPort;
};

FlowKey keyOf(const Tuple& t, uint8_t protocol) {
  FlowKey k;
  k.family = test::ip(t.src).family();
  k.setSrc(test::ip(t.src));
  k.setDst(test::ip(t.dst));
  k.srcPort = t.srcPort;
  k.dstPort = t.dstPort;
  k.protocol = protocol;
  return k;
}

// The same packet (flags, payload, TTL) with another tuple.
Frame make(const Tuple& t, bool v6, bool udp, const std::string& payload,
           bool noUdpChecksum = false) {
  PacketBuilder b;
  if (v6) {
    b.ipv6(t.src, t.dst);
  } else {
    b.ipv4(t.src, t.dst);
  }
  if (udp) {
    b.udp(t.srcPort, t.dstPort);
    if (noUdpChecksum) b.udpNoChecksum();
  } else {
    b.tcp(t.srcPort, t.dstPort, kTcpAck | kTcpPsh, 12345, 678);
  }
  return b.payload(payload).build();
}

Frame rewritten(Frame frame, const FlowKey& to) {
  ParsedPacket p;
  EXPECT_EQ(parsePacket(frame, p), DropReason::kNone);
  rewriteFlow(frame, p, to);
  return frame;
}

TEST(NatTest, TcpAndUdpRewritesEqualTheBuiltPacket) {
  const Tuple from{"198.18.0.7", "203.0.113.10", 40000, 80};
  const Tuple to{"192.0.2.1", "10.244.1.2", 20001, 8080};
  for (bool udp : {false, true}) {
    const uint8_t protocol = udp ? kIpProtoUdp : kIpProtoTcp;
    const Frame out = rewritten(make(from, false, udp, "GET /"), keyOf(to, protocol));
    EXPECT_EQ(out, make(to, false, udp, "GET /")) << udp;
    EXPECT_TRUE(test::checksumsValid(out));
  }
  const Tuple from6{"2001:db8:ff::7", "2001:db8:1::10", 40000, 443};
  const Tuple to6{"2001:db8::1", "fd00:244::2", 20001, 8443};
  for (bool udp : {false, true}) {
    const uint8_t protocol = udp ? kIpProtoUdp : kIpProtoTcp;
    const Frame out = rewritten(make(from6, true, udp, "hello"), keyOf(to6, protocol));
    EXPECT_EQ(out, make(to6, true, udp, "hello")) << udp;
    EXPECT_TRUE(test::checksumsValid(out));
  }
}

TEST(NatTest, RandomRewritesEqualTheBuiltPacket) {
  std::mt19937 rng(11);
  auto v4 = [&] {
    return std::to_string(rng() % 256) + "." + std::to_string(rng() % 256) + "." +
           std::to_string(rng() % 256) + "." + std::to_string(rng() % 256);
  };
  auto v6 = [&] {
    std::string s;
    for (int i = 0; i < 8; ++i) {
      char part[8];
      std::snprintf(part, sizeof part, "%x", static_cast<unsigned>(rng() % 65536));
      s += (i ? ":" : "") + std::string(part);
    }
    return s;
  };
  for (int i = 0; i < 3000; ++i) {
    const bool isV6 = i % 2 == 1;
    const bool udp = i % 4 >= 2;
    std::string payload(rng() % 64, 'x');
    for (char& c : payload) c = static_cast<char>(rng());
    const Tuple from{isV6 ? v6() : v4(), isV6 ? v6() : v4(), static_cast<uint16_t>(rng()),
                     static_cast<uint16_t>(rng())};
    const Tuple to{isV6 ? v6() : v4(), isV6 ? v6() : v4(), static_cast<uint16_t>(rng()),
                   static_cast<uint16_t>(rng())};
    const Frame out =
        rewritten(make(from, isV6, udp, payload), keyOf(to, udp ? kIpProtoUdp : kIpProtoTcp));
    ASSERT_EQ(out, make(to, isV6, udp, payload)) << i;
    ASSERT_TRUE(test::checksumsValid(out)) << i;
  }
}

TEST(NatTest, UdpOverIpv4WithoutChecksumStaysWithout) {
  const Tuple from{"198.18.0.7", "203.0.113.10", 5000, 53};
  const Tuple to{"192.0.2.1", "10.244.1.2", 20001, 5353};
  const Frame out = rewritten(make(from, false, true, "q", true), keyOf(to, kIpProtoUdp));
  EXPECT_EQ(out, make(to, false, true, "q", true));
  EXPECT_EQ(test::get16(out, 40), 0);
}

// RFC 768: a computed UDP checksum of 0 is sent as 0xffff. Choose the payload so that the
// rewritten packet sums to exactly that case.
TEST(NatTest, UdpChecksumThatComesOutZeroIsSentAsAllOnes) {
  const Tuple from{"198.18.0.7", "203.0.113.10", 5000, 53};
  const Tuple to{"192.0.2.1", "10.244.1.2", 20001, 5353};
  for (bool v6 : {false, true}) {
    const Tuple f = v6 ? Tuple{"2001:db8::7", "2001:db8:1::10", 5000, 53} : from;
    const Tuple t = v6 ? Tuple{"2001:db8::1", "fd00::2", 20001, 5353} : to;
    // With payload word w, the target packet's checksum is ~(S + w); pick w = ~S so it is 0.
    Frame target = make(t, v6, true, std::string(2, '\0'));
    const size_t l4 = v6 ? 54 : 34;
    const uint16_t withZero = test::get16(target, l4 + 6);  // ~S (0 mapped to 0xffff, not here)
    const uint16_t w = withZero;
    const std::string payload{static_cast<char>(w >> 8), static_cast<char>(w & 0xff)};
    const Frame out = rewritten(make(f, v6, true, payload), keyOf(t, kIpProtoUdp));
    EXPECT_EQ(test::get16(out, l4 + 6), 0xffff) << v6;
    EXPECT_EQ(out, make(t, v6, true, payload)) << v6;
    EXPECT_TRUE(test::checksumsValid(out));
  }
}

// An ICMP error about a packet the node sent (N:np -> E:ep), translated for the client: outer
// from the VIP to the client, quoting the client's own packet C:cp -> VIP:vp.
TEST(NatTest, IcmpErrorsEqualTheBuiltError) {
  for (bool v6 : {false, true}) {
    for (bool udp : {false, true}) {
      for (size_t quoteBytes : {size_t{28}, size_t{48}, size_t{0}}) {  // 0: the whole packet
        const Tuple sent = v6 ? Tuple{"2001:db8::1", "fd00::2", 20001, 8080}
                              : Tuple{"192.0.2.1", "10.244.1.2", 20001, 8080};
        const Tuple client = v6 ? Tuple{"2001:db8:ff::7", "2001:db8:1::10", 40000, 80}
                                : Tuple{"198.18.0.7", "203.0.113.10", 40000, 80};
        auto quote = [&](const Tuple& t) {
          PacketBuilder b;
          if (v6) {
            b.ipv6(t.src, t.dst);
          } else {
            b.ipv4(t.src, t.dst);
          }
          if (udp) {
            b.udp(t.srcPort, t.dstPort);
          } else {
            b.tcp(t.srcPort, t.dstPort, kTcpAck, 5, 6);
          }
          std::vector<uint8_t> ipPacket = b.payload(std::string(40, 'd')).buildIp();
          if (quoteBytes != 0) ipPacket.resize(quoteBytes + (v6 ? 20 : 0));
          return ipPacket;
        };
        auto error = [&](const std::string& src, const std::string& dst, const Tuple& quoted) {
          PacketBuilder b;
          if (v6) {
            b.ipv6(src, dst).icmpError(2, 0, quote(quoted), 1280);  // packet too big
          } else {
            b.ipv4(src, dst).icmpError(3, 4, quote(quoted), 1400);  // fragmentation needed
          }
          return b.build();
        };
        Frame frame = error(v6 ? "fd00::fe" : "10.244.0.254", sent.src, sent);
        ParsedPacket p;
        ASSERT_EQ(parsePacket(frame, p), DropReason::kNone);
        IcmpInnerPacket inner;
        ASSERT_TRUE(parseIcmpInner(frame, p, inner));
        const uint8_t protocol = udp ? kIpProtoUdp : kIpProtoTcp;
        const FlowKey clientKey = keyOf(client, protocol);
        rewriteIcmpError(frame, p, inner, clientKey.reversed(), clientKey);
        const Frame expected = error(client.dst, client.src, client);
        EXPECT_EQ(frame, expected) << "v6 " << v6 << " udp " << udp << " quote " << quoteBytes;
        EXPECT_TRUE(test::checksumsValid(frame));
      }
    }
  }
}

}  // namespace
}  // namespace capstan::dataplane
