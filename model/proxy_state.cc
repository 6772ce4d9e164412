#include "model/proxy_state.h"

#include <algorithm>
#include <cassert>

namespace capstan {

ProxyState::ProxyState(uint64_t generation, NodeInfo node, ServicePortList ports,
                       IngressState ingress)
    : generation_(generation),
      node_(std::move(node)),
      ports_(std::move(ports)),
      ingress_(std::move(ingress)) {
  assert(std::is_sorted(ports_.begin(), ports_.end(),
                        [](const auto& a, const auto& b) { return a->name < b->name; }));
}

const ServicePort* ProxyState::find(const ServicePortName& name) const {
  auto it = std::lower_bound(ports_.begin(), ports_.end(), name,
                             [](const auto& p, const ServicePortName& n) { return p->name < n; });
  if (it == ports_.end() || (*it)->name != name) return nullptr;
  return it->get();
}

std::span<const std::shared_ptr<const ServicePort>> ProxyState::portsOf(
    const NamespacedName& service) const {
  auto first =
      std::lower_bound(ports_.begin(), ports_.end(), service,
                       [](const auto& p, const NamespacedName& n) { return p->name.service < n; });
  auto last =
      std::upper_bound(first, ports_.end(), service,
                       [](const NamespacedName& n, const auto& p) { return n < p->name.service; });
  return {first, last};
}

namespace {

template <typename T, typename F>
std::string joinEach(const std::vector<T>& items, F format) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ",";
    out += format(item);
  }
  return out;
}

std::string ipList(const std::vector<IpAddress>& ips) {
  return joinEach(ips, [](const IpAddress& ip) { return ip.toString(); });
}

std::string targetPortText(const IntOrString& target) {
  if (const auto* number = std::get_if<int32_t>(&target)) return std::to_string(*number);
  return std::get<std::string>(target);
}

std::string endpointText(const Endpoint& ep) {
  std::string out = ep.toString();
  if (!ep.ready)
    out += ep.terminating ? (ep.serving ? " (terminating)" : " (terminating, not serving)")
                          : (ep.serving ? " (not ready)" : " (not ready, not serving)");
  if (ep.isLocal) out += " (local)";
  return out;
}

void describePort(const ServicePort& port, std::string& out) {
  const Service& svc = *port.service;
  out += "service " + port.name.toString() + " " + std::string(toString(port.name.protocol)) +
         " type=" + std::string(toString(svc.type)) + "\n";
  if (!svc.isProxied()) {
    out += "  not proxied at L4: ";
    out += svc.headless ? "headless (clusterIP: None)" : "no ClusterIP";
    out += "\n";
  }
  out += "  port " + std::to_string(port.spec.port) + " -> target " +
         targetPortText(port.spec.targetPort);
  if (!svc.clusterIPs.empty()) out += "  clusterIPs " + ipList(svc.clusterIPs);
  if (port.spec.nodePort != 0) out += "  nodePort " + std::to_string(port.spec.nodePort);
  out += "\n";
  if (!svc.externalIPs.empty()) out += "  externalIPs " + ipList(svc.externalIPs) + "\n";
  if (!svc.loadBalancerIPs.empty()) out += "  loadBalancer " + ipList(svc.loadBalancerIPs) + "\n";
  if (!svc.loadBalancerSourceRanges.empty()) {
    out += "  loadBalancerSourceRanges " +
           joinEach(svc.loadBalancerSourceRanges, [](const Cidr& c) { return c.toString(); }) +
           "\n";
  }
  out += "  policy external=" + std::string(toString(svc.externalTrafficPolicy)) +
         " internal=" + std::string(toString(svc.internalTrafficPolicy));
  if (svc.sessionAffinity == SessionAffinity::kClientIP) {
    out += " affinity=ClientIP/" + std::to_string(svc.affinityTimeoutSeconds) + "s";
  }
  if (svc.healthCheckNodePort != 0) {
    out += " healthCheckNodePort=" + std::to_string(svc.healthCheckNodePort);
  }
  if (svc.trafficDistribution != TrafficDistribution::kUnset) {
    out += " trafficDistribution=" + std::string(toString(svc.trafficDistribution));
  }
  out += "\n";
  for (IpFamily family : {IpFamily::kV4, IpFamily::kV6}) {
    const EndpointSelection& sel = port.selectionFor(family);
    bool any = std::any_of(port.endpoints.begin(), port.endpoints.end(),
                           [&](const Endpoint& ep) { return ep.ip.family() == family; });
    if (!any) continue;
    auto list = [&](const std::vector<uint32_t>& indices) {
      return indices.empty()
                 ? std::string("none")
                 : joinEach(indices, [&](uint32_t i) { return endpointText(port.endpoints[i]); });
    };
    std::string fam(toString(family));
    if (port.usesClusterEndpoints(family))
      out += "  " + fam + " cluster endpoints: " + list(sel.cluster) + "\n";
    if (port.usesLocalEndpoints(family))
      out += "  " + fam + " local endpoints: " + list(sel.local) + "\n";
    if (sel.topology != TopologyMode::kNone) {
      out += "  " + fam + " topology: ";
      out += sel.topology == TopologyMode::kZoneHints ? "zone hints\n" : "node hints\n";
    }
  }
  if (port.endpoints.empty()) out += "  no endpoints\n";
}

std::string backendText(const IngressBackend& backend) {
  if (backend.service) {
    const auto& s = *backend.service;
    return "service " + s.name + ":" +
           (s.portName.empty() ? std::to_string(s.portNumber) : s.portName);
  }
  return "resource " + backend.resourceKind + "/" + backend.resourceName;
}

}  // namespace

std::string describeState(const ProxyState& state) {
  std::string out = "# node " + state.node().name;
  if (!state.node().zone.empty()) out += " zone " + state.node().zone;
  out += ", " + std::to_string(state.servicePorts().size()) + " service ports, " +
         std::to_string(state.ingress().ingresses.size()) + " ingresses\n";
  for (const auto& port : state.servicePorts()) describePort(*port, out);
  for (const auto& ingress : state.ingress().ingresses) {
    out += "ingress " + ingress->name.toString() + "\n";
    if (ingress->defaultBackend)
      out += "  default -> " + backendText(*ingress->defaultBackend) + "\n";
    for (const IngressRule& rule : ingress->rules) {
      for (const IngressPath& path : rule.paths) {
        out += "  " + (rule.host.empty() ? std::string("*") : rule.host) + path.path + " (" +
               std::string(toString(path.pathType)) + ") -> " + backendText(path.backend) + "\n";
      }
    }
    for (const IngressTls& tls : ingress->tls) {
      NamespacedName secretName{ingress->name.ns, tls.secretName};
      out += "  tls " +
             (tls.hosts.empty() ? std::string("(default)")
                                : joinEach(tls.hosts, [](const std::string& h) { return h; })) +
             " secret " + tls.secretName +
             (state.ingress().findSecret(secretName) ? "" : " (missing)") + "\n";
    }
  }
  return out;
}

}  // namespace capstan
