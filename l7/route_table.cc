#include "l7/route_table.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <utility>

namespace capstan::l7 {

namespace {

char lowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = lowerAscii(c);
  return out;
}

std::string quote(std::string_view text) { return "\"" + std::string(text) + "\""; }

// A stored Prefix path: without its trailing slashes, so "/" becomes "" (every path).
std::string_view prefixKey(std::string_view path) {
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  return path;
}

// Ingress spec: Prefix matching is done element-wise on the path split by '/'. A prefix of the
// request path that ends at a segment boundary — the start, a '/', or the end — is an element-wise
// prefix, so `visit(length, hash)` is called for each such length (with the running hash state over
// path[0, length)), shortest first, until it returns false. A boundary right after a '/' closes an
// empty segment ("/a//b") and is skipped: no stored prefix ends with '/'.
template <typename Visit>
void forEachSegmentPrefix(std::string_view path, Visit&& visit) {
  KeyHash hash;
  for (size_t i = 0;; ++i) {
    const bool end = i == path.size();
    if ((end || path[i] == '/') && (i == 0 || path[i - 1] != '/')) {
      if (!visit(i, hash)) return;
    }
    if (end) return;
    hash.add(path[i]);
  }
}

}  // namespace

std::string_view canonicalHost(std::string_view host, std::span<char, kMaxHostLength> buffer) {
  if (!host.empty() && host.front() == '[') return {};  // an IPv6 literal
  if (size_t colon = host.find(':'); colon != std::string_view::npos) host = host.substr(0, colon);
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.size() > buffer.size()) return {};
  for (size_t i = 0; i < host.size(); ++i) buffer[i] = lowerAscii(host[i]);
  return {buffer.data(), host.size()};
}

// Fills a RouteTable from a ProxyState in one pass over its Ingresses, in namespace/name order so
// that every conflict resolves the same way on every node and every sync.
class RouteTable::Builder {
 public:
  Builder(const ProxyState& state, const HealthReport* health, RouteTable& table)
      : state_(state), health_(health), t_(table) {}

  void run() {
    t_.generation_ = state_.generation();
    t_.ingresses_ = state_.ingress().ingresses;
    std::stable_sort(t_.ingresses_.begin(), t_.ingresses_.end(),
                     [](const auto& a, const auto& b) { return a->name < b->name; });
    // Routes point into policies_: no reallocation after this.
    t_.policies_.reserve(t_.ingresses_.size());
    t_.healthPolicies_.reserve(t_.ingresses_.size());
    for (const auto& ingress : t_.ingresses_) {
      t_.policies_.push_back(policyOf(*ingress));
      t_.healthPolicies_.push_back(healthPolicyOf(*ingress));
      addDefaultBackend(*ingress, t_.policies_.back());
      for (size_t r = 0; r < ingress->rules.size(); ++r) {
        for (size_t p = 0; p < ingress->rules[r].paths.size(); ++p) {
          addPath(*ingress, r, p, t_.policies_.back());
        }
      }
      addTls(*ingress);
    }
    if (health_ != nullptr) leaveOutDownEndpoints();
    // backends_ and routes_ are complete: their addresses are final.
    for (Route& route : t_.routes_) route.backend = &t_.backends_[routeBackends_[route.id]];
    if (defaultRoute_ != kNone) t_.defaultRoute_ = &t_.routes_[defaultRoute_];
    if (defaultTls_ != kNone) t_.defaultTls_ = &t_.tls_[defaultTls_];
  }

 private:
  static constexpr uint32_t kNone = StringIndex::kNotFound;

  void warn(const Ingress& ingress, std::string_view field, std::string_view message) {
    t_.warnings_.push_back("Ingress " + ingress.name.toString() + ": " + std::string(field) + ": " +
                           std::string(message));
  }

  LoadBalancePolicy policyOf(const Ingress& ingress) {
    auto it = ingress.annotations.find(std::string(kLoadBalanceAnnotation));
    if (it == ingress.annotations.end()) return {};
    Result<LoadBalancePolicy> policy = parseLoadBalancePolicy(it->second);
    if (policy) return *policy;
    const LoadBalancePolicy fallback;
    warn(ingress, "metadata.annotations[" + std::string(kLoadBalanceAnnotation) + "]",
         policy.error().message() + "; using " + fallback.toString());
    return fallback;
  }

  std::optional<HealthCheckPolicy> healthPolicyOf(const Ingress& ingress) {
    auto policy = healthCheckPolicyOf(ingress);
    if (policy) return *policy;
    // The error names the annotation.
    t_.warnings_.push_back("Ingress " + ingress.name.toString() + ": " + policy.error().message() +
                           "; no health checks for its backends");
    return std::nullopt;
  }

  // The backend's health-check policy: the first Ingress's (namespace/name order) that has one.
  void checkHealth(const Ingress& ingress, Backend& backend) {
    const std::optional<HealthCheckPolicy>& policy = t_.healthPolicies_.back();
    if (!policy || !backend.found) return;
    if (backend.healthCheck == nullptr) {
      backend.healthCheck = &*policy;
    } else if (*backend.healthCheck != *policy && warned_.insert({&ingress, backend.id}).second) {
      warn(ingress, "metadata.annotations",
           "the health checks of " + backend.servicePort.toString() +
               " differ from another Ingress's, which comes first in namespace/name order and is "
               "used");
    }
  }

  // With a health report: the endpoints checked down leave their backends, unless all are down.
  void leaveOutDownEndpoints() {
    for (Backend& backend : t_.backends_) {
      if (backend.healthCheck == nullptr) continue;
      std::vector<RouteEndpoint> up;
      for (const RouteEndpoint& e : backend.endpoints) {
        (health_->isDown(backend.servicePort, e.ip, e.port) ? backend.down : up).push_back(e);
      }
      if (up.empty()) {
        backend.down.clear();  // panic: all down, all kept
        continue;
      }
      backend.endpoints = std::move(up);
    }
  }

  uint32_t newRoute(const Ingress& ingress, const LoadBalancePolicy& policy, uint32_t backend) {
    Route route;
    route.id = static_cast<uint32_t>(t_.routes_.size());
    route.ingress = &ingress;
    route.loadBalance = &policy;
    t_.routes_.push_back(route);
    routeBackends_.push_back(backend);
    return route.id;
  }

  void addDefaultBackend(const Ingress& ingress, const LoadBalancePolicy& policy) {
    if (!ingress.defaultBackend) return;
    if (defaultRoute_ != kNone) {
      warn(ingress, "spec.defaultBackend",
           "Ingress " + t_.routes_[defaultRoute_].ingress->name.toString() +
               " provides the defaultBackend already (first in namespace/name order); ignored");
      return;
    }
    const uint32_t backend = backendFor(ingress, *ingress.defaultBackend, "spec.defaultBackend");
    defaultRoute_ = newRoute(ingress, policy, backend);
    t_.routes_[defaultRoute_].isDefaultBackend = true;
  }

  // The virtual host of a rule's host: one per distinct exact host and per wildcard domain.
  uint32_t vhostFor(std::string_view host) {
    if (host.empty()) return kAnyHost;
    bool inserted = false;
    const bool wildcard = host.starts_with("*.");
    const std::string key = lower(wildcard ? host.substr(2) : host);
    const uint32_t vhost =
        t_.hosts_.emplace(wildcard ? kWildcardHost : kExactHost, key, nextVhost_, &inserted);
    if (inserted) ++nextVhost_;
    return vhost;
  }

  void addPath(const Ingress& ingress, size_t r, size_t p, const LoadBalancePolicy& policy) {
    const IngressRule& rule = ingress.rules[r];
    const IngressPath& path = rule.paths[p];
    const std::string field =
        "spec.rules[" + std::to_string(r) + "].http.paths[" + std::to_string(p) + "]";
    const uint32_t vhost = vhostFor(rule.host);
    const uint32_t id = static_cast<uint32_t>(t_.routes_.size());
    bool inserted = false;
    uint32_t winner = kNone;
    if (path.pathType == PathType::kExact) {
      winner = t_.exactPaths_.emplace(vhost, path.path, id, &inserted);
    } else {
      // ImplementationSpecific is matched as Prefix.
      const std::string_view key = prefixKey(path.path);
      uint32_t& stored = t_.prefixPaths_.emplace(vhost, key, id, &inserted);
      if (!inserted && stored == kPrefixOnTheWay) {
        stored = id;
        inserted = true;
      }
      winner = stored;
      if (inserted) {
        // Mark each shorter segment prefix so that match() walks on to this one.
        forEachSegmentPrefix(key, [&](size_t length, const KeyHash&) {
          if (length == key.size()) return false;
          bool fresh = false;
          t_.prefixPaths_.emplace(vhost, key.substr(0, length), kPrefixOnTheWay, &fresh);
          return true;
        });
      }
    }
    if (!inserted) {
      const Route& first = t_.routes_[winner];
      warn(ingress, field,
           "host " + quote(rule.host.empty() ? "*" : rule.host) + " path " + quote(path.path) +
               " (" + std::string(toString(path.pathType)) + ") is routed by Ingress " +
               first.ingress->name.toString() + " " +
               (first.ingress == &ingress ? "in an earlier path" : "already") +
               " (first in namespace/name order wins); ignored");
      return;
    }
    t_.vhostPaths_.resize(std::max<size_t>(t_.vhostPaths_.size(), vhost + 1));
    t_.vhostPaths_[vhost] |= path.pathType == PathType::kExact ? kHasExact : kHasPrefix;
    const uint32_t backend = backendFor(ingress, path.backend, field + ".backend");
    newRoute(ingress, policy, backend);
    Route& route = t_.routes_.back();
    route.host = rule.host;
    route.path = path.path;
    route.pathType = path.pathType;
  }

  // The Backend for an Ingress backend, shared by every route that names the same service port.
  uint32_t backendFor(const Ingress& ingress, const IngressBackend& ref, const std::string& field) {
    const std::string& ns = ingress.name.ns;
    if (!ref.service) {
      const std::string resource = ref.resourceKind + "/" + ref.resourceName;
      warn(ingress, field + ".resource",
           "resource backends (" + resource + ") are not served by Capstan; requests get 503");
      Backend backend;
      backend.servicePort.service = {ns, ""};
      backend.resource = resource;
      return addBackend(std::move(backend));
    }
    const IngressServiceBackend& svc = *ref.service;
    const std::string portRef =
        svc.portName.empty() ? std::to_string(svc.portNumber) : svc.portName;
    const std::string key = ns + "/" + svc.name + ":" + (svc.portName.empty() ? "#" : "") + portRef;
    auto [it, fresh] = backendIds_.try_emplace(key, kNone);
    if (fresh) it->second = resolve(ns, svc, portRef);
    Backend& backend = t_.backends_[it->second];
    checkHealth(ingress, backend);
    if (!backend.found && warned_.insert({&ingress, it->second}).second) {
      const std::string service = ns + "/" + svc.name;
      std::string problem;
      if (state_.portsOf({ns, svc.name}).empty()) {
        problem = "Service " + service + " not found (or without ports)";
      } else if (svc.portName.empty()) {
        problem = "Service " + service + " has no TCP port " + portRef;
      } else {
        problem = "Service " + service + " has no TCP port named " + quote(portRef);
      }
      warn(ingress, field + ".service", problem + "; requests get 503");
    }
    return it->second;
  }

  uint32_t resolve(const std::string& ns, const IngressServiceBackend& svc,
                   const std::string& portRef) {
    Backend backend;
    backend.servicePort.service = {ns, svc.name};
    backend.servicePort.port = portRef;
    for (const auto& port : state_.portsOf({ns, svc.name})) {
      if (port->name.protocol != Protocol::kTCP) continue;
      const bool same = svc.portName.empty() ? port->spec.port == svc.portNumber
                                             : port->spec.name == svc.portName;
      if (!same) continue;
      // Named by number in one place and by name in another: still one backend.
      auto [it, fresh] = resolvedIds_.try_emplace(port->name, kNone);
      if (!fresh) return it->second;
      backend.servicePort = port->name;
      backend.found = true;
      // kube-proxy's selection for traffic from this node: what a connection to the ClusterIP
      // from here would reach.
      for (IpFamily family : {IpFamily::kV4, IpFamily::kV6}) {
        const EndpointSelection& sel = port->selectionFor(family);
        const auto& chosen = port->usesClusterEndpoints(family) ? sel.cluster : sel.local;
        for (uint32_t i : chosen) {
          backend.endpoints.push_back({port->endpoints[i].ip, port->endpoints[i].port});
        }
      }
      it->second = addBackend(std::move(backend));
      return it->second;
    }
    return addBackend(std::move(backend));
  }

  uint32_t addBackend(Backend backend) {
    backend.id = static_cast<uint32_t>(t_.backends_.size());
    t_.backends_.push_back(std::move(backend));
    return t_.backends_.back().id;
  }

  void addTls(const Ingress& ingress) {
    for (size_t k = 0; k < ingress.tls.size(); ++k) {
      const IngressTls& tls = ingress.tls[k];
      const std::string field = "spec.tls[" + std::to_string(k) + "]";
      TlsEntry entry;
      entry.ingress = &ingress;
      if (!tls.secretName.empty()) {
        entry.secretName = {ingress.name.ns, tls.secretName};
        const auto& secrets = state_.ingress().secrets;  // sorted by name
        auto it = std::lower_bound(
            secrets.begin(), secrets.end(), entry.secretName,
            [](const auto& secret, const NamespacedName& name) { return secret->name < name; });
        if (it != secrets.end() && (*it)->name == entry.secretName) entry.secret = *it;
        if (!entry.secret) {
          warn(ingress, field + ".secretName",
               "Secret " + entry.secretName.toString() +
                   " not found (or not of type kubernetes.io/tls); its hosts get the default "
                   "certificate");
        }
      }
      const uint32_t index = static_cast<uint32_t>(t_.tls_.size());
      t_.tls_.push_back(std::move(entry));
      if (tls.hosts.empty()) {
        if (defaultTls_ == kNone) {
          defaultTls_ = index;
        } else {
          warn(ingress, field,
               "an entry without hosts (a default certificate) comes from Ingress " +
                   t_.tls_[defaultTls_].ingress->name.toString() + " already; ignored");
        }
      }
      for (size_t h = 0; h < tls.hosts.size(); ++h) {
        const std::string& host = tls.hosts[h];
        const bool wildcard = host.starts_with("*.");
        bool inserted = false;
        const uint32_t first =
            t_.tlsHosts_.emplace(wildcard ? kWildcardHost : kExactHost,
                                 lower(wildcard ? host.substr(2) : host), index, &inserted);
        const TlsEntry& winner = t_.tls_[first];
        if (!inserted && winner.secretName != t_.tls_[index].secretName) {
          warn(ingress, field + ".hosts[" + std::to_string(h) + "]",
               "host " + quote(host) + " has Secret " + winner.secretName.toString() +
                   " from Ingress " + winner.ingress->name.toString() + " already; ignored");
        }
      }
    }
  }

  const ProxyState& state_;
  const HealthReport* health_;
  RouteTable& t_;
  uint32_t nextVhost_ = kAnyHost + 1;
  uint32_t defaultRoute_ = kNone;
  uint32_t defaultTls_ = kNone;
  std::vector<uint32_t> routeBackends_;              // per route: index in backends_
  std::map<std::string, uint32_t> backendIds_;       // "ns/service:port" as written -> backends_
  std::map<ServicePortName, uint32_t> resolvedIds_;  // found service port -> backends_
  // (Ingress, backend) pairs reported: an unresolved backend, or a found one whose health-check
  // policy differs from the one used.
  std::set<std::pair<const Ingress*, uint32_t>> warned_;
};

std::shared_ptr<const RouteTable> RouteTable::build(const ProxyState& state,
                                                    const HealthReport* health) {
  std::shared_ptr<RouteTable> table(new RouteTable());
  Builder(state, health, *table).run();
  return table;
}

const Route* RouteTable::match(std::string_view host, std::string_view path) const {
  // The query and fragment are not part of the path (RFC 3986 3.3). A plain loop: libstdc++'s
  // find_first_of calls memchr once per character.
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '?' || path[i] == '#') {
      path = path.substr(0, i);
      break;
    }
  }
  char buffer[kMaxHostLength];
  const std::string_view name = canonicalHost(host, buffer);
  if (!name.empty()) {
    uint32_t vhost = hosts_.find(kExactHost, name);
    if (vhost != StringIndex::kNotFound) {
      if (const Route* route = matchPaths(vhost, path)) return route;
    }
    // A wildcard covers exactly one label: look up what follows the first one.
    const size_t dot = name.find('.');
    if (dot != std::string_view::npos && dot > 0) {
      vhost = hosts_.find(kWildcardHost, name.substr(dot + 1));
      if (vhost != StringIndex::kNotFound) {
        if (const Route* route = matchPaths(vhost, path)) return route;
      }
    }
  }
  if (const Route* route = matchPaths(kAnyHost, path)) return route;
  return defaultRoute_;
}

const Route* RouteTable::matchPaths(uint32_t vhost, std::string_view path) const {
  const uint8_t kinds = vhost < vhostPaths_.size() ? vhostPaths_[vhost] : 0;
  // Ingress spec: an Exact match wins over any Prefix, and no Prefix match can be longer.
  if ((kinds & kHasExact) != 0) {
    if (uint32_t id = exactPaths_.find(vhost, path); id != StringIndex::kNotFound) {
      return &routes_[id];
    }
  }
  if ((kinds & kHasPrefix) == 0) return nullptr;
  uint32_t best = StringIndex::kNotFound;
  forEachSegmentPrefix(path, [&](size_t length, const KeyHash& hash) {
    const uint32_t id = prefixPaths_.find(vhost, path.substr(0, length), hash.finish(vhost));
    if (id == StringIndex::kNotFound) return false;  // no stored prefix goes further
    if (id != kPrefixOnTheWay) best = id;            // longer than any found before
    return true;
  });
  return best == StringIndex::kNotFound ? nullptr : &routes_[best];
}

const TlsEntry* RouteTable::matchTls(std::string_view serverName) const {
  char buffer[kMaxHostLength];
  const std::string_view name = canonicalHost(serverName, buffer);
  if (name.empty()) return nullptr;
  if (uint32_t i = tlsHosts_.find(kExactHost, name); i != StringIndex::kNotFound) return &tls_[i];
  const size_t dot = name.find('.');
  if (dot == std::string_view::npos || dot == 0) return nullptr;
  const uint32_t i = tlsHosts_.find(kWildcardHost, name.substr(dot + 1));
  return i == StringIndex::kNotFound ? nullptr : &tls_[i];
}

size_t RouteTable::indexBytes() const {
  return hosts_.memoryBytes() + exactPaths_.memoryBytes() + prefixPaths_.memoryBytes() +
         tlsHosts_.memoryBytes();
}

}  // namespace capstan::l7
