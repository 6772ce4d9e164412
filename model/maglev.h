// Maglev consistent hashing: Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
// Balancer", NSDI 2016, section 3.4, with weights.
//
// The control thread builds one MaglevTable per service port from its endpoints and hands it to
// the packet workers as an immutable snapshot; a worker maps a flow to a backend with lookup(),
// which is a single array read. Every node that is given the same backends builds the same table,
// so a flow lands on the same backend whichever node receives it, and a change of the backend
// set moves few flows (see MaglevTable::build for the bounds).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/result.h"

namespace capstan {

struct MaglevBackend {
  std::string name;     // stable identity, e.g. "10.0.0.1:8080"; unique within a table
  uint32_t weight = 1;  // relative weight; 0 means "present but receives nothing"

  bool operator==(const MaglevBackend&) const = default;
};

class MaglevTable {
 public:
  static constexpr uint32_t kDefaultSize = 65537;  // prime, as in the paper
  // Largest accepted size: bounds the table at 64 MiB whatever the input says. The largest prime
  // below it is 16777213.
  static constexpr uint32_t kMaxSize = 1u << 24;
  static constexpr uint32_t kNoBackend = UINT32_MAX;

  // An empty table: lookup() returns kNoBackend.
  MaglevTable() = default;

  // Builds the lookup table. Backends are sorted by name first, so every node given the same set
  // (in any order) computes the identical table.
  //
  // Each backend with weight > 0 owns round(size * weight / totalWeight) entries, rounded by the
  // largest-remainder method so the counts add up to `size`: its share is always within one entry
  // of its weighted fair share. Which entries it owns follows the paper's Pseudocode 1 (see
  // maglev.cc), so removing a backend mostly frees only that backend's entries.
  //
  // Errors (bad input, never a crash):
  //  - size is not prime, or is larger than kMaxSize;
  //  - size <= the number of backends with weight > 0 (the paper needs M > N so each backend
  //    can own an entry). This is the only lower bound enforced: shares stay exact for any larger
  //    size, but the paper recommends M >= 100 * N to keep the entries moved by a change close to
  //    the minimum; kDefaultSize satisfies that up to 655 backends;
  //  - an empty name, or a name that appears more than once;
  //  - kNoBackend or more backends (indices would not fit in an entry).
  // An empty backend set (or all weights 0) gives an empty table: size() is 0 and lookup()
  // returns kNoBackend. Weight-0 backends stay in backends() but own no entry.
  static Result<MaglevTable> build(std::vector<MaglevBackend> backends,
                                   uint32_t size = kDefaultSize);

  // Number of entries: the size given to build(), or 0 for an empty table.
  uint32_t size() const { return static_cast<uint32_t>(entries_.size()); }

  // Index into backends() for a flow hash: entries()[flowHash % size()], or kNoBackend when the
  // table is empty. `flowHash` should be a well-mixed hash of the flow (see model/hash.h).
  uint32_t lookup(uint64_t flowHash) const {
    if (entries_.empty()) return kNoBackend;
    return entries_[flowHash % entries_.size()];
  }

  const std::vector<MaglevBackend>& backends() const { return backends_; }  // sorted by name
  const std::vector<uint32_t>& entries() const { return entries_; }  // the table, size() entries

 private:
  std::vector<MaglevBackend> backends_;
  std::vector<uint32_t> entries_;
};

// Whether n is a prime number (0 and 1 are not). Exact for every 32-bit n.
bool isPrime(uint32_t n);

}  // namespace capstan
