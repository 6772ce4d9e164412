// Stable hashes: the same value for the same input on every machine, compiler and release.
//
// Several nodes must agree on which backend a flow goes to (Maglev, model/maglev.h), so these
// values are part of Capstan's wire behaviour and must never change. std::hash promises none of
// this. Both functions below are published algorithms implemented here from their
// specifications, reading input bytes one at a time in little-endian order, so the result does not
// depend on the host's byte order or alignment rules.
#pragma once

#include <cstdint>
#include <string_view>

namespace capstan {

// xxHash64 (XXH64) by Yann Collet, as specified in "xxHash fast digest algorithm", version 0.1.1
// (10/10/18; github.com/Cyan4973/xxHash, doc/xxhash_spec.md). Bit-for-bit equal to the reference
// XXH64(): tests/model/hash_test.cc checks the upstream sanity vectors (cli/xsum_sanity_check.c).
uint64_t stableHash64(std::string_view data, uint64_t seed);

// A fixed bijective mix of one 64-bit word: one output of SplitMix64 (Steele, Lea, Flood, "Fast
// Splittable Pseudorandom Number Generators", OOPSLA 2014; constants from Vigna's splitmix64.c)
// whose state is `x`, i.e. x + golden gamma through Stafford's "Mix13" finaliser. Unlike
// MurmurHash3's fmix64 it does not map 0 to 0. Meant for hashing fixed-size keys such as a packet
// 5-tuple folded into words: mixHash64(a ^ mixHash64(b)).
constexpr uint64_t mixHash64(uint64_t x) {
  uint64_t z = x + 0x9e3779b97f4a7c15u;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

}  // namespace capstan
