// HugePageArray<T>: a fixed-size array of plain values in anonymous memory that the kernel is
// asked to back with transparent huge pages (madvise MADV_HUGEPAGE), for the flow table.
//
// A million flows is over 100 MB touched at random; with 4 KiB pages nearly every packet also
// misses the TLB, which under virtualisation costs a two-dimensional page walk. 2 MiB pages make
// the whole table reachable through a few hundred TLB entries. Under DPDK the shell may hand the
// core hugepage memory instead; this is the portable fallback. If the kernel has no THP the
// memory is simply ordinary pages.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace capstan::dataplane {

template <typename T>
class HugePageArray {
  static_assert(std::is_trivially_destructible_v<T>);

 public:
  static constexpr size_t kHugePage = size_t{2} << 20;

  HugePageArray() = default;
  // Allocates `size` value-initialised elements. Throws std::bad_alloc (start-up only).
  explicit HugePageArray(size_t size) : size_(size) {
    if (size == 0) return;
    bytes_ = (size * sizeof(T) + kHugePage - 1) / kHugePage * kHugePage;
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    madvise(p, bytes_, MADV_HUGEPAGE);  // advice: failure leaves ordinary pages
    data_ = static_cast<T*>(p);
    for (size_t i = 0; i < size; ++i) new (data_ + i) T();
  }
  ~HugePageArray() {
    if (data_ != nullptr) munmap(data_, bytes_);
  }
  HugePageArray(HugePageArray&& other) noexcept { swap(other); }
  HugePageArray& operator=(HugePageArray&& other) noexcept {
    HugePageArray(std::move(other)).swap(*this);
    return *this;
  }
  HugePageArray(const HugePageArray&) = delete;
  HugePageArray& operator=(const HugePageArray&) = delete;

  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void swap(HugePageArray& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(bytes_, other.bytes_);
  }

  T* data_ = nullptr;
  size_t size_ = 0;
  size_t bytes_ = 0;
};

}  // namespace capstan::dataplane
