#include "control/change_tracker.h"

#include <algorithm>
#include <cassert>
#include <set>

namespace capstan::control {

namespace {

// Slices compare equal for change tracking when everything but the trigger-time annotation is
// equal: a slice rewritten with the same endpoints is no change (kube-proxy compares the
// resulting endpoints, which this implies).
bool sameSlice(const EndpointSlice& a, const EndpointSlice& b) {
  return a.name == b.name && a.serviceName == b.serviceName && a.addressType == b.addressType &&
         a.endpoints == b.endpoints && a.ports == b.ports;
}

template <typename List>
bool sameSlices(const List& a, const List& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const auto& x, const auto& y) { return x == y || sameSlice(*x, *y); });
}

bool sameService(const std::shared_ptr<const Service>& a, const std::shared_ptr<const Service>& b) {
  if (a == b) return true;
  if (!a || !b) return false;
  return *a == *b;
}

template <typename T>
std::shared_ptr<const T> objectAs(const ObjectEvent& event) {
  if (event.type == ObjectEvent::Type::kDelete) return nullptr;
  return std::get<std::shared_ptr<const T>>(event.object);
}

}  // namespace

ChangeTracker::ChangeTracker(TrackerOptions options) : options_(std::move(options)) {
  current_ = std::make_shared<ProxyState>(0, nodeInfo(), ServicePortList{}, IngressState{});
}

NodeInfo ChangeTracker::nodeInfo() const {
  NodeInfo node;
  if (node_) node = *node_;
  node.name = options_.nodeName;
  return node;
}

void ChangeTracker::apply(const ObjectEvent& event) {
  switch (event.key.kind) {
    case ObjectKind::kService:
      applyService(event);
      break;
    case ObjectKind::kEndpointSlice:
      applyEndpointSlice(event);
      break;
    case ObjectKind::kIngress:
      if (auto obj = objectAs<Ingress>(event)) {
        ingresses_[event.key.name] = std::move(obj);
      } else {
        ingresses_.erase(event.key.name);
      }
      ingressDirty_ = true;
      break;
    case ObjectKind::kIngressClass:
      if (auto obj = objectAs<IngressClass>(event)) {
        ingressClasses_[event.key.name.name] = std::move(obj);
      } else {
        ingressClasses_.erase(event.key.name.name);
      }
      ingressDirty_ = true;
      break;
    case ObjectKind::kSecret:
      if (auto obj = objectAs<TlsSecret>(event)) {
        secrets_[event.key.name] = std::move(obj);
      } else {
        secrets_.erase(event.key.name);
      }
      ingressDirty_ = true;
      break;
    case ObjectKind::kNode:
      // kube-proxy watches only its own Node.
      if (event.key.name.name != options_.nodeName) break;
      node_ = objectAs<NodeInfo>(event);
      nodeDirty_ = true;
      break;
  }
}

void ChangeTracker::applyService(const ObjectEvent& event) {
  const NamespacedName& name = event.key.name;
  auto current = objectAs<Service>(event);
  auto it = services_.find(name);
  std::shared_ptr<const Service> previous = it == services_.end() ? nullptr : it->second;
  pendingServices_.try_emplace(name, previous);
  if (current) {
    services_[name] = current;
  } else if (it != services_.end()) {
    services_.erase(it);
  }
  ++serviceChangesTotal_;
  if (sameService(pendingServices_[name], current)) pendingServices_.erase(name);
}

void ChangeTracker::applyEndpointSlice(const ObjectEvent& event) {
  const NamespacedName& sliceName = event.key.name;
  auto slice = objectAs<EndpointSlice>(event);
  auto owner = sliceOwner_.find(sliceName);
  // A slice whose service-name label changed leaves its old Service first.
  if (owner != sliceOwner_.end() && (!slice || owner->second != slice->serviceKey())) {
    NamespacedName oldService = owner->second;
    sliceOwner_.erase(owner);
    setSlice(oldService, sliceName, nullptr, event.triggerTimeNs);
  }
  if (slice) {
    NamespacedName service = slice->serviceKey();
    sliceOwner_[sliceName] = service;
    setSlice(service, sliceName, std::move(slice), event.triggerTimeNs);
  }
}

void ChangeTracker::setSlice(const NamespacedName& service, const NamespacedName& sliceName,
                             std::shared_ptr<const EndpointSlice> value, int64_t triggerTimeNs) {
  SliceList& list = slicesByService_[service];
  pendingEndpoints_.try_emplace(service, list);
  auto it = std::lower_bound(list.begin(), list.end(), sliceName,
                             [](const auto& s, const NamespacedName& n) { return s->name < n; });
  bool exists = it != list.end() && (*it)->name == sliceName;
  if (value) {
    if (exists) {
      *it = std::move(value);
    } else {
      list.insert(it, std::move(value));
    }
  } else if (exists) {
    list.erase(it);
  }
  ++endpointChangesTotal_;
  if (triggerTimeNs != 0) pendingTriggerTimes_[service].push_back(triggerTimeNs);
  if (sameSlices(pendingEndpoints_[service], list)) {
    pendingEndpoints_.erase(service);
    pendingTriggerTimes_.erase(service);
  }
  if (list.empty()) slicesByService_.erase(service);
}

bool ChangeTracker::hasPendingChanges() const {
  return !pendingServices_.empty() || !pendingEndpoints_.empty() || ingressDirty_ || nodeDirty_;
}

IngressState ChangeTracker::buildIngressState() const {
  std::vector<IngressClass> classes;
  classes.reserve(ingressClasses_.size());
  for (const auto& [name, cls] : ingressClasses_) classes.push_back(*cls);
  IngressState state;
  std::set<NamespacedName> secretNames;
  for (const auto& [name, ingress] : ingresses_) {
    if (!servesIngress(*ingress, classes, options_.ingressClass)) continue;
    state.ingresses.push_back(ingress);
    for (const IngressTls& tls : ingress->tls) {
      if (!tls.secretName.empty()) secretNames.insert({name.ns, tls.secretName});
    }
  }
  if (options_.defaultCertificateSecret) secretNames.insert(*options_.defaultCertificateSecret);
  for (const NamespacedName& secret : secretNames) {
    if (auto it = secrets_.find(secret); it != secrets_.end()) state.secrets.push_back(it->second);
  }
  return state;
}

ChangeTracker::Commit ChangeTracker::commit(bool full) {
  Commit out;
  const ProxyState& previous = *current_;
  NodeInfo node = nodeInfo();
  if (committed_ && node != previous.node()) {
    out.changes.nodeChanged = true;
    // The zone decides topology-aware selection for every port.
    if (node.zone != previous.node().zone) full = true;
  }
  if (!committed_) full = true;
  out.changes.full = full;

  // The Services to rebuild, in order.
  std::vector<NamespacedName> dirty;
  if (full) {
    std::set<NamespacedName> all;
    for (const auto& [name, svc] : services_) all.insert(name);
    for (const auto& port : previous.servicePorts()) all.insert(port->name.service);
    dirty.assign(all.begin(), all.end());
  } else {
    std::set<NamespacedName> set;
    for (const auto& [name, svc] : pendingServices_) set.insert(name);
    for (const auto& [name, slices] : pendingEndpoints_) set.insert(name);
    dirty.assign(set.begin(), set.end());
  }

  const ServicePortList& oldPorts = previous.servicePorts();
  ServicePortList ports;
  ports.reserve(oldPorts.size() + dirty.size());
  auto it = oldPorts.begin();
  static const SliceList kNoSlices;
  for (const NamespacedName& service : dirty) {
    while (it != oldPorts.end() && (*it)->name.service < service) ports.push_back(*it++);
    auto oldBegin = it;
    while (it != oldPorts.end() && (*it)->name.service == service) ++it;
    ServicePortList rebuilt;
    if (auto svc = services_.find(service); svc != services_.end()) {
      auto slices = slicesByService_.find(service);
      rebuilt = makeServicePorts(
          svc->second, slices == slicesByService_.end() ? kNoSlices : slices->second, node);
    }
    // Diff the Service's old and new ports (both sorted by name); keep old objects that are equal.
    auto o = oldBegin;
    for (auto& port : rebuilt) {
      while (o != it && (*o)->name < port->name) out.changes.removed.push_back((*o++)->name);
      if (o != it && (*o)->name == port->name) {
        if (**o == *port) {
          port = *o;
        } else {
          out.changes.changed.push_back(port->name);
        }
        ++o;
      } else {
        out.changes.changed.push_back(port->name);
      }
      ports.push_back(std::move(port));
    }
    while (o != it) out.changes.removed.push_back((*o++)->name);
  }
  while (it != oldPorts.end()) ports.push_back(*it++);

  for (const NamespacedName& service : dirty) {
    if (auto t = pendingTriggerTimes_.find(service); t != pendingTriggerTimes_.end()) {
      out.triggerTimesNs.insert(out.triggerTimesNs.end(), t->second.begin(), t->second.end());
    }
  }
  pendingServices_.clear();
  pendingEndpoints_.clear();
  pendingTriggerTimes_.clear();

  IngressState ingress = previous.ingress();
  if (ingressDirty_ || !committed_) {
    ingress = buildIngressState();
    out.changes.ingressChanged = !(ingress == previous.ingress());
  }
  ingressDirty_ = false;
  nodeDirty_ = false;
  committed_ = true;

  current_ = std::make_shared<ProxyState>(previous.generation() + 1, std::move(node),
                                          std::move(ports), std::move(ingress));
  out.state = current_;
  return out;
}

}  // namespace capstan::control
