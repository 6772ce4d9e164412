// UpstreamPool: one worker's idle keep-alive connections to upstream endpoints, reused by later
// requests to the same endpoint (most recently used first, so a pool shrinks back naturally when
// load drops and the upstream's own idle timeout closes the rest).
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "l7/balancer.h"
#include "l7/byte_buffer.h"
#include "l7/ingress_metrics.h"
#include "l7/route_table.h"

namespace capstan::l7 {

struct UpstreamConnection {
  explicit UpstreamConnection(boost::asio::ip::tcp::socket s, RouteEndpoint e)
      : socket(std::move(s)), endpoint(e) {}
  boost::asio::ip::tcp::socket socket;
  RouteEndpoint endpoint;
  ByteBuffer in;  // read from the upstream, not consumed yet
  std::chrono::steady_clock::time_point idleSince{};
  OpenConnectionGauge gauge;  // in the stats of the endpoint it was opened for
};

class UpstreamPool {
 public:
  explicit UpstreamPool(uint32_t maxIdlePerEndpoint) : maxIdle_(maxIdlePerEndpoint) {}

  static constexpr std::chrono::milliseconds kTrustedIdle{1000};

  // An idle connection to `endpoint` that the upstream has not closed (checked when it has been
  // idle for kTrustedIdle or more), or null.
  std::unique_ptr<UpstreamConnection> take(const RouteEndpoint& endpoint,
                                           std::chrono::steady_clock::time_point now);
  // Keeps a connection whose last response ended cleanly; beyond the limit the oldest goes.
  void put(std::unique_ptr<UpstreamConnection> connection,
           std::chrono::steady_clock::time_point now);
  // Closes connections idle since before `cutoff`.
  void closeIdleSince(std::chrono::steady_clock::time_point cutoff);
  void clear() { idle_.clear(); }
  size_t idleCount() const;

 private:
  uint32_t maxIdle_;
  std::unordered_map<RouteEndpoint, std::vector<std::unique_ptr<UpstreamConnection>>,
                     RouteEndpointHash>
      idle_;
};

}  // namespace capstan::l7
