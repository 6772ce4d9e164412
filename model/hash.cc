#include "model/hash.h"

#include <cstddef>

namespace capstan {

namespace {

// xxHash spec section "Overview": the five 64-bit primes.
constexpr uint64_t kPrime1 = 0x9E3779B185EBCA87u;
constexpr uint64_t kPrime2 = 0xC2B2AE3D27D4EB4Fu;
constexpr uint64_t kPrime3 = 0x165667B19E3779F9u;
constexpr uint64_t kPrime4 = 0x85EBCA77C2B2AE63u;
constexpr uint64_t kPrime5 = 0x27D4EB2F165667C5u;

constexpr uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// Byte by byte, so the value is the same on big-endian hosts and no unaligned load is needed;
// compilers turn this into a single load on little-endian machines.
uint64_t readLe64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

uint64_t readLe32(const unsigned char* p) {
  return uint64_t{p[0]} | uint64_t{p[1]} << 8 | uint64_t{p[2]} << 16 | uint64_t{p[3]} << 24;
}

// Spec step 2 "Process stripes": one lane into one accumulator.
uint64_t xxhRound(uint64_t acc, uint64_t lane) {
  acc += lane * kPrime2;
  acc = rotl(acc, 31);
  return acc * kPrime1;
}

// Spec step 3 "Accumulator convergence".
uint64_t mergeAccumulator(uint64_t acc, uint64_t accN) {
  acc ^= xxhRound(0, accN);
  return acc * kPrime1 + kPrime4;
}

}  // namespace

uint64_t stableHash64(std::string_view data, uint64_t seed) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t remaining = data.size();
  uint64_t acc;

  if (remaining >= 32) {
    // Spec step 1 "Initialize internal accumulators".
    uint64_t acc1 = seed + kPrime1 + kPrime2;
    uint64_t acc2 = seed + kPrime2;
    uint64_t acc3 = seed;
    uint64_t acc4 = seed - kPrime1;
    do {
      acc1 = xxhRound(acc1, readLe64(p));
      acc2 = xxhRound(acc2, readLe64(p + 8));
      acc3 = xxhRound(acc3, readLe64(p + 16));
      acc4 = xxhRound(acc4, readLe64(p + 24));
      p += 32;
      remaining -= 32;
    } while (remaining >= 32);
    acc = rotl(acc1, 1) + rotl(acc2, 7) + rotl(acc3, 12) + rotl(acc4, 18);
    acc = mergeAccumulator(acc, acc1);
    acc = mergeAccumulator(acc, acc2);
    acc = mergeAccumulator(acc, acc3);
    acc = mergeAccumulator(acc, acc4);
  } else {
    // Spec "Special case: input is less than 32 bytes".
    acc = seed + kPrime5;
  }

  // Spec step 4 "Add input length".
  acc += static_cast<uint64_t>(data.size());

  // Spec step 5 "Consume remaining input".
  while (remaining >= 8) {
    acc ^= xxhRound(0, readLe64(p));
    acc = rotl(acc, 27) * kPrime1 + kPrime4;
    p += 8;
    remaining -= 8;
  }
  if (remaining >= 4) {
    acc ^= readLe32(p) * kPrime1;
    acc = rotl(acc, 23) * kPrime2 + kPrime3;
    p += 4;
    remaining -= 4;
  }
  while (remaining > 0) {
    acc ^= uint64_t{*p} * kPrime5;
    acc = rotl(acc, 11) * kPrime1;
    ++p;
    --remaining;
  }

  // Spec step 6 "Final mix (avalanche)".
  acc ^= acc >> 33;
  acc *= kPrime2;
  acc ^= acc >> 29;
  acc *= kPrime3;
  acc ^= acc >> 32;
  return acc;
}

}  // namespace capstan
