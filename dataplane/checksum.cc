#include "dataplane/checksum.h"

#include "dataplane/bytes.h"

namespace capstan::dataplane {

uint32_t checksumAdd(std::span<const uint8_t> data, uint32_t sum) {
  const uint8_t* p = data.data();
  size_t n = data.size();
  // Eight bytes per step into a 64-bit accumulator: four words at a time, folded at the end.
  uint64_t wide = sum;
  while (n >= 8) {
    const uint32_t hi = load32be(p);
    const uint32_t lo = load32be(p + 4);
    wide += (hi >> 16) + (hi & 0xffff) + (lo >> 16) + (lo & 0xffff);
    p += 8;
    n -= 8;
  }
  while (n >= 2) {
    wide += load16be(p);
    p += 2;
    n -= 2;
  }
  if (n == 1) wide += uint32_t{p[0]} << 8;
  // Keep the result unfolded but within 32 bits: fold only what would not fit.
  while (wide >> 32) wide = (wide & 0xffffffffu) + (wide >> 32);
  return static_cast<uint32_t>(wide);
}

uint32_t pseudoHeaderSum(IpFamily family, const uint8_t* src, const uint8_t* dst, uint8_t protocol,
                         uint32_t length) {
  const size_t addressLength = family == IpFamily::kV4 ? 4 : 16;
  uint32_t sum = checksumAdd({src, addressLength});
  sum = checksumAdd({dst, addressLength}, sum);
  return sum + protocol + (length >> 16) + (length & 0xffff);
}

uint16_t transportChecksum(IpFamily family, const uint8_t* src, const uint8_t* dst,
                           uint8_t protocol, std::span<const uint8_t> segment) {
  const uint32_t pseudo =
      pseudoHeaderSum(family, src, dst, protocol, static_cast<uint32_t>(segment.size()));
  return static_cast<uint16_t>(~checksumFold(uint64_t{checksumAdd(segment)} + pseudo));
}

uint16_t checksumUpdate16(uint16_t check, uint16_t oldWord, uint16_t newWord) {
  ChecksumDelta delta;
  delta.add16(oldWord, newWord);
  return delta.apply(check);
}

uint16_t checksumUpdate32(uint16_t check, uint32_t oldValue, uint32_t newValue) {
  ChecksumDelta delta;
  delta.add16(static_cast<uint16_t>(oldValue >> 16), static_cast<uint16_t>(newValue >> 16));
  delta.add16(static_cast<uint16_t>(oldValue), static_cast<uint16_t>(newValue));
  return delta.apply(check);
}

void ChecksumDelta::addBytes(const uint8_t* oldBytes, const uint8_t* newBytes, size_t length) {
  for (size_t i = 0; i + 1 < length; i += 2) add16(load16be(oldBytes + i), load16be(newBytes + i));
}

}  // namespace capstan::dataplane
