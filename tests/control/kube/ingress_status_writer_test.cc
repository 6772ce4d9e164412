// The Ingress status write-back against the API server stand-in: written once, not again after
// the watch event of its own patch, again after someone else changed it; Ingresses of another
// class untouched; 404 tolerated; failures retried. And the pure parts: what is wanted, the
// patch's body, the node's address, the path.
#include "control/kube/ingress_status_writer.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <algorithm>
#include <thread>

#include "control/document_reader.h"
#include "control/kube/api_access.h"
#include "control/kube/kube_source.h"
#include "tests/support/kube_api_server.h"

namespace capstan::control::kube {
namespace {

using namespace std::chrono_literals;
using support::KubeApiServer;

const char kClass[] =
    R"({"kind":"IngressClass","apiVersion":"networking.k8s.io/v1","metadata":{"name":"capstan"},"spec":{"controller":"capstan.io/ingress-controller"}})";
const char kWeb[] =
    R"({"kind":"Ingress","apiVersion":"networking.k8s.io/v1","metadata":{"name":"web","namespace":"shop"},"spec":{"ingressClassName":"capstan","rules":[{"host":"shop.example.com","http":{"paths":[{"path":"/","pathType":"Prefix","backend":{"service":{"name":"web","port":{"number":80}}}}]}}]},"status":{"loadBalancer":{}}})";
const char kWebChangedElsewhere[] =
    R"({"kind":"Ingress","apiVersion":"networking.k8s.io/v1","metadata":{"name":"web","namespace":"shop"},"spec":{"ingressClassName":"capstan","rules":[{"host":"shop.example.com","http":{"paths":[{"path":"/","pathType":"Prefix","backend":{"service":{"name":"web","port":{"number":80}}}}]}}]},"status":{"loadBalancer":{"ingress":[{"ip":"10.9.9.9"}]}}})";
const char kOther[] =
    R"({"kind":"Ingress","apiVersion":"networking.k8s.io/v1","metadata":{"name":"other","namespace":"shop"},"spec":{"ingressClassName":"nginx","defaultBackend":{"service":{"name":"web","port":{"number":80}}}},"status":{"loadBalancer":{}}})";
const char kNodeA[] =
    R"({"kind":"Node","apiVersion":"v1","metadata":{"name":"node-a"},"spec":{},"status":{"addresses":[{"type":"InternalIP","address":"192.168.0.10"},{"type":"ExternalIP","address":"203.0.113.10"},{"type":"Hostname","address":"node-a"}]}})";
// node-b's Capstan wrote its address already.
const char kWebFromNodeB[] =
    R"({"kind":"Ingress","apiVersion":"networking.k8s.io/v1","metadata":{"name":"web","namespace":"shop"},"spec":{"ingressClassName":"capstan","defaultBackend":{"service":{"name":"web","port":{"number":80}}}},"status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.11"}]}}})";

const char kWebStatusPath[] = "/apis/networking.k8s.io/v1/namespaces/shop/ingresses/web/status";

// What fixed({"192.0.2.1"}) writes.
const std::vector<LoadBalancerIngress> kWanted{{"192.0.2.1", ""}};

// Capstan's IngressClass, an Ingress of it and this node.
void fill(KubeApiServer& server, const char* ingress = kWeb, const char* node = kNodeA) {
  server.upsert(kClass);
  server.upsert(ingress);
  server.upsert(node);
}

Value parse(std::string_view json) {
  std::optional<Value> out;
  EXPECT_TRUE(readJsonDocuments(json, [&](Value v, size_t) -> Status {
                out = std::move(v);
                return okStatus();
              }).ok());
  return out ? std::move(*out) : Value();
}

// The status.loadBalancer.ingress the stand-in holds for shop/<name>.
std::vector<LoadBalancerIngress> statusAt(const KubeApiServer& server, const std::string& name) {
  auto json = server.object("Ingress", "shop", name);
  if (!json) return {};
  return loadBalancerStatusOf(parse(*json));
}

// Waits (at most 10 s) until `done` holds.
bool eventually(const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

size_t patchesTo(const KubeApiServer& server, const std::string& path) {
  auto records = server.requests();
  return static_cast<size_t>(std::count_if(records.begin(), records.end(), [&](const auto& r) {
    return r.method == "PATCH" && r.target == path;
  }));
}

struct Running {
  std::unique_ptr<KubeSource> source;

  Running(const KubeApiServer& server, IngressStatusOptions status) {
    KubeSourceOptions o;
    o.cluster.server = server.url();
    o.cluster.origin = "test";
    o.resources = capstanResources("node-a");
    o.reflector.backoffInitial = 20ms;
    o.reflector.backoffMax = 200ms;
    status.backoffInitial = 20ms;
    status.backoffMax = 100ms;
    status.seed = 1;
    o.ingressStatus = std::move(status);
    auto created = KubeSource::create(std::move(o));
    EXPECT_TRUE(created.ok()) << created.error().message();
    source = std::move(created).value();
    source->start();
  }
  std::vector<ObjectEvent> events;
  std::vector<std::string> diagnosticTexts;

  // Takes what the source has delivered.
  void drain() {
    pollfd p{source->wakeFd(), POLLIN, 0};
    while (::poll(&p, 1, 0) == 1) {
      auto batch = source->take();
      for (auto& e : batch.events) events.push_back(std::move(e));
      for (const auto& d : batch.diagnostics) diagnosticTexts.push_back(d.toString());
    }
  }
  std::vector<std::string> diagnostics() {
    drain();
    return diagnosticTexts;
  }
  // Waits (at most 10 s) until the source delivered an upsert of Ingress shop/<name> whose
  // first rule's first path is `path`.
  bool ingressPathSeen(const std::string& name, const std::string& path) {
    return eventually([&] {
      drain();
      return std::any_of(events.begin(), events.end(), [&](const ObjectEvent& e) {
        if (e.type != ObjectEvent::Type::kUpsert || e.key.kind != ObjectKind::kIngress ||
            e.key.name.name != name) {
          return false;
        }
        const auto& ingress = *std::get<std::shared_ptr<const Ingress>>(e.object);
        return !ingress.rules.empty() && !ingress.rules[0].paths.empty() &&
               ingress.rules[0].paths[0].path == path;
      });
    });
  }
};

IngressStatusOptions fixed(std::vector<std::string> addresses) {
  IngressStatusOptions o;
  o.addresses = std::move(addresses);
  return o;
}

TEST(IngressStatusWriter, WrittenOnceAndNotAgainAfterItsOwnWatchEvent) {
  KubeApiServer server;
  fill(server);
  server.upsert(kOther);
  Running running(server, fixed({"192.0.2.1", "lb.example.com"}));
  std::vector<LoadBalancerIngress> wanted{{"", "lb.example.com"}, {"192.0.2.1", ""}};
  ASSERT_TRUE(eventually([&] { return statusAt(server, "web") == wanted; }));
  // A change of the spec after the patch (a new path): once the source has it, the watch event
  // of the patch has come before it (a watch is in resourceVersion order). Neither writes again.
  std::string v2 = *server.object("Ingress", "shop", "web");  // with the status written
  v2.replace(v2.find("\"path\":\"/\""), 10, "\"path\":\"/v2\"");
  server.upsert(v2);
  ASSERT_TRUE(running.ingressPathSeen("web", "/v2"));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(patchesTo(server, kWebStatusPath), 1u);
  EXPECT_EQ(server.patches(), 1u);
  // Of another class: untouched.
  EXPECT_TRUE(statusAt(server, "other").empty());
  EXPECT_EQ(patchesTo(server, "/apis/networking.k8s.io/v1/namespaces/shop/ingresses/other/status"),
            0u);
  EXPECT_TRUE(running.diagnostics().empty());
}

TEST(IngressStatusWriter, WrittenAgainWhenSomeoneElseChangedIt) {
  KubeApiServer server;
  fill(server);
  Running running(server, fixed({"192.0.2.1"}));
  ASSERT_TRUE(eventually([&] { return statusAt(server, "web") == kWanted; }));
  server.upsert(kWebChangedElsewhere);
  ASSERT_TRUE(eventually([&] { return patchesTo(server, kWebStatusPath) == 2; }));
  ASSERT_TRUE(eventually([&] { return statusAt(server, "web") == kWanted; }));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(patchesTo(server, kWebStatusPath), 2u);
}

TEST(IngressStatusWriter, NotFoundIsNoErrorAndNotRetried) {
  KubeApiServer server;
  fill(server);
  // As if the Ingress were deleted between its event and the patch.
  server.failNextPatches(404, 1);
  Running running(server, fixed({"192.0.2.1"}));
  ASSERT_TRUE(eventually([&] { return patchesTo(server, kWebStatusPath) == 1; }));
  // Well past the backoff (20-100 ms): no retry, no warning.
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(patchesTo(server, kWebStatusPath), 1u);
  EXPECT_TRUE(running.diagnostics().empty());
  EXPECT_TRUE(statusAt(server, "web").empty());
  // Seen again (recreated): written.
  server.upsert(kWebChangedElsewhere);
  EXPECT_TRUE(eventually([&] { return statusAt(server, "web") == kWanted; }));
}

TEST(IngressStatusWriter, FailuresAreRetriedAfterABackoff) {
  KubeApiServer server;
  fill(server);
  server.failNextPatches(500, 2);
  Running running(server, fixed({"192.0.2.1"}));
  ASSERT_TRUE(eventually([&] { return statusAt(server, "web") == kWanted; }));
  EXPECT_EQ(patchesTo(server, kWebStatusPath), 3u);
  auto diagnostics = running.diagnostics();
  ASSERT_EQ(std::count_if(diagnostics.begin(), diagnostics.end(),
                          [](const std::string& d) {
                            return d.find("Ingress shop/web: writing status.loadBalancer") !=
                                       std::string::npos &&
                                   d.find("HTTP 500 (retrying)") != std::string::npos;
                          }),
            2);
  // The retries waited: no two patches closer than the first backoff (20 ms).
  std::vector<std::chrono::steady_clock::time_point> at;
  for (const auto& r : server.requests()) {
    if (r.method == "PATCH") at.push_back(r.at);
  }
  ASSERT_EQ(at.size(), 3u);
  EXPECT_GE(at[1] - at[0], 20ms);
  EXPECT_GE(at[2] - at[1], 20ms);
}

TEST(IngressStatusWriter, FromNodeAddsThisNodesExternalIpToTheOthers) {
  KubeApiServer server;
  fill(server, kWebFromNodeB);
  IngressStatusOptions o;
  o.fromNode = true;
  Running running(server, o);
  std::vector<LoadBalancerIngress> wanted{{"203.0.113.10", ""}, {"203.0.113.11", ""}};
  ASSERT_TRUE(eventually([&] { return statusAt(server, "web") == wanted; }));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(patchesTo(server, kWebStatusPath), 1u);
}

TEST(IngressStatusWriter, NothingWrittenWithoutAnyAddress) {
  // fromNode, but the Node has no InternalIP or ExternalIP: nothing to say.
  KubeApiServer server;
  fill(server, kWeb, R"({"kind":"Node","apiVersion":"v1","metadata":{"name":"node-a"},"spec":{}})");
  IngressStatusOptions o;
  o.fromNode = true;
  Running running(server, o);
  ASSERT_TRUE(eventually([&] {
    running.drain();
    return running.source->synced();
  }));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(server.patches(), 0u);
}

TEST(IngressStatusWriter, WantedStatus) {
  IngressStatusOptions fixedAddresses = fixed({"lb.example.com", "192.0.2.1", "192.0.2.1"});
  std::vector<LoadBalancerIngress> other{{"10.9.9.9", ""}};
  // Fixed addresses replace whatever is there, sorted and without duplicates.
  EXPECT_EQ(wantedLoadBalancerStatus(fixedAddresses, other, "203.0.113.10"),
            (std::vector<LoadBalancerIngress>{{"", "lb.example.com"}, {"192.0.2.1", ""}}));
  IngressStatusOptions fromNode;
  fromNode.fromNode = true;
  EXPECT_EQ(wantedLoadBalancerStatus(fromNode, other, "203.0.113.10"),
            (std::vector<LoadBalancerIngress>{{"10.9.9.9", ""}, {"203.0.113.10", ""}}));
  // Already there: the same list, so nothing to write.
  std::vector<LoadBalancerIngress> both{{"10.9.9.9", ""}, {"203.0.113.10", ""}};
  EXPECT_EQ(wantedLoadBalancerStatus(fromNode, both, "203.0.113.10"), both);
  EXPECT_EQ(wantedLoadBalancerStatus(fromNode, other, std::nullopt), std::nullopt);
  EXPECT_EQ(wantedLoadBalancerStatus(IngressStatusOptions{}, other, "203.0.113.10"), std::nullopt);
}

TEST(IngressStatusWriter, PatchBodyNodeAddressAndPath) {
  EXPECT_EQ(
      loadBalancerStatusPatch({{"192.0.2.1", ""}, {"", "lb.example.com"}}),
      R"({"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.1"},{"hostname":"lb.example.com"}]}}})");
  EXPECT_EQ(loadBalancerStatusPatch({}), R"({"status":{"loadBalancer":{"ingress":[]}}})");
  EXPECT_EQ(nodeStatusAddress(parse(kNodeA)), "203.0.113.10");
  EXPECT_EQ(
      nodeStatusAddress(parse(
          R"({"status":{"addresses":[{"type":"Hostname","address":"n"},{"type":"InternalIP","address":"192.168.0.10"}]}})")),
      "192.168.0.10");
  EXPECT_EQ(nodeStatusAddress(parse(R"({"status":{}})")), std::nullopt);
  EXPECT_EQ(loadBalancerStatusOf(parse(kWebChangedElsewhere)),
            (std::vector<LoadBalancerIngress>{{"10.9.9.9", ""}}));
  EXPECT_EQ(apiWritePath(kIngressStatusWrite, "shop", "web"), kWebStatusPath);
  EXPECT_EQ(capstanApiWrites(),
            (std::vector<ApiWrite>{{"networking.k8s.io", "ingresses/status", "patch"}}));
}

}  // namespace
}  // namespace capstan::control::kube
