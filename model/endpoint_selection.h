// Which endpoints of a service port receive traffic, exactly as kube-proxy decides it
// (pkg/proxy/topology.go, CategorizeEndpoints).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "model/endpoint.h"
#include "model/ip.h"

namespace capstan {

enum class TopologyMode : uint8_t {
  kNone,       // hints not used
  kZoneHints,  // only endpoints hinted for this node's zone
  kNodeHints,  // only endpoints hinted for this node (trafficDistribution: PreferSameNode)
};

// Indices into the endpoint list the selection was made from.
struct EndpointSelection {
  // Endpoints for traffic whose policy is Cluster: the ready ones (filtered by topology hints when
  // they apply), or, when none is ready anywhere, the serving-and-terminating ones.
  std::vector<uint32_t> cluster;
  // Endpoints for traffic whose policy is Local: the local ready ones, or, when none is ready,
  // the local serving-and-terminating ones. Empty when the port uses no Local policy.
  std::vector<uint32_t> local;
  // Every endpoint that some traffic may reach: the union of the two, in list order.
  std::vector<uint32_t> allReachable;
  // Whether there is any usable endpoint, local or not: false means "reject", true with an empty
  // `local` means "drop" for Local-policy traffic (kube-proxy's distinction).
  bool hasAnyEndpoints = false;
  TopologyMode topology = TopologyMode::kNone;

  bool operator==(const EndpointSelection&) const = default;
};

struct SelectionPolicy {
  // The port accepts traffic that uses Cluster policy: internalTrafficPolicy Cluster, or any
  // externally reachable port (Local external policy still short-circuits cluster traffic).
  bool usesClusterEndpoints = true;
  // The port accepts traffic that uses Local policy: internal or external Local policy.
  bool usesLocalEndpoints = false;
};

// Selects among the endpoints of one IP family (kube-proxy runs one proxier per family, so each
// family falls back to terminating endpoints on its own). Endpoints of other families are never
// selected. `nodeName` and `zone` are this node's name and topology.kubernetes.io/zone label.
EndpointSelection selectEndpoints(const std::vector<Endpoint>& endpoints, IpFamily family,
                                  SelectionPolicy policy, std::string_view nodeName,
                                  std::string_view zone);

}  // namespace capstan
