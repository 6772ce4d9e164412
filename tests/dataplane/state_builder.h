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

namespace capstan::dataplane::test {

struct TestEndpoint {
  std::string ip;
  bool ready = true;
  bool serving = true;
  bool terminating = false;
  std::string node = "node-b";  // not this node unless said
};

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

    std::vector<std::shared_ptr<const EndpointSlice>> slices;
    for (AddressType type : {AddressType::kIPv4, AddressType::kIPv6}) {
      auto slice = std::make_shared<EndpointSlice>();
      slice->name = {"default", s.name + (type == AddressType::kIPv4 ? "-v4" : "-v6")};
      slice->serviceName = s.name;
      slice->addressType = type;
      slice->ports = {{"p", s.protocol, static_cast<uint16_t>(s.targetPort), ""}};
      for (const TestEndpoint& e : s.endpoints) {
        const IpAddress address = ip(e.ip);
        if (address.isV4() != (type == AddressType::kIPv4)) continue;
        EndpointSliceEndpoint ep;
        ep.addresses = {address};
        ep.conditions = {e.ready, e.serving, e.terminating};
        ep.nodeName = e.node;
        slice->endpoints.push_back(std::move(ep));
      }
      slices.push_back(std::move(slice));
    }
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
