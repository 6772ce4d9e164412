// The packet parser: Ethernet (with at most one 802.1Q tag), IPv4, IPv6 (with its common
// extension headers), TCP, UDP, SCTP, ICMP and ICMPv6, over the bytes of one frame.
//
// PacketCore calls parsePacket() on every frame before anything else. The parser reads only: the
// NAT (dataplane/nat.h) later rewrites the frame in place using the offsets it records. Every read
// is bounds-checked against the frame and against the lengths the headers declare, so a malformed
// or truncated frame yields a DropReason and is never read past its end. Frames that are not IP
// (ARP, LLDP, a second VLAN tag, ...) parse successfully as L3Kind::kNotIp: they are the kernel's.
#pragma once

#include <cstdint>
#include <span>

#include "dataplane/drop_reason.h"
#include "dataplane/flow_key.h"

namespace capstan::dataplane {

inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint16_t kEtherTypeVlan = 0x8100;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86dd;

inline constexpr uint32_t kEthernetHeaderLength = 14;
inline constexpr uint32_t kVlanTagLength = 4;
inline constexpr uint32_t kIpv4MinHeaderLength = 20;
inline constexpr uint32_t kIpv6HeaderLength = 40;
inline constexpr uint32_t kTcpMinHeaderLength = 20;
inline constexpr uint32_t kUdpHeaderLength = 8;
inline constexpr uint32_t kIcmpHeaderLength = 8;
inline constexpr uint32_t kSctpCommonHeaderLength = 12;
// IPv6 extension headers followed before giving up (RFC 8200 4.1 recommends an order with each
// at most once or twice; more is an attack or a bug).
inline constexpr uint32_t kMaxIpv6ExtensionHeaders = 8;

// TCP header flags (RFC 9293 3.1).
inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;

enum class L3Kind : uint8_t { kNotIp, kIpv4, kIpv6 };

// Where the headers of one frame are and what they say. Offsets count from the frame's first
// byte. Fields past the layer that was parsed keep their zero defaults.
struct ParsedPacket {
  L3Kind l3 = L3Kind::kNotIp;
  bool hasVlan = false;
  // Part of a fragmented datagram (IPv4 MF or offset, or an IPv6 Fragment header).
  bool isFragment = false;
  // The transport header was parsed and `key` has its ports: false for non-first fragments and
  // for transports the parser does not know (ESP, GRE, ...).
  bool hasL4 = false;
  // ICMP or ICMPv6 error message (destination unreachable, time exceeded, parameter problem,
  // packet too big): an IP header of the packet that caused it starts at icmpInnerOffset.
  bool isIcmpError = false;
  uint8_t tcpFlags = 0;
  uint8_t icmpType = 0;
  uint8_t icmpCode = 0;
  uint8_t ttl = 0;         // TTL or hop limit
  uint16_t etherType = 0;  // after the VLAN tag, if any
  uint16_t vlanTci = 0;
  uint32_t l3Offset = 0;       // IPv4 or IPv6 header
  uint32_t l4Offset = 0;       // transport header (after IPv4 options / IPv6 extension headers)
  uint32_t payloadOffset = 0;  // after the transport header
  uint32_t l3End = 0;  // end of the IP datagram; Ethernet padding may follow up to the frame end
  uint32_t icmpInnerOffset = 0;
  // Addresses, protocol, family, and the ports (TCP, UDP, SCTP; the echo identifier as source
  // port for ICMP echo messages).
  FlowKey key;

  uint32_t l4Length() const { return l3End - l4Offset; }  // transport header and payload
};

// Parses `frame`. Returns DropReason::kNone and fills `out` when the frame is well formed (or is
// not IP); otherwise the reason to drop it, with `out` partly filled.
DropReason parsePacket(std::span<const uint8_t> frame, ParsedPacket& out);

// The header of the IP packet quoted in an ICMP error (RFC 792, RFC 4443 2.4(c)): its addresses,
// protocol and ports, and where its IP header and its transport header start. Only the first 8
// bytes of the transport header are guaranteed to be quoted.
struct IcmpInnerPacket {
  uint32_t l3Offset = 0;
  uint32_t l4Offset = 0;
  FlowKey key;
};

// Parses the packet quoted by the ICMP error `outer` in `frame` (the outer packet must have parsed
// with isIcmpError). Returns false when the quote is too short to hold an IP header and the ports,
// is of the other family, or is not TCP or UDP.
bool parseIcmpInner(std::span<const uint8_t> frame, const ParsedPacket& outer,
                    IcmpInnerPacket& inner);

}  // namespace capstan::dataplane
