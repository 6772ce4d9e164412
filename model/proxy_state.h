// ProxyState: an immutable snapshot of everything the dataplanes program — every service port
// with its endpoints, this node, and the ingress routes — and ChangeSet, what changed since the
// snapshot before it.
//
// Snapshots share structure: a new state reuses the ServicePort objects of the previous one
// wherever nothing changed, so building one costs O(ports) pointer copies plus the work for what
// changed, and a proxier may keep the previous snapshot alive (shared_from_this()) to diff against.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/ingress.h"
#include "model/node.h"
#include "model/service_port.h"

namespace capstan {

using ServicePortList = std::vector<std::shared_ptr<const ServicePort>>;

class ProxyState : public std::enable_shared_from_this<ProxyState> {
 public:
  // `ports` must be sorted by name, without duplicates.
  ProxyState(uint64_t generation, NodeInfo node, ServicePortList ports, IngressState ingress);

  // Increases by one with every snapshot the tracker builds.
  uint64_t generation() const { return generation_; }
  const NodeInfo& node() const { return node_; }
  const ServicePortList& servicePorts() const { return ports_; }
  const IngressState& ingress() const { return ingress_; }

  const ServicePort* find(const ServicePortName& name) const;
  // The ports of one Service (a contiguous run of servicePorts()).
  std::span<const std::shared_ptr<const ServicePort>> portsOf(const NamespacedName& service) const;

 private:
  uint64_t generation_;
  NodeInfo node_;
  ServicePortList ports_;
  IngressState ingress_;
};

// What changed between two successive snapshots.
struct ChangeSet {
  // Re-program everything: the first sync, the periodic full sync, the sync after a failure, and
  // after a change that touches every port (this node's zone).
  bool full = false;
  std::vector<ServicePortName> changed;  // added or modified ports, sorted
  std::vector<ServicePortName> removed;  // ports gone since the previous snapshot, sorted
  bool ingressChanged = false;
  bool nodeChanged = false;

  bool empty() const {
    return !full && changed.empty() && removed.empty() && !ingressChanged && !nodeChanged;
  }
};

// A human-readable listing of a snapshot: every service port with its VIPs and selected
// endpoints, and the ingress routes. What `capstan --dry-run --proxy-mode=none` prints.
std::string describeState(const ProxyState& state);

}  // namespace capstan
