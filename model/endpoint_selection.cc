#include "model/endpoint_selection.h"

#include <algorithm>

namespace capstan {

namespace {

bool contains(const std::vector<std::string>& set, std::string_view value) {
  return !value.empty() && std::find(set.begin(), set.end(), value) != set.end();
}

// kube-proxy's topologyModeFromHints: hints apply only when every ready endpoint carries them and
// at least one is for this node (node hints, preferred) or this zone. A node without a zone label
// never matches zone hints.
TopologyMode topologyMode(const std::vector<Endpoint>& endpoints, IpFamily family,
                          std::string_view nodeName, std::string_view zone) {
  bool sawReady = false;
  bool allHaveNodeHints = true;
  bool hasEndpointForNode = false;
  bool allHaveZoneHints = true;
  bool hasEndpointForZone = false;
  for (const Endpoint& ep : endpoints) {
    if (ep.ip.family() != family || !ep.ready) continue;
    sawReady = true;
    if (ep.nodeHints.empty()) {
      allHaveNodeHints = false;
    } else if (contains(ep.nodeHints, nodeName)) {
      hasEndpointForNode = true;
    }
    if (ep.zoneHints.empty()) {
      allHaveZoneHints = false;
    } else if (contains(ep.zoneHints, zone)) {
      hasEndpointForZone = true;
    }
  }
  if (!sawReady) return TopologyMode::kNone;
  if (allHaveNodeHints && hasEndpointForNode) return TopologyMode::kNodeHints;
  if (allHaveZoneHints && hasEndpointForZone) return TopologyMode::kZoneHints;
  return TopologyMode::kNone;
}

bool availableForTopology(const Endpoint& ep, TopologyMode mode, std::string_view nodeName,
                          std::string_view zone) {
  switch (mode) {
    case TopologyMode::kNone:
      return true;
    case TopologyMode::kZoneHints:
      return contains(ep.zoneHints, zone);
    case TopologyMode::kNodeHints:
      return contains(ep.nodeHints, nodeName);
  }
  return true;
}

template <typename Pred>
std::vector<uint32_t> filter(const std::vector<Endpoint>& endpoints, IpFamily family, Pred pred) {
  std::vector<uint32_t> out;
  for (uint32_t i = 0; i < endpoints.size(); ++i) {
    if (endpoints[i].ip.family() == family && pred(endpoints[i])) out.push_back(i);
  }
  return out;
}

bool servingTerminating(const Endpoint& ep) { return ep.serving && ep.terminating; }

}  // namespace

EndpointSelection selectEndpoints(const std::vector<Endpoint>& endpoints, IpFamily family,
                                  SelectionPolicy policy, std::string_view nodeName,
                                  std::string_view zone) {
  EndpointSelection sel;

  if (policy.usesClusterEndpoints) {
    sel.topology = topologyMode(endpoints, family, nodeName, zone);
    sel.cluster = filter(endpoints, family, [&](const Endpoint& ep) {
      return ep.ready && availableForTopology(ep, sel.topology, nodeName, zone);
    });
    // No ready endpoint for this topology means no ready endpoint anywhere (hints are ignored
    // unless one matches), so fall back to the serving-and-terminating ones.
    if (sel.cluster.empty()) sel.cluster = filter(endpoints, family, servingTerminating);
    if (!sel.cluster.empty()) sel.hasAnyEndpoints = true;
  }

  if (!policy.usesLocalEndpoints) {
    sel.allReachable = sel.cluster;
    return sel;
  }

  bool hasLocalReady = false;
  bool hasLocalServingTerminating = false;
  for (const Endpoint& ep : endpoints) {
    if (ep.ip.family() != family) continue;
    if (ep.ready) {
      sel.hasAnyEndpoints = true;
      hasLocalReady |= ep.isLocal;
    } else if (servingTerminating(ep)) {
      sel.hasAnyEndpoints = true;
      hasLocalServingTerminating |= ep.isLocal;
    }
  }
  bool localUsesTerminating = false;
  if (hasLocalReady) {
    sel.local =
        filter(endpoints, family, [](const Endpoint& ep) { return ep.ready && ep.isLocal; });
  } else if (hasLocalServingTerminating) {
    localUsesTerminating = true;
    sel.local = filter(endpoints, family,
                       [](const Endpoint& ep) { return ep.isLocal && servingTerminating(ep); });
  }

  if (!policy.usesClusterEndpoints) {
    sel.allReachable = sel.local;
    return sel;
  }
  if (sel.topology == TopologyMode::kNone && !localUsesTerminating) {
    // Cluster holds every ready endpoint and local only ready ones: cluster is the superset.
    sel.allReachable = sel.cluster;
    return sel;
  }
  std::set_union(sel.cluster.begin(), sel.cluster.end(), sel.local.begin(), sel.local.end(),
                 std::back_inserter(sel.allReachable));
  return sel;
}

}  // namespace capstan
