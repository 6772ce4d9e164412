// HealthChecker: the active HTTP health checks that l7/health_policy.h describes.
//
// Who calls it: the ingress controller (control/) gives the checker the targets of each new route
// table (setTargets), and rebuilds the table when the checker reports a change. The checker runs
// on its own thread with its own io_context; nothing of it is on the request path.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "l7/health_policy.h"
#include "l7/route_table.h"

namespace capstan::l7 {

// One endpoint to check, with the policy of the backend it serves.
struct HealthTarget {
  ServicePortName servicePort;
  RouteEndpoint endpoint;
  HealthCheckPolicy policy;

  std::string key() const { return HealthReport::key(servicePort, endpoint.ip, endpoint.port); }
};

// The targets of a route table: every endpoint (the ones checked down too) of every backend with
// a health-check policy.
std::vector<HealthTarget> healthTargets(const RouteTable& table);

class HealthChecker {
 public:
  // `changed` is called on the checker's thread whenever the down set changes.
  explicit HealthChecker(std::function<void()> changed);
  ~HealthChecker();  // stops every check and joins the thread

  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // The endpoints to check from now on. A target already checked with the same policy keeps its
  // state; targets no longer given stop (and leave the down set). Thread-safe.
  void setTargets(std::vector<HealthTarget> targets);

  // The down set now. Thread-safe.
  HealthReport report() const;

  struct Stats {
    uint64_t checks = 0;    // checks completed
    uint64_t failures = 0;  // of which failed
    uint64_t targets = 0;   // endpoints being checked
    uint64_t down = 0;      // of which down
  };
  Stats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace capstan::l7
