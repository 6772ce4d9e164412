// parallelFor: runs fn(0) ... fn(n - 1) on up to `threads` threads and waits for all of them.
//
// For the control thread's bursts of independent work (parsing many manifest files at start-up),
// not for anything on a packet or request path. Work is handed out one index at a time, so
// uneven items balance. fn must not throw.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace capstan::control {

template <typename Fn>
void parallelFor(size_t n, unsigned threads, Fn&& fn) {
  size_t workers = std::min<size_t>(threads, n);
  if (workers <= 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(i);
  };
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  for (size_t t = 1; t < workers; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
}

}  // namespace capstan::control
