// IngressStateBuilder: ProxyStates with Services, endpoints, Ingresses and TLS Secrets for the l7
// tests and benchmarks. Service ports are built through the model's own path (Service +
// EndpointSlices -> makeServicePorts), so endpoint selection is kube-proxy's. No GoogleTest here:
// bench/l7/ uses it too.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/proxy_state.h"
#include "tests/support/endpoint_slices.h"

namespace capstan::l7::test {

struct TestPort {
  std::string name = "http";
  uint16_t port = 80;
  uint16_t targetPort = 8080;
  Protocol protocol = Protocol::kTCP;
};

using support::TestEndpoint;

struct TestService {
  std::string ns = "default";
  std::string name;
  std::vector<TestPort> ports = {TestPort{}};
  std::vector<TestEndpoint> endpoints;
  TrafficPolicy internalPolicy = TrafficPolicy::kCluster;
};

inline IngressBackend serviceBackend(std::string service, uint16_t portNumber) {
  return {.service = IngressServiceBackend{.name = std::move(service), .portNumber = portNumber}};
}
inline IngressBackend serviceBackend(std::string service, std::string portName) {
  return {.service =
              IngressServiceBackend{.name = std::move(service), .portName = std::move(portName)}};
}
inline IngressPath path(PathType type, std::string text, IngressBackend backend) {
  return {.path = std::move(text), .pathType = type, .backend = std::move(backend)};
}

class IngressStateBuilder {
 public:
  static constexpr const char* kNodeName = "node-a";

  IngressStateBuilder& service(const TestService& s) {
    auto svc = std::make_shared<Service>();
    svc->name = {s.ns, s.name};
    svc->clusterIPs = {*IpAddress::parse("10.96.0.10")};
    svc->internalTrafficPolicy = s.internalPolicy;
    for (const TestPort& p : s.ports) {
      ServicePortSpec spec;
      spec.name = p.name;
      spec.protocol = p.protocol;
      spec.port = p.port;
      spec.targetPort = int32_t{p.targetPort};
      svc->ports.push_back(spec);
    }
    std::vector<EndpointSlicePort> slicePorts;
    for (const TestPort& p : s.ports) slicePorts.push_back({p.name, p.protocol, p.targetPort});
    auto slices = support::sliceFamilies(s.ns, s.name, slicePorts, s.endpoints);
    for (auto& port : makeServicePorts(svc, slices, NodeInfo{.name = kNodeName})) {
      ports_.push_back(std::move(port));
    }
    return *this;
  }

  IngressStateBuilder& ingress(Ingress ingress) {
    ingresses_.push_back(std::make_shared<const Ingress>(std::move(ingress)));
    return *this;
  }

  IngressStateBuilder& secret(std::string ns, std::string name) {
    auto s = std::make_shared<TlsSecret>();
    s->name = {std::move(ns), std::move(name)};
    s->certificatePem = "-----BEGIN CERTIFICATE-----\n";
    secrets_.push_back(std::move(s));
    return *this;
  }

  // Ingresses are kept in the order given (ProxyState's are sorted by name; the route table must
  // not depend on it), ports and secrets are sorted as ProxyState requires.
  std::shared_ptr<const ProxyState> build(uint64_t generation = 1) const {
    ServicePortList ports = ports_;
    std::sort(ports.begin(), ports.end(),
              [](const auto& a, const auto& b) { return a->name < b->name; });
    IngressState ingress{ingresses_, secrets_};
    std::sort(ingress.secrets.begin(), ingress.secrets.end(),
              [](const auto& a, const auto& b) { return a->name < b->name; });
    return std::make_shared<ProxyState>(generation, NodeInfo{.name = kNodeName}, std::move(ports),
                                        std::move(ingress));
  }

 private:
  ServicePortList ports_;
  std::vector<std::shared_ptr<const Ingress>> ingresses_;
  std::vector<std::shared_ptr<const TlsSecret>> secrets_;
};

}  // namespace capstan::l7::test
