#include "l7/balancer.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "tests/l7/ingress_state_builder.h"

namespace capstan::l7 {
namespace {

using test::IngressStateBuilder;
using test::path;
using test::serviceBackend;
using test::TestService;
using Clock = Balancer::Clock;

// One Ingress "web" routing every path of every host to Service web:80 with `endpoints`
// (10.0.0.1 ... 10.0.0.N), under the load-balance annotation `policy` ("" for none).
std::shared_ptr<const RouteTable> webTable(int endpoints, const std::string& policy = "") {
  TestService web{.name = "web"};
  for (int i = 1; i <= endpoints; ++i) web.endpoints.push_back({"10.0.0." + std::to_string(i)});
  Ingress ingress{.name = {"default", "web"}};
  ingress.rules = {
      {.host = "", .paths = {path(PathType::kPrefix, "/", serviceBackend("web", 80))}}};
  if (!policy.empty()) ingress.annotations[std::string(kLoadBalanceAnnotation)] = policy;
  return RouteTable::build(*IngressStateBuilder().service(web).ingress(ingress).build());
}

const Route& routeOf(const RouteTable& table) {
  const Route* route = table.match("any.example.com", "/");
  EXPECT_NE(route, nullptr);
  return *route;
}

TEST(Balancer, RoundRobinVisitsEveryEndpointInTurn) {
  auto table = webTable(3, "round-robin");
  Balancer balancer({}, 1);
  balancer.setTable(table);
  const Route& route = routeOf(*table);
  std::map<uint32_t, int> counts;
  uint32_t previous = Balancer::kNone;
  for (int i = 0; i < 30; ++i) {
    uint32_t pick = balancer.pick(route, std::nullopt, Clock::now());
    EXPECT_NE(pick, previous);
    previous = pick;
    ++counts[pick];
  }
  EXPECT_EQ(counts, (std::map<uint32_t, int>{{0, 10}, {1, 10}, {2, 10}}));
}

TEST(Balancer, LeastRequestAvoidsTheBusyEndpoint) {
  auto table = webTable(2);  // the default policy
  Balancer balancer({}, 7);
  balancer.setTable(table);
  const Route& route = routeOf(*table);
  // Endpoint 0 has ten requests in flight: with two endpoints, both choices are always seen and
  // the idle one always wins.
  std::vector<Balancer::Lease> busy;
  for (int i = 0; i < 10; ++i) busy.push_back(balancer.started(*route.backend, 0));
  EXPECT_EQ(balancer.inFlight(route.backend->endpoints[0]), 10u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(balancer.pick(route, std::nullopt, Clock::now()), 1u);
  for (auto& lease : busy) balancer.finished(std::move(lease), Balancer::Outcome::kSuccess, {});
  EXPECT_EQ(balancer.inFlight(route.backend->endpoints[0]), 0u);
}

TEST(Balancer, LeastRequestSpreadsEvenlyWhenIdle) {
  auto table = webTable(4);
  Balancer balancer({}, 3);
  balancer.setTable(table);
  const Route& route = routeOf(*table);
  std::map<uint32_t, int> counts;
  for (int i = 0; i < 4000; ++i) ++counts[balancer.pick(route, std::nullopt, Clock::now())];
  ASSERT_EQ(counts.size(), 4u);
  for (auto [endpoint, count] : counts) EXPECT_NEAR(count, 1000, 150) << endpoint;
}

TEST(Balancer, HashPoliciesAgreeAcrossWorkersAndFollowTheKey) {
  auto table = webTable(5, "hash-header:X-User");
  const Route& route = routeOf(*table);
  Balancer a({}, 1);
  Balancer b({}, 2);
  a.setTable(table);
  b.setTable(table);
  std::map<uint32_t, int> seen;
  for (int user = 0; user < 200; ++user) {
    std::string value = "user-" + std::to_string(user);
    std::vector<http1::Header> headers = {{"Host", "x"}, {"x-user", value}};
    auto key = requestHashKey(*route.loadBalance, headers, IpAddress());
    ASSERT_TRUE(key.has_value());
    uint32_t first = a.pick(route, key, Clock::now());
    EXPECT_EQ(first, a.pick(route, key, Clock::now()));  // sticky
    EXPECT_EQ(first, b.pick(route, key, Clock::now()));  // every worker agrees
    ++seen[first];
  }
  EXPECT_EQ(seen.size(), 5u);  // and keys spread over every endpoint
}

TEST(Balancer, HashKeys) {
  auto cookie = parseLoadBalancePolicy("hash-cookie:session");
  ASSERT_TRUE(cookie.ok());
  std::vector<http1::Header> headers = {{"Cookie", "a=1; session=abc"}, {"cookie", "b=2"}};
  std::vector<http1::Header> same = {{"cookie", "session=abc"}};
  std::vector<http1::Header> other = {{"cookie", "session=abd"}};
  std::vector<http1::Header> none = {{"cookie", "sessionx=abc; xsession=abc"}};
  EXPECT_EQ(requestHashKey(*cookie, headers, {}), requestHashKey(*cookie, same, {}));
  EXPECT_NE(requestHashKey(*cookie, headers, {}), requestHashKey(*cookie, other, {}));
  EXPECT_FALSE(requestHashKey(*cookie, none, {}).has_value());

  auto ip = parseLoadBalancePolicy("hash-client-ip");
  ASSERT_TRUE(ip.ok());
  EXPECT_EQ(requestHashKey(*ip, {}, *IpAddress::parse("192.0.2.1")),
            requestHashKey(*ip, headers, *IpAddress::parse("192.0.2.1")));
  EXPECT_NE(requestHashKey(*ip, {}, *IpAddress::parse("192.0.2.1")),
            requestHashKey(*ip, {}, *IpAddress::parse("192.0.2.2")));

  auto header = parseLoadBalancePolicy("hash-header:X-User");
  ASSERT_TRUE(header.ok());
  EXPECT_FALSE(requestHashKey(*header, headers, {}).has_value());  // no such header: fallback
  auto leastRequest = parseLoadBalancePolicy("least-request");
  EXPECT_FALSE(requestHashKey(*leastRequest, headers, {}).has_value());
}

TEST(Balancer, ConsecutiveFailuresEjectWithGrowingBackoffAndPanicWhenAllAreOut) {
  auto table = webTable(2, "round-robin");
  HealthOptions options{.consecutiveFailures = 3,
                        .baseEjection = std::chrono::milliseconds(1000),
                        .maxEjection = std::chrono::milliseconds(3000)};
  Balancer balancer(options, 1);
  balancer.setTable(table);
  const Route& route = routeOf(*table);
  const Backend& backend = *route.backend;
  const RouteEndpoint bad = backend.endpoints[0];
  Clock::time_point t0 = Clock::now();

  auto fail = [&](Clock::time_point at) {
    return balancer.finished(balancer.started(backend, 0), Balancer::Outcome::kFailure, at);
  };
  EXPECT_FALSE(fail(t0));
  EXPECT_FALSE(fail(t0));
  EXPECT_TRUE(fail(t0));  // the third in a row ejects
  EXPECT_TRUE(balancer.ejected(bad, t0));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(balancer.pick(route, std::nullopt, t0), 1u);
  EXPECT_FALSE(balancer.ejected(bad, t0 + std::chrono::milliseconds(1001)));

  // Failing again right after its return doubles the ejection; the maximum caps it.
  Clock::time_point t1 = t0 + std::chrono::milliseconds(1001);
  fail(t1), fail(t1), fail(t1);
  EXPECT_TRUE(balancer.ejected(bad, t1 + std::chrono::milliseconds(1999)));
  EXPECT_FALSE(balancer.ejected(bad, t1 + std::chrono::milliseconds(2001)));
  Clock::time_point t2 = t1 + std::chrono::milliseconds(2001);
  fail(t2), fail(t2), fail(t2);
  EXPECT_TRUE(balancer.ejected(bad, t2 + std::chrono::milliseconds(2999)));
  EXPECT_FALSE(balancer.ejected(bad, t2 + std::chrono::milliseconds(3001)));

  // A success resets the count: two failures after it do not eject.
  Clock::time_point t3 = t2 + std::chrono::milliseconds(3001);
  balancer.finished(balancer.started(backend, 0), Balancer::Outcome::kSuccess, t3);
  EXPECT_FALSE(fail(t3));
  EXPECT_FALSE(fail(t3));
  EXPECT_FALSE(balancer.ejected(bad, t3));

  // Both endpoints ejected: both take traffic again rather than none.
  for (uint32_t e : {0u, 1u}) {
    for (int i = 0; i < 3; ++i) {
      balancer.finished(balancer.started(backend, e), Balancer::Outcome::kFailure, t3);
    }
  }
  std::map<uint32_t, int> counts;
  for (int i = 0; i < 10; ++i) ++counts[balancer.pick(route, std::nullopt, t3)];
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_EQ(balancer.ejections(), 5u);
}

TEST(Balancer, HealthFollowsEndpointsAcrossTablesAndLeasesOutliveThem) {
  HealthOptions options{.consecutiveFailures = 1};
  Balancer balancer(options, 1);
  auto first = webTable(3);
  balancer.setTable(first);
  const Route& route = routeOf(*first);
  Clock::time_point now = Clock::now();
  balancer.finished(balancer.started(*route.backend, 2), Balancer::Outcome::kFailure, now);
  Balancer::Lease held = balancer.started(*route.backend, 0);
  const RouteEndpoint third = route.backend->endpoints[2];
  const RouteEndpoint firstEndpoint = route.backend->endpoints[0];
  ASSERT_TRUE(balancer.ejected(third, now));

  // A new table with the same endpoints plus one: the ejection stays; the request in flight
  // still counts against its endpoint and reports into it after the swap.
  auto second = webTable(4);
  balancer.setTable(second);
  first.reset();
  EXPECT_TRUE(balancer.ejected(third, now));
  EXPECT_EQ(balancer.inFlight(firstEndpoint), 1u);
  balancer.finished(std::move(held), Balancer::Outcome::kSuccess, now);
  EXPECT_EQ(balancer.inFlight(firstEndpoint), 0u);

  // Removed from the table, an endpoint's state is forgotten.
  balancer.setTable(webTable(1));
  EXPECT_FALSE(balancer.ejected(third, now));
}

TEST(Balancer, AvoidPicksAnotherEndpointWhenThereIsOne) {
  for (std::string policy : {"round-robin", "least-request", "hash-client-ip"}) {
    auto table = webTable(3, policy);
    Balancer balancer({}, 5);
    balancer.setTable(table);
    const Route& route = routeOf(*table);
    auto key = requestHashKey(*route.loadBalance, {}, *IpAddress::parse("192.0.2.7"));
    for (int i = 0; i < 20; ++i) {
      uint32_t first = balancer.pick(route, key, Clock::now());
      EXPECT_NE(balancer.pick(route, key, Clock::now(), first), first) << policy;
    }
  }
  auto single = webTable(1);
  Balancer balancer({}, 5);
  balancer.setTable(single);
  EXPECT_EQ(balancer.pick(routeOf(*single), std::nullopt, Clock::now(), 0), 0u);
}

}  // namespace
}  // namespace capstan::l7
