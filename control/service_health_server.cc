#include "control/service_health_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <cstdio>
#include <future>
#include <map>
#include <mutex>
#include <set>

#include "control/http_session.h"
#include "control/json_text.h"

namespace capstan::control {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

size_t familyIndex(IpFamily family) { return family == IpFamily::kV4 ? 0 : 1; }

bool needsHealthCheck(const Service& svc) {
  return svc.isProxied() && svc.type == ServiceType::kLoadBalancer &&
         svc.externalTrafficPolicy == TrafficPolicy::kLocal && svc.healthCheckNodePort != 0;
}

}  // namespace

std::vector<HealthCheckService> healthCheckServices(const ProxyState& state) {
  std::vector<HealthCheckService> out;
  const ServicePortList& ports = state.servicePorts();
  std::vector<IpAddress> ips;
  for (size_t i = 0; i < ports.size();) {
    // The ports of one Service are a contiguous run and normally share the Service object.
    size_t end = i + 1;
    while (end < ports.size() && (ports[end]->service == ports[i]->service ||
                                  ports[end]->name.service == ports[i]->name.service)) {
      ++end;
    }
    const Service& svc = *ports[i]->service;
    if (needsHealthCheck(svc)) {
      HealthCheckService hc{svc.name, svc.healthCheckNodePort, {}};
      for (IpFamily family : {IpFamily::kV4, IpFamily::kV6}) {
        if (svc.clusterIP(family) == nullptr) continue;
        ips.clear();
        for (size_t p = i; p < end; ++p) {
          for (const Endpoint& ep : ports[p]->endpoints) {
            if (ep.isLocal && ep.ready && ep.ip.family() == family) ips.push_back(ep.ip);
          }
        }
        std::sort(ips.begin(), ips.end());
        hc.localEndpoints[familyIndex(family)] =
            static_cast<size_t>(std::unique(ips.begin(), ips.end()) - ips.begin());
      }
      out.push_back(std::move(hc));
    }
    i = end;
  }
  // Ports in name order of their Services; a stable sort keeps the first by name on top.
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& a, const auto& b) { return a.port < b.port; });
  return out;
}

namespace {

// What a listener's probes read. Only the server thread touches it (sync() hands its updates
// over to that thread), so it needs no lock.
struct ProbeState {
  HealthCheckService service;
  bool open = true;
};

struct Listener {
  std::shared_ptr<ProbeState> state;
  std::optional<tcp::acceptor> acceptor;
  std::string error;  // the last bind error, for the log (repeats go to debug)
};

void acceptLoop(std::shared_ptr<Listener> l, std::shared_ptr<const HttpRequestHandler> handler) {
  l->acceptor->async_accept([l, handler](boost::system::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !l->acceptor->is_open()) return;
    if (!ec) serveHttpConnection(std::move(socket), handler);
    acceptLoop(l, handler);
  });
}

}  // namespace

struct ServiceHealthServer::Impl {
  // Declared first: destroyed last, after the acceptors that use it.
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::string bindHost;
  bool ipv6 = true;  // whether this host has IPv6 sockets at all
  std::shared_ptr<const std::function<bool()>> healthy;
  std::map<uint16_t, std::shared_ptr<Listener>> listeners;        // server thread only
  std::set<std::pair<uint16_t, NamespacedName>> conflictsLogged;  // control thread only

  mutable std::mutex mu;
  std::vector<Port> summary;  // guarded by mu

  std::shared_ptr<const HttpRequestHandler> handlerFor(std::shared_ptr<ProbeState> state) const {
    return std::make_shared<const HttpRequestHandler>(
        [state, healthy = healthy](const HttpRequestInfo& request) -> std::optional<HttpResponse> {
          // A closed port's open connections end at their next request.
          if (!state->open) return std::nullopt;
          IpFamily family = request.local.is_v6() ? IpFamily::kV6 : IpFamily::kV4;
          size_t n = state->service.localEndpoints[familyIndex(family)];
          bool proxyHealthy = (*healthy)();
          HttpResponse r;
          r.status = n > 0 && proxyHealthy ? 200 : 503;
          r.contentType = "application/json";
          r.body = "{\"service\":{\"namespace\":" + jsonString(state->service.service.ns) +
                   ",\"name\":" + jsonString(state->service.service.name) +
                   "},\"localEndpoints\":" + std::to_string(n) +
                   ",\"serviceProxyHealthy\":" + (proxyHealthy ? "true" : "false") + "}";
          r.headers = {{"X-Load-Balancing-Endpoint-Weight", std::to_string(n)}};
          return r;
        });
  }

  void bind(Listener& l) {
    uint16_t port = l.state->service.port;
    std::string svc = l.state->service.service.toString();
    Result<tcp::acceptor> acceptor = Error("invalid bind address " + bindHost);
    boost::system::error_code ec;
    // "": every address. The IPv6 any-address takes IPv4 too; where IPv6 is off, IPv4's.
    asio::ip::address address = !bindHost.empty() ? asio::ip::make_address(bindHost, ec)
                                : ipv6            ? asio::ip::address(asio::ip::address_v6::any())
                                                  : asio::ip::address(asio::ip::address_v4::any());
    if (!ec) {
      std::string host = address.to_string();
      acceptor =
          listenTcp(io, tcp::endpoint(address, port),
                    (address.is_v6() ? "[" + host + "]" : host) + ":" + std::to_string(port));
    }
    if (!acceptor.ok()) {
      std::string message = acceptor.error().message();
      if (message != l.error) {
        spdlog::warn("health check node port of Service {}: {}; will retry at the next sync", svc,
                     message);
      } else {
        spdlog::debug("health check node port of Service {}: still {}", svc, message);
      }
      l.error = std::move(message);
      return;
    }
    if (!l.error.empty()) spdlog::info("health check node port of Service {}: listening now", svc);
    l.error.clear();
    l.acceptor.emplace(std::move(acceptor).value());
  }

  void close(Listener& l) {
    l.state->open = false;
    if (l.acceptor) {
      boost::system::error_code ignored;
      l.acceptor->close(ignored);
    }
  }

  // On the server thread.
  void apply(const std::vector<HealthCheckService>& wanted) {
    std::map<uint16_t, const HealthCheckService*> byPort;
    for (const HealthCheckService& hc : wanted) byPort.emplace(hc.port, &hc);
    for (auto it = listeners.begin(); it != listeners.end();) {
      auto want = byPort.find(it->first);
      if (want == byPort.end() || want->second->service != it->second->state->service.service) {
        close(*it->second);
        it = listeners.erase(it);
      } else {
        ++it;
      }
    }
    std::vector<Port> ports;
    for (const auto& [port, hc] : byPort) {
      auto& l = listeners[port];
      if (!l) {
        l = std::make_shared<Listener>();
        l->state = std::make_shared<ProbeState>(ProbeState{*hc, true});
      }
      l->state->service = *hc;
      if (!l->acceptor) {
        bind(*l);
        if (l->acceptor) acceptLoop(l, handlerFor(l->state));
      }
      ports.push_back(Port{*hc, l->acceptor.has_value(), l->error});
    }
    std::lock_guard lock(mu);
    summary = std::move(ports);
  }

  void closeAll() {
    for (auto& [port, l] : listeners) close(*l);
    listeners.clear();
    std::lock_guard lock(mu);
    summary.clear();
  }
};

ServiceHealthServer::ServiceHealthServer(std::string bindHost, std::function<bool()> proxyHealthy)
    : impl_(std::make_unique<Impl>()) {
  impl_->bindHost = std::move(bindHost);
  {
    tcp::acceptor probe(impl_->io);
    boost::system::error_code ec;
    probe.open(tcp::v6(), ec);
    impl_->ipv6 = !ec;
  }
  impl_->healthy = std::make_shared<const std::function<bool()>>(std::move(proxyHealthy));
  thread_ = std::thread([this] { impl_->io.run(); });
}

ServiceHealthServer::~ServiceHealthServer() { stop(); }

void ServiceHealthServer::sync(const ProxyState& state) {
  if (stopped_) return;
  std::vector<HealthCheckService> wanted = healthCheckServices(state);
  // Two Services with one port: the first keeps it (the API server never allocates one port
  // twice; a manifest may). Said once per pair.
  for (size_t i = 1; i < wanted.size(); ++i) {
    if (wanted[i].port != wanted[i - 1].port) continue;
    if (impl_->conflictsLogged.emplace(wanted[i].port, wanted[i].service).second) {
      spdlog::warn("Service {}: healthCheckNodePort {} is already used by Service {}; ignored",
                   wanted[i].service.toString(), wanted[i].port, wanted[i - 1].service.toString());
    }
  }
  std::promise<void> done;
  auto applied = done.get_future();
  asio::post(impl_->io, [this, &wanted, &done] {
    impl_->apply(wanted);
    done.set_value();
  });
  applied.wait();
}

std::vector<ServiceHealthServer::Port> ServiceHealthServer::ports() const {
  std::lock_guard lock(impl_->mu);
  return impl_->summary;
}

void ServiceHealthServer::stop() {
  if (stopped_) return;
  stopped_ = true;
  std::promise<void> done;
  auto closed = done.get_future();
  asio::post(impl_->io, [this, &done] {
    impl_->closeAll();
    done.set_value();
  });
  closed.wait();
  impl_->work.reset();
  impl_->io.stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace capstan::control
