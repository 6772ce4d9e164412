#include "l7/route_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "tests/l7/ingress_state_builder.h"

namespace capstan::l7 {
namespace {

using test::IngressStateBuilder;
using test::path;
using test::serviceBackend;
using test::TestService;

constexpr PathType kExact = PathType::kExact;
constexpr PathType kPrefix = PathType::kPrefix;
constexpr PathType kImplSpecific = PathType::kImplementationSpecific;

Ingress ingress(std::string name, std::vector<IngressRule> rules, std::string ns = "default") {
  return {.name = {std::move(ns), std::move(name)}, .rules = std::move(rules)};
}

// Where a request went, in one string a table row can expect: "service:port path (type)",
// "default -> service:port", or "404".
std::string where(const RouteTable& table, std::string_view host, std::string_view p) {
  const Route* route = table.match(host, p);
  if (route == nullptr) return "404";
  const Backend& b = *route->backend;
  const std::string target = b.servicePort.service.name + ":" + b.servicePort.port;
  if (route->isDefaultBackend) return "default -> " + target;
  return target + " " + std::string(route->path) + " (" + std::string(toString(route->pathType)) +
         ")";
}

bool hasWarning(const RouteTable& table, std::string_view needle) {
  return std::any_of(table.warnings().begin(), table.warnings().end(),
                     [&](const std::string& w) { return w.find(needle) != std::string::npos; });
}

std::string allWarnings(const RouteTable& table) {
  std::string out;
  for (const std::string& w : table.warnings()) out += w + "\n";
  return out;
}

// --- The Kubernetes docs' table of Prefix and Exact matching ----------------------------------
// https://kubernetes.io/docs/concepts/services-networking/ingress/#examples, row by row (a row
// with two request paths is two rows here). Each path routes to its own service port, so the
// expected answer names the path that matched, or "" for no match.

struct DocsRow {
  std::vector<std::pair<PathType, std::string>> paths;
  std::string request;
  std::string matchedPath;  // "" when the row says "No"
  PathType matchedType = kPrefix;
};

TEST(RouteTableDocsExamples, EveryRowOfTheIngressDocsTable) {
  const std::vector<DocsRow> rows = {
      {{{kPrefix, "/"}}, "/", "/"},
      {{{kPrefix, "/"}}, "/anything/at/all", "/"},
      {{{kExact, "/foo"}}, "/foo", "/foo", kExact},
      {{{kExact, "/foo"}}, "/bar", ""},
      {{{kExact, "/foo"}}, "/foo/", ""},
      {{{kExact, "/foo/"}}, "/foo", ""},
      {{{kPrefix, "/foo"}}, "/foo", "/foo"},
      {{{kPrefix, "/foo"}}, "/foo/", "/foo"},
      {{{kPrefix, "/foo/"}}, "/foo", "/foo/"},
      {{{kPrefix, "/foo/"}}, "/foo/", "/foo/"},
      {{{kPrefix, "/aaa/bb"}}, "/aaa/bbb", ""},
      {{{kPrefix, "/aaa/bbb"}}, "/aaa/bbb", "/aaa/bbb"},
      {{{kPrefix, "/aaa/bbb/"}}, "/aaa/bbb", "/aaa/bbb/"},    // ignores trailing slash
      {{{kPrefix, "/aaa/bbb"}}, "/aaa/bbb/", "/aaa/bbb"},     // matches trailing slash
      {{{kPrefix, "/aaa/bbb"}}, "/aaa/bbb/ccc", "/aaa/bbb"},  // matches subpath
      {{{kPrefix, "/aaa/bbb"}}, "/aaa/bbbxyz", ""},           // not a string prefix
      {{{kPrefix, "/"}, {kPrefix, "/aaa"}}, "/aaa/ccc", "/aaa"},
      {{{kPrefix, "/"}, {kPrefix, "/aaa"}, {kPrefix, "/aaa/bbb"}}, "/aaa/bbb", "/aaa/bbb"},
      {{{kPrefix, "/"}, {kPrefix, "/aaa"}, {kPrefix, "/aaa/bbb"}}, "/ccc", "/"},
      {{{kPrefix, "/aaa"}}, "/ccc", ""},                                // uses default backend
      {{{kPrefix, "/foo"}, {kExact, "/foo"}}, "/foo", "/foo", kExact},  // prefers Exact
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    const DocsRow& row = rows[i];
    IngressRule rule;
    IngressStateBuilder state;
    for (size_t p = 0; p < row.paths.size(); ++p) {
      const std::string svc = "svc-" + std::to_string(p);
      state.service({.name = svc});
      rule.paths.push_back(path(row.paths[p].first, row.paths[p].second, serviceBackend(svc, 80)));
    }
    state.ingress(ingress("docs", {rule}));
    auto table = RouteTable::build(*state.build());
    SCOPED_TRACE("row " + std::to_string(i) + ": request " + row.request);
    EXPECT_TRUE(table->warnings().empty()) << allWarnings(*table);
    const Route* route = table->match("example.com", row.request);
    if (row.matchedPath.empty()) {
      EXPECT_EQ(route, nullptr) << where(*table, "example.com", row.request);
      continue;
    }
    ASSERT_NE(route, nullptr);
    EXPECT_EQ(route->path, row.matchedPath);
    EXPECT_EQ(route->pathType, row.matchedType);
  }
}

// --- Hosts and precedence ------------------------------------------------------------------------

// One table for the host and precedence rows below:
//   foo.example.com:  /api Prefix -> api, /api/v1 Prefix -> v1, /api/v1/status Exact -> status
//   *.example.com:    / Prefix -> wild, /wild-only Prefix -> wild-only
//   (no host):        / Prefix -> any, /shared Prefix -> shared
//   defaultBackend    -> fallback (from Ingress "zzz")
std::shared_ptr<const RouteTable> hostTable() {
  IngressStateBuilder state;
  for (const char* svc :
       {"api", "v1", "status", "wild", "wild-only", "any", "shared", "fallback"}) {
    state.service({.name = svc});
  }
  state.ingress(
      ingress("foo", {{.host = "foo.example.com",
                       .paths = {path(kPrefix, "/api", serviceBackend("api", 80)),
                                 path(kPrefix, "/api/v1", serviceBackend("v1", 80)),
                                 path(kExact, "/api/v1/status", serviceBackend("status", 80))}}}));
  state.ingress(
      ingress("wild", {{.host = "*.example.com",
                        .paths = {path(kPrefix, "/", serviceBackend("wild", 80)),
                                  path(kPrefix, "/wild-only", serviceBackend("wild-only", 80))}}}));
  state.ingress(
      ingress("any", {{.paths = {path(kPrefix, "/", serviceBackend("any", 80)),
                                 path(kPrefix, "/shared", serviceBackend("shared", 80))}}}));
  Ingress fallback = ingress("zzz", {});
  fallback.defaultBackend = serviceBackend("fallback", "http");
  state.ingress(fallback);
  return RouteTable::build(*state.build());
}

struct HostRow {
  std::string host;
  std::string path;
  std::string expected;
};

TEST(RouteTableHosts, ExactWildcardAnyHostAndPrecedence) {
  auto table = hostTable();
  ASSERT_TRUE(table->warnings().empty()) << allWarnings(*table);
  const std::vector<HostRow> rows = {
      // Exact host; longest prefix wins; Exact wins over Prefix.
      {"foo.example.com", "/api", "api:http /api (Prefix)"},
      {"foo.example.com", "/api/v2", "api:http /api (Prefix)"},
      {"foo.example.com", "/api/v1/users", "v1:http /api/v1 (Prefix)"},
      {"foo.example.com", "/api/v1/status", "status:http /api/v1/status (Exact)"},
      {"foo.example.com", "/api/v1/status/", "v1:http /api/v1 (Prefix)"},
      {"foo.example.com", "/api/v1/statusx", "v1:http /api/v1 (Prefix)"},
      {"foo.example.com", "/apis", "wild:http / (Prefix)"},  // falls through to the wildcard
      // Case-insensitive host, port and trailing dot ignored, query and fragment ignored.
      {"FOO.Example.COM", "/api", "api:http /api (Prefix)"},
      {"foo.example.com:8080", "/api", "api:http /api (Prefix)"},
      {"foo.example.com.", "/api", "api:http /api (Prefix)"},
      {"foo.example.com.:443", "/api", "api:http /api (Prefix)"},
      {"foo.example.com", "/api/v1/status?verbose=1", "status:http /api/v1/status (Exact)"},
      {"foo.example.com", "/api?next=/api/v1/users", "api:http /api (Prefix)"},
      {"foo.example.com", "/api/v1/status#top", "status:http /api/v1/status (Exact)"},
      // Wildcard: exactly one label in place of '*'.
      {"bar.example.com", "/x", "wild:http / (Prefix)"},
      {"BAR.EXAMPLE.COM:80", "/wild-only/a", "wild-only:http /wild-only (Prefix)"},
      {"a.b.example.com", "/x", "any:http / (Prefix)"},  // two labels: not the wildcard
      {"example.com", "/x", "any:http / (Prefix)"},      // no label: not the wildcard
      {".example.com", "/x", "any:http / (Prefix)"},     // an empty label is none
      {"fooexample.com", "/x", "any:http / (Prefix)"},
      // The exact host has no "/wild-only": the wildcard's covers it.
      {"foo.example.com", "/wild-only", "wild-only:http /wild-only (Prefix)"},
      // Rules without host cover every host, after the more specific hosts' rules.
      {"other.org", "/shared/x", "shared:http /shared (Prefix)"},
      {"foo.example.com", "/shared", "wild:http / (Prefix)"},
      {"", "/shared", "shared:http /shared (Prefix)"},
      {"[2001:db8::1]:8080", "/shared", "shared:http /shared (Prefix)"},
      {"10.0.0.1:80", "/", "any:http / (Prefix)"},
      {std::string(300, 'a') + ".com", "/", "any:http / (Prefix)"},
      // Nothing matches: the defaultBackend.
      {"other.org", "*", "default -> fallback:http"},
      {"other.org", "", "any:http / (Prefix)"},
  };
  for (const HostRow& row : rows) {
    EXPECT_EQ(where(*table, row.host, row.path), row.expected)
        << "host " << row.host << " path " << row.path;
  }
}

TEST(RouteTableHosts, NoDefaultBackendMeans404) {
  IngressStateBuilder state;
  state.service({.name = "web"});
  state.ingress(ingress("a", {{.host = "a.example.com",
                               .paths = {path(kPrefix, "/app", serviceBackend("web", 80))}}}));
  auto table = RouteTable::build(*state.build());
  EXPECT_EQ(table->match("a.example.com", "/other"), nullptr);
  EXPECT_EQ(table->match("b.example.com", "/app"), nullptr);
  EXPECT_EQ(table->defaultRoute(), nullptr);
  EXPECT_NE(table->match("a.example.com", "/app/x"), nullptr);
}

TEST(RouteTableHosts, WildcardAndExactHostOfTheSameDomainAreDistinct) {
  // "*.example.com" does not cover "example.com", and "example.com" does not cover its children.
  IngressStateBuilder state;
  state.service({.name = "apex"}).service({.name = "child"});
  state.ingress(ingress(
      "a",
      {{.host = "example.com", .paths = {path(kPrefix, "/", serviceBackend("apex", 80))}},
       {.host = "*.example.com", .paths = {path(kPrefix, "/", serviceBackend("child", 80))}}}));
  auto table = RouteTable::build(*state.build());
  EXPECT_EQ(where(*table, "example.com", "/"), "apex:http / (Prefix)");
  EXPECT_EQ(where(*table, "www.example.com", "/"), "child:http / (Prefix)");
  EXPECT_EQ(where(*table, "www.www.example.com", "/"), "404");
}

// --- Merging and conflicts -------------------------------------------------------------------

TEST(RouteTableMerge, RulesOfEveryIngressAreMerged) {
  IngressStateBuilder state;
  state.service({.name = "a"}).service({.name = "b"}).service({.ns = "other", .name = "c"});
  state.ingress(ingress("b", {{.host = "shop.example.com",
                               .paths = {path(kPrefix, "/cart", serviceBackend("b", 80))}}}));
  state.ingress(ingress(
      "a", {{.host = "shop.example.com", .paths = {path(kPrefix, "/", serviceBackend("a", 80))}}}));
  state.ingress(ingress(
      "c",
      {{.host = "shop.example.com", .paths = {path(kExact, "/checkout", serviceBackend("c", 80))}}},
      "other"));
  auto table = RouteTable::build(*state.build());
  EXPECT_TRUE(table->warnings().empty()) << allWarnings(*table);
  ASSERT_EQ(table->routes().size(), 3u);
  const Route* cart = table->match("shop.example.com", "/cart/1");
  const Route* root = table->match("shop.example.com", "/");
  const Route* checkout = table->match("shop.example.com", "/checkout");
  ASSERT_TRUE(cart && root && checkout);
  EXPECT_EQ(cart->ingressName().toString(), "default/b");
  EXPECT_EQ(root->ingressName().toString(), "default/a");
  EXPECT_EQ(checkout->ingressName().toString(), "other/c");
  // The backend is the Service in the Ingress's own namespace.
  EXPECT_EQ(checkout->backend->servicePort.toString(), "other/c:http");
  // Routes are numbered in namespace/name order: default/a, default/b, other/c.
  EXPECT_EQ(root->id, 0u);
  EXPECT_EQ(cart->id, 1u);
  EXPECT_EQ(checkout->id, 2u);
  for (uint32_t i = 0; i < table->routes().size(); ++i) EXPECT_EQ(table->routes()[i].id, i);
}

struct ConflictRow {
  std::string name;
  PathType firstType;
  std::string firstPath;
  PathType secondType;
  std::string secondPath;
  bool conflict;
};

TEST(RouteTableMerge, ConflictsFirstByNamespaceAndNameWins) {
  const std::vector<ConflictRow> rows = {
      {"same prefix", kPrefix, "/api", kPrefix, "/api", true},
      {"trailing slash is the same prefix", kPrefix, "/api", kPrefix, "/api/", true},
      {"ImplementationSpecific is Prefix", kPrefix, "/api", kImplSpecific, "/api", true},
      {"same exact", kExact, "/api", kExact, "/api", true},
      {"exact and prefix coexist", kExact, "/api", kPrefix, "/api", false},
      {"exact paths differ by a slash", kExact, "/api", kExact, "/api/", false},
      {"root and /", kPrefix, "/", kImplSpecific, "/", true},
  };
  for (const ConflictRow& row : rows) {
    SCOPED_TRACE(row.name);
    IngressStateBuilder state;
    state.service({.name = "first"}).service({.name = "second"});
    // Given in the wrong order: the table sorts by namespace/name itself.
    state.ingress(
        ingress("second",
                {{.host = "x.example.com",
                  .paths = {path(row.secondType, row.secondPath, serviceBackend("second", 80))}}}));
    state.ingress(ingress(
        "first", {{.host = "x.example.com",
                   .paths = {path(row.firstType, row.firstPath, serviceBackend("first", 80))}}}));
    auto table = RouteTable::build(*state.build());
    if (!row.conflict) {
      EXPECT_TRUE(table->warnings().empty()) << allWarnings(*table);
      EXPECT_EQ(table->routes().size(), 2u);
      continue;
    }
    ASSERT_EQ(table->warnings().size(), 1u) << allWarnings(*table);
    EXPECT_EQ(
        table->warnings()[0],
        "Ingress default/second: spec.rules[0].http.paths[0]: host \"x.example.com\" path \"" +
            row.secondPath + "\" (" + std::string(toString(row.secondType)) +
            ") is routed by Ingress default/first already (first in namespace/name order "
            "wins); ignored");
    ASSERT_EQ(table->routes().size(), 1u);
    const Route* route = table->match("x.example.com", "/api");
    ASSERT_NE(route, nullptr);
    EXPECT_EQ(route->ingressName().name, "first");
  }
}

TEST(RouteTableMerge, NamespaceOrdersBeforeName) {
  IngressStateBuilder state;
  state.service({.ns = "a", .name = "web"}).service({.ns = "b", .name = "web"});
  state.ingress(ingress("aaa", {{.paths = {path(kPrefix, "/", serviceBackend("web", 80))}}}, "b"));
  state.ingress(ingress("zzz", {{.paths = {path(kPrefix, "/", serviceBackend("web", 80))}}}, "a"));
  auto table = RouteTable::build(*state.build());
  ASSERT_EQ(table->warnings().size(), 1u);
  EXPECT_TRUE(hasWarning(*table, "Ingress b/aaa: spec.rules[0].http.paths[0]"));
  EXPECT_EQ(table->match("h", "/")->backend->servicePort.toString(), "a/web:http");
}

TEST(RouteTableMerge, DuplicatePathInOneIngressIsReported) {
  IngressStateBuilder state;
  state.service({.name = "one"}).service({.name = "two"});
  state.ingress(ingress("a", {{.paths = {path(kPrefix, "/x", serviceBackend("one", 80))}},
                              {.paths = {path(kPrefix, "/x", serviceBackend("two", 80))}}}));
  auto table = RouteTable::build(*state.build());
  ASSERT_EQ(table->warnings().size(), 1u);
  EXPECT_TRUE(hasWarning(*table, "Ingress default/a: spec.rules[1].http.paths[0]"));
  EXPECT_TRUE(hasWarning(*table, "in an earlier path"));
  EXPECT_EQ(where(*table, "h", "/x"), "one:http /x (Prefix)");
}

// --- defaultBackend
// -------------------------------------------------------------------------------

TEST(RouteTableDefaultBackend, FirstByNameProvidesItOthersAreReported) {
  IngressStateBuilder state;
  state.service({.name = "one"}).service({.name = "two"});
  Ingress b = ingress("b", {});
  b.defaultBackend = serviceBackend("two", 80);
  Ingress a = ingress(
      "a", {{.host = "a.example.com", .paths = {path(kExact, "/", serviceBackend("one", 80))}}});
  a.defaultBackend = serviceBackend("one", 80);
  state.ingress(b).ingress(a);
  auto table = RouteTable::build(*state.build());
  ASSERT_NE(table->defaultRoute(), nullptr);
  EXPECT_EQ(table->defaultRoute()->ingressName().name, "a");
  EXPECT_TRUE(table->defaultRoute()->isDefaultBackend);
  EXPECT_EQ(where(*table, "a.example.com", "/x"), "default -> one:http");
  EXPECT_EQ(where(*table, "nowhere", "/"), "default -> one:http");
  EXPECT_EQ(where(*table, "a.example.com", "/"), "one:http / (Exact)");
  ASSERT_EQ(table->warnings().size(), 1u);
  EXPECT_EQ(table->warnings()[0],
            "Ingress default/b: spec.defaultBackend: Ingress default/a provides the defaultBackend "
            "already (first in namespace/name order); ignored");
}

// --- Backends and endpoints ----------------------------------------------------------------

TEST(RouteTableBackends, ByPortNumberAndByNameWithReadyEndpoints) {
  IngressStateBuilder state;
  state.service(
      {.name = "web",
       .ports = {{"http", 80, 8080}, {"admin", 9000, 9001}, {"dns", 80, 53, Protocol::kUDP}},
       .endpoints = {{"10.0.0.2"},
                     {"10.0.0.1"},
                     {"10.0.0.3", false, false},  // not ready: never routed to
                     {"fd00::1"}}});
  state.ingress(ingress("a", {{.paths = {path(kPrefix, "/by-number", serviceBackend("web", 80)),
                                         path(kPrefix, "/by-name", serviceBackend("web", "http")),
                                         path(kPrefix, "/admin", serviceBackend("web", 9000))}}}));
  auto table = RouteTable::build(*state.build());
  EXPECT_TRUE(table->warnings().empty()) << allWarnings(*table);
  const Route* byNumber = table->match("h", "/by-number");
  const Route* byName = table->match("h", "/by-name");
  const Route* admin = table->match("h", "/admin");
  ASSERT_TRUE(byNumber && byName && admin);
  // Port 80 is the TCP port "http", not the UDP port "dns" of the same number.
  EXPECT_EQ(byNumber->backend->servicePort.toString(), "default/web:http");
  EXPECT_TRUE(byNumber->backend->found);
  std::vector<std::string> endpoints;
  for (const RouteEndpoint& ep : byNumber->backend->endpoints) endpoints.push_back(ep.toString());
  EXPECT_EQ(endpoints,
            (std::vector<std::string>{"10.0.0.1:8080", "10.0.0.2:8080", "[fd00::1]:8080"}));
  // One Backend per service port, shared by the routes that name it either way.
  EXPECT_EQ(byName->backend, byNumber->backend);
  EXPECT_EQ(admin->backend->servicePort.toString(), "default/web:admin");
  EXPECT_EQ(admin->backend->endpoints.front().port, 9001);
  EXPECT_EQ(table->backends().size(), 2u);  // web:http (named both ways) and web:admin
}

TEST(RouteTableBackends, TerminatingEndpointsOnlyWhenNoneIsReady) {
  IngressStateBuilder state;
  state.service({.name = "draining",
                 .endpoints = {{"10.0.0.1", false, true, true}, {"10.0.0.2", false, false, true}}});
  state.ingress(ingress("a", {{.paths = {path(kPrefix, "/", serviceBackend("draining", 80))}}}));
  auto table = RouteTable::build(*state.build());
  const Route* route = table->match("h", "/");
  ASSERT_NE(route, nullptr);
  ASSERT_EQ(route->backend->endpoints.size(), 1u);
  EXPECT_EQ(route->backend->endpoints[0].toString(), "10.0.0.1:8080");
}

TEST(RouteTableBackends, InternalTrafficPolicyLocalUsesLocalEndpoints) {
  IngressStateBuilder state;
  state.service(
      {.name = "local",
       .endpoints = {{"10.0.0.1", true, true, false, IngressStateBuilder::kNodeName}, {"10.0.0.2"}},
       .internalPolicy = TrafficPolicy::kLocal});
  state.ingress(ingress("a", {{.paths = {path(kPrefix, "/", serviceBackend("local", 80))}}}));
  auto table = RouteTable::build(*state.build());
  const Route* route = table->match("h", "/");
  ASSERT_NE(route, nullptr);
  ASSERT_EQ(route->backend->endpoints.size(), 1u);
  EXPECT_EQ(route->backend->endpoints[0].toString(), "10.0.0.1:8080");
}

struct MissingRow {
  std::string name;
  IngressBackend backend;
  std::string servicePort;
  std::string warning;
};

TEST(RouteTableBackends, MissingServiceOrPortGivesARouteWithoutEndpoints) {
  const std::vector<MissingRow> rows = {
      {"no such service", serviceBackend("gone", 80), "default/gone:80",
       "Ingress default/a: spec.rules[0].http.paths[0].backend.service: Service default/gone not "
       "found (or without ports); requests get 503"},
      {"no such port number", serviceBackend("web", 81), "default/web:81",
       "Ingress default/a: spec.rules[0].http.paths[0].backend.service: Service default/web has "
       "no TCP port 81; requests get 503"},
      {"no such port name", serviceBackend("web", "grpc"), "default/web:grpc",
       "Ingress default/a: spec.rules[0].http.paths[0].backend.service: Service default/web has "
       "no TCP port named \"grpc\"; requests get 503"},
      {"resource backend", IngressBackend{.resourceKind = "StorageBucket", .resourceName = "b"},
       "default/",
       "Ingress default/a: spec.rules[0].http.paths[0].backend.resource: resource backends "
       "(StorageBucket/b) are not served by Capstan; requests get 503"},
  };
  for (const MissingRow& row : rows) {
    SCOPED_TRACE(row.name);
    IngressStateBuilder state;
    state.service({.name = "web", .endpoints = {{"10.0.0.1"}}});
    state.service({.ns = "elsewhere", .name = "gone", .endpoints = {{"10.0.0.9"}}});
    state.ingress(ingress("a", {{.paths = {path(kPrefix, "/app", row.backend)}}}));
    auto table = RouteTable::build(*state.build());
    const Route* route = table->match("h", "/app");
    ASSERT_NE(route, nullptr);  // routed, to a backend without endpoints: a 503, not a 404
    EXPECT_FALSE(route->backend->found);
    EXPECT_TRUE(route->backend->endpoints.empty());
    EXPECT_EQ(route->backend->servicePort.toString(), row.servicePort);
    EXPECT_EQ(table->warnings(), std::vector<std::string>{row.warning});
  }
}

TEST(RouteTableBackends, ServiceWithoutEndpointsIsFoundAndEmpty) {
  IngressStateBuilder state;
  state.service({.name = "idle"});
  state.ingress(ingress("a", {{.paths = {path(kPrefix, "/", serviceBackend("idle", "http"))}}}));
  auto table = RouteTable::build(*state.build());
  EXPECT_TRUE(table->warnings().empty()) << allWarnings(*table);
  const Route* route = table->match("h", "/");
  ASSERT_NE(route, nullptr);
  EXPECT_TRUE(route->backend->found);
  EXPECT_TRUE(route->backend->endpoints.empty());
}

TEST(RouteTableBackends, AMissingServiceIsReportedOncePerIngress) {
  IngressStateBuilder state;
  state.ingress(ingress("a", {{.paths = {path(kPrefix, "/1", serviceBackend("gone", 80)),
                                         path(kPrefix, "/2", serviceBackend("gone", 80))}}}));
  state.ingress(ingress("b", {{.paths = {path(kPrefix, "/3", serviceBackend("gone", 80))}}}));
  auto table = RouteTable::build(*state.build());
  EXPECT_EQ(table->warnings().size(), 2u) << allWarnings(*table);
  EXPECT_EQ(table->routes().size(), 3u);
}

// --- Load-balancing policy -------------------------------------------------------------------

struct PolicyRow {
  std::string value;
  bool ok;
  LoadBalanceKind kind = LoadBalanceKind::kLeastRequest;
  std::string key;
};

TEST(LoadBalancePolicyParse, EveryFormAndTheInvalidOnes) {
  const std::vector<PolicyRow> rows = {
      {"round-robin", true, LoadBalanceKind::kRoundRobin},
      {"least-request", true, LoadBalanceKind::kLeastRequest},
      {" hash-client-ip ", true, LoadBalanceKind::kHashClientIp},
      {"hash-header:X-User-Id", true, LoadBalanceKind::kHashHeader, "x-user-id"},
      {"hash-cookie:SessionID", true, LoadBalanceKind::kHashCookie, "SessionID"},
      {"hash-header:", false},
      {"hash-header:X User", false},
      {"hash-cookie:a;b", false},
      {"Round-Robin", false},
      {"random", false},
      {"", false},
      {"hash-client-ip:x", false},
  };
  for (const PolicyRow& row : rows) {
    SCOPED_TRACE("value \"" + row.value + "\"");
    Result<LoadBalancePolicy> policy = parseLoadBalancePolicy(row.value);
    ASSERT_EQ(policy.ok(), row.ok);
    if (!row.ok) continue;
    EXPECT_EQ(policy->kind, row.kind);
    EXPECT_EQ(policy->key, row.key);
    EXPECT_EQ(parseLoadBalancePolicy(policy->toString()).value(), *policy);
  }
}

TEST(RouteTableLoadBalance, FromTheIngressAnnotationInvalidFallsBackWithAWarning) {
  IngressStateBuilder state;
  state.service({.name = "web"});
  Ingress hashed = ingress("hashed", {{.host = "h.example.com",
                                       .paths = {path(kPrefix, "/", serviceBackend("web", 80))}}});
  hashed.annotations["capstan.io/load-balance"] = "hash-cookie:session";
  Ingress plain = ingress("plain", {{.host = "p.example.com",
                                     .paths = {path(kPrefix, "/", serviceBackend("web", 80))}}});
  Ingress bad = ingress(
      "bad", {{.host = "b.example.com", .paths = {path(kPrefix, "/", serviceBackend("web", 80))}}});
  bad.annotations["capstan.io/load-balance"] = "fastest";
  bad.defaultBackend = serviceBackend("web", 80);
  state.ingress(hashed).ingress(plain).ingress(bad);
  auto table = RouteTable::build(*state.build());
  const Route* h = table->match("h.example.com", "/");
  const Route* p = table->match("p.example.com", "/");
  const Route* b = table->match("b.example.com", "/");
  ASSERT_TRUE(h && p && b);
  EXPECT_EQ(h->loadBalance->kind, LoadBalanceKind::kHashCookie);
  EXPECT_EQ(h->loadBalance->key, "session");
  EXPECT_EQ(p->loadBalance->kind, LoadBalanceKind::kLeastRequest);
  EXPECT_EQ(b->loadBalance->kind, LoadBalanceKind::kLeastRequest);
  EXPECT_EQ(table->defaultRoute()->loadBalance, b->loadBalance);
  ASSERT_EQ(table->warnings().size(), 1u);
  EXPECT_EQ(table->warnings()[0],
            "Ingress default/bad: metadata.annotations[capstan.io/load-balance]: invalid value "
            "\"fastest\" (want round-robin, least-request, hash-header:NAME, hash-cookie:NAME or "
            "hash-client-ip); using least-request");
}

// --- TLS -------------------------------------------------------------------------------------

TEST(RouteTableTls, SecretPerHostExactThenWildcardAndTheDefault) {
  IngressStateBuilder state;
  state.secret("default", "foo-cert").secret("default", "wild-cert").secret("team", "team-cert");
  Ingress a = ingress("a", {});
  a.defaultBackend = serviceBackend("web", 80);
  a.tls = {{.hosts = {"foo.example.com"}, .secretName = "foo-cert"},
           {.hosts = {"*.example.com"}, .secretName = "wild-cert"},
           {.hosts = {}, .secretName = "foo-cert"}};
  Ingress b = ingress("b", {}, "team");
  b.tls = {{.hosts = {"foo.example.com", "team.example.org"}, .secretName = "team-cert"},
           {.hosts = {"missing.example.org"}, .secretName = "nope"},
           {.hosts = {}, .secretName = "team-cert"}};
  state.ingress(b).ingress(a);
  auto table = RouteTable::build(*state.build());

  struct TlsRow {
    std::string serverName;
    std::string secret;  // "" when no entry covers it
  };
  const std::vector<TlsRow> rows = {
      {"foo.example.com", "default/foo-cert"},  // exact before wildcard; first by name
      {"FOO.example.com.", "default/foo-cert"},
      {"bar.example.com", "default/wild-cert"},
      {"a.bar.example.com", ""},
      {"example.com", ""},
      {"team.example.org", "team/team-cert"},
      {"missing.example.org", "team/nope"},
  };
  for (const TlsRow& row : rows) {
    const TlsEntry* entry = table->matchTls(row.serverName);
    if (row.secret.empty()) {
      EXPECT_EQ(entry, nullptr) << row.serverName;
      continue;
    }
    ASSERT_NE(entry, nullptr) << row.serverName;
    EXPECT_EQ(entry->secretName.toString(), row.secret) << row.serverName;
  }
  EXPECT_NE(table->matchTls("foo.example.com")->secret, nullptr);
  EXPECT_EQ(table->matchTls("missing.example.org")->secret, nullptr);
  ASSERT_NE(table->defaultTls(), nullptr);
  EXPECT_EQ(table->defaultTls()->secretName.toString(), "default/foo-cert");

  const std::vector<std::string> expected = {
      "Ingress team/b: spec.tls[0].hosts[0]: host \"foo.example.com\" has Secret "
      "default/foo-cert from Ingress default/a already; ignored",
      "Ingress team/b: spec.tls[1].secretName: Secret team/nope not found (or not of type "
      "kubernetes.io/tls); its hosts get the default certificate",
      "Ingress team/b: spec.tls[2]: an entry without hosts (a default certificate) comes from "
      "Ingress default/a already; ignored",
      "Ingress default/a: spec.defaultBackend.service: Service default/web not found (or without "
      "ports); requests get 503",
  };
  std::vector<std::string> got = table->warnings();
  std::vector<std::string> want = expected;
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
}

// --- The table as a whole ------------------------------------------------------------------------

TEST(RouteTable, EmptyStateMatchesNothing) {
  auto table = RouteTable::build(*IngressStateBuilder().build(7));
  EXPECT_EQ(table->generation(), 7u);
  EXPECT_EQ(table->match("a.example.com", "/"), nullptr);
  EXPECT_EQ(table->match("", ""), nullptr);
  EXPECT_EQ(table->matchTls("a.example.com"), nullptr);
  EXPECT_TRUE(table->warnings().empty());
}

TEST(RouteTable, OutlivesTheStateItWasBuiltFrom) {
  std::shared_ptr<const RouteTable> table;
  {
    IngressStateBuilder state;
    state.service({.name = "web", .endpoints = {{"10.0.0.1"}}});
    state.ingress(ingress("a", {{.host = "a.example.com",
                                 .paths = {path(kPrefix, "/x", serviceBackend("web", 80))}}}));
    table = RouteTable::build(*state.build());
  }
  const Route* route = table->match("a.example.com", "/x/y");
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(route->host, "a.example.com");
  EXPECT_EQ(route->path, "/x");
  EXPECT_EQ(route->ingressName().toString(), "default/a");
  EXPECT_EQ(route->backend->endpoints.size(), 1u);
}

// The spec's definition, written plainly: both paths split on '/' (trailing slashes ignored), the
// stored one an element-wise prefix of the request's, the longest winning. The table must agree
// with it on random paths over a small alphabet, where shared prefixes, empty segments and
// near-misses ("/ab" against "/abc") are frequent.
std::vector<std::string> elements(std::string_view p) {
  while (!p.empty() && p.back() == '/') p.remove_suffix(1);
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= p.size(); ++i) {
    if (i == p.size() || p[i] == '/') {
      out.emplace_back(p.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

bool prefixMatches(std::string_view prefix, std::string_view request) {
  std::vector<std::string> want = elements(prefix);
  std::vector<std::string> got = elements(request);
  if (want.size() > got.size()) return false;
  return std::equal(want.begin(), want.end(), got.begin());
}

TEST(RouteTable, PrefixMatchingAgreesWithTheElementWiseDefinition) {
  std::mt19937 rng(5);
  auto randomPath = [&](size_t maxSegments) {
    static const char* kSegments[] = {"a", "ab", "abc", "b", ""};
    std::string out;
    const size_t n = 1 + rng() % maxSegments;
    for (size_t i = 0; i < n; ++i) out += "/" + std::string(kSegments[rng() % 5]);
    return out;
  };
  int hits = 0;
  int misses = 0;
  for (int round = 0; round < 50; ++round) {
    IngressStateBuilder state;
    state.service({.name = "web"});
    IngressRule rule;
    std::vector<std::string> stored;
    for (int i = 0; i < 8; ++i) {
      std::string p = randomPath(3);
      if (p.find("//") != std::string::npos) continue;  // the decoder refuses these for Prefix
      rule.paths.push_back(path(kPrefix, p, serviceBackend("web", 80)));
      stored.push_back(p);
    }
    state.ingress(ingress("r", {rule}));
    auto table = RouteTable::build(*state.build());
    for (int q = 0; q < 200; ++q) {
      const std::string request = randomPath(4);
      // Reference: the longest matching prefix by element count, the first stored on a tie
      // (later equal ones are conflicts, ignored).
      int bestElements = -1;
      std::string best;
      for (const std::string& p : stored) {
        const int n = static_cast<int>(elements(p).size());
        if (prefixMatches(p, request) && n > bestElements) {
          bestElements = n;
          best = p;
        }
      }
      const Route* route = table->match("h", request);
      SCOPED_TRACE("request " + request);
      (best.empty() ? misses : hits)++;
      if (best.empty()) {
        EXPECT_EQ(route, nullptr);
      } else {
        ASSERT_NE(route, nullptr);
        EXPECT_EQ(elements(route->path), elements(best));
      }
    }
  }
  // Both answers occur often enough for the comparison to mean something.
  EXPECT_GT(hits, 1000);
  EXPECT_GT(misses, 1000);
}

}  // namespace
}  // namespace capstan::l7
