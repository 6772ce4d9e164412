// EndpointSlices for unit tests and benchmarks that build ProxyStates through the model's own
// path (Service + EndpointSlices -> makeServicePorts), so that endpoint selection is kube-proxy's.
// Used by tests/dataplane/state_builder.h and tests/l7/ingress_state_builder.h. Header-only, no
// GoogleTest (the benchmarks use it too).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/endpoint.h"
#include "model/ip.h"

namespace capstan::support {

struct TestEndpoint {
  std::string ip;
  bool ready = true;
  bool serving = true;
  bool terminating = false;
  std::string node = "node-b";  // not this node unless said
};

// One slice per address family ("<service>-v4", "<service>-v6") of Service ns/service with
// `ports`, holding the endpoints of that family (the IPv6 slice is empty when all are IPv4).
inline std::vector<std::shared_ptr<const EndpointSlice>> sliceFamilies(
    const std::string& ns, const std::string& service, const std::vector<EndpointSlicePort>& ports,
    const std::vector<TestEndpoint>& endpoints) {
  std::vector<std::shared_ptr<const EndpointSlice>> slices;
  for (AddressType type : {AddressType::kIPv4, AddressType::kIPv6}) {
    auto slice = std::make_shared<EndpointSlice>();
    slice->name = {ns, service + (type == AddressType::kIPv4 ? "-v4" : "-v6")};
    slice->serviceName = service;
    slice->addressType = type;
    slice->ports = ports;
    for (const TestEndpoint& e : endpoints) {
      const IpAddress address = *IpAddress::parse(e.ip);
      if (address.isV4() != (type == AddressType::kIPv4)) continue;
      EndpointSliceEndpoint ep;
      ep.addresses = {address};
      ep.conditions = {e.ready, e.serving, e.terminating};
      ep.nodeName = e.node;
      slice->endpoints.push_back(std::move(ep));
    }
    slices.push_back(std::move(slice));
  }
  return slices;
}

}  // namespace capstan::support
