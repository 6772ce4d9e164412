// ByteBuffer: the bytes read from one connection and not consumed yet, with room to read more
// at the end. Consuming is O(1); the data moves to the front only when the room runs out, so a
// buffer reused across requests on a keep-alive connection stops allocating once it has grown
// to the connection's largest head.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>

namespace capstan::l7 {

class ByteBuffer {
 public:
  std::string_view data() const { return {storage_.get() + begin_, end_ - begin_}; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }

  void consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  void clear() { begin_ = end_ = 0; }
  // Gives the memory back while the buffer is empty (an idle keep-alive connection needs none).
  void release() {
    if (begin_ == end_) {
      storage_.reset();
      capacity_ = begin_ = end_ = 0;
    }
  }
  size_t capacity() const { return capacity_; }
  void swap(ByteBuffer& other) noexcept {
    std::swap(storage_, other.storage_);
    std::swap(capacity_, other.capacity_);
    std::swap(begin_, other.begin_);
    std::swap(end_, other.end_);
  }

  // Room for at least `min` more bytes after data(); what a read fills before commit().
  char* prepare(size_t min, size_t& room) {
    if (capacity_ - end_ < min && begin_ > 0) {
      std::memmove(storage_.get(), storage_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (capacity_ - end_ < min) {
      size_t capacity = capacity_ == 0 ? 4096 : capacity_;
      while (capacity - end_ < min) capacity *= 2;
      auto storage = std::make_unique_for_overwrite<char[]>(capacity);
      if (end_ > 0) std::memcpy(storage.get(), storage_.get(), end_);
      storage_ = std::move(storage);
      capacity_ = capacity;
    }
    room = capacity_ - end_;
    return storage_.get() + end_;
  }
  void commit(size_t n) { end_ += n; }

 private:
  std::unique_ptr<char[]> storage_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace capstan::l7
