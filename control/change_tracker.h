// ChangeTracker: object events in, ProxyState snapshots and ChangeSets out.
//
// It plays the part of kube-proxy's ServiceChangeTracker and EndpointsChangeTracker: changes are
// pending per Service until the next sync; a change that returns a Service (or its endpoints)
// to what the last sync saw is dropped, so it costs no sync and no pending count. commit()
// builds the next snapshot, recomputing only the Services with pending changes and sharing every
// other ServicePort with the previous snapshot.
//
// Not thread-safe: owned by the control thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/source.h"
#include "model/ingress.h"
#include "model/proxy_state.h"

namespace capstan::control {

struct TrackerOptions {
  std::string nodeName;
  IngressClassSelector ingressClass;
  // A Secret the ingress needs besides those its Ingresses name (--ingress-default-certificate).
  std::optional<NamespacedName> defaultCertificateSecret;
};

class ChangeTracker {
 public:
  explicit ChangeTracker(TrackerOptions options);

  void apply(const ObjectEvent& event);

  bool hasPendingChanges() const;
  // kube-proxy's sync_proxy_rules_{service,endpoint}_changes_{pending,total}.
  size_t pendingServiceChanges() const { return pendingServices_.size(); }
  size_t pendingEndpointChanges() const { return pendingEndpoints_.size(); }
  uint64_t serviceChangesTotal() const { return serviceChangesTotal_; }
  uint64_t endpointChangesTotal() const { return endpointChangesTotal_; }

  struct Commit {
    std::shared_ptr<const ProxyState> state;
    ChangeSet changes;
    // Trigger times (Unix ns) of the endpoint changes this snapshot includes, for
    // network_programming_duration_seconds once it is programmed.
    std::vector<int64_t> triggerTimesNs;
  };
  // Builds the next snapshot. With `full`, every ServicePort is rebuilt (unchanged ones are still
  // shared with the previous snapshot) and the ChangeSet asks proxiers for a full sync. The first
  // commit is always full.
  Commit commit(bool full);

  // The last committed snapshot (an empty one before the first commit).
  const std::shared_ptr<const ProxyState>& current() const { return current_; }

 private:
  using SliceList = std::vector<std::shared_ptr<const EndpointSlice>>;  // sorted by name

  void applyService(const ObjectEvent& event);
  void applyEndpointSlice(const ObjectEvent& event);
  void setSlice(const NamespacedName& service, const NamespacedName& slice,
                std::shared_ptr<const EndpointSlice> value, int64_t triggerTimeNs);
  IngressState buildIngressState() const;
  NodeInfo nodeInfo() const;

  TrackerOptions options_;
  std::map<NamespacedName, std::shared_ptr<const Service>> services_;
  std::map<NamespacedName, SliceList> slicesByService_;
  std::map<NamespacedName, NamespacedName> sliceOwner_;  // slice -> its Service

  // Pending changes: the value each had at the last commit.
  std::map<NamespacedName, std::shared_ptr<const Service>> pendingServices_;
  std::map<NamespacedName, SliceList> pendingEndpoints_;
  std::map<NamespacedName, std::vector<int64_t>> pendingTriggerTimes_;
  uint64_t serviceChangesTotal_ = 0;
  uint64_t endpointChangesTotal_ = 0;

  std::map<NamespacedName, std::shared_ptr<const Ingress>> ingresses_;
  std::map<std::string, std::shared_ptr<const IngressClass>> ingressClasses_;
  std::map<NamespacedName, std::shared_ptr<const TlsSecret>> secrets_;
  bool ingressDirty_ = false;
  std::shared_ptr<const NodeInfo> node_;  // the v1 Node named options_.nodeName, if known
  bool nodeDirty_ = false;

  std::shared_ptr<const ProxyState> current_;
  bool committed_ = false;
};

}  // namespace capstan::control
