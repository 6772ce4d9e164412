// ProxierHealth: the state behind /healthz and /livez, with kube-proxy's meaning
// (pkg/proxy/healthcheck/proxier_health.go).
//
// The proxy is healthy unless a change has been waiting longer than the health timeout
// (2 x --sync-period) without a successful sync: a proxy that is merely idle is healthy, one
// whose syncs keep failing or stall is not. /healthz also fails while this node is being deleted
// (so load balancers drain it); /livez ignores that.
//
// Thread-safe: the control thread updates it, the status server thread reads it.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

namespace capstan::control {

class ProxierHealth {
 public:
  using WallClock = std::chrono::system_clock;

  explicit ProxierHealth(std::chrono::nanoseconds healthTimeout) : timeout_(healthTimeout) {}

  void setTimeout(std::chrono::nanoseconds timeout);
  // A change was queued at `now`; the oldest unprocessed one is what ages.
  void queuedUpdate(WallClock::time_point now);
  // A sync succeeded at `now`: everything queued so far is programmed.
  void updated(WallClock::time_point now);
  void setNodeEligible(bool eligible);
  // False while the source has not delivered a whole view yet (the Kubernetes API's first list
  // of every resource): /healthz fails so that nothing is sent to a node still programming
  // a partial view; /livez does not, since waiting for the API server is not a reason to restart.
  void setSourceReady(bool ready);

  struct Report {
    bool healthy = false;
    int status = 503;  // the HTTP status to answer with
    std::string body;  // kube-proxy's JSON body
  };
  Report healthz(WallClock::time_point now) const;
  Report livez(WallClock::time_point now) const;

  // Seconds since the last successful sync, or -1 if there has been none.
  double secondsSinceUpdate(WallClock::time_point now) const;

 private:
  bool healthyLocked(WallClock::time_point now) const;

  mutable std::mutex mu_;
  std::chrono::nanoseconds timeout_;
  std::optional<WallClock::time_point> lastUpdated_;
  std::optional<WallClock::time_point> oldestPendingQueued_;
  bool nodeEligible_ = true;
  bool sourceReady_ = true;
};

}  // namespace capstan::control
