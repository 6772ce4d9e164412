#include "model/maglev.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "model/hash.h"

namespace capstan {
namespace {

using ::testing::HasSubstr;

constexpr uint32_t kSize = MaglevTable::kDefaultSize;

std::string backendName(uint32_t i) {
  return "10." + std::to_string(i / 65536) + "." + std::to_string(i / 256 % 256) + "." +
         std::to_string(i % 256) + ":8080";
}

std::vector<MaglevBackend> makeBackends(uint32_t n,
                                        const std::function<uint32_t(uint32_t)>& weight) {
  std::vector<MaglevBackend> out;
  for (uint32_t i = 0; i < n; ++i) out.push_back({backendName(i), weight(i)});
  return out;
}

std::vector<MaglevBackend> equalBackends(uint32_t n) {
  return makeBackends(n, [](uint32_t) { return 1u; });
}

MaglevTable buildOrDie(std::vector<MaglevBackend> backends, uint32_t size = kSize) {
  Result<MaglevTable> table = MaglevTable::build(std::move(backends), size);
  EXPECT_TRUE(table.ok()) << table.error().message();
  return std::move(table).value();
}

// Entries owned by each backend, by index into backends().
std::vector<uint32_t> entryCounts(const MaglevTable& table) {
  std::vector<uint32_t> counts(table.backends().size(), 0);
  for (uint32_t e : table.entries()) ++counts.at(e);
  return counts;
}

// Checks every backend's share against its weighted fair share size * w / W. `tolerance` is the
// allowed relative error; no count can be closer than within one entry of a fractional share, so
// the bound is never tighter than that.
void expectFairShares(const MaglevTable& table, double tolerance) {
  double totalWeight = 0;
  for (const MaglevBackend& b : table.backends()) totalWeight += b.weight;
  const std::vector<uint32_t> counts = entryCounts(table);
  for (size_t i = 0; i < counts.size(); ++i) {
    const double fair =
        static_cast<double>(table.size()) * table.backends()[i].weight / totalWeight;
    EXPECT_NEAR(counts[i], fair, std::max(tolerance * fair, 1.0))
        << table.backends()[i].name << " weight " << table.backends()[i].weight;
  }
}

TEST(MaglevTableTest, EqualWeightsGetTheirFairShareWithinOnePercent) {
  for (uint32_t n : {10u, 100u, 1000u}) {
    SCOPED_TRACE(n);
    const MaglevTable table = buildOrDie(equalBackends(n));
    const double fair = static_cast<double>(kSize) / n;
    for (uint32_t count : entryCounts(table)) EXPECT_NEAR(count, fair, 0.01 * fair);
  }
}

// For weighted sets the bound is 1% of the fair share or one entry, whichever is larger: a light
// backend's share (e.g. 59.6 entries) cannot be met closer than one entry by an integer count.
TEST(MaglevTableTest, WeightedBackendsGetTheirFairShare) {
  expectFairShares(buildOrDie(makeBackends(100, [](uint32_t i) { return i % 4 + 1; })), 0.01);
  expectFairShares(buildOrDie(makeBackends(1000, [](uint32_t i) { return i % 4 + 1; })), 0.01);
  // One heavy backend among light ones.
  expectFairShares(buildOrDie(makeBackends(100, [](uint32_t i) { return i == 42 ? 1000u : 1u; })),
                   0.01);
  expectFairShares(buildOrDie(makeBackends(10, [](uint32_t i) { return i == 0 ? 1u : 20u; })),
                   0.01);
}

TEST(MaglevTableTest, ExtremeWeightsDoNotOverflow) {
  const MaglevTable table = buildOrDie(
      {{"heavy", UINT32_MAX}, {"also-heavy", UINT32_MAX - 1}, {"light", 1}, {"mid", 1u << 31}});
  expectFairShares(table, 0.0);
}

TEST(MaglevTableTest, WeightZeroBackendGetsNoEntries) {
  const MaglevTable table = buildOrDie(
      makeBackends(5, [](uint32_t i) { return i == 2 ? 0u : 1u; }));  // backendName(2) is off
  ASSERT_EQ(table.backends().size(), 5u);
  const std::vector<uint32_t> counts = entryCounts(table);
  for (size_t i = 0; i < counts.size(); ++i) {
    if (table.backends()[i].name == backendName(2)) {
      EXPECT_EQ(counts[i], 0u);
    } else {
      EXPECT_NEAR(counts[i], kSize / 4.0, 1.0) << table.backends()[i].name;
    }
  }
}

TEST(MaglevTableTest, TableIsCompletelyFilledWithValidIndices) {
  const std::vector<std::vector<MaglevBackend>> sets = {
      equalBackends(1),
      equalBackends(7),
      equalBackends(1000),
      makeBackends(300, [](uint32_t i) { return i % 5; }),  // some weight 0
      makeBackends(50, [](uint32_t i) { return i * i; }),
  };
  for (const std::vector<MaglevBackend>& set : sets) {
    const MaglevTable table = buildOrDie(set);
    ASSERT_EQ(table.size(), kSize);
    ASSERT_EQ(table.entries().size(), kSize);
    for (uint32_t e : table.entries()) {
      ASSERT_LT(e, table.backends().size());
      ASSERT_GT(table.backends()[e].weight, 0u);
    }
  }
}

TEST(MaglevTableTest, SmallPrimeSizes) {
  // size = n + 1: every backend owns one entry and one owns two.
  const MaglevTable four = buildOrDie(equalBackends(4), 5);
  std::vector<uint32_t> counts = entryCounts(four);
  std::sort(counts.begin(), counts.end());
  EXPECT_EQ(counts, (std::vector<uint32_t>{1, 1, 1, 2}));
  const MaglevTable one = buildOrDie(equalBackends(1), 2);
  EXPECT_EQ(one.entries(), (std::vector<uint32_t>{0, 0}));
}

// Removes each backend of `all` in turn and checks how many entries change owner. The minimum is
// the removed backend's entries, plus, for each remaining backend, whatever it owned beyond its
// new share (it must give those up). Returns the worst moved / minimum ratio seen.
double expectRemovalMovesAtMost(const std::vector<MaglevBackend>& all, double factor) {
  const MaglevTable before = buildOrDie(all);
  const std::vector<uint32_t> countsBefore = entryCounts(before);
  double worstRatio = 0;
  for (size_t removed = 0; removed < before.backends().size(); ++removed) {
    std::vector<MaglevBackend> rest = before.backends();
    rest.erase(rest.begin() + removed);
    const MaglevTable after = buildOrDie(rest);
    const std::vector<uint32_t> countsAfter = entryCounts(after);

    uint32_t minimum = countsBefore[removed];
    for (size_t j = 0; j < rest.size(); ++j) {
      const uint32_t old = countsBefore[j < removed ? j : j + 1];  // same backend, old index
      if (old > countsAfter[j]) minimum += old - countsAfter[j];
    }
    uint32_t moved = 0;
    for (uint32_t e = 0; e < before.size(); ++e) {
      if (before.backends()[before.entries()[e]].name !=
          after.backends()[after.entries()[e]].name) {
        ++moved;
      }
    }
    EXPECT_GE(moved, minimum);
    EXPECT_LE(moved, factor * minimum) << "removing " << before.backends()[removed].name
                                       << ": moved " << moved << " entries, minimum " << minimum;
    worstRatio = std::max(worstRatio, static_cast<double>(moved) / minimum);
  }
  return worstRatio;
}

// Removing one of 100 equal backends, each of them in turn. With equal weights every remaining
// share grows, so the minimum is the removed backend's ~655 entries (the second term is computed
// all the same). Maglev moves somewhat more, as the paper says (section 3.4): a remaining
// backend that reaches a freed entry early takes it instead of its old one, which another backend
// may then take. Measured: 1.56x on average, 1.61x at worst; the bound is 2x.
TEST(MaglevTableTest, RemovingOneOfHundredMovesAtMostTwiceTheMinimum) {
  const double worst = expectRemovalMovesAtMost(equalBackends(100), 2.0);
  RecordProperty("worst_moved_over_minimum", std::to_string(worst));
}

// The same with weights 1..4. Removing a weight-1 backend frees only ~262 entries while the
// chains of re-claims it starts are about as long as for a heavy one, so the ratio is higher:
// 1.62x on average but 2.15x at worst (563 entries moved for a minimum of 262). The 2x bound does
// not hold here; this guards against a schedule that does worse.
TEST(MaglevTableTest, RemovingOneOfHundredWeightedBackendsMovesLittle) {
  const double worst =
      expectRemovalMovesAtMost(makeBackends(100, [](uint32_t i) { return i % 4 + 1; }), 2.5);
  RecordProperty("worst_moved_over_minimum", std::to_string(worst));
}

TEST(MaglevTableTest, InputOrderDoesNotChangeTheTable) {
  std::vector<MaglevBackend> backends = makeBackends(100, [](uint32_t i) { return i % 3 + 1; });
  const MaglevTable reference = buildOrDie(backends);
  std::mt19937 rng(7);
  for (int round = 0; round < 3; ++round) {
    std::shuffle(backends.begin(), backends.end(), rng);
    const MaglevTable shuffled = buildOrDie(backends);
    EXPECT_EQ(shuffled.backends(), reference.backends());
    EXPECT_EQ(shuffled.entries(), reference.entries());
  }
  std::reverse(backends.begin(), backends.end());
  EXPECT_EQ(buildOrDie(backends).entries(), reference.entries());
}

TEST(MaglevTableTest, SameSetOnTwoNodesGivesIdenticalTables) {
  // Two nodes learn the same endpoints in different orders and build their own strings.
  std::vector<MaglevBackend> nodeA;
  for (uint32_t i = 0; i < 250; ++i) nodeA.push_back({backendName(i), i % 7 + 1});
  std::vector<MaglevBackend> nodeB;
  for (uint32_t i = 250; i-- > 0;) {
    std::string name = "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":8080";
    nodeB.push_back({std::move(name), i % 7 + 1});
  }
  const MaglevTable a = buildOrDie(std::move(nodeA));
  const MaglevTable b = buildOrDie(std::move(nodeB));
  EXPECT_EQ(a.backends(), b.backends());
  EXPECT_EQ(a.entries(), b.entries());
  for (uint64_t flow = 0; flow < 1000; ++flow) {
    EXPECT_EQ(a.backends()[a.lookup(mixHash64(flow))].name,
              b.backends()[b.lookup(mixHash64(flow))].name);
  }
}

TEST(MaglevTableTest, LookupReadsTheEntryForTheHashModuloSize) {
  const MaglevTable table = buildOrDie(equalBackends(10), 13);
  for (uint64_t h : {uint64_t{0}, uint64_t{12}, uint64_t{13}, uint64_t{1} << 40, UINT64_MAX}) {
    EXPECT_EQ(table.lookup(h), table.entries()[h % 13]) << h;
  }
}

TEST(MaglevTableTest, EmptySetGivesEmptyTable) {
  Result<MaglevTable> empty = MaglevTable::build({});
  ASSERT_TRUE(empty.ok()) << empty.error().message();
  EXPECT_EQ(empty->size(), 0u);
  EXPECT_TRUE(empty->entries().empty());
  EXPECT_TRUE(empty->backends().empty());
  EXPECT_EQ(empty->lookup(0), MaglevTable::kNoBackend);
  EXPECT_EQ(empty->lookup(12345), MaglevTable::kNoBackend);

  Result<MaglevTable> allOff = MaglevTable::build({{"b", 0}, {"a", 0}});
  ASSERT_TRUE(allOff.ok()) << allOff.error().message();
  EXPECT_EQ(allOff->size(), 0u);
  EXPECT_EQ(allOff->lookup(99), MaglevTable::kNoBackend);
  EXPECT_EQ(allOff->backends(), (std::vector<MaglevBackend>{{"a", 0}, {"b", 0}}));

  EXPECT_EQ(MaglevTable().lookup(7), MaglevTable::kNoBackend);
}

TEST(MaglevTableTest, RejectsSizeThatIsNotPrime) {
  for (uint32_t size : {0u, 1u, 4u, 65536u, 65535u}) {
    Result<MaglevTable> table = MaglevTable::build(equalBackends(3), size);
    ASSERT_FALSE(table.ok()) << size;
    EXPECT_EQ(table.error().message(),
              "Maglev table: size must be a prime number, got " + std::to_string(size));
  }
}

TEST(MaglevTableTest, RejectsSizeTooLarge) {
  constexpr uint32_t kTooLarge = 16777259;  // the smallest prime above 2^24
  ASSERT_TRUE(isPrime(kTooLarge));
  Result<MaglevTable> table = MaglevTable::build(equalBackends(3), kTooLarge);
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.error().message(), "Maglev table: size must be at most 16777216, got 16777259");
}

TEST(MaglevTableTest, RejectsSizeNotAboveBackendCount) {
  Result<MaglevTable> table = MaglevTable::build(equalBackends(3), 3);
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.error().message(),
            "Maglev table: size must be greater than the number of backends with weight > 0 (3), "
            "got 3");
  // Weight-0 backends do not count.
  std::vector<MaglevBackend> backends = equalBackends(3);
  backends.push_back({"off-1", 0});
  backends.push_back({"off-2", 0});
  EXPECT_TRUE(MaglevTable::build(backends, 5).ok());
  EXPECT_FALSE(MaglevTable::build(equalBackends(1000), 997).ok());
}

TEST(MaglevTableTest, RejectsDuplicateNames) {
  Result<MaglevTable> table =
      MaglevTable::build({{"10.0.0.2:8080", 1}, {"10.0.0.1:8080", 1}, {"10.0.0.2:8080", 3}});
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.error().message(),
            "Maglev table: backend name \"10.0.0.2:8080\" appears more than once");
  // A duplicate is an error even when one of the two has weight 0.
  EXPECT_FALSE(MaglevTable::build({{"a", 0}, {"a", 1}}).ok());
}

TEST(MaglevTableTest, RejectsEmptyName) {
  Result<MaglevTable> table = MaglevTable::build({{"a", 1}, {"", 1}});
  ASSERT_FALSE(table.ok());
  EXPECT_THAT(table.error().message(), HasSubstr("backends[1].name must not be empty"));
}

// Golden values: these pin the hash, its seeds, the apportionment and the population order. If
// one of these fails, every node running the new code disagrees with every node running the old
// one about where flows go: that is a breaking change, not a test to update. The values were
// computed by a separate Python model of the algorithm using the reference xxHash library.
uint64_t fingerprint(const std::vector<uint32_t>& entries) {
  std::string bytes;
  for (uint32_t e : entries) {
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>(e >> (8 * i)));
  }
  return stableHash64(bytes, 0);
}

TEST(MaglevTableTest, GoldenTableForThreeBackends) {
  const MaglevTable table =
      buildOrDie({{"10.0.0.3:8080", 1}, {"10.0.0.1:8080", 1}, {"10.0.0.2:8080", 1}});
  const std::vector<uint32_t> first16(table.entries().begin(), table.entries().begin() + 16);
  EXPECT_EQ(first16, (std::vector<uint32_t>{0, 1, 2, 2, 1, 0, 1, 2, 0, 1, 1, 0, 0, 2, 1, 1}));
  EXPECT_EQ(entryCounts(table), (std::vector<uint32_t>{21846, 21846, 21845}));
  EXPECT_EQ(fingerprint(table.entries()), 0xa2f49a2b3c45bbfdu);
}

TEST(MaglevTableTest, GoldenTableForThreeWeightedBackends) {
  const MaglevTable table =
      buildOrDie({{"10.0.0.3:8080", 3}, {"10.0.0.1:8080", 1}, {"10.0.0.2:8080", 2}});
  const std::vector<uint32_t> first16(table.entries().begin(), table.entries().begin() + 16);
  EXPECT_EQ(first16, (std::vector<uint32_t>{2, 1, 2, 2, 1, 0, 1, 2, 2, 1, 2, 2, 1, 2, 1, 1}));
  // 65537 * {1, 2, 3} / 6 = {10922.8, 21845.7, 32768.5}: the two largest remainders round up.
  EXPECT_EQ(entryCounts(table), (std::vector<uint32_t>{10923, 21846, 32768}));
  EXPECT_EQ(fingerprint(table.entries()), 0x2209b690a69898eau);
}

TEST(IsPrimeTest, KnownValues) {
  for (uint32_t p : {2u, 3u, 5u, 7u, 13u, 251u, 65521u, 65537u, 16777213u, 4294967291u}) {
    EXPECT_TRUE(isPrime(p)) << p;
  }
  // 4294967295 = 3 * 5 * 17 * 257 * 65537. Squares and products of primes near 2^16 need the
  // trial divisor to reach sqrt(n): 4293001441 = 65521^2, 4294049777 = 65521 * 65537.
  for (uint32_t n :
       {0u, 1u, 4u, 9u, 25u, 49u, 65535u, 65536u, 4293001441u, 4294049777u, 4294967295u}) {
    EXPECT_FALSE(isPrime(n)) << n;
  }
  uint32_t count = 0;
  for (uint32_t n = 0; n < 10000; ++n) count += isPrime(n);
  EXPECT_EQ(count, 1229u);  // pi(10^4)
}

}  // namespace
}  // namespace capstan
