// ServiceHealthServer: kube-proxy's per-Service health check node ports
// (pkg/proxy/healthcheck/service_health.go). A LoadBalancer Service with
// externalTrafficPolicy: Local gets spec.healthCheckNodePort; the cloud load balancer probes
// every node there and sends traffic only to the nodes that answer 200, i.e. the nodes that have
// a ready endpoint of the Service (traffic arriving elsewhere would be dropped, since Local
// policy never forwards to another node).
//
// Any path, GET or HEAD:
//   {"service":{"namespace":"NS","name":"NAME"},"localEndpoints":N,"serviceProxyHealthy":B}
// 200 when N > 0 and the proxy is healthy, else 503; headers Content-Type: application/json,
// X-Content-Type-Options: nosniff, X-Load-Balancing-Endpoint-Weight: N.
//
// N counts what kube-proxy's EndpointsMap.LocalReadyEndpoints() counts: the distinct IP
// addresses of the Service's endpoints that are on this node and ready, over all its ports.
// Not the selection's `local` list: that one falls back to serving-and-terminating endpoints
// when none is ready, and the health check must then fail so load balancers drain the node.
// As kube-proxy runs one proxier (and one set of health check listeners) per IP family, N is
// counted per family, and a probe is answered with the count of the family it arrived over (an
// IPv4 probe of a dual-stack listener gets the IPv4 count). A family the Service has no
// ClusterIP of counts 0.
//
// The control thread calls sync() after each successful sync of the dataplane; the listeners
// run on a thread and io_context of their own (the HTTP part is control/http_session.h).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "model/proxy_state.h"
#include "model/service.h"

namespace capstan::control {

// One Service that needs a health check node port, and what its probes should be told.
struct HealthCheckService {
  NamespacedName service;
  uint16_t port = 0;                       // spec.healthCheckNodePort
  std::array<size_t, 2> localEndpoints{};  // IPv4, IPv6 (see the header comment)

  bool operator==(const HealthCheckService&) const = default;
};

// The Services of `state` that get a health check node port: proxied LoadBalancer Services with
// externalTrafficPolicy Local and a healthCheckNodePort (kube-proxy's NeedsHealthCheck). Sorted
// by port; when two Services claim one port (the API server never allocates that, manifests may)
// the first by name keeps it. One walk over the ports: no work for the other Services beyond a
// pointer comparison and a few field tests.
std::vector<HealthCheckService> healthCheckServices(const ProxyState& state);

class ServiceHealthServer {
 public:
  // `bindHost`: the IP address to listen on; "" for every address, IPv4 and IPv6.
  // `proxyHealthy`: called on the server's thread for each probe; must be thread-safe.
  ServiceHealthServer(std::string bindHost, std::function<bool()> proxyHealthy);
  ~ServiceHealthServer();
  ServiceHealthServer(const ServiceHealthServer&) = delete;
  ServiceHealthServer& operator=(const ServiceHealthServer&) = delete;

  // Opens the ports of Services that need one, closes those of Services that no longer do (and
  // their open connections, at their next request), and updates the counts. A port that cannot
  // be bound is logged and tried again at the next sync; the others are not affected.
  // Returns once the listeners are updated. Call from one thread (the control thread).
  void sync(const ProxyState& state);

  struct Port {
    HealthCheckService service;
    bool listening = false;
    std::string error;  // why it is not listening, from the last attempt
  };
  // What the last sync() left, sorted by port. Thread-safe.
  std::vector<Port> ports() const;

  // Closes every port and joins the thread. Idempotent; sync() does nothing afterwards.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
  bool stopped_ = false;
};

}  // namespace capstan::control
