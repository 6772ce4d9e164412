#include "dataplane/packet.h"

#include <cstring>

#include "dataplane/bytes.h"
#include "dataplane/checksum.h"

namespace capstan::dataplane {

namespace {

// IPv6 extension headers the parser walks over (RFC 8200 4; RFC 4302 for AH).
constexpr uint8_t kIpv6HopByHop = 0;
constexpr uint8_t kIpv6Routing = 43;
constexpr uint8_t kIpv6Fragment = 44;
constexpr uint8_t kIpv6Ah = 51;
constexpr uint8_t kIpv6DestinationOptions = 60;

// ICMP types whose body quotes the offending packet: RFC 792 (destination unreachable, time
// exceeded, parameter problem) and RFC 4443 2.4(c) (the four ICMPv6 error types).
bool isIcmpErrorType(L3Kind l3, uint8_t type) {
  if (l3 == L3Kind::kIpv4) return type == 3 || type == 11 || type == 12;
  return type >= 1 && type <= 4;
}

bool isIcmpEchoType(L3Kind l3, uint8_t type) {
  if (l3 == L3Kind::kIpv4) return type == 0 || type == 8;
  return type == 128 || type == 129;
}

// The transport header at `offset`, bounded by out.l3End.
DropReason parseTransport(const uint8_t* frame, uint32_t offset, uint8_t protocol,
                          ParsedPacket& out) {
  out.key.protocol = protocol;
  out.l4Offset = offset;
  out.payloadOffset = offset;
  const uint32_t available = out.l3End - offset;
  const uint8_t* h = frame + offset;
  const bool icmp = (out.l3 == L3Kind::kIpv4 && protocol == kIpProtoIcmp) ||
                    (out.l3 == L3Kind::kIpv6 && protocol == kIpProtoIcmpv6);
  if (protocol == kIpProtoTcp) {
    if (available < kTcpMinHeaderLength) return DropReason::kTcpTruncated;
    const uint32_t dataOffset = uint32_t{h[12]} >> 4 << 2;
    if (dataOffset < kTcpMinHeaderLength || dataOffset > available) {
      return DropReason::kTcpBadDataOffset;
    }
    out.key.srcPort = load16be(h);
    out.key.dstPort = load16be(h + 2);
    out.tcpFlags = h[13];
    out.payloadOffset = offset + dataOffset;
  } else if (protocol == kIpProtoUdp) {
    if (available < kUdpHeaderLength) return DropReason::kUdpTruncated;
    // RFC 768: the length covers header and data. A shorter length than the IP datagram's is
    // accepted (the rest is ignored, as Linux does); a longer one is not.
    const uint32_t length = load16be(h + 4);
    if (length < kUdpHeaderLength || length > available) return DropReason::kUdpBadLength;
    out.key.srcPort = load16be(h);
    out.key.dstPort = load16be(h + 2);
    out.payloadOffset = offset + kUdpHeaderLength;
  } else if (icmp) {
    if (available < kIcmpHeaderLength) return DropReason::kIcmpTruncated;
    out.icmpType = h[0];
    out.icmpCode = h[1];
    if (isIcmpEchoType(out.l3, h[0])) out.key.srcPort = load16be(h + 4);
    if (isIcmpErrorType(out.l3, h[0])) {
      out.isIcmpError = true;
      out.icmpInnerOffset = offset + kIcmpHeaderLength;
    }
    out.payloadOffset = offset + kIcmpHeaderLength;
  } else if (protocol == kIpProtoSctp) {
    if (available < kSctpCommonHeaderLength) return DropReason::kSctpTruncated;
    out.key.srcPort = load16be(h);
    out.key.dstPort = load16be(h + 2);
    out.payloadOffset = offset + kSctpCommonHeaderLength;
  } else {
    return DropReason::kNone;  // a transport the core does not look into
  }
  out.hasL4 = true;
  return DropReason::kNone;
}

DropReason parseIpv4(const uint8_t* frame, size_t size, uint32_t offset, ParsedPacket& out) {
  if (size - offset < kIpv4MinHeaderLength) return DropReason::kIpv4Truncated;
  const uint8_t* ip = frame + offset;
  if ((ip[0] >> 4) != 4) return DropReason::kIpv4BadVersion;
  const uint32_t headerLength = uint32_t{ip[0] & 0x0fu} * 4;
  if (headerLength < kIpv4MinHeaderLength) return DropReason::kIpv4BadHeaderLength;
  const uint32_t totalLength = load16be(ip + 2);
  if (totalLength < headerLength) return DropReason::kIpv4BadTotalLength;
  if (size - offset < totalLength) return DropReason::kIpv4Truncated;
  // RFC 1812 5.2.2: a router verifies the header checksum. Options are covered too.
  if (internetChecksum({ip, headerLength}) != 0) return DropReason::kIpv4BadChecksum;

  out.l3 = L3Kind::kIpv4;
  out.l3End = offset + totalLength;
  out.ttl = ip[8];
  out.key.family = IpFamily::kV4;
  std::memcpy(out.key.src.data(), ip + 12, 4);
  std::memcpy(out.key.dst.data(), ip + 16, 4);
  const uint16_t fragment = load16be(ip + 6);
  out.isFragment = (fragment & 0x3fff) != 0;  // MF set, or a non-zero offset
  if ((fragment & 0x1fff) != 0) {
    // Not the first fragment: no transport header here.
    out.key.protocol = ip[9];
    out.l4Offset = out.payloadOffset = offset + headerLength;
    return DropReason::kNone;
  }
  return parseTransport(frame, offset + headerLength, ip[9], out);
}

DropReason parseIpv6(const uint8_t* frame, size_t size, uint32_t offset, ParsedPacket& out) {
  if (size - offset < kIpv6HeaderLength) return DropReason::kIpv6Truncated;
  const uint8_t* ip = frame + offset;
  if ((ip[0] >> 4) != 6) return DropReason::kIpv6BadVersion;
  const uint32_t payloadLength = load16be(ip + 4);
  // RFC 2675: length 0 announces a jumbogram, which needs a link MTU above 65575: not Ethernet.
  if (payloadLength == 0) return DropReason::kIpv6BadPayloadLength;
  if (size - offset - kIpv6HeaderLength < payloadLength) return DropReason::kIpv6Truncated;

  out.l3 = L3Kind::kIpv6;
  out.l3End = offset + kIpv6HeaderLength + payloadLength;
  out.ttl = ip[7];
  out.key.family = IpFamily::kV6;
  std::memcpy(out.key.src.data(), ip + 8, 16);
  std::memcpy(out.key.dst.data(), ip + 24, 16);

  uint8_t next = ip[6];
  uint32_t at = offset + kIpv6HeaderLength;
  bool firstFragment = true;
  for (uint32_t seen = 0;; ++seen) {
    if (next != kIpv6HopByHop && next != kIpv6Routing && next != kIpv6DestinationOptions &&
        next != kIpv6Fragment && next != kIpv6Ah) {
      break;
    }
    if (seen == kMaxIpv6ExtensionHeaders) return DropReason::kIpv6TooManyExtensions;
    // Every extension header is at least 8 bytes, its first byte the next header.
    const uint32_t available = out.l3End - at;
    if (available < 8) return DropReason::kIpv6ExtensionTruncated;
    const uint8_t* h = frame + at;
    uint32_t length = 8;
    if (next == kIpv6Fragment) {
      // RFC 8200 4.5: offset in the upper 13 bits, M in the lowest. An atomic fragment (offset 0,
      // M 0; RFC 6946) is a whole packet.
      const uint16_t field = load16be(h + 2);
      if ((field & 0xfff9) != 0) out.isFragment = true;
      if ((field >> 3) != 0) firstFragment = false;
    } else if (next == kIpv6Ah) {
      length = (uint32_t{h[1]} + 2) * 4;  // RFC 4302 2.2: in 4-byte units, minus 2
    } else {
      length = (uint32_t{h[1]} + 1) * 8;  // RFC 8200 4.3: in 8-byte units, not counting the first
    }
    if (length > available) return DropReason::kIpv6ExtensionTruncated;
    next = h[0];
    at += length;
    if (!firstFragment) break;
  }
  if (!firstFragment) {
    out.key.protocol = next;
    out.l4Offset = out.payloadOffset = at;
    return DropReason::kNone;
  }
  return parseTransport(frame, at, next, out);
}

}  // namespace

DropReason parsePacket(std::span<const uint8_t> frame, ParsedPacket& out) {
  out = ParsedPacket{};
  const uint8_t* p = frame.data();
  const size_t size = frame.size();
  if (size < kEthernetHeaderLength) return DropReason::kEthernetTruncated;
  uint16_t etherType = load16be(p + 12);
  uint32_t offset = kEthernetHeaderLength;
  if (etherType == kEtherTypeVlan) {
    if (size < kEthernetHeaderLength + kVlanTagLength) return DropReason::kVlanTruncated;
    out.hasVlan = true;
    out.vlanTci = load16be(p + 14);
    etherType = load16be(p + 16);
    offset += kVlanTagLength;
  }
  out.etherType = etherType;
  out.l3Offset = offset;
  // Offsets are 32-bit: a frame past 4 GiB is not a frame.
  if (size > UINT32_MAX) return DropReason::kEthernetTruncated;
  if (etherType == kEtherTypeIpv4) return parseIpv4(p, size, offset, out);
  if (etherType == kEtherTypeIpv6) return parseIpv6(p, size, offset, out);
  return DropReason::kNone;
}

bool parseIcmpInner(std::span<const uint8_t> frame, const ParsedPacket& outer,
                    IcmpInnerPacket& inner) {
  if (!outer.isIcmpError || outer.l3End > frame.size()) return false;
  const uint8_t* p = frame.data();
  const uint32_t at = outer.icmpInnerOffset;
  if (at > outer.l3End) return false;
  const uint32_t available = outer.l3End - at;
  const uint8_t* ip = p + at;
  inner = IcmpInnerPacket{};
  inner.l3Offset = at;
  uint8_t protocol;
  uint32_t headerLength;
  if (outer.l3 == L3Kind::kIpv4) {
    if (available < kIpv4MinHeaderLength || (ip[0] >> 4) != 4) return false;
    headerLength = uint32_t{ip[0] & 0x0fu} * 4;
    if (headerLength < kIpv4MinHeaderLength) return false;
    if ((load16be(ip + 6) & 0x1fff) != 0) return false;  // a non-first fragment has no ports
    protocol = ip[9];
    inner.key.family = IpFamily::kV4;
    std::memcpy(inner.key.src.data(), ip + 12, 4);
    std::memcpy(inner.key.dst.data(), ip + 16, 4);
  } else {
    // Extension headers in the quote are not followed: the flows the core translates carry none.
    if (available < kIpv6HeaderLength || (ip[0] >> 4) != 6) return false;
    headerLength = kIpv6HeaderLength;
    protocol = ip[6];
    inner.key.family = IpFamily::kV6;
    std::memcpy(inner.key.src.data(), ip + 8, 16);
    std::memcpy(inner.key.dst.data(), ip + 24, 16);
  }
  if (protocol != kIpProtoTcp && protocol != kIpProtoUdp) return false;
  // RFC 792: the quote holds at least the first 8 bytes of the transport header.
  if (available < headerLength + 8) return false;
  inner.l4Offset = at + headerLength;
  inner.key.protocol = protocol;
  inner.key.srcPort = load16be(p + inner.l4Offset);
  inner.key.dstPort = load16be(p + inner.l4Offset + 2);
  return true;
}

}  // namespace capstan::dataplane
