#include "model/service_port.h"

#include <algorithm>

namespace capstan {

bool ServicePort::externallyAccessible(IpFamily family) const {
  auto ofFamily = [family](const IpAddress& ip) { return ip.family() == family; };
  return spec.nodePort != 0 ||
         std::any_of(service->loadBalancerIPs.begin(), service->loadBalancerIPs.end(), ofFamily) ||
         std::any_of(service->externalIPs.begin(), service->externalIPs.end(), ofFamily);
}

bool ServicePort::operator==(const ServicePort& other) const {
  return name == other.name && (service == other.service || *service == *other.service) &&
         spec == other.spec && endpoints == other.endpoints && selection == other.selection;
}

std::vector<std::shared_ptr<const ServicePort>> makeServicePorts(
    const std::shared_ptr<const Service>& service,
    std::span<const std::shared_ptr<const EndpointSlice>> slices, const NodeInfo& node) {
  std::vector<std::shared_ptr<const ServicePort>> out;
  if (service->type == ServiceType::kExternalName) return out;
  out.reserve(service->ports.size());
  for (const ServicePortSpec& spec : service->ports) {
    auto port = std::make_shared<ServicePort>();
    port->name = ServicePortName{service->name, spec.name, spec.protocol};
    port->service = service;
    port->spec = spec;
    port->endpoints = endpointsForPort(slices, spec.name, spec.protocol, node.name);
    for (IpFamily family : {IpFamily::kV4, IpFamily::kV6}) {
      SelectionPolicy policy{port->usesClusterEndpoints(family), port->usesLocalEndpoints(family)};
      port->selection[family == IpFamily::kV4 ? 0 : 1] =
          selectEndpoints(port->endpoints, family, policy, node.name, node.zone);
    }
    out.push_back(std::move(port));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->name < b->name; });
  return out;
}

}  // namespace capstan
