// The NAT: rewrites the addresses and ports of a parsed packet in place and keeps every checksum
// it touches right by incremental update (RFC 1624), never by re-summing the payload.
//
// PacketCore calls rewriteFlow() for the packets of a tracked flow (full-NAT: client -> VIP
// becomes node -> endpoint, and the endpoint's replies the other way back), and
// rewriteIcmpError() for an ICMP error about one of them, whose quoted packet must be translated
// too or the sender of the original packet would not recognise it (RFC 5508 4.2 for NAT of ICMP).
#pragma once

#include <cstdint>
#include <span>

#include "dataplane/flow_key.h"
#include "dataplane/packet.h"

namespace capstan::dataplane {

// Rewrites a TCP or UDP packet from its 5-tuple `p.key` to `to` (same family and protocol):
// addresses, ports, the IPv4 header checksum and the transport checksum (whose pseudo-header
// holds the addresses). A UDP-over-IPv4 checksum of 0 ("none", RFC 768) stays 0; a UDP checksum
// that comes out 0 is sent as 0xffff.
void rewriteFlow(std::span<uint8_t> frame, const ParsedPacket& p, const FlowKey& to);

// Rewrites an ICMP or ICMPv6 error `p` quoting `inner`: the outer source and destination become
// those of `outerTo`, the quoted packet's addresses and ports those of `innerTo`. Updates the outer
// IPv4 header checksum, the ICMP checksum (which covers the quote, and for ICMPv6 the
// pseudo-header), the quoted IPv4 header checksum, and the quoted UDP or TCP checksum when the
// quote is long enough to hold it.
void rewriteIcmpError(std::span<uint8_t> frame, const ParsedPacket& p, const IcmpInnerPacket& inner,
                      const FlowKey& outerTo, const FlowKey& innerTo);

}  // namespace capstan::dataplane
