// One worker's stats across route tables (l7/ingress_metrics.h): what stays keeps its counts,
// what goes leaves the snapshot (and is freed only once no request uses it), whether the tables
// come in publishing order or not; and a request recorded from start to end.
#include "l7/ingress_metrics.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "tests/l7/ingress_state_builder.h"

// Allocations made by this thread, counted by the replaced operator new below (the default
// operator new[] and the nothrow ones call it). Not under ASan, whose runtime has its own.
thread_local uint64_t allocations = 0;
#if !defined(__SANITIZE_ADDRESS__)
#define CAPSTAN_COUNTS_ALLOCATIONS 1

// GCC 12 takes the free() in a replacement operator delete for a mismatch with new-expressions.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  ++allocations;
  if (void* p = std::malloc(n != 0 ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { ::operator delete(p); }
#pragma GCC diagnostic pop
#endif

namespace capstan::l7 {
namespace {

using test::IngressStateBuilder;
using test::path;
using test::serviceBackend;
using test::TestService;
using namespace std::chrono_literals;

// Ingress default/site: host a.example.com, one Prefix rule per path, all to service "web" whose
// endpoints are `endpoints`.
std::shared_ptr<const RouteTable> table(const std::vector<std::string>& paths,
                                        const std::vector<std::string>& endpoints) {
  TestService web{.name = "web"};
  for (const std::string& ip : endpoints) web.endpoints.push_back({ip});
  Ingress ingress{.name = {"default", "site"}};
  IngressRule rule{.host = "a.example.com"};
  for (const std::string& p : paths) {
    rule.paths.push_back(path(PathType::kPrefix, p, serviceBackend("web", 80)));
  }
  ingress.rules = {rule};
  return RouteTable::build(*IngressStateBuilder().service(web).ingress(ingress).build());
}

const Route& routeOf(const RouteTable& t, const std::string& p) {
  for (const Route& r : t.routes()) {
    if (r.path == p) return r;
  }
  ADD_FAILURE() << "no route " << p;
  return t.routes().front();
}

IngressStats snapshot(const WorkerStats& stats) {
  std::map<RouteLabels, RouteSample> routes;
  std::map<UpstreamLabels, UpstreamSample> upstreams;
  stats.collect(routes, upstreams);
  return mergeStats(std::move(routes), std::move(upstreams));
}

// One request on `route` to endpoint 0 of its backend, answered `status`.
void request(WorkerStats& stats, const RouteTable& t, const Route& route, uint16_t status) {
  RequestRecorder recorder;
  AccessLogBuffer off(nullptr, AccessLogFormat::kJson);
  const auto start = std::chrono::steady_clock::now();
  recorder.begin(start, false);
  recorder.route(stats.route(route));
  recorder.upstream(stats.upstream(&t, *route.backend, 0), start);
  recorder.received(100);
  recorder.status(status);
  recorder.sent(200);
  recorder.end(start + 30ms, "10.0.0.1", off);
}

TEST(WorkerStatsTest, RoutesThatStayKeepTheirCountsAndThoseThatGoLeave) {
  auto first = table({"/a", "/b"}, {"10.0.0.1", "10.0.0.2"});
  auto second = table({"/a", "/c"}, {"10.0.0.1", "10.0.0.3"});
  auto l1 = StatsLayout::build(first.get(), nullptr);
  auto l2 = StatsLayout::build(second.get(), l1.get());
  WorkerStats stats;
  stats.setLayout(l1);
  request(stats, *first, routeOf(*first, "/a"), 200);
  request(stats, *first, routeOf(*first, "/a"), 503);
  request(stats, *first, routeOf(*first, "/b"), 200);

  IngressStats before = snapshot(stats);
  ASSERT_EQ(before.routes.size(), 2u);
  EXPECT_EQ(before.routes[0].path, "/a");
  EXPECT_EQ(before.routes[0].traffic.requests, 2u);
  EXPECT_EQ(before.routes[0].traffic.responses[1], 1u);
  EXPECT_EQ(before.routes[0].traffic.responses[4], 1u);
  EXPECT_EQ(before.routes[0].traffic.bytesIn, 200u);
  EXPECT_EQ(before.routes[0].traffic.bytesOut, 400u);
  EXPECT_EQ(before.routes[0].traffic.buckets[3], 2u) << "30 ms: in (0.025, 0.05]";
  EXPECT_EQ(before.routes[0].traffic.durationNs, 60'000'000u);
  ASSERT_EQ(before.upstreams.size(), 2u);
  EXPECT_EQ(before.upstreams[0].endpoint, "10.0.0.1:8080");
  EXPECT_EQ(before.upstreams[0].service, "default/web");
  EXPECT_EQ(before.upstreams[0].traffic.requests, 3u);

  stats.setLayout(l2);
  IngressStats after = snapshot(stats);
  ASSERT_EQ(after.routes.size(), 2u);
  EXPECT_EQ(after.routes[0].path, "/a");
  EXPECT_EQ(after.routes[0].traffic.requests, 2u) << "kept";
  EXPECT_EQ(after.routes[1].path, "/c");
  EXPECT_EQ(after.routes[1].traffic.requests, 0u) << "new";
  ASSERT_EQ(after.upstreams.size(), 2u);
  EXPECT_EQ(after.upstreams[0].endpoint, "10.0.0.1:8080");
  EXPECT_EQ(after.upstreams[0].traffic.requests, 3u);
  EXPECT_EQ(after.upstreams[1].endpoint, "10.0.0.3:8080");
  EXPECT_EQ(after.upstreams[1].traffic.requests, 0u);
}

TEST(WorkerStatsTest, TablesOutOfPublishingOrderAreMatchedByLabels) {
  auto first = table({"/a", "/b"}, {"10.0.0.1"});
  auto second = table({"/b"}, {"10.0.0.1"});
  WorkerStats stats;
  stats.setLayout(StatsLayout::build(first.get(), nullptr));
  request(stats, *first, routeOf(*first, "/b"), 200);
  // Not built on the worker's current layout: no slot mapping to follow.
  stats.setLayout(StatsLayout::build(second.get(), nullptr));
  IngressStats after = snapshot(stats);
  ASSERT_EQ(after.routes.size(), 1u);
  EXPECT_EQ(after.routes[0].path, "/b");
  EXPECT_EQ(after.routes[0].traffic.requests, 1u);
  ASSERT_EQ(after.upstreams.size(), 1u);
  EXPECT_EQ(after.upstreams[0].traffic.requests, 1u);
}

TEST(WorkerStatsTest, ARequestThatOutlivesItsRouteEndsOnItsStatsAndAnOldTableFindsItsEndpoint) {
  auto first = table({"/a", "/gone"}, {"10.0.0.1", "10.0.0.2"});
  auto second = table({"/a"}, {"10.0.0.2"});
  auto l1 = StatsLayout::build(first.get(), nullptr);
  WorkerStats stats;
  stats.setLayout(l1);
  RequestRecorder inFlight;
  AccessLogBuffer off(nullptr, AccessLogFormat::kJson);
  const auto start = std::chrono::steady_clock::now();
  inFlight.begin(start, false);
  inFlight.route(stats.route(routeOf(*first, "/gone")));
  inFlight.upstream(stats.upstream(first.get(), *routeOf(*first, "/gone").backend, 0), start);

  stats.setLayout(StatsLayout::build(second.get(), l1.get()));
  IngressStats during = snapshot(stats);
  ASSERT_EQ(during.routes.size(), 1u);
  EXPECT_EQ(during.routes[0].path, "/a");
  // The old table's endpoint 1 (10.0.0.2) is the new table's endpoint 0: found by labels.
  const Backend& oldBackend = *routeOf(*first, "/a").backend;
  EXPECT_EQ(stats.upstream(first.get(), oldBackend, 1),
            stats.upstream(second.get(), *routeOf(*second, "/a").backend, 0));
  EXPECT_EQ(stats.upstream(first.get(), oldBackend, 0), nullptr) << "10.0.0.1 is gone";

  stats.reap();  // the retired stats are in use: kept (ASan would see a use after free)
  inFlight.status(200);
  inFlight.end(start + 1ms, "10.0.0.9", off);
  stats.reap();
  EXPECT_EQ(snapshot(stats).routes.size(), 1u);
}

TEST(WorkerStatsTest, RecordingARequestAllocatesNothing) {
#if !defined(CAPSTAN_COUNTS_ALLOCATIONS)
  GTEST_SKIP() << "allocations are counted in builds without ASan";
#endif
  auto t = table({"/a", "/b"}, {"10.0.0.1", "10.0.0.2"});
  WorkerStats stats;
  stats.setLayout(StatsLayout::build(t.get(), nullptr));
  const Route& a = routeOf(*t, "/a");
  RequestRecorder recorder;
  AccessLogBuffer off(nullptr, AccessLogFormat::kJson);
  AccessLogFormatter formatter(AccessLogFormat::kJson);
  AccessLogEntry entry;
  entry.client = "10.0.0.9";
  entry.method = "GET";
  entry.target = "/a/with/a/long/enough/target?and=query";
  entry.userAgent = "Mozilla/5.0 (X11; Linux x86_64) \"quoted\" \xff";
  std::string line;
  line.reserve(4096);
  auto now = std::chrono::steady_clock::now();
  const uint64_t before = allocations;
  for (int i = 0; i < 1000; ++i) {
    recorder.begin(now, false);
    recorder.received(120);
    recorder.route(stats.route(a));
    recorder.upstream(stats.upstream(t.get(), *a.backend, static_cast<uint32_t>(i % 2)), now);
    recorder.status(static_cast<uint16_t>(200 + i % 400));
    recorder.sent(300);
    now += std::chrono::microseconds(i * 37);
    recorder.end(now, "10.0.0.9", off);
    line.clear();
    entry.time = std::chrono::system_clock::now();
    formatter.append(entry, line);
  }
  EXPECT_EQ(allocations - before, 0u);
  EXPECT_EQ(snapshot(stats).routes[0].traffic.requests, 1000u);
}

}  // namespace
}  // namespace capstan::l7
