// BenchCluster: the ProxyStates the iptables benchmarks program, and kube-proxy's partial-sync
// payload as the anchor they are compared with.
//
// The cluster is bench/control/manifest_gen.h's (the Services and EndpointSlices the
// bench/macro/daemon_load and bench/macro/iptables_sync scripts feed to the daemon), decoded by
// the daemon's own decoder (control/decoder.h): N Services (a third with two ports, every 10th a
// NodePort, some with session affinity or externalTrafficPolicy Local) of E endpoints each, on
// node-001 as `capstan --hostname-override node-001` sees them. "One endpoint changes" is the
// generator's next revision of one slice: one endpoint flips its readiness, as a pod's probe
// would.
//
// Used by rules_bench.cc (generation) and iptables_proxier_bench.cc (iptables-restore in a
// network namespace). Header-only.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "bench/control/manifest_gen.h"
#include "control/decoder.h"
#include "control/document_reader.h"
#include "iptables/chain_names.h"
#include "iptables/rules.h"
#include "model/proxy_state.h"

namespace capstan::bench {

namespace cluster_detail {

// One generated object through the project's own reader and decoder (control/decoder.h), as the
// daemon reads it from a file. The generator writes only valid objects: anything else aborts.
template <typename T>
std::shared_ptr<const T> decode(const ManifestNode& object) {
  static const control::ObjectDecoder decoder;
  std::shared_ptr<const T> out;
  Status st = control::readJsonDocuments(
      toJson(object, 0), [&](const control::Value& document, size_t) -> Status {
        for (control::Decoded& d : decoder.decodeDocument(document)) {
          if (d.outcome != control::Decoded::Outcome::kOk) return Error(d.message);
          if (auto* p = std::get_if<std::shared_ptr<const T>>(&d.object)) out = *p;
        }
        return okStatus();
      });
  if (!st.ok() || !out) {
    std::fprintf(stderr, "bench_cluster: a generated object does not decode: %s\n",
                 st.ok() ? "wrong kind" : st.error().message().c_str());
    std::abort();
  }
  return out;
}

inline std::shared_ptr<const Service> toService(const ManifestNode& object) {
  return decode<Service>(object);
}
inline std::shared_ptr<const EndpointSlice> toSlice(const ManifestNode& object) {
  return decode<EndpointSlice>(object);
}

}  // namespace cluster_detail

class BenchCluster {
 public:
  BenchCluster(size_t services, size_t endpointsPerService)
      : generator_(ManifestSpec{.services = services, .endpointsPerSlice = endpointsPerService}) {
    ServicePortList ports;
    services_.reserve(services);
    for (size_t i = 0; i < services; ++i) {
      services_.push_back(cluster_detail::toService(generator_.service(i)));
      for (auto& port : portsOf(i, 0)) ports.push_back(std::move(port));
    }
    std::sort(ports.begin(), ports.end(),
              [](const auto& a, const auto& b) { return a->name < b->name; });
    state_ = std::make_shared<const ProxyState>(1, node(), std::move(ports), IngressState{});
    // The Service whose endpoint changes: one in the middle, a plain single-port ClusterIP one
    // (the most common kind), so the figure is the typical change, not the largest.
    changed_ = services / 2;
    for (size_t k = 0; k < services; ++k, changed_ = (changed_ + 1) % services) {
      if (ManifestGenerator::portCount(changed_) == 1 && !ManifestGenerator::isNodePort(changed_)) {
        break;
      }
    }
  }

  static NodeInfo node() { return NodeInfo{.name = "node-001"}; }

  // Revision 0 of every slice.
  const std::shared_ptr<const ProxyState>& state() const { return state_; }
  size_t servicePortCount() const { return state_->servicePorts().size(); }
  size_t endpointCount() const {
    size_t n = 0;
    for (const auto& port : state_->servicePorts()) n += port->endpoints.size();
    return n;
  }

  // The index of the Service whose endpoint changes (bench/macro/iptables_sync picks the same).
  size_t changedService() const { return changed_; }

  // The state where the changed Service's slice is at `revision` (0: as in state()), sharing
  // every other port with state(), and the ports it differs in from state().
  std::shared_ptr<const ProxyState> withRevision(size_t revision) const {
    ServicePortList ports = state_->servicePorts();
    std::vector<std::shared_ptr<const ServicePort>> fresh = portsOf(changed_, revision);
    for (auto& port : fresh) {
      auto it =
          std::lower_bound(ports.begin(), ports.end(), port->name,
                           [](const auto& p, const ServicePortName& n) { return p->name < n; });
      *it = std::move(port);
    }
    return std::make_shared<const ProxyState>(1 + revision, node(), std::move(ports),
                                              IngressState{});
  }
  std::vector<ServicePortName> changedPorts() const {
    std::vector<ServicePortName> names;
    for (const auto& port : portsOf(changed_, 0)) names.push_back(port->name);
    return names;
  }

 private:
  std::vector<std::shared_ptr<const ServicePort>> portsOf(size_t i, size_t revision) const {
    std::vector<std::shared_ptr<const EndpointSlice>> slices = {
        cluster_detail::toSlice(generator_.endpointSlice(i, revision))};
    return makeServicePorts(services_[i], slices, node());
  }

  ManifestGenerator generator_;
  std::vector<std::shared_ptr<const Service>> services_;
  std::shared_ptr<const ProxyState> state_;
  size_t changed_ = 0;
};

// kube-proxy's partial sync since 1.28 (MinimizeIPTablesRestore, pkg/proxy/iptables/proxier.go):
// every sync writes the whole filter table and every nat top-level chain again (KUBE-SERVICES
// with one rule per service IP and port, KUBE-NODEPORTS, KUBE-POSTROUTING, KUBE-MARK-MASQ), but
// the per-service chains only of the services that changed, and deletes chains gone from them.
// Built from `full` (fullPayload of the new state, so top-level rules are the same bytes
// Capstan writes), keeping the service chains in `changedChains` and dropping the others;
// `removedChains` are flushed and deleted.
inline iptables::Payload kubeProxyPartialPayload(const std::string& full,
                                                 const std::set<std::string>& changedChains,
                                                 const std::set<std::string>& removedChains) {
  iptables::Payload p;
  p.text.reserve(full.size() / 8);
  std::string_view rest = full;
  bool nat = false;
  // Bounded by the number of lines of `full`.
  while (!rest.empty()) {
    size_t eol = rest.find('\n');
    std::string_view line = rest.substr(0, eol == std::string_view::npos ? rest.size() : eol + 1);
    rest.remove_prefix(line.size());
    std::string_view chain;
    if (line.starts_with(":")) {
      chain = line.substr(1, line.find(' ') - 1);
    } else if (line.starts_with("-A ") || line.starts_with("-I ") || line.starts_with("-X ")) {
      std::string_view body = line.substr(3);
      chain = body.substr(0, std::min(body.find(' '), body.find('\n')));
    }
    if (nat && line == "COMMIT\n") {
      for (const std::string& c : removedChains) p.text += "-X " + c + "\n";
      nat = false;
    }
    if (!chain.empty() && iptables::isServiceChain(chain) &&
        !changedChains.count(std::string(chain))) {
      continue;
    }
    if (line.starts_with("-A ") || line.starts_with("-I ")) ++p.rules;
    p.text += line;
    if (line == "*nat\n") {
      nat = true;
      for (const std::string& c : removedChains) p.text += ":" + c + " - [0:0]\n";
    }
  }
  return p;
}

// The nat chains of `ports` in `applied`.
inline std::set<std::string> chainsOf(const iptables::AppliedRules& applied,
                                      const std::vector<ServicePortName>& ports) {
  std::set<std::string> out;
  for (const ServicePortName& name : ports) {
    auto it = applied.find(name);
    if (it != applied.end()) out.insert(it->second.natChains.begin(), it->second.natChains.end());
  }
  return out;
}

}  // namespace capstan::bench
