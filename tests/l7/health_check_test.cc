// Active health checks: the annotations' parsing, what a route table does with a health report,
// and the checker itself against real HTTP upstreams on loopback that go away and come back.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "l7/health_checker.h"
#include "l7/health_policy.h"
#include "l7/route_table.h"
#include "tests/l7/ingress_state_builder.h"
#include "tests/support/child_process.h"
#include "tests/support/http_peers.h"

namespace capstan::l7 {
namespace {

using support::HttpUpstream;
using test::IngressStateBuilder;
using test::path;
using test::serviceBackend;
using test::TestService;
using namespace std::chrono_literals;

Ingress annotated(std::map<std::string, std::string> annotations, std::string name = "site",
                  std::string service = "web") {
  Ingress ingress{.name = {"default", std::move(name)}};
  ingress.rules = {{.host = ingress.name.name + ".example.com",
                    .paths = {path(PathType::kPrefix, "/", serviceBackend(service, 80))}}};
  for (auto& [key, value] : annotations) ingress.annotations["capstan.io/" + key] = value;
  return ingress;
}

TEST(HealthCheckPolicy, ParsesTheAnnotations) {
  auto none = healthCheckPolicyOf(annotated({{"health-check-interval", "1s"}}));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(*none) << "no path: no checks";

  auto defaults = healthCheckPolicyOf(annotated({{"health-check-path", "/healthz"}}));
  ASSERT_TRUE(defaults.ok()) << defaults.error().message();
  ASSERT_TRUE(*defaults);
  EXPECT_EQ((*defaults)->path, "/healthz");
  EXPECT_EQ((*defaults)->interval, 5s);
  EXPECT_EQ((*defaults)->timeout, 1s);
  EXPECT_EQ((*defaults)->unhealthyThreshold, 3u);
  EXPECT_EQ((*defaults)->healthyThreshold, 2u);
  EXPECT_EQ((*defaults)->host, "");

  auto all = healthCheckPolicyOf(annotated({{"health-check-path", "/ready?full=1"},
                                            {"health-check-interval", "1m30s"},
                                            {"health-check-timeout", "250ms"},
                                            {"health-check-unhealthy-threshold", "5"},
                                            {"health-check-healthy-threshold", "1"},
                                            {"health-check-host", "app.example.com"}}));
  ASSERT_TRUE(all.ok()) << all.error().message();
  EXPECT_EQ((*all)->path, "/ready?full=1");
  EXPECT_EQ((*all)->interval, 90s);
  EXPECT_EQ((*all)->timeout, 250ms);
  EXPECT_EQ((*all)->unhealthyThreshold, 5u);
  EXPECT_EQ((*all)->healthyThreshold, 1u);
  EXPECT_EQ((*all)->host, "app.example.com");
}

TEST(HealthCheckPolicy, RefusesBadValuesNamingTheAnnotation) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"health-check-path", "healthz"},
      {"health-check-path", "/a b"},
      {"health-check-path", "/a#b"},
      {"health-check-path", ""},
      {"health-check-interval", "5"},
      {"health-check-interval", "1ms"},
      {"health-check-interval", "2h"},
      {"health-check-timeout", "soon"},
      {"health-check-unhealthy-threshold", "0"},
      {"health-check-healthy-threshold", "x"},
      {"health-check-healthy-threshold", "101"},
      {"health-check-host", "a b"},
  };
  for (const auto& [key, value] : bad) {
    std::map<std::string, std::string> annotations = {{"health-check-path", "/healthz"}};
    annotations[key] = value;
    auto policy = healthCheckPolicyOf(annotated(annotations));
    ASSERT_FALSE(policy.ok()) << key << "=" << value;
    EXPECT_NE(policy.error().message().find("capstan.io/" + key), std::string::npos)
        << policy.error().message();
  }
}

class HealthRouteTableTest : public ::testing::Test {
 protected:
  std::shared_ptr<const RouteTable> build(std::vector<Ingress> ingresses,
                                          const HealthReport* report) {
    TestService web{.name = "web",
                    .ports = {{.port = 80, .targetPort = 8080}},
                    .endpoints = {{"10.0.0.1"}, {"10.0.0.2"}, {"10.0.0.3"}}};
    TestService api{.name = "api",
                    .ports = {{.port = 80, .targetPort = 8080}},
                    .endpoints = {{"10.0.1.1"}, {"10.0.1.2"}}};
    IngressStateBuilder builder;
    builder.service(web).service(api);
    for (Ingress& ingress : ingresses) builder.ingress(std::move(ingress));
    return RouteTable::build(*builder.build(), report);
  }
  static const Backend& backendOf(const RouteTable& table, const std::string& service) {
    for (const Backend& b : table.backends()) {
      if (b.servicePort.service.name == service) return b;
    }
    ADD_FAILURE() << "no backend " << service;
    return table.backends().front();
  }
  static std::vector<std::string> names(const std::vector<RouteEndpoint>& endpoints) {
    std::vector<std::string> out;
    for (const RouteEndpoint& e : endpoints) out.push_back(e.toString());
    return out;
  }
  static std::string key(const RouteTable& table, const std::string& service,
                         const std::string& endpoint) {
    const Backend& b = backendOf(table, service);
    return b.servicePort.toString() + " " + endpoint;
  }
};

TEST_F(HealthRouteTableTest, DownEndpointsLeaveTheirBackendUnlessAllAreDown) {
  auto plain =
      build({annotated({{"health-check-path", "/healthz"}}), annotated({}, "api", "api")}, nullptr);
  ASSERT_NE(backendOf(*plain, "web").healthCheck, nullptr);
  EXPECT_EQ(backendOf(*plain, "web").healthCheck->path, "/healthz");
  EXPECT_EQ(backendOf(*plain, "api").healthCheck, nullptr);
  EXPECT_EQ(healthTargets(*plain).size(), 3u) << "web's endpoints only";

  HealthReport report;
  report.down.insert(key(*plain, "web", "10.0.0.2:8080"));
  // api has no checks: a report naming its endpoint changes nothing.
  report.down.insert(key(*plain, "api", "10.0.1.1:8080"));
  auto checked =
      build({annotated({{"health-check-path", "/healthz"}}), annotated({}, "api", "api")}, &report);
  EXPECT_EQ(names(backendOf(*checked, "web").endpoints),
            (std::vector<std::string>{"10.0.0.1:8080", "10.0.0.3:8080"}));
  EXPECT_EQ(names(backendOf(*checked, "web").down), (std::vector<std::string>{"10.0.0.2:8080"}));
  EXPECT_EQ(backendOf(*checked, "api").endpoints.size(), 2u);
  // The down endpoint is still a target, so that it can come back.
  EXPECT_EQ(healthTargets(*checked).size(), 3u);

  // All down: all kept (panic).
  report.down.insert(key(*plain, "web", "10.0.0.1:8080"));
  report.down.insert(key(*plain, "web", "10.0.0.3:8080"));
  auto panic = build({annotated({{"health-check-path", "/healthz"}})}, &report);
  EXPECT_EQ(backendOf(*panic, "web").endpoints.size(), 3u);
  EXPECT_TRUE(backendOf(*panic, "web").down.empty());
}

TEST_F(HealthRouteTableTest, TheFirstIngressPolicyWinsAndBadAnnotationsAreReported) {
  auto table = build(
      {annotated({{"health-check-path", "/b"}}, "b-site"),
       annotated({{"health-check-path", "/a"}}, "a-site"),
       annotated({{"health-check-path", "/x"}, {"health-check-interval", "fast"}}, "c-bad", "api")},
      nullptr);
  EXPECT_EQ(backendOf(*table, "web").healthCheck->path, "/a");
  EXPECT_EQ(backendOf(*table, "api").healthCheck, nullptr);
  std::string warnings;
  for (const std::string& w : table->warnings()) warnings += w + "\n";
  EXPECT_NE(warnings.find("Ingress default/b-site: metadata.annotations: the health checks of "
                          "default/web:http differ"),
            std::string::npos)
      << warnings;
  EXPECT_NE(warnings.find("Ingress default/c-bad: metadata.annotations[capstan.io/"
                          "health-check-interval]"),
            std::string::npos)
      << warnings;
}

class HealthCheckerTest : public ::testing::Test {
 protected:
  void SetUp() override { upstreams_ = support::upstreamsOnOnePort({"a", "b", "c"}); }

  std::vector<HealthTarget> targets(const std::string& path) {
    HealthCheckPolicy policy{.path = path,
                             .interval = 20ms,
                             .timeout = 500ms,
                             .unhealthyThreshold = 2,
                             .healthyThreshold = 2};
    std::vector<HealthTarget> out;
    for (const auto& u : upstreams_) {
      out.push_back({ServicePortName{{"default", "web"}, "http"},
                     {*IpAddress::parse(u->address()), u->port()},
                     policy});
    }
    return out;
  }

  std::vector<std::unique_ptr<HttpUpstream>> upstreams_;
  std::atomic<int> changes_{0};
};

TEST_F(HealthCheckerTest, AnEndpointThatGoesAwayIsDownAndComesBack) {
  HealthChecker checker([this] { ++changes_; });
  auto wanted = targets("/healthz");
  const std::string bKey = wanted[1].key();
  const uint16_t port = upstreams_[0]->port();
  checker.setTargets(wanted);
  ASSERT_TRUE(support::waitFor([&] { return upstreams_[1]->requests() >= 3; }));
  EXPECT_TRUE(checker.report().down.empty());
  EXPECT_EQ(changes_, 0);
  EXPECT_EQ(checker.stats().targets, 3u);

  upstreams_[1].reset();  // b's pod goes away: connects are refused
  ASSERT_TRUE(support::waitFor([&] { return checker.report().down.size() == 1; }));
  EXPECT_TRUE(checker.report().down.contains(bKey));
  EXPECT_TRUE(support::waitFor([&] { return changes_ == 1; }));
  EXPECT_EQ(checker.stats().down, 1u);
  EXPECT_GE(checker.stats().failures, 2u);

  upstreams_[1] = std::make_unique<HttpUpstream>("b", "127.0.0.3", port);  // and comes back
  ASSERT_TRUE(support::waitFor([&] { return checker.report().down.empty(); }));
  EXPECT_TRUE(support::waitFor([&] { return changes_ == 2; }));
  EXPECT_GE(upstreams_[1]->requests(), 2u);
}

TEST_F(HealthCheckerTest, ErrorStatusesAreFailuresAndRemovedTargetsLeaveTheReport) {
  HealthChecker checker([this] { ++changes_; });
  checker.setTargets(targets("/status/503"));
  ASSERT_TRUE(support::waitFor([&] { return checker.report().down.size() == 3; }));
  // The same targets with another path: new checks, starting up; 3xx counts as healthy.
  checker.setTargets(targets("/status/302"));
  ASSERT_TRUE(support::waitFor([&] { return checker.report().down.empty(); }));
  const uint64_t checks = checker.stats().checks;
  ASSERT_TRUE(support::waitFor([&] { return checker.stats().checks > checks + 6; }));
  EXPECT_TRUE(checker.report().down.empty());

  checker.setTargets(targets("/status/500"));
  ASSERT_TRUE(support::waitFor([&] { return checker.report().down.size() == 3; }));
  checker.setTargets({});  // the Ingress lost its annotation: nothing checked, nothing down
  ASSERT_TRUE(support::waitFor([&] { return checker.stats().targets == 0; }));
  EXPECT_TRUE(checker.report().down.empty());
}

}  // namespace
}  // namespace capstan::l7
