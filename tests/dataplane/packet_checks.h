// GoogleTest helpers for packet tests: drop reasons printed by name, and checksumsValid(), which
// checks every checksum of a frame from scratch with the builder's independent RFC 1071 sum.
#pragma once

#include <gtest/gtest.h>

#include <ostream>

#include "tests/dataplane/packet_builder.h"

namespace capstan::dataplane {

inline void PrintTo(DropReason reason, std::ostream* os) { *os << toString(reason); }

namespace test {

// Checks every checksum of a frame from scratch with referenceChecksum: the IPv4 header's, and the
// TCP, UDP, ICMP or ICMPv6 checksum over its pseudo-header (UDP over IPv4 may carry 0, "none").
inline ::testing::AssertionResult checksumsValid(const Frame& frame) {
  ParsedPacket p;
  const DropReason reason = parsePacket(frame, p);
  if (reason != DropReason::kNone) {
    return ::testing::AssertionFailure() << "does not parse: " << toString(reason);
  }
  if (p.l3 == L3Kind::kIpv4) {
    const size_t headerLength = p.l4Offset - p.l3Offset;
    std::vector<uint8_t> header(frame.begin() + p.l3Offset,
                                frame.begin() + p.l3Offset + headerLength);
    if (referenceChecksum(header) != 0) {
      return ::testing::AssertionFailure() << "IPv4 header checksum does not verify";
    }
  }
  if (!p.hasL4 || p.isFragment) return ::testing::AssertionSuccess();
  const std::vector<uint8_t> segment(frame.begin() + p.l4Offset, frame.begin() + p.l3End);
  std::vector<uint8_t> summed;
  const uint8_t protocol = p.key.protocol;
  if (protocol == kIpProtoUdp && p.l3 == L3Kind::kIpv4 && get16(frame, p.l4Offset + 6) == 0) {
    return ::testing::AssertionSuccess();
  }
  if (protocol == kIpProtoTcp || protocol == kIpProtoUdp || protocol == kIpProtoIcmpv6) {
    summed = pseudoHeader(p.key.srcAddress(), p.key.dstAddress(), protocol,
                          static_cast<uint32_t>(segment.size()));
  } else if (protocol != kIpProtoIcmp) {
    return ::testing::AssertionSuccess();
  }
  summed.insert(summed.end(), segment.begin(), segment.end());
  if (referenceChecksum(summed) != 0) {
    return ::testing::AssertionFailure()
           << "transport checksum does not verify (protocol " << int{protocol} << ")";
  }
  return ::testing::AssertionSuccess();
}

}  // namespace test
}  // namespace capstan::dataplane
