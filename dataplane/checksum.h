// The Internet checksum (RFC 1071) from scratch, and its incremental update (RFC 1624) for the
// NAT, which rewrites addresses and ports in place and must not re-sum whole packets.
//
// Values are 16-bit words as read from the wire in network order (load16be): a checksum field is
// passed and returned as the number a big-endian read of its two bytes gives. The parser verifies
// IPv4 header checksums with internetChecksum(); dataplane/nat.cc updates the IPv4, TCP and UDP
// checksums with ChecksumDelta; tests compare the two.
#pragma once

#include <cstdint>
#include <span>

#include "model/ip.h"

namespace capstan::dataplane {

// Adds `data` as big-endian 16-bit words (a trailing odd byte padded with zero) to the ones'
// complement accumulator `sum` without folding. Sums of up to 128 KiB cannot overflow.
uint32_t checksumAdd(std::span<const uint8_t> data, uint32_t sum = 0);

// Folds the carries of an accumulator into 16 bits (end-around carry).
constexpr uint16_t checksumFold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// RFC 1071: the ones' complement of the ones' complement sum of `data`. A header whose checksum
// field holds the right value sums to 0xffff, so this returns 0 over it.
inline uint16_t internetChecksum(std::span<const uint8_t> data) {
  return static_cast<uint16_t>(~checksumFold(checksumAdd(data)));
}

// The unfolded sum of the TCP/UDP pseudo-header: RFC 793 3.1 and RFC 768 for IPv4 (source,
// destination, zero, protocol, TCP/UDP length), RFC 8200 8.1 for IPv6 (the same with a 32-bit
// length). `src` and `dst` point at 4 or 16 network-order bytes.
uint32_t pseudoHeaderSum(IpFamily family, const uint8_t* src, const uint8_t* dst, uint8_t protocol,
                         uint32_t length);

// The checksum of a transport segment (header with its checksum field zeroed, and payload) under
// its pseudo-header, computed from scratch. For UDP the caller maps a result of 0 to 0xffff
// (RFC 768: 0 means "no checksum" in IPv4).
uint16_t transportChecksum(IpFamily family, const uint8_t* src, const uint8_t* dst,
                           uint8_t protocol, std::span<const uint8_t> segment);

// RFC 1624 eqn. 3: the checksum after one 16-bit word of the covered data changes from `oldWord`
// to `newWord`: HC' = ~(~HC + ~m + m'). Unlike eqn. 2 it never yields 0xffff for data that is
// not all zero, so it agrees with a from-scratch computation bit for bit.
uint16_t checksumUpdate16(uint16_t check, uint16_t oldWord, uint16_t newWord);
// The same for a 32-bit field (an IPv4 address as load32be reads it): two words.
uint16_t checksumUpdate32(uint16_t check, uint32_t oldValue, uint32_t newValue);

// Several changes to the covered data, summed once and applied to as many checksums as cover
// them: the NAT adds its address changes, applies the delta to the IPv4 header checksum, adds its
// port changes, and applies the whole to the TCP or UDP checksum (whose pseudo-header holds the
// addresses).
class ChecksumDelta {
 public:
  // One 16-bit word changes.
  void add16(uint16_t oldWord, uint16_t newWord) { sum_ += uint16_t(~oldWord) + uint32_t{newWord}; }
  // A field of `length` bytes (even) changes: 4 for an IPv4 address, 16 for IPv6.
  void addBytes(const uint8_t* oldBytes, const uint8_t* newBytes, size_t length);

  // Adds the changes recorded in `other`.
  void add(const ChecksumDelta& other) { sum_ += other.sum_; }

  // RFC 1624 eqn. 3 with every change at once: ~(~HC + sum of (~m + m')).
  uint16_t apply(uint16_t check) const {
    return static_cast<uint16_t>(~checksumFold(uint64_t{uint16_t(~check)} + sum_));
  }
  bool empty() const { return sum_ == 0; }

 private:
  uint64_t sum_ = 0;
};

}  // namespace capstan::dataplane
