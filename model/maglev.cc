#include "model/maglev.h"

#include <algorithm>
#include <cstddef>
#include <string_view>
#include <utility>

#include "model/hash.h"

namespace capstan {

namespace {

// The seeds of the paper's h1 (offset) and h2 (skip), the ASCII of "MaglevOf" and "MaglevSp".
// Frozen forever, like stableHash64 itself: changing either reshuffles every table on every node.
constexpr uint64_t kOffsetSeed = 0x4d61676c65764f66u;
constexpr uint64_t kSkipSeed = 0x4d61676c65765370u;

std::string quoted(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.append("\"").append(s).append("\"");
  return out;
}

// One turn of the population loop: `backend` claims its next preferred free entry. `frac` places
// the turn inside its time bucket (see scheduleTurns).
struct Turn {
  uint32_t backend;
  uint32_t frac;
};

// Entries owned by each backend: floor(size * w / W), plus one for the backends with the largest
// remainders (ties to the lower index, i.e. the smaller name) until the counts add up to `size`
// (Hamilton's largest-remainder apportionment). Each count is within one entry of the exact
// share size * w / W. Products fit in 64 bits: size <= 2^24 and w < 2^32.
std::vector<uint32_t> apportion(const std::vector<MaglevBackend>& backends,
                                const std::vector<uint32_t>& active, uint64_t totalWeight,
                                uint32_t size) {
  std::vector<uint32_t> quota(backends.size(), 0);
  std::vector<uint64_t> remainder(backends.size(), 0);
  uint64_t assigned = 0;
  for (uint32_t i : active) {
    const uint64_t share = uint64_t{size} * backends[i].weight;
    quota[i] = static_cast<uint32_t>(share / totalWeight);
    remainder[i] = share % totalWeight;
    assigned += quota[i];
  }
  // The fractional parts add up to an integer below active.size().
  const size_t leftover = size - assigned;
  if (leftover > 0) {
    std::vector<uint32_t> order = active;
    auto ranksFirst = [&](uint32_t a, uint32_t b) {
      return remainder[a] != remainder[b] ? remainder[a] > remainder[b] : a < b;
    };
    std::nth_element(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(leftover),
                     order.end(), ranksFirst);
    for (size_t k = 0; k < leftover; ++k) ++quota[order[k]];
  }
  return quota;
}

// The order in which backends take their turns: the k-th turn (k = 0, 1, ...) of backend i happens
// at virtual time k / w_i, and turns at the same time go in name order. This is smooth weighted
// round robin with exact times, and it reduces to the paper's plain round robin when all weights
// are equal. A backend's turn times depend only on its own weight, so adding or removing another
// backend leaves the relative order of everyone else's turns unchanged; only the number of turns
// each takes (its quota) moves, and only at the end of the schedule.
//
// The merge is a counting sort on bucket floor(k * wMax / w_i), O(size + backends); turns that
// share a bucket are then ordered by the fraction frac / w_i left over from that division. With
// equal weights every fraction is 0 and the buckets are already in name order.
std::vector<Turn> scheduleTurns(const std::vector<MaglevBackend>& backends,
                                const std::vector<uint32_t>& active,
                                const std::vector<uint32_t>& quota, uint32_t maxWeight,
                                uint32_t size) {
  // The last turn of backend i lands in bucket floor((q_i - 1) * wMax / w_i) <= size, because
  // q_i - 1 <= size * w_i / W: at most size + 1 buckets.
  uint64_t lastBucket = 0;
  for (uint32_t i : active) {
    if (quota[i] == 0) continue;
    lastBucket = std::max(lastBucket, uint64_t{quota[i] - 1} * maxWeight / backends[i].weight);
  }
  std::vector<uint32_t> start(lastBucket + 2, 0);

  // Walks the buckets of backend i's turns without a division per turn.
  auto forEachTurn = [&](uint32_t i, auto&& visit) {
    const uint32_t w = backends[i].weight;
    const uint32_t stepQuotient = maxWeight / w;
    const uint32_t stepRemainder = maxWeight % w;
    uint64_t bucket = 0;
    uint64_t frac = 0;  // < w, but frac + stepRemainder may not fit 32 bits
    for (uint32_t k = 0; k < quota[i]; ++k) {
      visit(bucket, frac);
      bucket += stepQuotient;
      frac += stepRemainder;
      if (frac >= w) {
        frac -= w;
        ++bucket;
      }
    }
  };

  for (uint32_t i : active) {
    forEachTurn(i, [&](uint64_t bucket, uint64_t) { ++start[bucket + 1]; });
  }
  for (size_t b = 1; b < start.size(); ++b) start[b] += start[b - 1];

  std::vector<Turn> turns(size);
  std::vector<uint32_t> fill(start.begin(), start.end() - 1);
  for (uint32_t i : active) {  // ascending index: each bucket comes out in name order
    forEachTurn(i, [&](uint64_t bucket, uint64_t frac) {
      turns[fill[bucket]++] = {i, static_cast<uint32_t>(frac)};
    });
  }

  const bool equalWeights = std::all_of(
      active.begin(), active.end(), [&](uint32_t i) { return backends[i].weight == maxWeight; });
  if (!equalWeights) {
    // frac_a / w_a < frac_b / w_b, cross-multiplied: both sides < 2^64.
    auto earlier = [&](const Turn& a, const Turn& b) {
      const uint64_t lhs = uint64_t{a.frac} * backends[b.backend].weight;
      const uint64_t rhs = uint64_t{b.frac} * backends[a.backend].weight;
      return lhs != rhs ? lhs < rhs : a.backend < b.backend;
    };
    for (size_t b = 0; b + 1 < start.size(); ++b) {
      auto first = turns.begin() + start[b];
      auto last = turns.begin() + start[b + 1];
      if (!std::is_sorted(first, last, earlier)) std::sort(first, last, earlier);
    }
  }
  return turns;
}

// The paper's Pseudocode 1, with the turn order above in place of plain round robin. Backend i
// prefers entries offset, offset + skip, offset + 2 * skip, ... (mod size), where
// offset = h1(name) % size and skip = h2(name) % (size - 1) + 1. Because size is prime, every skip
// is coprime with it and the sequence is a permutation of all entries. On each turn the backend
// walks its sequence from where it stopped last time to its first free entry and claims it; the
// entries it passed over were taken and stay taken, so no entry is looked at twice by the same
// backend. There are exactly `size` turns, one per entry, so the table ends full.
std::vector<uint32_t> populate(const std::vector<MaglevBackend>& backends,
                               const std::vector<Turn>& turns, uint32_t size) {
  struct Cursor {
    uint32_t next;   // the backend's next preferred entry, permutation[i][next[i]] in the paper
    uint32_t skip;   // in [1, size - 1]
    uint32_t skip2;  // 2 * skip mod size
  };
  std::vector<Cursor> cursors(backends.size(), Cursor{0, 1, 2});
  for (uint32_t i = 0; i < backends.size(); ++i) {
    if (backends[i].weight == 0) continue;
    const uint64_t h1 = stableHash64(backends[i].name, kOffsetSeed);
    const uint64_t h2 = stableHash64(backends[i].name, kSkipSeed);
    const auto skip = static_cast<uint32_t>(h2 % (size - 1) + 1);
    cursors[i] = {static_cast<uint32_t>(h1 % size), skip, 2 * skip % size};
  }

  // (c + step) mod size for c, step < size: sums stay below 2^25, no overflow.
  auto advance = [size](uint32_t c, uint32_t step) {
    c += step;
    return c >= size ? c - size : c;
  };
  // One bit per entry: 8 KiB for the default size, so the probes stay in the L1 cache.
  std::vector<uint64_t> taken((size + 63) / 64, 0);
  auto isTaken = [&taken](uint32_t c) { return (taken[c >> 6] >> (c & 63)) & 1; };

  std::vector<uint32_t> entries(size);
  for (const Turn& turn : turns) {
    Cursor& cursor = cursors[turn.backend];
    uint32_t c = cursor.next;
    // The walk is the build's hot loop (about ten probes per claim on average). Testing two
    // positions per step halves its loop-carried dependency chain; the order of the probes is
    // the same as one at a time.
    while (isTaken(c)) {
      const uint32_t c1 = advance(c, cursor.skip);
      if (!isTaken(c1)) {
        c = c1;
        break;
      }
      c = advance(c, cursor.skip2);
    }
    taken[c >> 6] |= uint64_t{1} << (c & 63);
    entries[c] = turn.backend;
    cursor.next = advance(c, cursor.skip);
  }
  return entries;
}

}  // namespace

Result<MaglevTable> MaglevTable::build(std::vector<MaglevBackend> backends, uint32_t size) {
  if (size > kMaxSize) {
    return Error("Maglev table: size must be at most " + std::to_string(kMaxSize) + ", got " +
                 std::to_string(size));
  }
  if (!isPrime(size)) {
    return Error("Maglev table: size must be a prime number, got " + std::to_string(size));
  }
  if (backends.size() >= kNoBackend) {
    return Error("Maglev table: too many backends: " + std::to_string(backends.size()));
  }
  for (size_t i = 0; i < backends.size(); ++i) {
    if (backends[i].name.empty()) {
      return Error("Maglev table: backends[" + std::to_string(i) + "].name must not be empty");
    }
  }

  // std::string compares bytes as unsigned char: the same order on every platform.
  std::sort(backends.begin(), backends.end(),
            [](const MaglevBackend& a, const MaglevBackend& b) { return a.name < b.name; });
  auto dup = std::adjacent_find(
      backends.begin(), backends.end(),
      [](const MaglevBackend& a, const MaglevBackend& b) { return a.name == b.name; });
  if (dup != backends.end()) {
    return Error("Maglev table: backend name " + quoted(dup->name) + " appears more than once");
  }

  std::vector<uint32_t> active;  // indices of the backends with weight > 0, in name order
  uint64_t totalWeight = 0;
  uint32_t maxWeight = 0;
  for (uint32_t i = 0; i < backends.size(); ++i) {
    const uint32_t w = backends[i].weight;
    if (w == 0) continue;
    active.push_back(i);
    totalWeight += w;
    maxWeight = std::max(maxWeight, w);
  }
  if (size <= active.size()) {
    return Error(
        "Maglev table: size must be greater than the number of backends with weight > 0 (" +
        std::to_string(active.size()) + "), got " + std::to_string(size));
  }

  MaglevTable table;
  if (!active.empty()) {
    const std::vector<uint32_t> quota = apportion(backends, active, totalWeight, size);
    const std::vector<Turn> turns = scheduleTurns(backends, active, quota, maxWeight, size);
    table.entries_ = populate(backends, turns, size);
  }
  table.backends_ = std::move(backends);
  return table;
}

bool isPrime(uint32_t n) {
  if (n < 4) return n >= 2;
  if (n % 2 == 0 || n % 3 == 0) return false;
  // Every prime above 3 is 6k +- 1. d * d stays below 2^32 + 2^17: computed in 64 bits.
  for (uint64_t d = 5; d * d <= n; d += 6) {
    if (n % d == 0 || n % (d + 2) == 0) return false;
  }
  return true;
}

}  // namespace capstan
