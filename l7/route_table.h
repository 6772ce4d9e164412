// RouteTable: where an HTTP request goes. Built from one ProxyState — the Ingresses Capstan serves
// (already filtered by ingress class) and the service ports with their endpoints — it answers
// match(host, path) for every request and matchTls(server name) for every TLS handshake.
//
// Who calls it: the control thread builds a table on every sync that changes the ingress part or
// the endpoints (RouteTable::build) and publishes it; every ingress worker swaps the new
// shared_ptr in between requests and keeps reading the old one until it does. A table is
// immutable after build, so workers read it without locks; match() and matchTls() allocate
// nothing.
//
// Matching follows the Ingress spec (networking.k8s.io/v1):
// - Host: an exact host ("foo.example.com", compared case-insensitively, the request's port and a
//   trailing dot ignored) or a wildcard "*.example.com" that matches exactly one label in place
//   of the '*' ("a.example.com", not "example.com", not "a.b.example.com"). A rule without host
//   matches every host.
// - Path: Exact compares the whole path; Prefix compares element-wise on the path split by '/',
//   ignoring a trailing slash ("/foo" matches "/foo", "/foo/", "/foo/bar", not "/foobar");
//   ImplementationSpecific is Prefix here. The query never takes part.
// - Precedence: the most specific host first (exact, then wildcard, then rules without host),
//   and within a host Exact before Prefix and the longest prefix first. A request that matches no
//   path of its exact host goes on to the wildcard host and then to the rules without host, as
//   each of those rules also covers it; only when none matches does the defaultBackend answer.
// - Rules of every Ingress are merged. When two Ingresses (or two paths of one) route the same
//   host, path and path type, the first in namespace/name order (then rule and path order) wins
//   and the others are reported in warnings(). The model keeps no creationTimestamp, so "oldest
//   wins" (ingress-nginx's rule) is approximated by name order.
// - defaultBackend: the first Ingress in namespace/name order that has one provides it; the
//   others are reported.
// - Active health checks (l7/health_policy.h): a backend takes the policy of the first Ingress in
//   namespace/name order that routes to it and has one; the endpoints a HealthReport says are
//   down leave its endpoint list, unless all of them are down.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "l7/health_policy.h"
#include "l7/load_balance.h"
#include "l7/string_index.h"
#include "model/ingress.h"
#include "model/proxy_state.h"

namespace capstan::l7 {

// One upstream address of a backend.
struct RouteEndpoint {
  IpAddress ip;
  uint16_t port = 0;

  std::string toString() const { return joinHostPort(ip, port); }
  bool operator==(const RouteEndpoint&) const = default;
};

// One service port an Ingress routes to, shared by every route that names it.
struct Backend {
  uint32_t id = 0;  // index in RouteTable::backends()
  // The service port: namespace/service:port-name when found. When not found, `port` holds the
  // reference as the Ingress wrote it (a port name, or a number in decimal).
  ServicePortName servicePort;
  // The Service exists and has the port (TCP). False also for a `resource` backend, which Capstan
  // does not serve. A route to a backend without endpoints answers 503.
  bool found = false;
  std::string resource;  // "Kind/name" of a resource backend; empty for a service backend
  // The ready endpoints, as kube-proxy selects them for traffic from this node to the Service:
  // the Cluster set (ready endpoints, topology hints applied, serving-terminating ones when none
  // is ready), or the Local set for a family whose internalTrafficPolicy is Local. IPv4 first.
  std::vector<RouteEndpoint> endpoints;
  // The health-check policy of the backend; null: not checked.
  const HealthCheckPolicy* healthCheck = nullptr;
  // Ready endpoints left out of `endpoints` because the checks found them down (they are still
  // checked, to come back).
  std::vector<RouteEndpoint> down;
};

struct Route {
  uint32_t id = 0;  // index in RouteTable::routes(); workers index per-route state by it
  const Ingress* ingress = nullptr;  // where the route comes from; kept alive by the table
  std::string_view host;             // the rule's host as written; empty: every host
  std::string_view path;             // the path as written; empty for the defaultBackend
  PathType pathType = PathType::kPrefix;
  bool isDefaultBackend = false;
  const LoadBalancePolicy* loadBalance = nullptr;  // the Ingress's capstan.io/load-balance
  const Backend* backend = nullptr;                // never null

  const NamespacedName& ingressName() const { return ingress->name; }
};

// The certificate for a TLS host, from an Ingress's spec.tls.
struct TlsEntry {
  const Ingress* ingress = nullptr;
  NamespacedName secretName;  // name empty: spec.tls named no Secret (use the default certificate)
  // The kubernetes.io/tls Secret; null when the snapshot has none of that name.
  std::shared_ptr<const TlsSecret> secret;
};

// Hosts longer than this (DNS allows 253 characters) match only rules without host.
inline constexpr size_t kMaxHostLength = 253;

// The host part of a Host header, :authority or TLS server name, the way the table compares it:
// lower-cased, without port and without one trailing dot, written into `buffer`. Empty for an IP
// literal ("[::1]:80": Ingress hosts are DNS names) or a host longer than kMaxHostLength.
std::string_view canonicalHost(std::string_view host, std::span<char, kMaxHostLength> buffer);

class RouteTable {
 public:
  // Never fails: what cannot be routed is reported in warnings() and the rest works. `health`:
  // the endpoints active health checks found down (none when null).
  static std::shared_ptr<const RouteTable> build(const ProxyState& state,
                                                 const HealthReport* health = nullptr);

  RouteTable(const RouteTable&) = delete;
  RouteTable& operator=(const RouteTable&) = delete;

  // The route for a request, or null (404) when no rule matches and there is no defaultBackend.
  // `host` as the client sent it (port allowed), `path` the request target's path (a query or
  // fragment after it is ignored). No allocation; O(host + path) with one probe per path segment.
  const Route* match(std::string_view host, std::string_view path) const;

  // The spec.tls entry whose hosts cover `serverName` (exact first, then a wildcard), or null.
  const TlsEntry* matchTls(std::string_view serverName) const;
  // The first spec.tls entry without hosts (namespace/name order), or null: it covers the server
  // names no entry matches, before Capstan's own default certificate.
  const TlsEntry* defaultTls() const { return defaultTls_; }

  const Route* defaultRoute() const { return defaultRoute_; }
  std::span<const Route> routes() const { return routes_; }
  std::span<const Backend> backends() const { return backends_; }
  std::span<const TlsEntry> tls() const { return tls_; }
  // What could not be routed as written, one message per problem, naming the Ingress and field.
  const std::vector<std::string>& warnings() const { return warnings_; }
  // The ProxyState generation the table was built from.
  uint64_t generation() const { return generation_; }
  // Bytes of the lookup indexes (routes and backends not counted).
  size_t indexBytes() const;

 private:
  class Builder;
  RouteTable() = default;

  const Route* matchPaths(uint32_t vhost, std::string_view path) const;

  // Scopes of hosts_ and tlsHosts_: exact hosts, and wildcards keyed by the domain after "*.".
  static constexpr uint32_t kExactHost = 0;
  static constexpr uint32_t kWildcardHost = 1;
  // Virtual host 0 holds the rules without host.
  static constexpr uint32_t kAnyHost = 0;
  // In prefixPaths_: a prefix no route has but some longer stored prefix extends, so that the
  // walk over a request path continues past it.
  static constexpr uint32_t kPrefixOnTheWay = StringIndex::kNotFound - 1;

  uint64_t generation_ = 0;
  std::vector<std::shared_ptr<const Ingress>> ingresses_;         // keeps Route::ingress alive
  std::vector<LoadBalancePolicy> policies_;                       // one per ingresses_ entry
  std::vector<std::optional<HealthCheckPolicy>> healthPolicies_;  // one per ingresses_ entry
  std::vector<Backend> backends_;
  std::vector<Route> routes_;
  std::vector<TlsEntry> tls_;
  std::vector<std::string> warnings_;
  const Route* defaultRoute_ = nullptr;
  const TlsEntry* defaultTls_ = nullptr;

  // Per virtual host: which of the path indexes hold its paths, so that a lookup skips a probe
  // (a likely cache miss) where there is nothing to find.
  static constexpr uint8_t kHasExact = 1;
  static constexpr uint8_t kHasPrefix = 2;
  std::vector<uint8_t> vhostPaths_;

  StringIndex hosts_;        // canonical host -> virtual host (scopes kExactHost, kWildcardHost)
  StringIndex exactPaths_;   // (virtual host, path) -> route
  StringIndex prefixPaths_;  // (virtual host, prefix without trailing '/') -> route
  StringIndex tlsHosts_;     // canonical host -> index in tls_
};

}  // namespace capstan::l7
