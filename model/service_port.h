// ServicePort: one port of one Service with its endpoints and kube-proxy's selection among them.
// It is the unit every proxier programs and the unit of change tracking: a ProxyState is a sorted
// set of ServicePorts, shared unchanged between successive snapshots.
#pragma once

#include <array>
#include <memory>
#include <span>
#include <vector>

#include "model/endpoint.h"
#include "model/endpoint_selection.h"
#include "model/node.h"
#include "model/service.h"

namespace capstan {

struct ServicePort {
  ServicePortName name;
  std::shared_ptr<const Service> service;  // shared by all ports of the Service
  ServicePortSpec spec;
  std::vector<Endpoint> endpoints;  // both families, sorted (see endpointsForPort)
  // kube-proxy's endpoint selection for IPv4 ([0]) and IPv6 ([1]); indices into `endpoints`.
  std::array<EndpointSelection, 2> selection;

  // Traffic from outside the cluster reaches this port in `family`: it has a NodePort, or a
  // LoadBalancer or external IP of that family (kube-proxy's per-port ExternallyAccessible).
  bool externallyAccessible(IpFamily family) const;
  // Traffic with Cluster policy reaches this port: internal policy Cluster, or any external
  // traffic (even with external policy Local, cluster-internal sources short-circuit to all
  // endpoints).
  bool usesClusterEndpoints(IpFamily family) const {
    return !service->internalPolicyLocal() || externallyAccessible(family);
  }
  bool usesLocalEndpoints(IpFamily family) const {
    return service->internalPolicyLocal() ||
           (service->externalPolicyLocal() && externallyAccessible(family));
  }
  const EndpointSelection& selectionFor(IpFamily family) const {
    return selection[family == IpFamily::kV4 ? 0 : 1];
  }

  // Deep equality (the Service by value): a rebuilt port equal to the old one is not a change.
  bool operator==(const ServicePort& other) const;
};

// Builds the ServicePorts of `service` from its EndpointSlices, for a node named node.name in
// zone node.zone. ExternalName Services have none. The result is sorted by name.
std::vector<std::shared_ptr<const ServicePort>> makeServicePorts(
    const std::shared_ptr<const Service>& service,
    std::span<const std::shared_ptr<const EndpointSlice>> slices, const NodeInfo& node);

}  // namespace capstan
