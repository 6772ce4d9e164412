#include "iptables/rules.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>
#include <string_view>

#include "iptables/chain_names.h"
#include "model/hash.h"

namespace capstan::iptables {

namespace {

std::string portText(uint16_t port) { return std::to_string(port); }

// kube-proxy's computeProbability: 1/n with ten decimals.
std::string probability(size_t n) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%0.10f", 1.0 / static_cast<double>(n));
  return buf;
}

// A comment as kube-proxy writes it: quoted when it holds a space.
std::string comment(const std::string& text) {
  if (text.find(' ') == std::string::npos) return "-m comment --comment " + text;
  return "-m comment --comment \"" + text + "\"";
}

template <typename T>
std::vector<T> ofFamily(const std::vector<T>& items, IpFamily family) {
  std::vector<T> out;
  for (const T& item : items) {
    if (item.family() == family) out.push_back(item);
  }
  return out;
}

void appendRule(std::string& out, size_t& count, const std::string& chain,
                const std::string& body) {
  out.append("-A ").append(chain).append(" ").append(body).append("\n");
  ++count;
}

// kube-proxy's writeServiceToEndpointRules: affinity checks first (ClientIP), then the random
// spread: endpoint i of n taken with probability 1/(n-i), the last always.
void serviceToEndpointRules(PortRules& r, const ServicePort& port, const std::string& chain,
                            const std::vector<uint32_t>& endpoints, bool largeCluster) {
  const std::string name = port.name.toString();
  const Service& svc = *port.service;
  auto epComment = [&](const Endpoint& ep) {
    return largeCluster ? std::string() : comment(name + " -> " + ep.toString()) + " ";
  };
  if (svc.sessionAffinity == SessionAffinity::kClientIP) {
    for (uint32_t i : endpoints) {
      const Endpoint& ep = port.endpoints[i];
      std::string sep = endpointChain(port.name, ep);
      appendRule(r.natChainRules, r.natChainRuleCount, chain,
                 epComment(ep) + "-m recent --name " + sep + " --rcheck --seconds " +
                     std::to_string(svc.affinityTimeoutSeconds) + " --reap -j " + sep);
    }
  }
  for (size_t k = 0; k < endpoints.size(); ++k) {
    const Endpoint& ep = port.endpoints[endpoints[k]];
    std::string body = epComment(ep);
    if (k + 1 < endpoints.size()) {
      body += "-m statistic --mode random --probability " + probability(endpoints.size() - k) + " ";
    }
    appendRule(r.natChainRules, r.natChainRuleCount, chain,
               body + "-j " + endpointChain(port.name, ep));
  }
}

}  // namespace

size_t PortRules::ruleCount() const {
  return natServices.size() + natNodePorts.size() + filterServices.size() +
         filterExternalServices.size() + filterNodePorts.size() + filterFirewall.size() +
         natChainRuleCount;
}

bool isLargeCluster(const ProxyState& state, const RuleOptions& options) {
  size_t endpoints = 0;
  for (const auto& port : state.servicePorts()) {
    for (const Endpoint& ep : port->endpoints) endpoints += ep.ip.family() == options.family;
    if (endpoints > options.largeClusterEndpoints) return true;
  }
  return false;
}

PortRules portRules(const ServicePort& port, const RuleOptions& o, bool largeCluster) {
  PortRules r;
  const Service& svc = *port.service;
  if (!svc.isProxied()) return r;
  const IpAddress* clusterIP = svc.clusterIP(o.family);
  if (!clusterIP) return r;  // this family's proxier does not see the Service

  const std::string name = port.name.toString();
  const std::string proto(lowerProtocol(port.name.protocol));
  const std::string protoMatch = "-m " + proto + " -p " + proto;
  const std::string servicePort = portText(port.spec.port);
  const EndpointSelection& sel = port.selectionFor(o.family);
  const std::vector<IpAddress> externalIPs = ofFamily(svc.externalIPs, o.family);
  const std::vector<IpAddress> lbIPs = ofFamily(svc.loadBalancerIPs, o.family);
  const std::vector<Cidr> sourceRanges = ofFamily(svc.loadBalancerSourceRanges, o.family);

  const std::string clusterChain = clusterPolicyChain(port.name);
  const std::string localChain = localPolicyChain(port.name);
  const bool usesClusterChain = !sel.cluster.empty() && port.usesClusterEndpoints(o.family);
  const bool usesLocalChain = !sel.local.empty() && port.usesLocalEndpoints(o.family);
  const bool hasEndpoints = sel.hasAnyEndpoints;

  // Internal (ClusterIP) traffic goes to the Local chain under internalTrafficPolicy: Local.
  std::string internalChain = clusterChain;
  bool hasInternalEndpoints = hasEndpoints;
  if (svc.internalPolicyLocal()) {
    internalChain = localChain;
    if (sel.local.empty()) hasInternalEndpoints = false;
  }
  // External traffic goes through the EXT chain, then to the chain its policy picks.
  std::string externalPolicyChain = clusterChain;
  bool hasExternalEndpoints = hasEndpoints;
  if (svc.externalPolicyLocal()) {
    externalPolicyChain = localChain;
    if (sel.local.empty()) hasExternalEndpoints = false;
  }
  const std::string extChain = externalChain(port.name);
  // Needed even without externally usable endpoints, for the short-circuit of local traffic.
  const bool usesExtChain = hasEndpoints && port.externallyAccessible(o.family);
  const std::string fwChain = firewallChain(port.name);
  const bool usesFwChain = hasEndpoints && !lbIPs.empty() && !sourceRanges.empty();
  const std::string lbChain = usesFwChain ? fwChain : extChain;

  // No endpoints at all: REJECT (the client learns at once). Endpoints, but none for this
  // traffic's Local policy: DROP (as kube-proxy: the client may be retried elsewhere).
  std::string internalFilterTarget, internalFilterComment;
  std::string externalFilterTarget, externalFilterComment;
  if (!hasEndpoints) {
    internalFilterTarget = externalFilterTarget = "REJECT";
    internalFilterComment = externalFilterComment = comment(name + " has no endpoints");
  } else {
    if (!hasInternalEndpoints) {
      internalFilterTarget = "DROP";
      internalFilterComment = comment(name + " has no local endpoints");
    }
    if (!hasExternalEndpoints) {
      externalFilterTarget = "DROP";
      externalFilterComment = comment(name + " has no local endpoints");
    }
  }

  // Capture the ClusterIP.
  const std::string clusterMatch =
      protoMatch + " -d " + clusterIP->toString() + " --dport " + servicePort;
  if (hasInternalEndpoints) {
    r.natServices.push_back(comment(name + " cluster IP") + " " + clusterMatch + " -j " +
                            internalChain);
  } else {
    r.filterServices.push_back(internalFilterComment + " " + clusterMatch + " -j " +
                               internalFilterTarget);
  }

  // Capture external IPs.
  for (const IpAddress& ip : externalIPs) {
    const std::string match = protoMatch + " -d " + ip.toString() + " --dport " + servicePort;
    if (hasEndpoints) {
      r.natServices.push_back(comment(name + " external IP") + " " + match + " -j " + extChain);
    }
    if (!hasExternalEndpoints) {
      r.filterExternalServices.push_back(externalFilterComment + " " + match + " -j " +
                                         externalFilterTarget);
    }
  }

  // Capture LoadBalancer ingress IPs.
  for (const IpAddress& ip : lbIPs) {
    const std::string match = protoMatch + " -d " + ip.toString() + " --dport " + servicePort;
    if (hasEndpoints) {
      r.natServices.push_back(comment(name + " loadbalancer IP") + " " + match + " -j " + lbChain);
    }
    if (usesFwChain) {
      r.filterFirewall.push_back(comment(name + " traffic not accepted by " + fwChain) + " " +
                                 match + " -j DROP");
    }
  }
  if (!hasExternalEndpoints) {
    for (const IpAddress& ip : lbIPs) {
      r.filterExternalServices.push_back(externalFilterComment + " " + protoMatch + " -d " +
                                         ip.toString() + " --dport " + servicePort + " -j " +
                                         externalFilterTarget);
    }
  }

  // Capture the NodePort (not subject to loadBalancerSourceRanges, as in kube-proxy).
  if (port.spec.nodePort != 0) {
    const std::string nodePort = portText(port.spec.nodePort);
    if (hasEndpoints) {
      r.natNodePorts.push_back(comment(name) + " " + protoMatch + " --dport " + nodePort + " -j " +
                               extChain);
    }
    if (!hasExternalEndpoints) {
      r.filterExternalServices.push_back(externalFilterComment + " -m addrtype --dst-type LOCAL " +
                                         protoMatch + " --dport " + nodePort + " -j " +
                                         externalFilterTarget);
    }
  }

  // Let the load balancer's health checks in, local endpoints or not.
  if (svc.healthCheckNodePort != 0) {
    r.filterNodePorts.push_back(comment(name + " health check node port") +
                                " -m tcp -p tcp --dport " + portText(svc.healthCheckNodePort) +
                                " -j ACCEPT");
  }

  // Internal traffic: masquerade what does not come from a pod (it may leave the node again).
  if (hasInternalEndpoints) {
    const std::string args = comment(name + " cluster IP") + " " + clusterMatch;
    if (o.masqueradeAll) {
      appendRule(r.natChainRules, r.natChainRuleCount, internalChain,
                 args + " -j " + kMarkMasqChain);
    } else if (o.clusterCIDR) {
      appendRule(r.natChainRules, r.natChainRuleCount, internalChain,
                 args + " ! -s " + o.clusterCIDR->toString() + " -j " + kMarkMasqChain);
    }
  }

  // External traffic.
  if (usesExtChain) {
    r.natChains.push_back(extChain);
    if (!svc.externalPolicyLocal()) {
      // Endpoints on other nodes: masquerade, or the reply would bypass this node.
      appendRule(r.natChainRules, r.natChainRuleCount, extChain,
                 comment("masquerade traffic for " + name + " external destinations") + " -j " +
                     kMarkMasqChain);
    } else {
      // Local endpoints only: the client's source is kept. Pods reaching an external address of
      // the service are treated as if they went out to the balancer and came back: Cluster.
      if (o.clusterCIDR) {
        appendRule(r.natChainRules, r.natChainRuleCount, extChain,
                   comment("pod traffic for " + name + " external destinations") + " -s " +
                       o.clusterCIDR->toString() + " -j " + clusterChain);
      }
      // The node itself: its source is a local address (possibly the LB IP), so masquerade,
      // and it may use any endpoint.
      appendRule(r.natChainRules, r.natChainRuleCount, extChain,
                 comment("masquerade LOCAL traffic for " + name + " external destinations") +
                     " -m addrtype --src-type LOCAL -j " + kMarkMasqChain);
      appendRule(r.natChainRules, r.natChainRuleCount, extChain,
                 comment("route LOCAL traffic for " + name + " external destinations") +
                     " -m addrtype --src-type LOCAL -j " + clusterChain);
    }
    if (hasExternalEndpoints) {
      appendRule(r.natChainRules, r.natChainRuleCount, extChain, "-j " + externalPolicyChain);
    }
  }

  // loadBalancerSourceRanges: only listed sources reach EXT; the rest falls through to the DROP
  // in KUBE-PROXY-FIREWALL.
  if (usesFwChain) {
    r.natChains.push_back(fwChain);
    const std::string args = comment(name + " loadbalancer IP");
    bool allowFromNode = false;
    for (const Cidr& cidr : sourceRanges) {
      appendRule(r.natChainRules, r.natChainRuleCount, fwChain,
                 args + " -s " + cidr.toString() + " -j " + extChain);
      if (o.nodeIP && cidr.contains(*o.nodeIP)) allowFromNode = true;
    }
    // The node reaching its own LB IP loops back with the LB IP as source.
    if (allowFromNode) {
      for (const IpAddress& ip : lbIPs) {
        appendRule(r.natChainRules, r.natChainRuleCount, fwChain,
                   args + " -s " + ip.toString() + " -j " + extChain);
      }
    }
    appendRule(r.natChainRules, r.natChainRuleCount, fwChain,
               comment("other traffic to " + name + " will be dropped by KUBE-PROXY-FIREWALL"));
  }

  if (usesClusterChain) {
    r.natChains.push_back(clusterChain);
    serviceToEndpointRules(r, port, clusterChain, sel.cluster, largeCluster);
  }
  if (usesLocalChain) {
    r.natChains.push_back(localChain);
    serviceToEndpointRules(r, port, localChain, sel.local, largeCluster);
  }

  // One chain per reachable endpoint: masquerade hairpin traffic (a pod reaching itself through
  // the Service), remember the client for affinity, DNAT.
  for (uint32_t i : sel.allReachable) {
    const Endpoint& ep = port.endpoints[i];
    const std::string sep = endpointChain(port.name, ep);
    r.natChains.push_back(sep);
    const std::string args = largeCluster ? std::string() : comment(name) + " ";
    appendRule(r.natChainRules, r.natChainRuleCount, sep,
               args + "-s " + ep.ip.toString() + " -j " + kMarkMasqChain);
    std::string dnat = args;
    if (svc.sessionAffinity == SessionAffinity::kClientIP) {
      dnat += "-m recent --name " + sep + " --set ";
    }
    appendRule(r.natChainRules, r.natChainRuleCount, sep,
               dnat + protoMatch + " -j DNAT --to-destination " + ep.toString());
  }
  return r;
}

AppliedPort AppliedPort::of(const PortRules& rules) {
  AppliedPort a;
  // The digest covers every rule, so a change anywhere in the port's rules shows.
  std::string all = rules.natChainRules;
  for (const auto* list :
       {&rules.natChains, &rules.natServices, &rules.natNodePorts, &rules.filterServices,
        &rules.filterExternalServices, &rules.filterNodePorts, &rules.filterFirewall}) {
    all.push_back('\x1e');
    for (const std::string& s : *list) all.append(s).push_back('\n');
  }
  a.digest = stableHash64(all, 0);
  a.natChains = rules.natChains;
  a.natServices = rules.natServices;
  a.natNodePorts = rules.natNodePorts;
  a.filterServices = rules.filterServices;
  a.filterExternalServices = rules.filterExternalServices;
  a.filterNodePorts = rules.filterNodePorts;
  a.filterFirewall = rules.filterFirewall;
  return a;
}

namespace {

std::string chainLine(const std::string& chain) { return ":" + chain + " - [0:0]\n"; }

const char kNodePortsComment[] =
    "\"kubernetes service nodeports; NOTE: this must be the last rule in this chain\"";

// The rules that do not depend on services, and the final jump to KUBE-NODEPORTS.
void natPreamble(std::string& out, size_t& count, const RuleOptions& o) {
  const std::string mark = o.masqueradeMark + "/" + o.masqueradeMark;
  appendRule(out, count, kPostroutingChain, "-m mark ! --mark " + mark + " -j RETURN");
  // Clear the mark, so a packet going through the stack again is not masqueraded twice.
  appendRule(out, count, kPostroutingChain, "-j MARK --xor-mark " + o.masqueradeMark);
  appendRule(out, count, kPostroutingChain,
             std::string("-m comment --comment \"kubernetes service traffic requiring SNAT\" -j "
                         "MASQUERADE") +
                 (o.randomFully ? " --random-fully" : ""));
  appendRule(out, count, kMarkMasqChain, "-j MARK --or-mark " + o.masqueradeMark);
}

void natNodePortsJump(std::string& out, size_t& count, const RuleOptions& o) {
  const bool v6 = o.family == IpFamily::kV6;
  if (!o.nodePortAddresses) {
    std::string dest = "-m addrtype --dst-type LOCAL";
    // Localhost NodePorts never work on IPv6, and on IPv4 only with route_localnet.
    if (v6) {
      dest += " ! -d ::1/128";
    } else if (!o.localhostNodePorts) {
      dest += " ! -d 127.0.0.0/8";
    }
    appendRule(out, count, kServicesChain,
               std::string("-m comment --comment ") + kNodePortsComment + " " + dest + " -j " +
                   kNodePortsChain);
    return;
  }
  for (const IpAddress& ip : *o.nodePortAddresses) {
    if (ip.family() != o.family) continue;
    if (ip.isLoopback() && (v6 || !o.localhostNodePorts)) continue;
    appendRule(out, count, kServicesChain,
               std::string("-m comment --comment ") + kNodePortsComment + " -d " + ip.toString() +
                   " -j " + kNodePortsChain);
  }
}

void filterFixedRules(std::string& out, size_t& count, const RuleOptions& o) {
  if (o.family == IpFamily::kV4 && o.localhostNodePorts) {
    // route_localnet (which localhost NodePorts need) would let other hosts reach 127.0.0.0/8
    // services on this node (kubernetes/kubernetes#90259); this closes that.
    appendRule(out, count, kFirewallChain,
               "-m comment --comment \"block incoming localnet connections\" -d 127.0.0.0/8 ! -s "
               "127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP");
  }
  if (!o.conntrackTcpLiberal) {
    appendRule(out, count, kForwardChain, "-m conntrack --ctstate INVALID -j DROP");
  }
  appendRule(out, count, kForwardChain,
             "-m comment --comment \"kubernetes forwarding rules\" -m mark --mark " +
                 o.masqueradeMark + "/" + o.masqueradeMark + " -j ACCEPT");
  appendRule(out, count, kForwardChain,
             "-m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack "
             "--ctstate RELATED,ESTABLISHED -j ACCEPT");
}

// A rule in the canary chain, in mangle as kube-proxy keeps its canary there: a firewall reload
// (or anyone flushing the tables) loses it, which the proxier notices before its next partial
// sync. Mangle is small, so the check is cheap with both backends (legacy copies the whole
// table out of the kernel for any lookup: 165 ms for a nat table of 100,000 rules).
const char kCanaryRule[] =
    "-m comment --comment \"capstan: a flush of this table forces a full sync\" -j RETURN";

}  // namespace

Payload fullPayload(const ProxyState& state, const RuleOptions& o,
                    const std::set<std::string>& staleChains, AppliedRules& applied) {
  const bool large = isLargeCluster(state, o);
  std::vector<std::pair<ServicePortName, PortRules>> ports;
  ports.reserve(state.servicePorts().size());
  size_t chainBytes = 0;
  for (const auto& port : state.servicePorts()) {
    PortRules rules = portRules(*port, o, large);
    if (rules.ruleCount() == 0 && rules.natChains.empty()) continue;
    chainBytes += rules.natChainRules.size();
    ports.emplace_back(port->name, std::move(rules));
  }

  Payload p;
  std::string& out = p.text;
  out.reserve(chainBytes + ports.size() * 512 + 4096);

  out += "*filter\n";
  for (const char* chain : {kServicesChain, kExternalServicesChain, kForwardChain, kNodePortsChain,
                            kProxyFirewallChain}) {
    out += chainLine(chain);
  }
  if (o.family == IpFamily::kV4 && o.localhostNodePorts) out += chainLine(kFirewallChain);
  for (const auto& [name, r] : ports) {
    for (const auto& b : r.filterNodePorts) appendRule(out, p.rules, kNodePortsChain, b);
    for (const auto& b : r.filterServices) appendRule(out, p.rules, kServicesChain, b);
    for (const auto& b : r.filterExternalServices) {
      appendRule(out, p.rules, kExternalServicesChain, b);
    }
    for (const auto& b : r.filterFirewall) appendRule(out, p.rules, kProxyFirewallChain, b);
  }
  filterFixedRules(out, p.rules, o);
  out += "COMMIT\n*nat\n";
  for (const char* chain : {kServicesChain, kNodePortsChain, kPostroutingChain, kMarkMasqChain}) {
    out += chainLine(chain);
  }
  std::set<std::string> active;
  for (const auto& [name, r] : ports) {
    for (const auto& chain : r.natChains) {
      out += chainLine(chain);
      active.insert(chain);
    }
  }
  for (const std::string& chain : staleChains) {
    if (!active.count(chain)) out += chainLine(chain);  // flushes it, so it can be deleted
  }
  natPreamble(out, p.rules, o);
  for (const auto& [name, r] : ports) {
    for (const auto& b : r.natServices) appendRule(out, p.rules, kServicesChain, b);
    for (const auto& b : r.natNodePorts) appendRule(out, p.rules, kNodePortsChain, b);
    out += r.natChainRules;
    p.rules += r.natChainRuleCount;
  }
  for (const std::string& chain : staleChains) {
    if (!active.count(chain)) out += "-X " + chain + "\n";
  }
  natNodePortsJump(out, p.rules, o);
  out += "COMMIT\n";
  // Last, so that it stands only once the tables before it went in.
  out += "*mangle\n" + chainLine(kCanaryChain);
  appendRule(out, p.rules, kCanaryChain, kCanaryRule);
  out += "COMMIT\n";

  applied.clear();
  for (const auto& [name, r] : ports) applied.emplace(name, AppliedPort::of(r));
  return p;
}

namespace {

// Lines that delete the rules of `before` not in `after` and add those of `after` not in
// `before`, for one top-level chain. `insertAtTop` keeps nat KUBE-SERVICES' final jump last.
void diffRules(const std::vector<std::string>& before, const std::vector<std::string>& after,
               const char* chain, bool insertAtTop, std::string& deletes, std::string& adds,
               size_t& count) {
  for (const auto& b : before) {
    if (std::find(after.begin(), after.end(), b) == after.end()) {
      deletes.append("-D ").append(chain).append(" ").append(b).append("\n");
      ++count;
    }
  }
  for (const auto& b : after) {
    if (std::find(before.begin(), before.end(), b) == before.end()) {
      adds.append(insertAtTop ? "-I " : "-A ").append(chain).append(insertAtTop ? " 1 " : " ");
      adds.append(b).append("\n");
      ++count;
    }
  }
}

}  // namespace

Payload partialPayload(const ProxyState& state, const RuleOptions& o,
                       const std::vector<ServicePortName>& names, const AppliedRules& applied,
                       AppliedUpdates& updates) {
  const bool large = isLargeCluster(state, o);
  static const AppliedPort kNone;
  std::string filterLines, natChainLines, natDeletes, natRules, natAdds, natDrops;
  Payload p;
  for (const ServicePortName& name : names) {
    PortRules rules;
    if (const ServicePort* port = state.find(name)) rules = portRules(*port, o, large);
    const bool exists = rules.ruleCount() > 0 || !rules.natChains.empty();
    auto it = applied.find(name);
    const AppliedPort& before = it == applied.end() ? kNone : it->second;
    AppliedPort after = exists ? AppliedPort::of(rules) : AppliedPort{};
    if (it == applied.end() && !exists) continue;
    if (it != applied.end() && exists && before.digest == after.digest) continue;

    diffRules(before.filterServices, after.filterServices, kServicesChain, false, filterLines,
              filterLines, p.rules);
    diffRules(before.filterExternalServices, after.filterExternalServices, kExternalServicesChain,
              false, filterLines, filterLines, p.rules);
    diffRules(before.filterNodePorts, after.filterNodePorts, kNodePortsChain, false, filterLines,
              filterLines, p.rules);
    diffRules(before.filterFirewall, after.filterFirewall, kProxyFirewallChain, false, filterLines,
              filterLines, p.rules);
    diffRules(before.natServices, after.natServices, kServicesChain, true, natDeletes, natAdds,
              p.rules);
    diffRules(before.natNodePorts, after.natNodePorts, kNodePortsChain, false, natDeletes, natAdds,
              p.rules);
    // Every chain of the port is written again (a chain line flushes it); chains it no longer
    // has are flushed and, once nothing refers to them, deleted.
    for (const std::string& chain : after.natChains) natChainLines += chainLine(chain);
    for (const std::string& chain : before.natChains) {
      if (std::find(after.natChains.begin(), after.natChains.end(), chain) ==
          after.natChains.end()) {
        natChainLines += chainLine(chain);
        natDrops += "-X " + chain + "\n";
      }
    }
    natRules += rules.natChainRules;
    p.rules += rules.natChainRuleCount;
    updates.emplace_back(name, exists ? std::optional(std::move(after)) : std::nullopt);
  }
  if (!filterLines.empty()) p.text += "*filter\n" + filterLines + "COMMIT\n";
  if (!natChainLines.empty() || !natDeletes.empty() || !natAdds.empty()) {
    // Deletions of top-level rules come before the chains they pointed to are deleted; new
    // top-level rules come after the chains they point to exist.
    p.text += "*nat\n" + natChainLines + natDeletes + natRules + natAdds + natDrops + "COMMIT\n";
  }
  return p;
}

void applyUpdates(AppliedRules& applied, AppliedUpdates&& updates) {
  for (auto& [name, value] : updates) {
    if (value) {
      applied[name] = std::move(*value);
    } else {
      applied.erase(name);
    }
  }
}

std::string cleanupPayload(const std::vector<std::string>& natChains,
                           const std::vector<std::string>& filterChains,
                           const std::vector<std::string>& mangleChains) {
  std::string out;
  auto table = [&](const char* name, const std::vector<std::string>& chains) {
    if (chains.empty()) return;
    out += std::string("*") + name + "\n";
    for (const auto& chain : chains) out += chainLine(chain);
    for (const auto& chain : chains) out += "-X " + chain + "\n";
    out += "COMMIT\n";
  };
  table("filter", filterChains);
  table("nat", natChains);
  table("mangle", mangleChains);
  return out;
}

std::vector<JumpRule> jumpRules(const RuleOptions& o) {
  // Arguments for execve: no shell, so no quotes around comments.
  auto c = [](const char* text) { return std::string(text); };
  const std::vector<std::string> ctNew = {"-m", "conntrack", "--ctstate", "NEW"};
  auto with = [](std::vector<std::string> match, std::vector<std::string> rest) {
    match.insert(match.end(), rest.begin(), rest.end());
    return match;
  };
  std::vector<JumpRule> jumps = {
      {"filter", "INPUT",
       with(ctNew,
            {"-m", "comment", "--comment", c("kubernetes externally-visible service portals"), "-j",
             kExternalServicesChain})},
      {"filter", "FORWARD",
       with(ctNew,
            {"-m", "comment", "--comment", c("kubernetes externally-visible service portals"), "-j",
             kExternalServicesChain})},
      {"filter",
       "INPUT",
       {"-m", "comment", "--comment", c("kubernetes health check service ports"), "-j",
        kNodePortsChain}},
      {"filter", "FORWARD",
       with(ctNew,
            {"-m", "comment", "--comment", c("kubernetes service portals"), "-j", kServicesChain})},
      {"filter", "OUTPUT",
       with(ctNew,
            {"-m", "comment", "--comment", c("kubernetes service portals"), "-j", kServicesChain})},
      {"filter",
       "FORWARD",
       {"-m", "comment", "--comment", c("kubernetes forwarding rules"), "-j", kForwardChain}},
      {"filter", "INPUT",
       with(ctNew, {"-m", "comment", "--comment", c("kubernetes load balancer firewall"), "-j",
                    kProxyFirewallChain})},
      {"filter", "OUTPUT",
       with(ctNew, {"-m", "comment", "--comment", c("kubernetes load balancer firewall"), "-j",
                    kProxyFirewallChain})},
      {"filter", "FORWARD",
       with(ctNew, {"-m", "comment", "--comment", c("kubernetes load balancer firewall"), "-j",
                    kProxyFirewallChain})},
      {"nat",
       "OUTPUT",
       {"-m", "comment", "--comment", c("kubernetes service portals"), "-j", kServicesChain}},
      {"nat",
       "PREROUTING",
       {"-m", "comment", "--comment", c("kubernetes service portals"), "-j", kServicesChain}},
      {"nat",
       "POSTROUTING",
       {"-m", "comment", "--comment", c("kubernetes postrouting rules"), "-j", kPostroutingChain}},
  };
  // kubelet's jumps to KUBE-FIREWALL, which kube-proxy ensures too where it creates the chain.
  if (o.family == IpFamily::kV4 && o.localhostNodePorts) {
    jumps.push_back({"filter", "INPUT", {"-j", kFirewallChain}});
    jumps.push_back({"filter", "OUTPUT", {"-j", kFirewallChain}});
  }
  return jumps;
}

namespace {

// The order in which service chains can be written: a chain only jumps to chains of a lower rank
// (or to KUBE-MARK-MASQ, written before all of them).
int serviceChainRank(std::string_view chain) {
  if (chain.starts_with("KUBE-SEP-")) return 0;
  if (chain.starts_with("KUBE-SVC-") || chain.starts_with("KUBE-SVL-")) return 1;
  if (chain.starts_with("KUBE-EXT-")) return 2;
  return 3;  // KUBE-FW-
}

// The chain a "-A CHAIN ..." or ":CHAIN ..." line is about.
std::string_view chainOf(std::string_view line, size_t offset) {
  std::string_view rest = line.substr(offset);
  return rest.substr(0, rest.find(' '));
}

}  // namespace

std::vector<std::string> splitRestorePayload(const std::string& payload, size_t maxServiceChains) {
  if (maxServiceChains == 0) return {payload};
  // Find the nat section and its service chains.
  size_t natStart = payload.find("*nat\n");
  if (natStart == std::string::npos || (natStart != 0 && payload[natStart - 1] != '\n')) {
    return {payload};
  }
  size_t natBody = natStart + 5;
  size_t natEnd = payload.find("\nCOMMIT\n", natBody - 1);
  if (natEnd == std::string::npos) return {payload};
  natEnd += 1;  // at "COMMIT\n"

  struct Chain {
    std::string_view name;
    std::string_view declaration;
    std::vector<std::string_view> rules;
  };
  std::vector<Chain> serviceChains;
  std::map<std::string_view, size_t> byName;
  std::string_view body(payload.data() + natBody, natEnd - natBody);
  std::vector<std::string_view> rest;  // every other line of the nat section, in order
  std::string_view markMasqDeclaration;
  std::vector<std::string_view> markMasqRules;
  // Chains deleted at the end stay with their deletion in the last input: flushing one earlier
  // would empty a chain the old top-level rules still jump to.
  std::set<std::string_view> deleted;
  for (size_t at = body.find("-X "); at != std::string_view::npos; at = body.find("-X ", at + 3)) {
    if (at == 0 || body[at - 1] == '\n')
      deleted.insert(chainOf(body.substr(0, body.find('\n', at)), at + 3));
  }
  for (size_t pos = 0; pos < body.size();) {
    size_t eol = body.find('\n', pos);
    if (eol == std::string_view::npos) eol = body.size();
    std::string_view line = body.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.starts_with(':')) {
      std::string_view chain = chainOf(line, 1);
      if (isServiceChain(chain) && !deleted.count(chain)) {
        byName.emplace(chain, serviceChains.size());
        serviceChains.push_back({chain, line, {}});
        continue;
      }
      if (chain == kMarkMasqChain) {
        markMasqDeclaration = line;
        continue;
      }
    } else if (line.starts_with("-A ")) {
      std::string_view chain = chainOf(line, 3);
      if (auto it = byName.find(chain); it != byName.end()) {
        serviceChains[it->second].rules.push_back(line);
        continue;
      }
      if (chain == kMarkMasqChain) {
        markMasqRules.push_back(line);
        continue;
      }
    }
    rest.push_back(line);
  }
  if (serviceChains.size() <= maxServiceChains) return {payload};

  std::stable_sort(serviceChains.begin(), serviceChains.end(), [](const Chain& a, const Chain& b) {
    return serviceChainRank(a.name) < serviceChainRank(b.name);
  });
  std::vector<std::string> out;
  auto appendLine = [](std::string& to, std::string_view line) {
    to.append(line);
    to += '\n';
  };
  if (!markMasqDeclaration.empty()) {
    std::string first = "*nat\n";
    appendLine(first, markMasqDeclaration);
    for (std::string_view r : markMasqRules) appendLine(first, r);
    first += "COMMIT\n";
    out.push_back(std::move(first));
  }
  for (size_t i = 0; i < serviceChains.size(); i += maxServiceChains) {
    size_t end = std::min(serviceChains.size(), i + maxServiceChains);
    std::string part = "*nat\n";
    for (size_t c = i; c < end; ++c) appendLine(part, serviceChains[c].declaration);
    for (size_t c = i; c < end; ++c) {
      for (std::string_view r : serviceChains[c].rules) appendLine(part, r);
    }
    part += "COMMIT\n";
    out.push_back(std::move(part));
  }
  // The last input: the other tables as they were, and what remains of nat in its place.
  std::string last = payload.substr(0, natBody);
  for (std::string_view line : rest) appendLine(last, line);
  last.append(payload, natEnd, std::string::npos);
  out.push_back(std::move(last));
  return out;
}

std::set<std::string> serviceChainsIn(const std::string& save) {
  std::set<std::string> out;
  std::istringstream in(save);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() < 2 || line[0] != ':') continue;
    std::string chain = line.substr(1, line.find(' ') - 1);
    if (isServiceChain(chain)) out.insert(chain);
  }
  return out;
}

}  // namespace capstan::iptables
