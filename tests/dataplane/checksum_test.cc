// The Internet checksum (dataplane/checksum.h): from scratch against an independent RFC 1071
// implementation, and every incremental update (RFC 1624) against a from-scratch recomputation,
// on randomized data (bounded counts, fixed seeds).
#include "dataplane/checksum.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "dataplane/bytes.h"
#include "tests/dataplane/packet_checks.h"

namespace capstan::dataplane {
namespace {

std::vector<uint8_t> randomBytes(std::mt19937& rng, size_t n) {
  std::vector<uint8_t> out(n);
  for (uint8_t& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

TEST(ChecksumTest, Rfc1071Example) {
  // RFC 1071 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (folded); the checksum is its complement.
  const std::vector<uint8_t> data = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(checksumFold(checksumAdd(data)), 0xddf2);
  EXPECT_EQ(internetChecksum(data), 0x220d);
}

TEST(ChecksumTest, FromScratchMatchesTheReferenceAtEveryLength) {
  std::mt19937 rng(1);
  for (size_t n = 0; n < 300; ++n) {
    for (int round = 0; round < 5; ++round) {
      const std::vector<uint8_t> data = randomBytes(rng, n);
      ASSERT_EQ(internetChecksum(data), test::referenceChecksum(data)) << n;
    }
  }
  // All ones: the accumulator must not overflow on a large buffer.
  const std::vector<uint8_t> ones(65535, 0xff);
  EXPECT_EQ(internetChecksum(ones), test::referenceChecksum(ones));
}

TEST(ChecksumTest, IncrementalWordUpdatesMatchRecomputation) {
  std::mt19937 rng(2);
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> data = randomBytes(rng, 2 * (2 + rng() % 32));
    // Some all-zero and all-ones words: the edge cases of ones' complement arithmetic.
    if (i % 7 == 0) std::fill(data.begin(), data.end(), i % 2 ? 0xff : 0x00);
    // The first word is never zero and never changed: covered data that is all zero (which no
    // real header is) is the one case where eqn. 3 gives 0 for a recomputed 0xffff.
    data[1] |= 1;
    const uint16_t check = internetChecksum(data);
    const size_t at = 2 * (1 + rng() % (data.size() / 2 - 1));
    const uint16_t before = load16be(&data[at]);
    const uint16_t after = i % 5 == 0 ? static_cast<uint16_t>(i % 2 ? 0xffff : 0) : rng();
    store16be(&data[at], after);
    ASSERT_EQ(checksumUpdate16(check, before, after), test::referenceChecksum(data)) << i;
  }
}

TEST(ChecksumTest, IncrementalAddressUpdatesMatchRecomputation) {
  std::mt19937 rng(3);
  for (int i = 0; i < 10000; ++i) {
    std::vector<uint8_t> data = randomBytes(rng, 4 * (2 + rng() % 16));
    const uint16_t check = internetChecksum(data);
    const size_t at = 4 * (rng() % (data.size() / 4));
    const uint32_t before = load32be(&data[at]);
    const uint32_t after = rng();
    store32be(&data[at], after);
    ASSERT_EQ(checksumUpdate32(check, before, after), test::referenceChecksum(data)) << i;
  }
}

// What the NAT does: addresses (4 or 16 bytes) and ports change together under one delta, which
// updates both the IPv4 header checksum (addresses only) and the transport checksum (with the
// pseudo-header).
TEST(ChecksumTest, DeltaOverPseudoHeaderAndPortsMatchesRecomputation) {
  std::mt19937 rng(4);
  for (int i = 0; i < 5000; ++i) {
    const bool v6 = i % 2 == 1;
    const size_t addressLength = v6 ? 16 : 4;
    const IpFamily family = v6 ? IpFamily::kV6 : IpFamily::kV4;
    std::vector<uint8_t> src = randomBytes(rng, addressLength);
    std::vector<uint8_t> dst = randomBytes(rng, addressLength);
    std::vector<uint8_t> segment = randomBytes(rng, 20 + rng() % 200);  // a TCP-like segment
    store16be(&segment[16], 0);
    store16be(&segment[16],
              transportChecksum(family, src.data(), dst.data(), kIpProtoTcp, segment));
    ASSERT_EQ(transportChecksum(family, src.data(), dst.data(), kIpProtoTcp, segment), 0);

    const std::vector<uint8_t> newSrc = randomBytes(rng, addressLength);
    const std::vector<uint8_t> newDst = randomBytes(rng, addressLength);
    const uint16_t newSrcPort = rng(), newDstPort = rng();
    ChecksumDelta delta;
    delta.addBytes(src.data(), newSrc.data(), addressLength);
    delta.addBytes(dst.data(), newDst.data(), addressLength);
    delta.add16(load16be(&segment[0]), newSrcPort);
    delta.add16(load16be(&segment[2]), newDstPort);
    const uint16_t updated = delta.apply(load16be(&segment[16]));

    store16be(&segment[0], newSrcPort);
    store16be(&segment[2], newDstPort);
    store16be(&segment[16], 0);
    const uint16_t scratch =
        transportChecksum(family, newSrc.data(), newDst.data(), kIpProtoTcp, segment);
    ASSERT_EQ(updated, scratch) << i;
    std::vector<uint8_t> pseudo = test::pseudoHeader(
        v6 ? IpAddress::v6(*reinterpret_cast<const std::array<uint8_t, 16>*>(newSrc.data()))
           : IpAddress::v4(load32be(newSrc.data())),
        v6 ? IpAddress::v6(*reinterpret_cast<const std::array<uint8_t, 16>*>(newDst.data()))
           : IpAddress::v4(load32be(newDst.data())),
        kIpProtoTcp, static_cast<uint32_t>(segment.size()));
    store16be(&segment[16], updated);
    pseudo.insert(pseudo.end(), segment.begin(), segment.end());
    ASSERT_EQ(test::referenceChecksum(pseudo), 0) << i;
  }
}

TEST(ChecksumTest, EmptyDeltaLeavesTheChecksum) {
  ChecksumDelta delta;
  EXPECT_TRUE(delta.empty());
  EXPECT_EQ(delta.apply(0x1234), 0x1234);
  delta.add16(0xabcd, 0xabcd);  // a word rewritten with its own value
  EXPECT_EQ(delta.apply(0x1234), 0x1234);
}

}  // namespace
}  // namespace capstan::dataplane
