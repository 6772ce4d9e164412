// KubeSource against the stand-in: every resource listed before synced(), TLS with a client
// certificate or a bearer token, token rotation, and kubectl speaking to the stand-in.
#include "control/kube/kube_source.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/support/kube_api_server.h"

namespace capstan::control::kube {
namespace {

using namespace std::chrono_literals;
using support::KubeApiServer;

const char kService[] =
    R"({"kind":"Service","apiVersion":"v1","metadata":{"name":"web","namespace":"shop","uid":"6f1c2b7e-3d0a-4a8e-9b1f-0c2d3e4f5a6b"},"spec":{"ports":[{"name":"http","protocol":"TCP","port":80,"targetPort":8080}],"selector":{"app":"web"},"clusterIP":"10.96.10.10","clusterIPs":["10.96.10.10"],"type":"ClusterIP","sessionAffinity":"None","ipFamilies":["IPv4"],"ipFamilyPolicy":"SingleStack","internalTrafficPolicy":"Cluster"},"status":{"loadBalancer":{}}})";
const char kSlice[] =
    R"({"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"web-x7k2p","namespace":"shop","labels":{"kubernetes.io/service-name":"web"}},"addressType":"IPv4","endpoints":[{"addresses":["10.244.1.5"],"conditions":{"ready":true,"serving":true,"terminating":false},"nodeName":"node-a"}],"ports":[{"name":"http","protocol":"TCP","port":8080}]})";
const char kNodeA[] =
    R"({"kind":"Node","apiVersion":"v1","metadata":{"name":"node-a","labels":{"kubernetes.io/hostname":"node-a"}},"spec":{"podCIDR":"10.244.1.0/24"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.0.10"}]}})";
const char kNodeB[] =
    R"({"kind":"Node","apiVersion":"v1","metadata":{"name":"node-b"},"spec":{},"status":{"addresses":[{"type":"InternalIP","address":"192.168.0.11"}]}})";
const char kOpaqueSecret[] =
    R"({"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","namespace":"shop"},"type":"Opaque","data":{"password":"aHVudGVyMg=="}})";

KubeSourceOptions options(const ClusterConfig& cluster) {
  KubeSourceOptions o;
  o.cluster = cluster;
  o.resources = capstanResources("node-a");
  o.reflector.backoffInitial = 20ms;
  o.reflector.backoffMax = 200ms;
  return o;
}

bool readable(int fd, int timeoutMs) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeoutMs) == 1;
}

// Takes batches until `done` holds or 10 s pass; returns every event taken.
std::vector<ObjectEvent> takeUntil(KubeSource& source,
                                   const std::function<bool(const std::vector<ObjectEvent>&)>& done,
                                   std::vector<Diagnostic>* diagnostics = nullptr) {
  std::vector<ObjectEvent> events;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done(events) && std::chrono::steady_clock::now() < deadline) {
    if (!readable(source.wakeFd(), 100)) continue;
    auto batch = source.take();
    for (auto& e : batch.events) events.push_back(std::move(e));
    if (diagnostics) {
      for (auto& d : batch.diagnostics) diagnostics->push_back(std::move(d));
    }
  }
  return events;
}

void fill(KubeApiServer& server) {
  server.upsert(kService);
  server.upsert(kSlice);
  server.upsert(kNodeA);
  server.upsert(kNodeB);
  server.upsert(kOpaqueSecret);
}

TEST(KubeSource, SyncedOnlyAfterEveryResourceIsListed) {
  KubeApiServer server;
  fill(server);
  // The first answers are 500s: synced() waits for every resource's list all the same.
  ClusterConfig c;
  c.server = server.url();
  c.origin = "test";
  server.failNext(500, 3);
  auto source = KubeSource::create(options(c));
  ASSERT_TRUE(source.ok()) << source.error().message();
  EXPECT_FALSE((*source)->lastContact());
  (*source)->start();
  auto events = takeUntil(**source, [&](const auto&) { return (*source)->synced(); });
  ASSERT_TRUE((*source)->synced());
  ASSERT_TRUE((*source)->lastContact());
  std::set<std::string> keys;
  for (const auto& e : events) keys.insert(e.key.toString());
  // Only this node's Node; only TLS Secrets (the field selector keeps the Opaque one out).
  EXPECT_EQ(keys, (std::set<std::string>{"Service shop/web", "EndpointSlice shop/web-x7k2p",
                                         "Node node-a"}));
  std::vector<std::string> targets;
  for (const auto& r : server.requests()) targets.push_back(r.target);
  auto sent = [&](const std::string& what) {
    return std::any_of(targets.begin(), targets.end(),
                       [&](const std::string& t) { return t.find(what) != std::string::npos; });
  };
  EXPECT_TRUE(sent("/api/v1/nodes?fieldSelector=metadata.name%3Dnode-a"));
  EXPECT_TRUE(sent("/api/v1/secrets?fieldSelector=type%3Dkubernetes.io%2Ftls"));
  EXPECT_TRUE(sent("/apis/networking.k8s.io/v1/ingressclasses?limit=500"));
  // A change after the sync arrives through the same queue.
  server.remove("Service", "shop", "web");
  auto later = takeUntil(**source, [](const auto& e) { return !e.empty(); });
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].type, ObjectEvent::Type::kDelete);
  EXPECT_EQ(later[0].key.toString(), "Service shop/web");
}

TEST(KubeSource, NotSyncedWhileOneResourceFails) {
  KubeApiServer server;
  fill(server);
  ClusterConfig c;
  c.server = server.url();
  c.origin = "test";
  auto o = options(c);
  o.resources.push_back({ObjectKind::kService, "/api/v1/nosuchthing", "", ""});
  auto source = KubeSource::create(o);
  ASSERT_TRUE(source.ok());
  (*source)->start();
  std::vector<Diagnostic> diagnostics;
  takeUntil(
      **source, [&](const auto&) { return diagnostics.size() >= 2; }, &diagnostics);
  EXPECT_FALSE((*source)->synced());
  ASSERT_FALSE(diagnostics.empty());
  EXPECT_NE(diagnostics[0].message.find("Service list: HTTP 404"), std::string::npos)
      << diagnostics[0].message;
}

class TlsTest : public testing::Test {
 protected:
  support::TestCa ca = support::makeTestCa("kubernetes-ca");
  support::TestCertificate serverCert = ca.issueServer({"127.0.0.1"});
};

TEST_F(TlsTest, ClientCertificate) {
  support::TestCertificate client = ca.issueClient("system:kube-proxy", "system:node-proxier");
  KubeApiServer server({serverCert.certPem, serverCert.keyPem, ca.ca.certPem, {}});
  fill(server);
  ClusterConfig c;
  c.server = server.url();
  c.origin = "test";
  c.caPem = ca.ca.certPem;
  c.clientCertPem = client.certPem;
  c.clientKeyPem = client.keyPem;
  auto source = KubeSource::create(options(c));
  ASSERT_TRUE(source.ok()) << source.error().message();
  (*source)->start();
  takeUntil(**source, [&](const auto&) { return (*source)->synced(); });
  EXPECT_TRUE((*source)->synced());
  auto requests = server.requests();
  ASSERT_FALSE(requests.empty());
  EXPECT_TRUE(requests[0].clientCertificate);
  EXPECT_EQ(requests[0].status, 200);
}

TEST_F(TlsTest, WrongCaIsRefusedWithTheReason) {
  KubeApiServer server({serverCert.certPem, serverCert.keyPem, "", {}});
  fill(server);
  ClusterConfig c;
  c.server = server.url();
  c.origin = "test";
  c.caPem = support::makeTestCa("another-ca").ca.certPem;
  auto source = KubeSource::create(options(c));
  ASSERT_TRUE(source.ok()) << source.error().message();
  (*source)->start();
  std::vector<Diagnostic> diagnostics;
  takeUntil(
      **source, [&](const auto&) { return !diagnostics.empty(); }, &diagnostics);
  EXPECT_FALSE((*source)->synced());
  ASSERT_FALSE(diagnostics.empty());
  EXPECT_NE(diagnostics[0].message.find("TLS handshake with " + server.url() +
                                        ": certificate verify failed"),
            std::string::npos)
      << diagnostics[0].message;
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(TlsTest, BearerTokenRotatesWithItsFile) {
  char tmpl[] = "/tmp/capstan-token-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::string tokenFile = dir + "/token";
  std::ofstream(tokenFile) << "token-1\n";
  KubeApiServer server({serverCert.certPem, serverCert.keyPem, "", {"token-1"}});
  fill(server);
  ClusterConfig c;
  c.server = server.url();
  c.origin = "test";
  c.caPem = ca.ca.certPem;
  c.tokenFile = tokenFile;
  auto source = KubeSource::create(options(c));
  ASSERT_TRUE(source.ok()) << source.error().message();
  (*source)->start();
  takeUntil(**source, [&](const auto&) { return (*source)->synced(); });
  ASSERT_TRUE((*source)->synced());
  // The kubelet rotates the projected token; the server stops accepting the old one.
  std::ofstream(tokenFile) << "token-2\n";
  server.setTokens({"token-2"});
  size_t before = server.requests().size();
  server.dropWatches();
  server.remove("Service", "shop", "web");
  auto events = takeUntil(**source, [](const auto& e) { return !e.empty(); });
  bool deleted = !events.empty() && events[0].type == ObjectEvent::Type::kDelete;
  auto requests = server.requests();
  ASSERT_GT(requests.size(), before);
  bool refused = false, rotated = false;
  for (size_t i = before; i < requests.size(); ++i) {
    refused |= requests[i].status == 401 && requests[i].authorization == "Bearer token-1";
    if (refused && requests[i].authorization == "Bearer token-2" && requests[i].status == 200) {
      rotated = true;
    }
  }
  EXPECT_TRUE(refused);
  EXPECT_TRUE(rotated);  // after the 401 the file was read again
  EXPECT_TRUE(deleted);
  std::filesystem::remove_all(dir);
}

// kubectl, where the machine has it, proves the stand-in speaks the API server's protocol.
std::string run(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

TEST(KubectlAgainstStandIn, GetAndWatchServices) {
  if (std::system("command -v kubectl >/dev/null 2>&1") != 0) GTEST_SKIP() << "no kubectl";
  KubeApiServer server;
  fill(server);
  char tmpl[] = "/tmp/capstan-kubectl-XXXXXX";
  std::string cache = ::mkdtemp(tmpl);
  std::string kubectl = "HOME=" + cache + " timeout 20 kubectl --server " + server.url() +
                        " --cache-dir " + cache + " ";
  std::string list = run(kubectl + "get services -A -o json 2>&1");
  EXPECT_NE(list.find("\"kind\": \"List\""), std::string::npos) << list;
  EXPECT_NE(list.find("\"clusterIP\": \"10.96.10.10\""), std::string::npos) << list;
  std::string names = run(kubectl + "get endpointslices -n shop -o name 2>&1");
  EXPECT_EQ(names, "endpointslice.discovery.k8s.io/web-x7k2p\n");
  // A watch: the current object, then a change, until the watch times out.
  std::thread changer([&] {
    std::this_thread::sleep_for(1500ms);
    std::string changed = kService;
    changed.replace(changed.find("\"port\":80"), 9, "\"port\":81");
    server.upsert(changed);
  });
  std::string watch = run(kubectl + "get services -A -w -o json --request-timeout=4s 2>&1");
  changer.join();
  EXPECT_NE(watch.find("\"port\": 80"), std::string::npos) << watch;
  EXPECT_NE(watch.find("\"port\": 81"), std::string::npos) << watch;
  std::filesystem::remove_all(cache);
}

}  // namespace
}  // namespace capstan::control::kube
