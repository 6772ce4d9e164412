// The reflector against the API server stand-in, over real loopback sockets.
#include "control/kube/reflector.h"

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include "tests/support/kube_api_server.h"

namespace capstan::control::kube {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using support::KubeApiServer;

std::string serviceJson(int i, int port = 80, const std::string& extraLabels = "") {
  std::string ip = "10.96." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
  return R"({"kind":"Service","apiVersion":"v1","metadata":{"name":"svc-)" + std::to_string(i) +
         R"(","namespace":"ns-)" + std::to_string(i % 7) + R"(","uid":"0b6f1c2e-0000-4000-8000-)" +
         std::to_string(100000000000 + i) +
         R"(","creationTimestamp":"2026-11-20T08:15:02Z","labels":{"app":"svc-)" +
         std::to_string(i) + "\"" + extraLabels +
         R"(}},"spec":{"ports":[{"name":"http","protocol":"TCP","port":)" + std::to_string(port) +
         R"(,"targetPort":8080}],"selector":{"app":"svc"},"clusterIP":")" + ip +
         R"(","clusterIPs":[")" + ip +
         R"("],"type":"ClusterIP","sessionAffinity":"None","ipFamilies":["IPv4"],"ipFamilyPolicy":"SingleStack","internalTrafficPolicy":"Cluster"},"status":{"loadBalancer":{}}})";
}

ObjectKey serviceKey(int i) {
  return ObjectKey{ObjectKind::kService,
                   {"ns-" + std::to_string(i % 7), "svc-" + std::to_string(i)}};
}

int servicePort(const KubeObject& object) {
  return std::get<std::shared_ptr<const Service>>(object)->ports.at(0).port;
}

ResourceSpec servicesSpec() {
  return {ObjectKind::kService, "/api/v1/services", std::string(kProxyLabelSelector), ""};
}

ReflectorOptions fastOptions() {
  ReflectorOptions o;
  o.backoffInitial = 20ms;
  o.backoffMax = 200ms;
  o.seed = 42;
  return o;
}

// A reflector on its own io thread, and a mirror of what it delivered.
class Harness {
 public:
  Harness(const ClusterConfig& config, ResourceSpec spec, ReflectorOptions options = fastOptions(),
          ApiClientOptions clientOptions = {}) {
    auto client = ApiClient::create(io_, config, clientOptions);
    if (!client.ok()) throw std::runtime_error(client.error().message());
    client_ = std::move(client).value();
    reflector_ = std::make_unique<Reflector>(io_, *client_, std::move(spec), options,
                                             [this](ReflectorUpdate u) { deliver(std::move(u)); });
  }
  ~Harness() {
    stop();
    if (testing::Test::HasFailure()) {
      for (const Diagnostic& d : diagnostics_)
        std::printf("diagnostic: %s\n", d.toString().c_str());
    }
  }

  void start() {
    asio::co_spawn(io_, reflector_->run(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  void stop() {
    if (!thread_.joinable()) return;
    asio::post(io_, [this] {
      reflector_->stop();
      client_->cancelAll();
    });
    thread_.join();
  }
  // Runs `f` on the io thread and returns its result.
  template <typename F>
  auto onIo(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    asio::post(io_, [&task] { task(); });
    return result.get();
  }
  void cutConnections() {
    onIo([this] {
      client_->cancelAll();
      return 0;
    });
  }
  Reflector::Stats stats() {
    return onIo([this] { return reflector_->stats(); });
  }
  std::string resourceVersion() const { return reflector_->resourceVersion(); }  // io thread

  bool waitFor(const std::function<bool()>& predicate, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, predicate);
  }
  bool waitForLists(size_t n) {
    return waitFor([&] { return lists_ >= n; });
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<ObjectKey, KubeObject> mirror_;
  std::vector<ObjectEvent> events_;  // every event, in order
  std::vector<Diagnostic> diagnostics_;
  size_t lists_ = 0;
  std::vector<size_t> eventsPerList_;

 private:
  void deliver(ReflectorUpdate u) {
    std::lock_guard lock(mu_);
    for (const ObjectEvent& e : u.events) {
      if (e.type == ObjectEvent::Type::kUpsert) {
        mirror_[e.key] = e.object;
      } else {
        mirror_.erase(e.key);
      }
      events_.push_back(e);
    }
    for (Diagnostic& d : u.diagnostics) diagnostics_.push_back(std::move(d));
    if (u.listed) {
      ++lists_;
      eventsPerList_.push_back(u.events.size());
    }
    cv_.notify_all();
  }

  asio::io_context io_;
  std::unique_ptr<ApiClient> client_;
  std::unique_ptr<Reflector> reflector_;
  std::thread thread_;
};

size_t watchRequests(const KubeApiServer& server) {
  auto requests = server.requests();
  return static_cast<size_t>(std::count_if(requests.begin(), requests.end(), [](const auto& r) {
    return r.target.find("watch=true") != std::string::npos;
  }));
}

// Waits (bounded) until the server has seen `n` watch requests and one watch is open.
bool waitForWatchRequests(const KubeApiServer& server, size_t n) {
  for (int i = 0; i < 500; ++i) {
    if (watchRequests(server) >= n && server.openWatches() >= 1) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

std::string watchResourceVersion(const std::string& target) {
  size_t at = target.find("resourceVersion=");
  if (at == std::string::npos) return "";
  return target.substr(at + 16, target.find('&', at) - at - 16);
}

ClusterConfig plain(const KubeApiServer& server) {
  ClusterConfig c;
  c.server = server.url();
  c.origin = "test";
  return c;
}

TEST(Reflector, ListsTenThousandServicesInPagesThenWatchesChanges) {
  KubeApiServer server;
  for (int i = 0; i < 10000; ++i) server.upsert(serviceJson(i));
  // kube-proxy's selector keeps these out: another proxy's Service.
  server.upsert(serviceJson(10001, 80, R"(,"service.kubernetes.io/service-proxy-name":"other")"));
  Harness h(plain(server), servicesSpec());
  auto start = std::chrono::steady_clock::now();
  h.start();
  ASSERT_TRUE(h.waitForLists(1));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("initial list of 10,000 Services (20 pages): %.3f s\n", seconds);
  {
    std::lock_guard lock(h.mu_);
    EXPECT_EQ(h.mirror_.size(), 10000u);
    EXPECT_EQ(h.eventsPerList_.at(0), 10000u);
    EXPECT_FALSE(h.mirror_.count(serviceKey(10001)));
  }
  auto requests = server.requests();
  ASSERT_EQ(
      std::count_if(requests.begin(), requests.end(),
                    [](const auto& r) { return r.target.find("watch=") == std::string::npos; }),
      20);
  EXPECT_NE(requests[0].target.find("limit=500"), std::string::npos) << requests[0].target;
  EXPECT_NE(requests[0].target.find("resourceVersion=0"), std::string::npos);
  EXPECT_NE(
      requests[0].target.find("labelSelector=%21service.kubernetes.io%2Fheadless%2C%21service."
                              "kubernetes.io%2Fservice-proxy-name"),
      std::string::npos)
      << requests[0].target;
  EXPECT_NE(requests[1].target.find("continue="), std::string::npos);
  EXPECT_EQ(requests[1].target.find("resourceVersion="), std::string::npos);

  ASSERT_TRUE(server.waitForWatches(1, 5s));
  // A stream of changes: 100 port changes, 10 deletions, 10 new Services.
  for (int i = 0; i < 100; ++i) server.upsert(serviceJson(i, 1000 + i));
  for (int i = 100; i < 110; ++i)
    server.remove("Service", "ns-" + std::to_string(i % 7), "svc-" + std::to_string(i));
  for (int i = 20000; i < 20010; ++i)
    server.upsert(serviceJson(i % 10000 + 20000 - 10000 * 2 + 10000, 80));
  ASSERT_TRUE(h.waitFor([&] { return h.events_.size() >= 10000 + 120; }));
  std::this_thread::sleep_for(100ms);  // nothing more comes
  std::lock_guard lock(h.mu_);
  EXPECT_EQ(h.events_.size(), 10000u + 120);
  EXPECT_EQ(h.mirror_.size(), 10000u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(servicePort(h.mirror_.at(serviceKey(i))), 1000 + i);
  EXPECT_FALSE(h.mirror_.count(serviceKey(100)));
  EXPECT_EQ(h.lists_, 1u);
}

TEST(Reflector, DroppedWatchResumesWithoutLosingOrRepeating) {
  KubeApiServer server;
  for (int i = 0; i < 20; ++i) server.upsert(serviceJson(i));
  Harness h(plain(server), servicesSpec());
  h.start();
  ASSERT_TRUE(h.waitForLists(1));
  ASSERT_TRUE(waitForWatchRequests(server, 1));
  std::vector<std::string> expectedRvs = {std::to_string(server.resourceVersion())};
  for (int round = 0; round < 5; ++round) {
    // Ten changes the client reads, a cut, and ten more made while it is away: the resumed
    // watch must replay exactly those, from the version of the last event read.
    for (int i = 0; i < 10; ++i) server.upsert(serviceJson(i, 100 * (round + 1) + i));
    ASSERT_TRUE(h.waitFor([&] { return h.events_.size() >= 20 + 20 * size_t(round) + 10; }));
    expectedRvs.push_back(std::to_string(server.resourceVersion()));
    server.dropWatches();
    for (int i = 10; i < 20; ++i) server.upsert(serviceJson(i, 100 * (round + 1) + i));
    ASSERT_TRUE(waitForWatchRequests(server, size_t(round) + 2)) << round;
  }
  ASSERT_TRUE(h.waitFor([&] { return h.events_.size() >= 20 + 100; }));
  std::this_thread::sleep_for(200ms);
  {
    std::lock_guard lock(h.mu_);
    ASSERT_EQ(h.events_.size(), 120u);
    // Every change once, in order: service i's ports went 100+i, 200+i, ... 500+i.
    std::map<ObjectKey, int> last;
    for (size_t e = 20; e < h.events_.size(); ++e) {
      int port = servicePort(h.events_[e].object);
      int& prev = last[h.events_[e].key];
      EXPECT_EQ(port / 100, prev / 100 + 1) << h.events_[e].key.toString();
      prev = port;
    }
  }
  EXPECT_EQ(h.stats().lists, 1u);  // resumed, never relisted
  std::vector<std::string> watchRvs;
  for (const auto& r : server.requests()) {
    if (r.target.find("watch=true") == std::string::npos) continue;
    EXPECT_NE(r.target.find("allowWatchBookmarks=true"), std::string::npos);
    EXPECT_NE(r.target.find("timeoutSeconds="), std::string::npos);
    watchRvs.push_back(watchResourceVersion(r.target));
  }
  EXPECT_EQ(watchRvs, expectedRvs);
}

TEST(Reflector, BookmarksAdvanceTheResourceVersion) {
  KubeApiServer server;
  server.upsert(serviceJson(1));
  Harness h(plain(server), servicesSpec());
  h.start();
  ASSERT_TRUE(h.waitForLists(1));
  ASSERT_TRUE(waitForWatchRequests(server, 1));
  // Changes the selector hides move the version on; a bookmark tells the client.
  for (int i = 0; i < 5; ++i) {
    server.upsert(serviceJson(50 + i, 80, R"(,"service.kubernetes.io/service-proxy-name":"x")"));
  }
  server.bookmark();
  std::string rv = std::to_string(server.resourceVersion());
  bool advanced = false;
  for (int i = 0; i < 200 && !advanced; ++i) {
    std::this_thread::sleep_for(10ms);
    advanced = h.onIo([&] { return h.resourceVersion(); }) == rv;
  }
  EXPECT_TRUE(advanced);
  server.dropWatches();
  ASSERT_TRUE(waitForWatchRequests(server, 2));
  auto requests = server.requests();
  EXPECT_EQ(watchResourceVersion(requests.back().target), rv) << requests.back().target;
  std::lock_guard lock(h.mu_);
  EXPECT_EQ(h.events_.size(), 1u);
}

// 410 Gone, as an ERROR event or as the HTTP status: a relist whose events are exactly the
// difference from the previous view.
void goneRelist(bool asHttpStatus) {
  KubeApiServer server;
  server.setGoneAsHttpStatus(asHttpStatus);
  for (int i = 0; i < 1200; ++i) server.upsert(serviceJson(i));
  ReflectorOptions options = fastOptions();
  Harness h(plain(server), servicesSpec(), options);
  h.start();
  ASSERT_TRUE(h.waitForLists(1));
  ASSERT_TRUE(server.waitForWatches(1, 5s));
  // The client misses these: it is away while they happen and the history is compacted.
  server.setDown(true);
  for (int i = 0; i < 3; ++i) server.upsert(serviceJson(i, 9000 + i));  // changed
  server.remove("Service", "ns-3", "svc-10");                           // gone
  server.remove("Service", "ns-4", "svc-11");                           // gone
  server.upsert(serviceJson(5000));                                     // new
  server.upsert(serviceJson(5001));                                     // new
  server.upsert(serviceJson(20));                                       // same content
  server.compact();
  server.setDown(false);
  ASSERT_TRUE(h.waitForLists(2));
  std::this_thread::sleep_for(100ms);
  std::lock_guard lock(h.mu_);
  EXPECT_EQ(h.eventsPerList_.at(1), 7u);
  ASSERT_EQ(h.events_.size(), 1200u + 7);
  std::set<std::string> relist;
  for (size_t e = 1200; e < h.events_.size(); ++e) {
    relist.insert((h.events_[e].type == ObjectEvent::Type::kDelete ? "-" : "+") +
                  h.events_[e].key.toString());
  }
  EXPECT_EQ(relist, (std::set<std::string>{"+Service ns-0/svc-0", "+Service ns-1/svc-1",
                                           "+Service ns-2/svc-2", "-Service ns-3/svc-10",
                                           "-Service ns-4/svc-11", "+Service ns-2/svc-5000",
                                           "+Service ns-3/svc-5001"}));
  EXPECT_EQ(h.mirror_.size(), 1200u);
  // The relist asked for the latest state (no resourceVersion), paginated.
  auto requests = server.requests();
  bool latest = false;
  for (const auto& r : requests) {
    if (r.target.find("watch=") == std::string::npos &&
        r.target.find("resourceVersion=") == std::string::npos &&
        r.target.find("continue=") == std::string::npos) {
      latest = true;
    }
  }
  EXPECT_TRUE(latest);
}

TEST(Reflector, GoneAsErrorEventRelistsTheExactDiff) { goneRelist(false); }
TEST(Reflector, GoneAsHttpStatusRelistsTheExactDiff) { goneRelist(true); }

TEST(Reflector, ErrorEvent410MidWatchRelistsWithoutChanges) {
  KubeApiServer server;
  for (int i = 0; i < 30; ++i) server.upsert(serviceJson(i));
  Harness h(plain(server), servicesSpec());
  h.start();
  ASSERT_TRUE(h.waitForLists(1));
  ASSERT_TRUE(server.waitForWatches(1, 5s));
  server.sendWatchError(410);
  ASSERT_TRUE(h.waitForLists(2));
  std::lock_guard lock(h.mu_);
  EXPECT_EQ(h.eventsPerList_.at(1), 0u);  // nothing changed: nothing for the tracker
  EXPECT_EQ(h.events_.size(), 30u);
}

TEST(Reflector, ExpiredContinueTokenFallsBackToOneFullList) {
  KubeApiServer server;
  for (int i = 0; i < 1500; ++i) server.upsert(serviceJson(i));
  server.compact();
  // Every continue token the server hands out is already too old: compact after each page.
  ReflectorOptions options = fastOptions();
  options.pageSize = 1000;
  Harness h(plain(server), servicesSpec(), options);
  std::atomic<bool> stop = false;
  std::thread compactor([&] {
    for (int i = 0; i < 500 && !stop; ++i) {
      if (server.requests().size() >= 1) {
        server.upsert(serviceJson(1499));  // moves the version on
        server.compact();
        break;
      }
      std::this_thread::sleep_for(1ms);
    }
  });
  h.start();
  ASSERT_TRUE(h.waitForLists(1));
  stop = true;
  compactor.join();
  std::lock_guard lock(h.mu_);
  EXPECT_EQ(h.mirror_.size(), 1500u);
}

TEST(Reflector, ServerDownThenBackCatchesUpAfterBackoff) {
  KubeApiServer server;
  for (int i = 0; i < 50; ++i) server.upsert(serviceJson(i));
  Harness h(plain(server), servicesSpec());
  h.start();
  ASSERT_TRUE(h.waitForLists(1));
  ASSERT_TRUE(server.waitForWatches(1, 5s));
  server.setDown(true);
  for (int i = 0; i < 10; ++i) server.upsert(serviceJson(i, 7000 + i));
  std::this_thread::sleep_for(1s);
  {
    std::lock_guard lock(h.mu_);
    EXPECT_EQ(h.events_.size(), 50u);  // the view stays as it was while the server is away
  }
  auto down = h.stats();
  EXPECT_GE(down.backoffs, 3u);
  EXPECT_LE(down.backoffs, 40u);  // 20 ms doubling to 200 ms with jitter: not a busy loop
  server.setDown(false);
  ASSERT_TRUE(h.waitFor([&] { return h.events_.size() >= 60; }));
  std::lock_guard lock(h.mu_);
  EXPECT_EQ(h.events_.size(), 60u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(servicePort(h.mirror_.at(serviceKey(i))), 7000 + i);
  EXPECT_EQ(h.lists_, 1u);  // resumed from the version it had
}

TEST(Reflector, RetryAfterIsHonoured) {
  KubeApiServer server;
  server.upsert(serviceJson(1));
  server.failNext(429, 1, /*retryAfterSeconds=*/1);
  Harness h(plain(server), servicesSpec());  // backoff 20 ms: the wait is the server's
  h.start();
  ASSERT_TRUE(h.waitForLists(1));
  auto requests = server.requests();
  ASSERT_GE(requests.size(), 2u);
  EXPECT_EQ(requests[0].status, 429);
  EXPECT_EQ(requests[1].status, 200);
  double waited = std::chrono::duration<double>(requests[1].at - requests[0].at).count();
  EXPECT_GE(waited, 1.0);
  EXPECT_LT(waited, 2.5);
  std::printf("Retry-After: 1 -> retried after %.3f s\n", waited);
}

TEST(Reflector, ServerErrorsBackOffWithJitterThenSucceed) {
  KubeApiServer server;
  server.upsert(serviceJson(1));
  server.failNext(500, 4);
  Harness h(plain(server), servicesSpec());
  h.start();
  ASSERT_TRUE(h.waitForLists(1));
  auto requests = server.requests();
  ASSERT_GE(requests.size(), 5u);
  // 20, 40, 80, 160 ms, each with up to as much again of jitter.
  for (size_t i = 1; i < 5; ++i) {
    double gap =
        std::chrono::duration<double, std::milli>(requests[i].at - requests[i - 1].at).count();
    double base = 20.0 * double(1 << (i - 1));
    EXPECT_GE(gap, base) << i;
    EXPECT_LT(gap, 2 * base + 100) << i;
  }
}

TEST(Reflector, MalformedObjectInTheStreamIsReportedAndSkipped) {
  KubeApiServer server;
  server.upsert(serviceJson(1));
  Harness h(plain(server), servicesSpec());
  h.start();
  ASSERT_TRUE(h.waitForLists(1));
  ASSERT_TRUE(server.waitForWatches(1, 5s));
  std::string bad = serviceJson(1, 70000);
  bad.replace(bad.find("\"metadata\":{"), 12, "\"metadata\":{\"resourceVersion\":\"5000\",");
  server.injectWatchLine("services", R"({"type":"MODIFIED","object":)" + bad + "}");
  server.injectWatchLine("services", "{not json");
  server.upsert(serviceJson(2));
  ASSERT_TRUE(h.waitFor([&] { return h.events_.size() >= 2; }));
  std::lock_guard lock(h.mu_);
  EXPECT_EQ(h.events_.size(), 2u);
  EXPECT_EQ(servicePort(h.mirror_.at(serviceKey(1))), 80);  // the last good version stays
  ASSERT_TRUE(h.mirror_.count(serviceKey(2)));
  std::string all;
  for (const auto& d : h.diagnostics_) all += d.toString() + "\n";
  EXPECT_NE(all.find("Service ns-1/svc-1: spec.ports[0].port: must be between 1 and 65535, got "
                     "70000 (keeping its last good version)"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("Service watch: JSON document 1 at byte 0: The JSON document has an improper "
                     "structure"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("; event skipped"), std::string::npos) << all;
}

TEST(Reflector, EndpointSliceTriggerTimeAfterStartOnly) {
  KubeApiServer server;
  auto slice = [](const std::string& name, const std::string& time, const std::string& ip) {
    return R"({"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":")" +
           name +
           R"(","namespace":"shop","labels":{"kubernetes.io/service-name":"web"},"annotations":{"endpoints.kubernetes.io/last-change-trigger-time":")" +
           time + R"("}},"addressType":"IPv4","endpoints":[{"addresses":[")" + ip +
           R"("],"conditions":{"ready":true,"serving":true,"terminating":false},"nodeName":"node-a"}],"ports":[{"name":"http","protocol":"TCP","port":8080}]})";
  };
  server.upsert(slice("web-old", "2020-01-01T00:00:00Z", "10.244.1.5"));
  // Headless Services' slices never reach kube-proxy, nor Capstan.
  std::string headless = slice("db-abc", "2020-01-01T00:00:00Z", "10.244.1.6");
  headless.replace(headless.find("\"kubernetes.io/service-name\""), 0,
                   "\"service.kubernetes.io/headless\":\"\",");
  server.upsert(headless);
  ReflectorOptions options = fastOptions();
  options.startTimeNs = 1'700'000'000'000'000'000;  // 2023-11-14
  Harness h(plain(server),
            {ObjectKind::kEndpointSlice, "/apis/discovery.k8s.io/v1/endpointslices",
             std::string(kProxyLabelSelector), ""},
            options);
  h.start();
  ASSERT_TRUE(h.waitForLists(1));
  ASSERT_TRUE(server.waitForWatches(1, 5s));
  server.upsert(slice("web-new", "2030-01-01T00:00:00Z", "10.244.2.5"));
  ASSERT_TRUE(h.waitFor([&] { return h.events_.size() >= 2; }));
  std::lock_guard lock(h.mu_);
  ASSERT_EQ(h.events_.size(), 2u);
  EXPECT_EQ(h.events_[0].key.name.name, "web-old");
  EXPECT_EQ(h.events_[0].triggerTimeNs, 0);  // before the start: not a change this proxy saw
  EXPECT_EQ(h.events_[1].triggerTimeNs, 1'893'456'000'000'000'000);
}

TEST(Reflector, KeepAliveReusesTheListConnection) {
  KubeApiServer server;
  for (int i = 0; i < 2000; ++i) server.upsert(serviceJson(i));
  ReflectorOptions options = fastOptions();
  Harness h(plain(server), servicesSpec(), options);
  h.start();
  ASSERT_TRUE(h.waitForLists(1));
  ASSERT_TRUE(server.waitForWatches(1, 5s));
  // Four pages over one connection, and the watch on it after them.
  EXPECT_EQ(h.stats().listRequests, 4u);
}

}  // namespace
}  // namespace capstan::control::kube
