// Waiting in tests for something another thread does: bounded in time, polled every 10 ms.
// Header-only.
#pragma once

#include <chrono>
#include <thread>

namespace capstan::support {

// Polls `condition` every 10 ms for up to `limit`; its last answer.
template <class F>
bool eventually(F condition, std::chrono::milliseconds limit = std::chrono::seconds(3)) {
  for (auto end = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < end;
       std::this_thread::sleep_for(std::chrono::milliseconds(10))) {
    if (condition()) return true;
  }
  return condition();
}

}  // namespace capstan::support
