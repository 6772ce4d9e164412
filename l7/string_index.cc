#include "l7/string_index.h"

#include <cassert>
#include <utility>

namespace capstan::l7 {

namespace {
constexpr size_t kInitialSlots = 16;
}  // namespace

uint32_t& StringIndex::emplace(uint32_t scope, std::string_view key, uint32_t value,
                               bool* inserted) {
  assert(value != kNotFound);
  assert(keys_.size() + key.size() <= UINT32_MAX);
  // At most half full: probe sequences stay short and a miss ends at an empty slot soon.
  if ((size_ + 1) * 2 > slots_.size()) grow();
  const uint64_t hash = KeyHash::of(scope, key);
  for (uint64_t i = hash & mask_;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.value == kNotFound) {
      s.hash = hash;
      s.scope = scope;
      s.value = value;
      s.keyOffset = static_cast<uint32_t>(keys_.size());
      s.keyLength = static_cast<uint32_t>(key.size());
      keys_.append(key);
      ++size_;
      *inserted = true;
      return s.value;
    }
    if (s.hash == hash && s.scope == scope && s.keyLength == key.size() &&
        std::string_view(keys_.data() + s.keyOffset, s.keyLength) == key) {
      *inserted = false;
      return s.value;
    }
  }
}

void StringIndex::grow() {
  std::vector<Slot> old = std::exchange(slots_, {});
  slots_.resize(old.empty() ? kInitialSlots : old.size() * 2);
  mask_ = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.value == kNotFound) continue;
    uint64_t i = s.hash & mask_;
    while (slots_[i].value != kNotFound) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

}  // namespace capstan::l7
