// Balancer: one ingress worker's choice of upstream endpoint for each request, and that worker's
// view of its endpoints' health.
//
// Share nothing: every worker has its own Balancer, so in-flight counts, round-robin cursors and
// passive health are per worker and need no atomics. Across N workers an endpoint sees N
// independent least-request balancers, which still spread load evenly (each one does), and an
// endpoint that fails is ejected by each worker as that worker sees it fail.
//
// Policies (l7/load_balance.h, per Ingress by annotation):
// - least-request (default): power of two choices (Mitzenmacher 2001) — two distinct endpoints
//   at random, the one with fewer requests in flight on this worker;
// - round-robin: a cursor per backend;
// - hash-header / hash-cookie / hash-client-ip: Maglev (model/maglev.h) on the key, so every
//   worker and every node picks the same endpoint for the same key; a request without the key
//   falls back to least-request.
// Passive health: an endpoint with `consecutiveFailures` connect failures or 5xx answers in a row
// is ejected for baseEjection, doubling on each ejection in a row up to maxEjection; a success
// resets it. Ejected endpoints are skipped unless every endpoint of the backend is ejected, when
// they all take traffic again (a partial view must not turn into a total outage — Envoy's
// "panic threshold" at 100%).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "l7/http1/message.h"
#include "l7/route_table.h"
#include "model/maglev.h"

namespace capstan::l7 {

struct HealthOptions {
  uint32_t consecutiveFailures = 5;  // 0: never eject
  std::chrono::milliseconds baseEjection{10'000};
  std::chrono::milliseconds maxEjection{300'000};
};

// The key a hash policy hashes, from one request; nullopt when the request has none (no such
// header or cookie) or the policy hashes nothing.
std::optional<uint64_t> requestHashKey(const LoadBalancePolicy& policy,
                                       std::span<const http1::Header> headers,
                                       const IpAddress& client);

struct RouteEndpointHash {
  size_t operator()(const RouteEndpoint& e) const;
};

// One worker's view of one endpoint.
struct EndpointHealth {
  uint32_t inFlight = 0;
  uint32_t failures = 0;  // consecutive
  uint32_t ejectionsInRow = 0;
  std::chrono::steady_clock::time_point ejectedUntil{};
};

class Balancer {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr uint32_t kNone = UINT32_MAX;

  explicit Balancer(HealthOptions options = {}, uint64_t seed = std::random_device{}());

  // Adopts a newly published table. Health and in-flight counts follow endpoints by address,
  // so an endpoint that stays keeps its state across tables.
  void setTable(std::shared_ptr<const RouteTable> table);
  const std::shared_ptr<const RouteTable>& table() const { return table_; }

  // An endpoint of route.backend (an index into backend->endpoints), or kNone when it has none.
  // `avoid`: an endpoint not to pick if another is available (the one a retry moves away from).
  uint32_t pick(const Route& route, std::optional<uint64_t> hashKey, Clock::time_point now,
                uint32_t avoid = kNone);

  // Brackets one request to an endpoint: in-flight counting and passive health. The lease keeps
  // the endpoint's state alive across a table swap, so a request that outlives its table still
  // reports to the right place.
  enum class Outcome : uint8_t {
    kSuccess,     // an answer below 500
    kFailure,     // connect failure, reset or timeout before an answer, or a 5xx
    kNotCounted,  // the client went away, or the request was refused before it was sent
  };
  class Lease {
   public:
    Lease() = default;
    explicit operator bool() const { return state_ != nullptr; }

   private:
    friend class Balancer;
    std::shared_ptr<EndpointHealth> state_;
  };
  Lease started(const Backend& backend, uint32_t endpoint);
  // True when this outcome ejected the endpoint.
  bool finished(Lease lease, Outcome outcome, Clock::time_point now);

  // Whether the endpoint is ejected now, and its requests in flight (for tests and metrics).
  bool ejected(const RouteEndpoint& endpoint, Clock::time_point now) const;
  uint32_t inFlight(const RouteEndpoint& endpoint) const;
  uint64_t ejections() const { return ejections_; }

 private:
  struct BackendState {
    std::vector<EndpointHealth*> endpoints;  // parallel to Backend::endpoints
    uint32_t cursor = 0;                     // round-robin
    std::unique_ptr<MaglevTable> maglev;     // built on the first hashed request
    std::vector<uint32_t> maglevEndpoint;    // maglev->backends() index -> endpoint index
  };

  static void buildMaglev(const Backend& backend, BackendState& state);
  bool usable(const EndpointHealth& state, Clock::time_point now, bool panic) const;
  uint32_t leastRequest(const BackendState& backend, Clock::time_point now, bool panic,
                        uint32_t avoid);

  HealthOptions options_;
  std::mt19937_64 random_;
  std::shared_ptr<const RouteTable> table_;
  std::vector<BackendState> backends_;  // by Backend::id
  // The endpoints of the current table; a lease keeps a removed one alive until it finishes.
  std::unordered_map<RouteEndpoint, std::shared_ptr<EndpointHealth>, RouteEndpointHash> endpoints_;
  uint64_t ejections_ = 0;
};

}  // namespace capstan::l7
