// StringIndex: the hash index under the route table (l7/route_table.h). It maps a key — a string
// within a numbered scope (a virtual host's paths, say) — to a 32-bit value, is filled once while
// a RouteTable is built, and is then only read, by every ingress worker at once, without locks
// and without allocating.
//
// The caller computes the hash (KeyHash): it is incremental, so one pass over a request path
// yields the hash of each of its '/'-bounded prefixes, and the longest-prefix lookup probes the
// index at each boundary without hashing any byte twice. Open addressing with linear probing over
// one flat array, at most half full: a probe is usually one cache line plus one key compare.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/hash.h"

namespace capstan::l7 {

// A word-at-a-time hash that can be read at any point: add() bytes one by one (or a string at
// once) and finish() gives the hash of all bytes so far without disturbing the state, which is what
// lets the prefix walk hash every segment prefix of a path in one pass. Eight bytes are gathered
// in a register and folded in with one multiply, so the serial multiply chain is one per word, not
// one per byte (FNV-1a's). finish() mixes in the length, the tail and the scope with SplitMix64's
// finaliser. In-process only: these hashes never leave the machine (model/hash.h has the stable
// ones).
class KeyHash {
 public:
  void add(char c) {
    tail_ |= uint64_t{static_cast<uint8_t>(c)} << (8 * (length_ & 7));
    if ((++length_ & 7) == 0) fold();
  }
  void add(std::string_view text) {
    size_t i = 0;
    if ((length_ & 7) == 0) {
      for (; i + 8 <= text.size(); i += 8) {
        uint64_t word = 0;
        for (size_t b = 0; b < 8; ++b)
          word |= uint64_t{static_cast<uint8_t>(text[i + b])} << (8 * b);
        tail_ = word;
        length_ += 8;
        fold();
      }
    }
    for (; i < text.size(); ++i) add(text[i]);
  }
  uint64_t finish(uint32_t scope) const {
    return mixHash64(mixHash64(state_ ^ tail_) ^ ((uint64_t{length_} << 32) | scope));
  }

  static uint64_t of(uint32_t scope, std::string_view text) {
    KeyHash h;
    h.add(text);
    return h.finish(scope);
  }

 private:
  void fold() {
    state_ = ((state_ ^ tail_) * 0x9e3779b97f4a7c15u);
    state_ ^= state_ >> 29;
    tail_ = 0;
  }

  uint64_t state_ = 0x243f6a8885a308d3u;  // pi's fraction: any fixed odd start will do
  uint64_t tail_ = 0;
  uint32_t length_ = 0;
};

class StringIndex {
 public:
  // find()'s answer for a key not in the index; never a value.
  static constexpr uint32_t kNotFound = UINT32_MAX;

  // Build time: stores `value` under (scope, key) unless the key is there already. Returns the
  // value stored under the key (the existing one when `inserted` comes back false), by reference
  // so that the caller may replace it; the reference lasts until the next emplace().
  uint32_t& emplace(uint32_t scope, std::string_view key, uint32_t value, bool* inserted);

  // The value under (scope, key), or kNotFound. `hash` must be KeyHash::of(scope, key).
  uint32_t find(uint32_t scope, std::string_view key, uint64_t hash) const {
    if (slots_.empty()) return kNotFound;
    for (uint64_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.value == kNotFound) return kNotFound;
      if (s.hash == hash && s.scope == scope && s.keyLength == key.size() &&
          std::string_view(keys_.data() + s.keyOffset, s.keyLength) == key) {
        return s.value;
      }
    }
  }
  uint32_t find(uint32_t scope, std::string_view key) const {
    return find(scope, key, KeyHash::of(scope, key));
  }

  size_t size() const { return size_; }
  // Bytes held (slots and key text), for the build benchmark and the table's memory figure.
  size_t memoryBytes() const { return slots_.capacity() * sizeof(Slot) + keys_.capacity(); }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t scope = 0;
    uint32_t value = kNotFound;  // kNotFound marks an empty slot
    uint32_t keyOffset = 0;      // into keys_
    uint32_t keyLength = 0;
  };

  void grow();

  std::vector<Slot> slots_;
  std::string keys_;
  uint64_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace capstan::l7
