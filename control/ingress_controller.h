// IngressController: the daemon's side of the L7 ingress (--ingress). Owns the IngressServer
// (l7/ingress_server.h) and the active health checker (l7/health_checker.h), rebuilds the route
// table from each new ProxyState whose ingress part or endpoints changed and whenever the health
// checks find an endpoint down or back, publishes it to the workers, and reports the ingress
// counters on /metrics.
//
// Called from the control thread, except collect() (the metrics server's thread); the health
// checker calls in from its own thread (a mutex orders the two builders).
#pragma once

#include <prometheus/metric_family.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "control/config.h"
#include "l7/health_checker.h"
#include "l7/ingress_server.h"
#include "l7/tls/certificate_set.h"
#include "model/proxy_state.h"
#include "model/result.h"

namespace capstan::control {

class IngressController {
 public:
  // Starts the listeners and workers from config.ingress. Errors name the flag.
  static Result<std::unique_ptr<IngressController>> start(const Config& config);

  // After each sync: a new route table when routes or endpoints changed (or on a full sync).
  void synced(const std::shared_ptr<const ProxyState>& state, const ChangeSet& changes);

  // capstan_ingress_* families. Thread-safe.
  std::vector<prometheus::MetricFamily> collect() const;

  l7::IngressServer& server() { return *server_; }
  // The access log (--ingress-access-log); null when off.
  const std::shared_ptr<l7::AccessLogWriter>& accessLog() const { return accessLog_; }

 private:
  IngressController(std::unique_ptr<l7::IngressServer> server,
                    l7::tls::CertificateSource defaultCertificate,
                    std::shared_ptr<l7::AccessLogWriter> accessLog)
      : server_(std::move(server)),
        defaultCertificate_(std::move(defaultCertificate)),
        accessLog_(std::move(accessLog)) {}

  // The certificates of the Ingresses' spec.tls, when the ingress part changed.
  void buildCertificates(const ProxyState& state, std::vector<std::string>& problems);
  // A route table from state_ and the health checks' report, published; the checker gets its
  // targets. Holds mutex_. The route table's warnings.
  std::vector<std::string> rebuild();
  void healthChanged();  // the checker's thread

  std::unique_ptr<l7::IngressServer> server_;
  l7::tls::CertificateSource defaultCertificate_;  // self-signed, made at start-up
  // --ingress-default-certificate: served instead of defaultCertificate_ while it exists.
  std::optional<NamespacedName> defaultSecret_;
  std::shared_ptr<l7::AccessLogWriter> accessLog_;
  std::vector<std::string> lastWarnings_;
  std::atomic<uint64_t> routes_{0};
  std::atomic<uint64_t> backends_{0};
  std::atomic<uint64_t> warnings_{0};
  std::atomic<uint64_t> certificates_{0};
  std::atomic<uint64_t> builds_{0};
  std::atomic<double> lastBuildSeconds_{0};
  std::atomic<uint64_t> healthBuilds_{0};
  std::mutex mutex_;                         // orders rebuild() between the two threads
  std::shared_ptr<const ProxyState> state_;  // the last synced state; guarded by mutex_
  // Last member: destroyed (and its thread joined) first, so it never calls into the rest.
  std::unique_ptr<l7::HealthChecker> checker_;
};

// The ingress options a Config gives (l7::IngressOptions), the access log not opened.
Result<l7::IngressOptions> ingressOptions(const Config& config);

// The per-route and per-upstream families of /metrics (capstan_ingress_route_* and
// capstan_ingress_upstream_*) for one snapshot of l7::IngressServer::stats().
std::vector<prometheus::MetricFamily> ingressStatsFamilies(const l7::IngressStats& stats);

}  // namespace capstan::control
