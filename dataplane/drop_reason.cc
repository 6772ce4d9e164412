#include "dataplane/drop_reason.h"

namespace capstan::dataplane {

std::string_view toString(DropReason reason) {
  switch (reason) {
    case DropReason::kNone:
      return "none";
    case DropReason::kEthernetTruncated:
      return "ethernet_truncated";
    case DropReason::kVlanTruncated:
      return "vlan_truncated";
    case DropReason::kIpv4Truncated:
      return "ipv4_truncated";
    case DropReason::kIpv4BadVersion:
      return "ipv4_bad_version";
    case DropReason::kIpv4BadHeaderLength:
      return "ipv4_bad_header_length";
    case DropReason::kIpv4BadTotalLength:
      return "ipv4_bad_total_length";
    case DropReason::kIpv4BadChecksum:
      return "ipv4_bad_checksum";
    case DropReason::kIpv6Truncated:
      return "ipv6_truncated";
    case DropReason::kIpv6BadVersion:
      return "ipv6_bad_version";
    case DropReason::kIpv6BadPayloadLength:
      return "ipv6_bad_payload_length";
    case DropReason::kIpv6ExtensionTruncated:
      return "ipv6_extension_truncated";
    case DropReason::kIpv6TooManyExtensions:
      return "ipv6_too_many_extensions";
    case DropReason::kTcpTruncated:
      return "tcp_truncated";
    case DropReason::kTcpBadDataOffset:
      return "tcp_bad_data_offset";
    case DropReason::kUdpTruncated:
      return "udp_truncated";
    case DropReason::kUdpBadLength:
      return "udp_bad_length";
    case DropReason::kIcmpTruncated:
      return "icmp_truncated";
    case DropReason::kSctpTruncated:
      return "sctp_truncated";
    case DropReason::kNoEndpoints:
      return "no_endpoints";
    case DropReason::kSourceNotAllowed:
      return "source_not_allowed";
    case DropReason::kNoNatAddress:
      return "no_nat_address";
    case DropReason::kNoSourcePort:
      return "no_source_port";
    case DropReason::kCount:
      break;
  }
  return "unknown";
}

}  // namespace capstan::dataplane
