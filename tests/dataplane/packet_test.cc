// The packet parser (dataplane/packet.h): each kind of frame parses to the right offsets and
// 5-tuple; every truncation of a valid frame, and each header inconsistency, is a drop with a
// reason; random and mutated bytes never make it read out of bounds (the suite runs under ASan).
#include "dataplane/packet.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "tests/dataplane/packet_checks.h"

namespace capstan::dataplane {
namespace {

using test::Frame;
using test::PacketBuilder;

ParsedPacket parseOk(const Frame& frame) {
  ParsedPacket p;
  const DropReason reason = parsePacket(frame, p);
  EXPECT_EQ(reason, DropReason::kNone) << toString(reason);
  return p;
}

DropReason parseReason(const Frame& frame) {
  ParsedPacket p;
  return parsePacket(frame, p);
}

TEST(PacketTest, Ipv4TcpSyn) {
  Frame f = PacketBuilder().eth().ipv4("10.0.0.5", "10.96.0.10", 61).tcp(40000, 80).build();
  ParsedPacket p = parseOk(f);
  EXPECT_EQ(p.l3, L3Kind::kIpv4);
  EXPECT_FALSE(p.hasVlan);
  EXPECT_TRUE(p.hasL4);
  EXPECT_FALSE(p.isFragment);
  EXPECT_EQ(p.l3Offset, 14u);
  EXPECT_EQ(p.l4Offset, 34u);
  EXPECT_EQ(p.payloadOffset, 54u);
  EXPECT_EQ(p.l3End, 54u);
  EXPECT_EQ(p.ttl, 61);
  EXPECT_EQ(p.tcpFlags, kTcpSyn);
  EXPECT_EQ(p.key.family, IpFamily::kV4);
  EXPECT_EQ(p.key.protocol, kIpProtoTcp);
  EXPECT_EQ(p.key.srcAddress(), test::ip("10.0.0.5"));
  EXPECT_EQ(p.key.dstAddress(), test::ip("10.96.0.10"));
  EXPECT_EQ(p.key.srcPort, 40000);
  EXPECT_EQ(p.key.dstPort, 80);
}

TEST(PacketTest, VlanTaggedUdpWithPayloadAndEthernetPadding) {
  Frame f = PacketBuilder()
                .vlan(0x2064)
                .ipv4("192.0.2.1", "198.51.100.7")
                .udp(5353, 53)
                .payload("q")
                .padTo(64)
                .build();
  ParsedPacket p = parseOk(f);
  EXPECT_TRUE(p.hasVlan);
  EXPECT_EQ(p.vlanTci, 0x2064);
  EXPECT_EQ(p.etherType, kEtherTypeIpv4);
  EXPECT_EQ(p.l3Offset, 18u);
  EXPECT_EQ(p.l4Offset, 38u);
  EXPECT_EQ(p.payloadOffset, 46u);
  EXPECT_EQ(p.l3End, 47u);  // the padding after the datagram is not part of it
  EXPECT_EQ(f.size(), 64u);
  EXPECT_EQ(p.key.protocol, kIpProtoUdp);
  EXPECT_EQ(p.key.srcPort, 5353);
  EXPECT_EQ(p.key.dstPort, 53);
  EXPECT_TRUE(test::checksumsValid(f));
}

TEST(PacketTest, Ipv4OptionsMoveTheTransportHeader) {
  Frame f = PacketBuilder()
                .ipv4("10.0.0.1", "10.0.0.2")
                .ipv4Options({0x94, 0x04, 0, 0, 0x01, 0x01, 0x01, 0x00})  // router alert, NOPs
                .tcp(1, 2, kTcpAck)
                .tcpOptions({2, 4, 0x05, 0xb4})  // MSS 1460
                .build();
  ParsedPacket p = parseOk(f);
  EXPECT_EQ(p.l4Offset, 14u + 28u);
  EXPECT_EQ(p.payloadOffset, 14u + 28u + 24u);
  EXPECT_EQ(p.key.srcPort, 1);
  EXPECT_TRUE(test::checksumsValid(f));
}

TEST(PacketTest, Ipv6TcpAndUdp) {
  Frame f = PacketBuilder().ipv6("2001:db8::5", "2001:db8:96::10").tcp(40000, 443).build();
  ParsedPacket p = parseOk(f);
  EXPECT_EQ(p.l3, L3Kind::kIpv6);
  EXPECT_EQ(p.l4Offset, 54u);
  EXPECT_EQ(p.key.family, IpFamily::kV6);
  EXPECT_EQ(p.key.srcAddress(), test::ip("2001:db8::5"));
  EXPECT_EQ(p.key.dstAddress(), test::ip("2001:db8:96::10"));
  EXPECT_EQ(p.key.dstPort, 443);
  EXPECT_TRUE(test::checksumsValid(f));

  Frame u = PacketBuilder().ipv6("fd00::1", "fd00::2").udp(1000, 2000).payload("hello").build();
  ParsedPacket q = parseOk(u);
  EXPECT_EQ(q.key.protocol, kIpProtoUdp);
  EXPECT_EQ(q.payloadOffset, 62u);
  EXPECT_EQ(q.l3End, 67u);
  EXPECT_TRUE(test::checksumsValid(u));
}

TEST(PacketTest, Ipv6ExtensionHeadersAreSkipped) {
  Frame f = PacketBuilder()
                .ipv6("fd00::1", "fd00::2")
                .ipv6Extension(0, 8)    // hop-by-hop
                .ipv6Extension(43, 24)  // routing
                .ipv6Extension(60, 16)  // destination options
                .udp(7, 9)
                .build();
  ParsedPacket p = parseOk(f);
  EXPECT_EQ(p.l4Offset, 54u + 8u + 24u + 16u);
  EXPECT_EQ(p.key.protocol, kIpProtoUdp);
  EXPECT_EQ(p.key.dstPort, 9);
  EXPECT_TRUE(p.hasL4);
  EXPECT_TRUE(test::checksumsValid(f));
}

TEST(PacketTest, FragmentsAreNotedAndOnlyTheFirstHasPorts) {
  ParsedPacket first =
      parseOk(PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").ipv4Fragment(0, true).udp(1, 2).build());
  EXPECT_TRUE(first.isFragment);
  EXPECT_TRUE(first.hasL4);
  EXPECT_EQ(first.key.dstPort, 2);

  ParsedPacket later = parseOk(PacketBuilder()
                                   .ipv4("10.0.0.1", "10.0.0.2")
                                   .ipv4Fragment(185, false)
                                   .protocol(kIpProtoUdp)
                                   .payload("rest of it")
                                   .build());
  EXPECT_TRUE(later.isFragment);
  EXPECT_FALSE(later.hasL4);
  EXPECT_EQ(later.key.protocol, kIpProtoUdp);
  EXPECT_EQ(later.key.dstPort, 0);

  ParsedPacket v6first =
      parseOk(PacketBuilder().ipv6("fd00::1", "fd00::2").ipv6Fragment(0, true).tcp(3, 4).build());
  EXPECT_TRUE(v6first.isFragment);
  EXPECT_TRUE(v6first.hasL4);
  EXPECT_EQ(v6first.key.srcPort, 3);

  ParsedPacket v6later = parseOk(PacketBuilder()
                                     .ipv6("fd00::1", "fd00::2")
                                     .ipv6Fragment(100, true)
                                     .protocol(kIpProtoTcp)
                                     .payload("middle")
                                     .build());
  EXPECT_TRUE(v6later.isFragment);
  EXPECT_FALSE(v6later.hasL4);
  EXPECT_EQ(v6later.key.protocol, kIpProtoTcp);

  // RFC 6946: an atomic fragment is a whole packet.
  ParsedPacket atomic =
      parseOk(PacketBuilder().ipv6("fd00::1", "fd00::2").ipv6Fragment(0, false).udp(5, 6).build());
  EXPECT_FALSE(atomic.isFragment);
  EXPECT_TRUE(atomic.hasL4);
}

TEST(PacketTest, IcmpEchoCarriesItsIdentifier) {
  ParsedPacket p =
      parseOk(PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").icmpEcho(0x4242, 1).build());
  EXPECT_EQ(p.key.protocol, kIpProtoIcmp);
  EXPECT_EQ(p.icmpType, 8);
  EXPECT_EQ(p.key.srcPort, 0x4242);
  EXPECT_FALSE(p.isIcmpError);

  Frame v6 = PacketBuilder().ipv6("fd00::1", "fd00::2").icmpEcho(7, 1, false).build();
  ParsedPacket q = parseOk(v6);
  EXPECT_EQ(q.key.protocol, kIpProtoIcmpv6);
  EXPECT_EQ(q.icmpType, 129);
  EXPECT_EQ(q.key.srcPort, 7);
  EXPECT_TRUE(test::checksumsValid(v6));
}

TEST(PacketTest, IcmpErrorsQuoteTheOffendingPacket) {
  std::vector<uint8_t> quoted =
      PacketBuilder().ipv4("10.0.0.9", "10.244.1.5").tcp(1025, 8080, kTcpAck).buildIp();
  quoted.resize(28);  // the IP header and the first 8 bytes of TCP, as routers send
  Frame f = PacketBuilder()
                .ipv4("192.0.2.254", "10.0.0.9")
                .icmpError(3, 4, quoted, 1400)  // fragmentation needed, MTU 1400
                .build();
  ParsedPacket p = parseOk(f);
  EXPECT_TRUE(p.isIcmpError);
  EXPECT_EQ(p.icmpInnerOffset, 42u);
  EXPECT_TRUE(test::checksumsValid(f));
  IcmpInnerPacket inner;
  ASSERT_TRUE(parseIcmpInner(f, p, inner));
  EXPECT_EQ(inner.l3Offset, 42u);
  EXPECT_EQ(inner.l4Offset, 62u);
  EXPECT_EQ(inner.key.srcAddress(), test::ip("10.0.0.9"));
  EXPECT_EQ(inner.key.dstAddress(), test::ip("10.244.1.5"));
  EXPECT_EQ(inner.key.srcPort, 1025);
  EXPECT_EQ(inner.key.dstPort, 8080);
  EXPECT_EQ(inner.key.protocol, kIpProtoTcp);

  // Too short a quote: no inner packet, and no out-of-bounds read while finding out.
  for (size_t keep = 0; keep < 28; ++keep) {
    std::vector<uint8_t> shortQuote(quoted.begin(), quoted.begin() + static_cast<long>(keep));
    Frame g = PacketBuilder().ipv4("192.0.2.254", "10.0.0.9").icmpError(11, 0, shortQuote).build();
    ParsedPacket q = parseOk(test::truncated(g, g.size()));
    EXPECT_FALSE(parseIcmpInner(g, q, inner)) << keep;
  }

  std::vector<uint8_t> quoted6 =
      PacketBuilder().ipv6("fd00::9", "fd00:244::5").udp(5000, 53).buildIp();
  Frame f6 = PacketBuilder().ipv6("fd00::fe", "fd00::9").icmpError(2, 0, quoted6, 1280).build();
  ParsedPacket p6 = parseOk(f6);
  EXPECT_TRUE(p6.isIcmpError);
  EXPECT_TRUE(test::checksumsValid(f6));
  ASSERT_TRUE(parseIcmpInner(f6, p6, inner));
  EXPECT_EQ(inner.key.family, IpFamily::kV6);
  EXPECT_EQ(inner.key.dstPort, 53);
  EXPECT_EQ(inner.key.protocol, kIpProtoUdp);
}

TEST(PacketTest, NonIpFramesAreNotDropped) {
  ParsedPacket arp = parseOk(PacketBuilder().etherType(kEtherTypeArp).payload("arp body").build());
  EXPECT_EQ(arp.l3, L3Kind::kNotIp);
  EXPECT_EQ(arp.etherType, kEtherTypeArp);
  // A second VLAN tag (QinQ) is not looked into.
  ParsedPacket qinq =
      parseOk(PacketBuilder().vlan(5).etherType(kEtherTypeVlan).payload("xx").build());
  EXPECT_EQ(qinq.l3, L3Kind::kNotIp);
  EXPECT_TRUE(qinq.hasVlan);
  // An IP protocol the core does not know: parsed up to IP.
  ParsedPacket gre =
      parseOk(PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").protocol(47).payload("g").build());
  EXPECT_EQ(gre.l3, L3Kind::kIpv4);
  EXPECT_FALSE(gre.hasL4);
  EXPECT_EQ(gre.key.protocol, 47);
}

// One valid frame of every kind the parser handles.
std::vector<std::pair<std::string, Frame>> validFrames() {
  std::vector<uint8_t> quoted = PacketBuilder().ipv4("10.0.0.9", "10.0.0.1").udp(1, 2).buildIp();
  return {
      {"ipv4 tcp", PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).payload("data").build()},
      {"vlan ipv4 udp", PacketBuilder().vlan(7).ipv4("10.0.0.1", "10.0.0.2").udp(1, 2).build()},
      {"ipv4 options tcp options", PacketBuilder()
                                       .ipv4("10.0.0.1", "10.0.0.2")
                                       .ipv4Options({1, 1, 1, 1})
                                       .tcp(1, 2)
                                       .tcpOptions({2, 4, 5, 0xb4})
                                       .build()},
      {"ipv4 icmp echo", PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").icmpEcho(1, 2).build()},
      {"ipv4 icmp error",
       PacketBuilder().ipv4("10.0.0.1", "10.0.0.9").icmpError(3, 4, quoted).build()},
      {"ipv6 tcp", PacketBuilder().ipv6("fd00::1", "fd00::2").tcp(1, 2).payload("x").build()},
      {"ipv6 ext udp", PacketBuilder()
                           .ipv6("fd00::1", "fd00::2")
                           .ipv6Extension(0, 16)
                           .ipv6Fragment(0, true)
                           .ipv6Extension(60, 8)
                           .udp(1, 2)
                           .build()},
      {"ipv6 icmpv6", PacketBuilder().ipv6("fd00::1", "fd00::2").icmpEcho(1, 2).build()},
      {"ipv4 sctp", PacketBuilder()
                        .ipv4("10.0.0.1", "10.0.0.2")
                        .protocol(kIpProtoSctp)
                        .payload(std::vector<uint8_t>{0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0})
                        .build()},
  };
}

TEST(PacketTest, EveryTruncationIsDroppedWithAReason) {
  for (const auto& [name, frame] : validFrames()) {
    ParsedPacket whole = parseOk(frame);
    ASSERT_EQ(whole.l3End, frame.size()) << name;
    for (size_t length = 0; length < frame.size(); ++length) {
      const Frame cut = test::truncated(frame, length);
      const DropReason reason = parseReason(cut);
      EXPECT_NE(reason, DropReason::kNone) << name << " cut to " << length;
    }
  }
}

TEST(PacketTest, TruncationReasonsNameTheLayer) {
  Frame f = PacketBuilder().vlan(1).ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).build();
  EXPECT_EQ(parseReason(test::truncated(f, 13)), DropReason::kEthernetTruncated);
  EXPECT_EQ(parseReason(test::truncated(f, 17)), DropReason::kVlanTruncated);
  EXPECT_EQ(parseReason(test::truncated(f, 37)), DropReason::kIpv4Truncated);
  EXPECT_EQ(parseReason(test::truncated(f, 57)), DropReason::kIpv4Truncated);
  Frame v6 = PacketBuilder().ipv6("fd00::1", "fd00::2").udp(1, 2).build();
  EXPECT_EQ(parseReason(test::truncated(v6, 53)), DropReason::kIpv6Truncated);
  EXPECT_EQ(parseReason(test::truncated(v6, 61)), DropReason::kIpv6Truncated);
}

TEST(PacketTest, InconsistentHeadersAreDroppedWithTheirReason) {
  const Frame tcp = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").tcp(1, 2).build();
  const Frame udp = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").udp(1, 2).payload("abc").build();
  using test::withByte;
  using test::withIpv4ChecksumFixed;
  EXPECT_EQ(parseReason(withIpv4ChecksumFixed(withByte(tcp, 14, 0x55))),
            DropReason::kIpv4BadVersion);
  EXPECT_EQ(parseReason(withByte(tcp, 14, 0x44)), DropReason::kIpv4BadHeaderLength);
  EXPECT_EQ(parseReason(withIpv4ChecksumFixed(withByte(tcp, 17, 19))),  // total length 19
            DropReason::kIpv4BadTotalLength);
  EXPECT_EQ(parseReason(withByte(tcp, 14, 0x4f)),  // IHL 60 > total 40, before the checksum
            DropReason::kIpv4BadTotalLength);
  EXPECT_EQ(parseReason(withByte(tcp, 22, 63)), DropReason::kIpv4BadChecksum);     // TTL changed
  EXPECT_EQ(parseReason(withByte(tcp, 46, 0x40)), DropReason::kTcpBadDataOffset);  // 16 bytes
  EXPECT_EQ(parseReason(withByte(tcp, 46, 0x60)), DropReason::kTcpBadDataOffset);  // past end
  EXPECT_EQ(parseReason(withByte(udp, 39, 7)), DropReason::kUdpBadLength);
  EXPECT_EQ(parseReason(withByte(udp, 39, 12)), DropReason::kUdpBadLength);
  // A datagram that ends inside its transport header.
  Frame shortTcp = withIpv4ChecksumFixed(withByte(tcp, 17, 39));
  EXPECT_EQ(parseReason(shortTcp), DropReason::kTcpTruncated);
  Frame shortUdp = withIpv4ChecksumFixed(withByte(udp, 17, 27));
  EXPECT_EQ(parseReason(shortUdp), DropReason::kUdpTruncated);
  Frame icmp = PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").icmpEcho(1, 1).build();
  EXPECT_EQ(parseReason(withIpv4ChecksumFixed(withByte(icmp, 17, 27))), DropReason::kIcmpTruncated);
  Frame sctp = PacketBuilder()
                   .ipv4("10.0.0.1", "10.0.0.2")
                   .protocol(kIpProtoSctp)
                   .payload(std::vector<uint8_t>(11, 0))
                   .build();
  EXPECT_EQ(parseReason(sctp), DropReason::kSctpTruncated);

  const Frame v6 =
      PacketBuilder().ipv6("fd00::1", "fd00::2").ipv6Extension(60, 16).udp(1, 2).build();
  EXPECT_EQ(parseReason(withByte(v6, 14, 0x40)), DropReason::kIpv6BadVersion);
  EXPECT_EQ(parseReason(withByte(withByte(v6, 18, 0), 19, 0)), DropReason::kIpv6BadPayloadLength);
  EXPECT_EQ(parseReason(withByte(v6, 55, 3)), DropReason::kIpv6ExtensionTruncated);  // 32 bytes
  // Payload length 4: not even room for an extension header.
  EXPECT_EQ(parseReason(withByte(v6, 19, 4)), DropReason::kIpv6ExtensionTruncated);
  PacketBuilder many;
  many.ipv6("fd00::1", "fd00::2");
  for (uint32_t i = 0; i <= kMaxIpv6ExtensionHeaders; ++i) many.ipv6Extension(60, 8);
  EXPECT_EQ(parseReason(many.udp(1, 2).build()), DropReason::kIpv6TooManyExtensions);
}

// Parses `frame` and checks that whatever it says stays inside the frame.
void expectOffsetsInBounds(const Frame& frame) {
  ParsedPacket p;
  if (parsePacket(frame, p) != DropReason::kNone || p.l3 == L3Kind::kNotIp) return;
  EXPECT_LE(p.l3Offset, p.l4Offset);
  EXPECT_LE(p.l4Offset, p.payloadOffset);
  EXPECT_LE(p.payloadOffset, p.l3End);
  EXPECT_LE(p.l3End, frame.size());
  IcmpInnerPacket inner;
  if (p.isIcmpError && parseIcmpInner(frame, p, inner)) {
    EXPECT_LE(inner.l4Offset + 8, p.l3End);
  }
}

TEST(PacketTest, RandomBytesNeverReadOutOfBounds) {
  std::mt19937 rng(4);
  const uint16_t types[] = {kEtherTypeIpv4, kEtherTypeIpv6, kEtherTypeVlan, kEtherTypeArp};
  for (int i = 0; i < 20000; ++i) {
    Frame frame(rng() % 120);
    for (uint8_t& b : frame) b = static_cast<uint8_t>(rng());
    // Make most frames reach the IP parsers: a plausible EtherType and version nibble.
    if (frame.size() >= 15) {
      const uint16_t type = types[rng() % 4];
      test::put16(frame, 12, type);
      frame[14] = static_cast<uint8_t>((type == kEtherTypeIpv6 ? 0x60 : 0x45) | (rng() % 2));
    }
    expectOffsetsInBounds(frame);
  }
}

TEST(PacketTest, MutatedValidFramesNeverReadOutOfBounds) {
  std::mt19937 rng(5);
  const auto frames = validFrames();
  for (int i = 0; i < 20000; ++i) {
    Frame frame = frames[static_cast<size_t>(i) % frames.size()].second;
    const int mutations = 1 + static_cast<int>(rng() % 3);
    for (int m = 0; m < mutations; ++m) frame[rng() % frame.size()] = static_cast<uint8_t>(rng());
    // Half of them with the IPv4 checksum repaired, so the mutation reaches deeper layers.
    if (i % 2 == 0 && frame.size() >= 34 && test::get16(frame, 12) == kEtherTypeIpv4 &&
        (frame[14] & 0x0f) >= 5 && frame.size() >= 14u + (frame[14] & 0x0fu) * 4) {
      frame = test::withIpv4ChecksumFixed(frame);
    }
    expectOffsetsInBounds(test::truncated(frame, rng() % (frame.size() + 1)));
    expectOffsetsInBounds(frame);
  }
}

}  // namespace
}  // namespace capstan::dataplane
