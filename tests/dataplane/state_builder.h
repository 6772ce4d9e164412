// StateBuilder: ProxyStates for the dataplane tests and benchmarks, one single-port Service at a
// time, built through the model's own path (Service + EndpointSlices -> makeServicePorts) so the
// endpoint selection is kube-proxy's. No GoogleTest here: the benchmarks use it too.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/proxy_state.h"
#include "tests/dataplane/packet_builder.h"
#include "tests/support/endpoint_slices.h"

namespace capstan::dataplane::test {

using support::TestEndpoint;

struct TestService {
  std::string name = "web";
  Protocol protocol = Protocol::kTCP;
  uint16_t port = 80;
  int32_t targetPort = 8080;
  uint16_t nodePort = 0;
  ServiceType type = ServiceType::kClusterIP;
  std::vector<std::string> clusterIPs = {"10.96.0.10"};
  std::vector<std::string> externalIPs;
  std::vector<std::string> loadBalancerIPs;
  std::vector<std::string> sourceRanges;
  TrafficPolicy externalPolicy = TrafficPolicy::kCluster;
  TrafficPolicy internalPolicy = TrafficPolicy::kCluster;
  SessionAffinity affinity = SessionAffinity::kNone;
  std::vector<TestEndpoint> endpoints;
};

class StateBuilder {
 public:
  static constexpr const char* kNodeName = "node-a";

  StateBuilder& add(const TestService& s) {
    auto svc = std::make_shared<Service>();
    svc->name = {"default", s.name};
    svc->type = s.type;
    for (const auto& a : s.clusterIPs) svc->clusterIPs.push_back(ip(a));
    for (const auto& a : s.externalIPs) svc->externalIPs.push_back(ip(a));
    for (const auto& a : s.loadBalancerIPs) svc->loadBalancerIPs.push_back(ip(a));
    for (const auto& c : s.sourceRanges) svc->loadBalancerSourceRanges.push_back(*Cidr::parse(c));
    svc->externalTrafficPolicy = s.externalPolicy;
    svc->internalTrafficPolicy = s.internalPolicy;
    svc->sessionAffinity = s.affinity;
    ServicePortSpec spec;
    spec.name = "p";
    spec.protocol = s.protocol;
    spec.port = s.port;
    spec.targetPort = s.targetPort;
    spec.nodePort = s.nodePort;
    svc->ports = {spec};

    auto slices = support::sliceFamilies(
        "default", s.name, {{"p", s.protocol, static_cast<uint16_t>(s.targetPort), ""}},
        s.endpoints);
    const NodeInfo node{.name = kNodeName};
    for (auto& port : makeServicePorts(svc, slices, node)) ports_.push_back(std::move(port));
    return *this;
  }

  std::shared_ptr<const ProxyState> build(uint64_t generation = 1) const {
    ServicePortList ports = ports_;
    std::sort(ports.begin(), ports.end(),
              [](const auto& a, const auto& b) { return a->name < b->name; });
    return std::make_shared<ProxyState>(generation, NodeInfo{.name = kNodeName}, std::move(ports),
                                        IngressState{});
  }

 private:
  ServicePortList ports_;
};

}  // namespace capstan::dataplane::test
