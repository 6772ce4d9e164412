// Why the packet core dropped a packet: the parser's reasons for malformed or truncated packets,
// and the processing reasons after a packet was found to be for a VIP. PacketCore counts drops per
// reason; the names are the `reason` label of the drop counter on /metrics.
#pragma once

#include <cstdint>
#include <string_view>

namespace capstan::dataplane {

enum class DropReason : uint8_t {
  kNone = 0,
  // Parsing (dataplane/packet.h): the packet is shorter than its headers say, or inconsistent.
  kEthernetTruncated,
  kVlanTruncated,
  kIpv4Truncated,         // shorter than 20 bytes, than its IHL, or than its total length
  kIpv4BadVersion,        // EtherType IPv4 but version field not 4
  kIpv4BadHeaderLength,   // IHL < 5
  kIpv4BadTotalLength,    // total length < IHL * 4
  kIpv4BadChecksum,       // header checksum does not verify
  kIpv6Truncated,         // shorter than 40 bytes or than 40 + payload length
  kIpv6BadVersion,        // EtherType IPv6 but version field not 6
  kIpv6BadPayloadLength,  // payload length 0 (jumbograms are not carried on Ethernet)
  kIpv6ExtensionTruncated,
  kIpv6TooManyExtensions,
  kTcpTruncated,
  kTcpBadDataOffset,  // data offset < 5 or past the end of the datagram
  kUdpTruncated,
  kUdpBadLength,  // UDP length < 8 or past the end of the datagram
  kIcmpTruncated,
  kSctpTruncated,
  // Processing (dataplane/packet_core.h): the packet is for a VIP but cannot be forwarded.
  kNoEndpoints,       // no endpoint for this traffic (none at all, or none Local)
  kSourceNotAllowed,  // source outside the Service's loadBalancerSourceRanges
  kNoNatAddress,      // no node dataplane address of the packet's family to NAT to
  kNoSourcePort,      // every NAT source port probed for this endpoint was in use
  kCount,
};

inline constexpr size_t kDropReasonCount = static_cast<size_t>(DropReason::kCount);

// Stable snake_case names ("ipv4_truncated"), for metrics labels and test messages.
std::string_view toString(DropReason reason);

}  // namespace capstan::dataplane
