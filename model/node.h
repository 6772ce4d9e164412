// This node, as the proxy needs to know it: its name, its zone (for topology hints), its
// addresses (for NodePorts) and whether it is still eligible to receive load-balancer traffic.
#pragma once

#include <string>
#include <vector>

#include "model/ip.h"

namespace capstan {

struct NodeInfo {
  std::string name;  // --hostname-override, or the host name
  std::string zone;  // label topology.kubernetes.io/zone of the v1 Node named `name`
  std::vector<IpAddress> addresses;  // status.addresses InternalIP/ExternalIP
  std::vector<Cidr> podCIDRs;        // spec.podCIDRs
  // False while the Node is being deleted or is tainted ToBeDeletedByClusterAutoscaler: kube-proxy
  // then fails /healthz so load balancers drain the node.
  bool eligible = true;

  bool operator==(const NodeInfo&) const = default;
};

}  // namespace capstan
