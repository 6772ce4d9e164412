#include "model/hash.h"

#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace capstan {
namespace {

constexpr uint64_t kPrime32 = 2654435761u;  // PRIME32_1, the seed upstream tests with

// XSUM_fillTestBuffer() from xxHash's cli/xsum_sanity_check.c: the input of the upstream vectors.
std::string sanityBuffer(size_t length) {
  std::string buffer(length, '\0');
  uint64_t byteGen = kPrime32;
  for (size_t i = 0; i < length; ++i) {
    buffer[i] = static_cast<char>(byteGen >> 56);
    byteGen *= 11400714785074694797u;
  }
  return buffer;
}

struct Vector {
  size_t length;
  uint64_t seed;
  uint64_t expected;
};

// The XXH64 vectors of upstream's sanity check (cli/xsum_sanity_check.c, identical in
// xxhsum.c of releases 0.6 to 0.8), which every conforming implementation must reproduce.
TEST(StableHash64Test, MatchesUpstreamSanityVectors) {
  const Vector vectors[] = {
      {0, 0, 0xEF46DB3751D8E999u},          {0, kPrime32, 0xAC75FDA2929B17EFu},
      {1, 0, 0xE934A84ADB052768u},          {1, kPrime32, 0x5014607643A9B4C3u},
      {4, 0, 0x9136A0DCA57457EEu},          {14, 0, 0x8282DCC4994E35C8u},
      {14, kPrime32, 0xC3BD6BF63DEB6DF0u},  {222, 0, 0xB641AE8CB691C174u},
      {222, kPrime32, 0x20CB8AB7AE10C14Au},
  };
  const std::string buffer = sanityBuffer(222);
  for (const Vector& v : vectors) {
    EXPECT_EQ(stableHash64(std::string_view(buffer).substr(0, v.length), v.seed), v.expected)
        << "length " << v.length << " seed " << v.seed;
  }
}

// Lengths that end in every branch of the algorithm (tail of 1-3 bytes, a 4-byte word, 8-byte
// words, exactly one and several 32-byte stripes), and a seed that uses all 64 bits. These values
// are not in upstream's file: they were computed with the reference library itself, XXH64() of
// libxxhash 0.8.1 (Debian package libxxhash0), on the same sanity buffer.
TEST(StableHash64Test, MatchesReferenceLibraryOnEveryLengthBranch) {
  constexpr uint64_t kSeed = 0x9E3779B97F4A7C15u;
  const Vector vectors[] = {
      {3, 0, 0xFF7E1959CB50794Au},    {3, kSeed, 0xE23F055F9113033Du},
      {7, 0, 0x6C83909A9F01ED25u},    {7, kSeed, 0x3E322FAE9895AAA9u},
      {8, 0, 0xCDBCF538E71D1348u},    {8, kSeed, 0x4FE88E05B3A5BFD8u},
      {12, 0, 0x0723BF50086EAD9Au},   {12, kSeed, 0xA017E61772D724E2u},
      {31, 0, 0x299B39A290E6D783u},   {31, kSeed, 0xB9FA34ECBF9B57FFu},
      {32, 0, 0x18B216492BB44B70u},   {32, kSeed, 0xE65EA5F4EFF5D5DEu},
      {33, 0, 0x55C8DC3E578F5B59u},   {33, kSeed, 0xF166A3272CADC4ABu},
      {63, 0, 0xA9EFBE0FA0F3F4E7u},   {63, kSeed, 0x0A36D884436EFE01u},
      {64, 0, 0xEF558F8ACAC2B5CDu},   {64, kSeed, 0xE7BD5052C0D2145Eu},
      {100, 0, 0x4BFE019CD91D9EA4u},  {100, kSeed, 0x8DD80A6EF6296BF7u},
      {2367, 0, 0xA82418DDEC0EA581u}, {2367, kSeed, 0x4A9D2DA95D5DDDD2u},
  };
  const std::string buffer = sanityBuffer(2367);
  for (const Vector& v : vectors) {
    EXPECT_EQ(stableHash64(std::string_view(buffer).substr(0, v.length), v.seed), v.expected)
        << "length " << v.length << " seed " << v.seed;
  }
}

// Widely quoted text vectors (seed 0), also checked against libxxhash 0.8.1.
TEST(StableHash64Test, MatchesTextVectors) {
  EXPECT_EQ(stableHash64("", 0), 0xEF46DB3751D8E999u);
  EXPECT_EQ(stableHash64("a", 0), 0xD24EC4F1A98C6E5Bu);
  EXPECT_EQ(stableHash64("abc", 0), 0x44BC2CF5AD770999u);
  EXPECT_EQ(stableHash64("Nobody inspects the spammish repetition", 0), 0xFBCEA83C8A378BF1u);
}

TEST(StableHash64Test, DoesNotDependOnAlignment) {
  const std::string text = "10.0.0.1:8080 and some more bytes to reach a stripe or two";
  const uint64_t expected = stableHash64(text, 7);
  for (size_t shift = 1; shift < 8; ++shift) {
    const std::string padded = std::string(shift, 'x') + text;
    EXPECT_EQ(stableHash64(std::string_view(padded).substr(shift), 7), expected) << shift;
  }
}

// Strict avalanche: flipping any one input bit flips each output bit with probability 1/2.
// With 12,800 flips per output bit the observed rate has a standard deviation of 0.0044, so
// [0.45, 0.55] only fails for a real defect (an identity or a weak mix misses by far more).
template <typename Hash>
void expectAvalanche(Hash hash, size_t inputBits) {
  constexpr int kSamples = 200;
  std::vector<int> flips(64, 0);
  uint64_t state = 42;
  for (int s = 0; s < kSamples; ++s) {
    std::vector<uint64_t> input((inputBits + 63) / 64);
    for (uint64_t& word : input) word = mixHash64(state++);
    const uint64_t base = hash(input);
    for (size_t bit = 0; bit < inputBits; ++bit) {
      input[bit / 64] ^= uint64_t{1} << (bit % 64);
      const uint64_t changed = base ^ hash(input);
      input[bit / 64] ^= uint64_t{1} << (bit % 64);
      for (int out = 0; out < 64; ++out) flips[out] += (changed >> out) & 1;
    }
  }
  const double trials = static_cast<double>(kSamples) * inputBits;
  for (int out = 0; out < 64; ++out) {
    EXPECT_NEAR(flips[out] / trials, 0.5, 0.05) << "output bit " << out;
  }
}

TEST(StableHash64Test, Avalanches) {
  // 16 bytes: the short-input path that backend names take.
  expectAvalanche(
      [](const std::vector<uint64_t>& words) {
        std::string bytes;
        for (uint64_t w : words) {
          for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>(w >> (8 * i)));
        }
        return stableHash64(bytes, 0);
      },
      128);
}

TEST(StableHash64Test, SeedChangesTheValue) {
  EXPECT_NE(stableHash64("10.0.0.1:8080", 0), stableHash64("10.0.0.1:8080", 1));
  EXPECT_NE(stableHash64("10.0.0.1:8080", 0), stableHash64("10.0.0.2:8080", 0));
}

// mixHash64(x) is the SplitMix64 output for state x. Reference outputs: the first five numbers of
// SplitMix64 seeded with 1234567 (the Rosetta Code task "Pseudo-random numbers/Splitmix64",
// which follows Vigna's splitmix64.c); the generator adds the gamma before mixing, which
// mixHash64 does too, so output n is mixHash64(1234567 + n * gamma).
TEST(MixHash64Test, MatchesSplitMix64Sequence) {
  constexpr uint64_t kGamma = 0x9e3779b97f4a7c15u;
  const uint64_t expected[] = {6457827717110365317u, 3203168211198807973u, 9817491932198370423u,
                               4593380528125082431u, 16408922859458223821u};
  uint64_t state = 1234567;
  for (uint64_t value : expected) {
    EXPECT_EQ(mixHash64(state), value);
    state += kGamma;
  }
  static_assert(mixHash64(1234567) == 6457827717110365317u, "usable in constant expressions");
}

TEST(MixHash64Test, DoesNotFixZero) { EXPECT_NE(mixHash64(0), 0u); }

TEST(MixHash64Test, Avalanches) {
  expectAvalanche([](const std::vector<uint64_t>& words) { return mixHash64(words[0]); }, 64);
}

TEST(MixHash64Test, SpreadsSmallKeys) {
  // Consecutive small keys (ports, counters) must land far apart: about 32 bits differ.
  int totalBits = 0;
  for (uint64_t k = 0; k < 1000; ++k) totalBits += std::popcount(mixHash64(k) ^ mixHash64(k + 1));
  EXPECT_NEAR(totalBits / 1000.0, 32.0, 1.0);
}

}  // namespace
}  // namespace capstan
