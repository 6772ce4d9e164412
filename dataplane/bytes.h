// Loads and stores of network-order (big-endian) fields at a byte pointer, for the parser and the
// NAT. Packet fields are not aligned (an IPv4 header after a VLAN tag sits at offset 18), so every
// access goes through memcpy, which compilers turn into one unaligned load plus a byte swap.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

namespace capstan::dataplane {

inline uint16_t load16be(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap16(v);
  return v;
}

inline uint32_t load32be(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap32(v);
  return v;
}

inline void store16be(uint8_t* p, uint16_t v) {
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap16(v);
  std::memcpy(p, &v, sizeof v);
}

inline void store32be(uint8_t* p, uint32_t v) {
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap32(v);
  std::memcpy(p, &v, sizeof v);
}

// Little-endian 64-bit load: the byte order stable hashes read their input in (model/hash.h).
inline uint64_t load64le(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  return v;
}

}  // namespace capstan::dataplane
