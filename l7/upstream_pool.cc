#include "l7/upstream_pool.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace capstan::l7 {

namespace {

// An idle keep-alive connection the upstream has closed (or that has bytes nobody asked for)
// shows it without blocking: recv() returns 0, an error, or data. Checking before reuse turns most
// "reused a dead connection" races into a fresh connect instead of a failed request.
bool stillIdle(UpstreamConnection& connection) {
  char byte;
  ssize_t n = ::recv(connection.socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

std::unique_ptr<UpstreamConnection> UpstreamPool::take(const RouteEndpoint& endpoint,
                                                       std::chrono::steady_clock::time_point now) {
  auto it = idle_.find(endpoint);
  if (it == idle_.end()) return nullptr;
  auto& stack = it->second;
  while (!stack.empty()) {
    std::unique_ptr<UpstreamConnection> connection = std::move(stack.back());
    stack.pop_back();
    // A connection idle for less than kTrustedIdle is taken without the check: upstreams close
    // idle connections after seconds (nginx 75 s, Go 90 s), and the one race left is covered by
    // the retry of a request that got nothing back on a reused connection. Saves a syscall per
    // request under load.
    if (now - connection->idleSince < kTrustedIdle || stillIdle(*connection)) return connection;
  }
  return nullptr;
}

void UpstreamPool::put(std::unique_ptr<UpstreamConnection> connection,
                       std::chrono::steady_clock::time_point now) {
  if (maxIdle_ == 0) return;
  auto& stack = idle_[connection->endpoint];
  if (stack.size() >= maxIdle_) stack.erase(stack.begin());
  connection->idleSince = now;
  stack.push_back(std::move(connection));
}

void UpstreamPool::closeIdleSince(std::chrono::steady_clock::time_point cutoff) {
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& stack = it->second;
    // Oldest first: the stack is in the order connections went idle.
    auto keep = std::find_if(stack.begin(), stack.end(),
                             [&](const auto& c) { return c->idleSince >= cutoff; });
    stack.erase(stack.begin(), keep);
    it = stack.empty() ? idle_.erase(it) : std::next(it);
  }
}

size_t UpstreamPool::idleCount() const {
  size_t n = 0;
  for (const auto& [endpoint, stack] : idle_) n += stack.size();
  return n;
}

}  // namespace capstan::l7
