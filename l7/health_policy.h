// Active HTTP health checks of ingress endpoints, asked for per Ingress by annotations:
//
//   capstan.io/health-check-path: /healthz         turns them on; an absolute path (and query)
//   capstan.io/health-check-interval: 5s           between checks of one endpoint (Go duration)
//   capstan.io/health-check-timeout: 1s            connect + answer of one check
//   capstan.io/health-check-unhealthy-threshold: 3 consecutive failures that take it out
//   capstan.io/health-check-healthy-threshold: 2   consecutive successes that bring it back
//   capstan.io/health-check-host: example.com      the Host header (default: the endpoint ip:port)
//
// A check is `GET <path>` on a new connection; a 2xx or 3xx status line is a success, anything
// else (refused, reset, timeout, 4xx, 5xx) a failure. An endpoint checked down leaves its
// backend's endpoint list in the next route table (RouteTable::build with the checker's report),
// so no request goes to it; when every endpoint of a backend is down, all are kept (panic, as
// Envoy does), because a check can be wrong where traffic would not be. Endpoints start up: a
// new endpoint is ready by Kubernetes' own readiness already.
//
// This header: the policy (parsed when a route table is built, like the load-balancing
// annotation) and the report of what is down that RouteTable::build applies. The checks
// themselves: l7/health_checker.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "model/ingress.h"
#include "model/ip.h"
#include "model/result.h"
#include "model/service.h"

namespace capstan::l7 {

inline constexpr std::string_view kHealthCheckAnnotationPrefix = "capstan.io/health-check-";

struct HealthCheckPolicy {
  std::string path;  // "/healthz"
  std::string host;  // empty: the endpoint's ip:port
  std::chrono::milliseconds interval{5'000};
  std::chrono::milliseconds timeout{1'000};
  uint32_t unhealthyThreshold = 3;
  uint32_t healthyThreshold = 2;

  bool operator==(const HealthCheckPolicy&) const = default;
};

// The Ingress's health-check annotations: nullopt when it has no health-check-path. An error
// names the annotation and says what is accepted (the route table reports it as a warning and
// checks nothing for that Ingress).
Result<std::optional<HealthCheckPolicy>> healthCheckPolicyOf(const Ingress& ingress);

// The set of (service port, endpoint) the checks found down, by key(). Immutable once handed to
// RouteTable::build.
struct HealthReport {
  std::set<std::string> down;

  static std::string key(const ServicePortName& servicePort, const IpAddress& ip, uint16_t port) {
    return servicePort.toString() + " " + joinHostPort(ip, port);
  }
  bool isDown(const ServicePortName& servicePort, const IpAddress& ip, uint16_t port) const {
    return !down.empty() && down.contains(key(servicePort, ip, port));
  }
};

}  // namespace capstan::l7
