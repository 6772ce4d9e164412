#include "control/proxier_health.h"

#include <gtest/gtest.h>

#include <regex>

namespace capstan::control {
namespace {

using namespace std::chrono_literals;
using Clock = ProxierHealth::WallClock;

// 2026-11-24 10:00:00 UTC
const Clock::time_point kT0 = Clock::time_point(std::chrono::seconds(1795514400));

TEST(ProxierHealth, HealthyWhileStartingAndAfterSync) {
  ProxierHealth h(60s);
  auto r = h.healthz(kT0);
  EXPECT_TRUE(r.healthy);
  EXPECT_EQ(r.status, 200);
  h.queuedUpdate(kT0);
  EXPECT_TRUE(h.healthz(kT0 + 59s).healthy);
  h.updated(kT0 + 1s);
  EXPECT_TRUE(h.healthz(kT0 + 500s).healthy);  // idle is healthy
  EXPECT_NEAR(h.secondsSinceUpdate(kT0 + 11s), 10.0, 1e-9);
}

TEST(ProxierHealth, UnhealthyWhenAChangeWaitsLongerThanTheTimeout) {
  ProxierHealth h(60s);
  h.updated(kT0);
  h.queuedUpdate(kT0 + 10s);
  h.queuedUpdate(kT0 + 50s);  // the oldest one is what counts
  EXPECT_TRUE(h.healthz(kT0 + 69s).healthy);
  auto r = h.healthz(kT0 + 70s);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.status, 503);
  // Unhealthy: lastUpdated is the real last sync.
  EXPECT_EQ(r.body,
            "{\"lastUpdated\": \"2026-11-24 10:00:00 +0000 UTC\",\"currentTime\": \"2026-11-24 "
            "10:01:10 +0000 UTC\", \"nodeEligible\": true}");
  EXPECT_EQ(h.livez(kT0 + 70s).status, 503);
  h.updated(kT0 + 71s);
  EXPECT_TRUE(h.healthz(kT0 + 72s).healthy);
}

TEST(ProxierHealth, NodeBeingDeletedFailsHealthzButNotLivez) {
  ProxierHealth h(60s);
  h.setNodeEligible(false);
  auto r = h.healthz(kT0);
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("\"nodeEligible\": false"), std::string::npos) << r.body;
  EXPECT_EQ(h.livez(kT0).status, 200);
}

TEST(ProxierHealth, SourceNotReadyFailsHealthzButNotLivez) {
  ProxierHealth h(60s);
  h.setSourceReady(false);
  EXPECT_EQ(h.healthz(kT0).status, 503);
  EXPECT_EQ(h.livez(kT0).status, 200);
  h.updated(kT0);  // a sync of a partial view does not make it ready either
  EXPECT_EQ(h.healthz(kT0).status, 503);
  h.setSourceReady(true);
  EXPECT_EQ(h.healthz(kT0).status, 200);
}

TEST(ProxierHealth, BodiesHaveKubeProxyShape) {
  ProxierHealth h(60s);
  auto healthz = h.healthz(kT0 + 123456789ns);
  // Healthy: lastUpdated is reported as now, as kube-proxy does for compatibility.
  EXPECT_EQ(healthz.body,
            "{\"lastUpdated\": \"2026-11-24 10:00:00.123456789 +0000 UTC\",\"currentTime\": "
            "\"2026-11-24 10:00:00.123456789 +0000 UTC\", \"nodeEligible\": true}");
  auto livez = h.livez(kT0);
  EXPECT_TRUE(std::regex_match(livez.body,
                               std::regex(R"(\{"lastUpdated": "[^"]+","currentTime": "[^"]+"\})")))
      << livez.body;
}

}  // namespace
}  // namespace capstan::control
