#include "control/change_tracker.h"

#include <gtest/gtest.h>

namespace capstan::control {
namespace {

std::shared_ptr<const Service> service(const std::string& name,
                                       std::vector<std::string> portNames = {"http"},
                                       const std::string& ns = "default") {
  auto s = std::make_shared<Service>();
  s->name = {ns, name};
  s->clusterIPs = {*IpAddress::parse("10.96.0.1")};
  uint16_t number = 80;
  for (const auto& p : portNames) {
    ServicePortSpec spec;
    spec.name = p;
    spec.port = number++;
    spec.targetPort = int32_t{8080};
    s->ports.push_back(spec);
  }
  return s;
}

std::shared_ptr<const EndpointSlice> slice(const std::string& name, const std::string& svc,
                                           std::vector<std::string> ips,
                                           std::vector<std::vector<std::string>> zoneHints = {},
                                           int64_t triggerNs = 0) {
  auto s = std::make_shared<EndpointSlice>();
  s->name = {"default", name};
  s->serviceName = svc;
  for (size_t i = 0; i < ips.size(); ++i) {
    EndpointSliceEndpoint e;
    e.addresses = {*IpAddress::parse(ips[i])};
    e.nodeName = i == 0 ? "node-a" : "node-b";
    if (i < zoneHints.size()) e.zoneHints = zoneHints[i];
    s->endpoints.push_back(e);
  }
  s->ports = {{"http", Protocol::kTCP, 8080, ""}};
  s->lastChangeTriggerTimeNs = triggerNs;
  return s;
}

ObjectEvent upsert(std::shared_ptr<const Service> s, int64_t t = 0) {
  return {ObjectEvent::Type::kUpsert, {ObjectKind::kService, s->name}, s, t};
}
ObjectEvent upsert(std::shared_ptr<const EndpointSlice> s, int64_t t = 0) {
  return {ObjectEvent::Type::kUpsert, {ObjectKind::kEndpointSlice, s->name}, s, t};
}
ObjectEvent upsert(std::shared_ptr<const NodeInfo> n) {
  return {ObjectEvent::Type::kUpsert, {ObjectKind::kNode, {"", n->name}}, n, 0};
}
ObjectEvent remove(ObjectKind kind, const std::string& name, const std::string& ns = "default") {
  return {ObjectEvent::Type::kDelete, {kind, {ns, name}}, {}, 0};
}

ServicePortName portName(const std::string& svc, const std::string& port = "http") {
  return {{"default", svc}, port, Protocol::kTCP};
}

class ChangeTrackerTest : public testing::Test {
 protected:
  ChangeTracker tracker{{.nodeName = "node-a"}};
};

TEST_F(ChangeTrackerTest, FirstCommitIsFullAndHoldsEverything) {
  tracker.apply(upsert(service("web")));
  tracker.apply(upsert(slice("web-1", "web", {"10.0.0.1", "10.0.0.2"})));
  tracker.apply(upsert(service("db", {"pg", "metrics"})));
  EXPECT_TRUE(tracker.hasPendingChanges());
  auto c = tracker.commit(false);
  EXPECT_TRUE(c.changes.full);
  EXPECT_EQ(c.state->generation(), 1u);
  ASSERT_EQ(c.state->servicePorts().size(), 3u);
  EXPECT_EQ(c.changes.changed.size(), 3u);
  const ServicePort* web = c.state->find(portName("web"));
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(web->endpoints.size(), 2u);
  EXPECT_TRUE(web->endpoints[0].isLocal);
  EXPECT_FALSE(tracker.hasPendingChanges());
  EXPECT_EQ(tracker.pendingServiceChanges(), 0u);
}

TEST_F(ChangeTrackerTest, PartialCommitRebuildsOnlyChangedServiceAndSharesTheRest) {
  tracker.apply(upsert(service("web")));
  tracker.apply(upsert(service("db")));
  tracker.apply(upsert(slice("web-1", "web", {"10.0.0.1"})));
  auto first = tracker.commit(false);

  tracker.apply(upsert(slice("web-1", "web", {"10.0.0.1", "10.0.0.9"})));
  EXPECT_EQ(tracker.pendingEndpointChanges(), 1u);
  auto second = tracker.commit(false);
  EXPECT_FALSE(second.changes.full);
  EXPECT_EQ(second.changes.changed, (std::vector<ServicePortName>{portName("web")}));
  EXPECT_TRUE(second.changes.removed.empty());
  EXPECT_EQ(second.state->generation(), 2u);
  EXPECT_EQ(second.state->find(portName("web"))->endpoints.size(), 2u);
  // db's port is the very same object as before; the old snapshot is untouched.
  EXPECT_EQ(second.state->find(portName("db")), first.state->find(portName("db")));
  EXPECT_EQ(first.state->find(portName("web"))->endpoints.size(), 1u);
}

TEST_F(ChangeTrackerTest, NoOpChangesAreDropped) {
  tracker.apply(upsert(service("web")));
  tracker.apply(upsert(slice("web-1", "web", {"10.0.0.1"})));
  tracker.commit(false);

  // The same values again (new objects, equal contents): nothing pending.
  tracker.apply(upsert(service("web")));
  tracker.apply(upsert(slice("web-1", "web", {"10.0.0.1"}, {}, /*triggerNs=*/123)));
  EXPECT_EQ(tracker.pendingServiceChanges(), 0u);
  EXPECT_EQ(tracker.pendingEndpointChanges(), 0u);
  EXPECT_FALSE(tracker.hasPendingChanges());
  EXPECT_EQ(tracker.serviceChangesTotal(), 2u);
  EXPECT_EQ(tracker.endpointChangesTotal(), 2u);

  // A change and its reversal cancel out, trigger times included.
  tracker.apply(upsert(slice("web-1", "web", {"10.0.0.2"}, {}, 5)));
  EXPECT_EQ(tracker.pendingEndpointChanges(), 1u);
  tracker.apply(upsert(slice("web-1", "web", {"10.0.0.1"}, {}, 6)));
  EXPECT_EQ(tracker.pendingEndpointChanges(), 0u);
  auto c = tracker.commit(false);
  EXPECT_TRUE(c.changes.empty());
  EXPECT_TRUE(c.triggerTimesNs.empty());
}

TEST_F(ChangeTrackerTest, ReportsTriggerTimesOfAppliedChanges) {
  tracker.apply(upsert(service("web")));
  tracker.commit(false);
  tracker.apply(upsert(slice("web-1", "web", {"10.0.0.1"}), 100));
  tracker.apply(upsert(slice("web-2", "web", {"10.0.0.2"}), 200));
  auto c = tracker.commit(false);
  EXPECT_EQ(c.triggerTimesNs, (std::vector<int64_t>{100, 200}));
  EXPECT_TRUE(tracker.commit(false).triggerTimesNs.empty());
}

TEST_F(ChangeTrackerTest, DeletingServiceRemovesItsPortsButKeepsSlicesForLater) {
  tracker.apply(upsert(service("web", {"http", "https"})));
  tracker.apply(upsert(slice("web-1", "web", {"10.0.0.1"})));
  tracker.commit(false);
  tracker.apply(remove(ObjectKind::kService, "web"));
  auto c = tracker.commit(false);
  EXPECT_EQ(c.changes.removed,
            (std::vector<ServicePortName>{portName("web", "http"), portName("web", "https")}));
  EXPECT_TRUE(c.state->servicePorts().empty());

  // The slices were kept: a Service coming back finds its endpoints at once.
  tracker.apply(upsert(service("web")));
  c = tracker.commit(false);
  ASSERT_NE(c.state->find(portName("web")), nullptr);
  EXPECT_EQ(c.state->find(portName("web"))->endpoints.size(), 1u);
}

TEST_F(ChangeTrackerTest, EndpointsWithoutServiceProgramNothing) {
  tracker.apply(upsert(slice("orphan-1", "orphan", {"10.0.0.1"})));
  auto c = tracker.commit(false);
  EXPECT_TRUE(c.state->servicePorts().empty());
}

TEST_F(ChangeTrackerTest, SliceMovingToAnotherServiceUpdatesBoth) {
  tracker.apply(upsert(service("a")));
  tracker.apply(upsert(service("b")));
  tracker.apply(upsert(slice("s-1", "a", {"10.0.0.1"})));
  tracker.commit(false);
  tracker.apply(upsert(slice("s-1", "b", {"10.0.0.1"})));
  EXPECT_EQ(tracker.pendingEndpointChanges(), 2u);
  auto c = tracker.commit(false);
  EXPECT_EQ(c.changes.changed, (std::vector<ServicePortName>{portName("a"), portName("b")}));
  EXPECT_TRUE(c.state->find(portName("a"))->endpoints.empty());
  EXPECT_EQ(c.state->find(portName("b"))->endpoints.size(), 1u);
}

TEST_F(ChangeTrackerTest, DeletingSliceRemovesItsEndpoints) {
  tracker.apply(upsert(service("web")));
  tracker.apply(upsert(slice("web-1", "web", {"10.0.0.1"})));
  tracker.apply(upsert(slice("web-2", "web", {"10.0.0.2"})));
  tracker.commit(false);
  tracker.apply(remove(ObjectKind::kEndpointSlice, "web-1"));
  auto c = tracker.commit(false);
  const auto& eps = c.state->find(portName("web"))->endpoints;
  ASSERT_EQ(eps.size(), 1u);
  EXPECT_EQ(eps[0].ip.toString(), "10.0.0.2");
}

TEST_F(ChangeTrackerTest, RenamedPortIsRemovedAndAdded) {
  tracker.apply(upsert(service("web", {"http"})));
  tracker.commit(false);
  tracker.apply(upsert(service("web", {"web"})));
  auto c = tracker.commit(false);
  EXPECT_EQ(c.changes.removed, (std::vector<ServicePortName>{portName("web", "http")}));
  EXPECT_EQ(c.changes.changed, (std::vector<ServicePortName>{portName("web", "web")}));
}

TEST_F(ChangeTrackerTest, FullCommitKeepsUnchangedPortObjects) {
  tracker.apply(upsert(service("web")));
  auto first = tracker.commit(false);
  auto full = tracker.commit(true);
  EXPECT_TRUE(full.changes.full);
  EXPECT_TRUE(full.changes.changed.empty());
  EXPECT_EQ(full.state->find(portName("web")), first.state->find(portName("web")));
}

TEST_F(ChangeTrackerTest, ZoneChangeOfThisNodeForcesFullRecomputation) {
  tracker.apply(upsert(service("web")));
  tracker.apply(upsert(slice("web-1", "web", {"10.0.0.1", "10.0.0.2"}, {{"zone-a"}, {"zone-b"}})));
  auto c = tracker.commit(false);
  // No Node object yet: no zone, hints unused.
  EXPECT_EQ(c.state->find(portName("web"))->selectionFor(IpFamily::kV4).cluster.size(), 2u);

  auto other = std::make_shared<NodeInfo>();
  other->name = "node-z";
  other->zone = "zone-b";
  tracker.apply(upsert(other));  // not this node: ignored
  EXPECT_FALSE(tracker.hasPendingChanges());

  auto node = std::make_shared<NodeInfo>();
  node->name = "node-a";
  node->zone = "zone-b";
  tracker.apply(upsert(node));
  EXPECT_TRUE(tracker.hasPendingChanges());
  c = tracker.commit(false);
  EXPECT_TRUE(c.changes.full);
  EXPECT_TRUE(c.changes.nodeChanged);
  EXPECT_EQ(c.state->node().zone, "zone-b");
  const auto& sel = c.state->find(portName("web"))->selectionFor(IpFamily::kV4);
  ASSERT_EQ(sel.cluster.size(), 1u);
  EXPECT_EQ(c.state->find(portName("web"))->endpoints[sel.cluster[0]].ip.toString(), "10.0.0.2");
  EXPECT_EQ(c.changes.changed, (std::vector<ServicePortName>{portName("web")}));

  // Eligibility only: a node change, but no full recomputation.
  auto deleting = std::make_shared<NodeInfo>(*node);
  deleting->eligible = false;
  tracker.apply(upsert(deleting));
  c = tracker.commit(false);
  EXPECT_FALSE(c.changes.full);
  EXPECT_TRUE(c.changes.nodeChanged);
  EXPECT_FALSE(c.state->node().eligible);
  EXPECT_EQ(c.state->node().name, "node-a");
}

TEST_F(ChangeTrackerTest, IngressStateHoldsOurIngressesAndTheirSecrets) {
  auto mine = std::make_shared<Ingress>();
  mine->name = {"default", "shop"};
  mine->ingressClassName = "capstan";
  mine->tls = {{{"shop.example.com"}, "shop-tls"}};
  auto theirs = std::make_shared<Ingress>();
  theirs->name = {"default", "blog"};
  theirs->ingressClassName = "nginx";
  theirs->tls = {{{"blog.example.com"}, "blog-tls"}};
  auto secret = [](const std::string& name) {
    auto s = std::make_shared<TlsSecret>();
    s->name = {"default", name};
    s->certificatePem = "-----BEGIN CERTIFICATE-----";
    return s;
  };
  auto event = [](ObjectKind kind, auto obj) {
    return ObjectEvent{ObjectEvent::Type::kUpsert, {kind, obj->name}, obj, 0};
  };
  tracker.apply(event(ObjectKind::kIngress, mine));
  tracker.apply(event(ObjectKind::kIngress, theirs));
  tracker.apply(event(ObjectKind::kSecret, secret("shop-tls")));
  tracker.apply(event(ObjectKind::kSecret, secret("blog-tls")));
  auto c = tracker.commit(false);
  EXPECT_TRUE(c.changes.ingressChanged);
  ASSERT_EQ(c.state->ingress().ingresses.size(), 1u);
  EXPECT_EQ(c.state->ingress().ingresses[0]->name.name, "shop");
  ASSERT_EQ(c.state->ingress().secrets.size(), 1u);
  EXPECT_NE(c.state->ingress().findSecret({"default", "shop-tls"}), nullptr);
  EXPECT_EQ(c.state->ingress().findSecret({"default", "blog-tls"}), nullptr);

  // A Secret nobody of ours references: a look, but no ingress change.
  auto blog2 = secret("blog-tls");
  blog2->certificatePem += "x";
  tracker.apply(event(ObjectKind::kSecret, blog2));
  c = tracker.commit(false);
  EXPECT_FALSE(c.changes.ingressChanged);

  tracker.apply(remove(ObjectKind::kSecret, "shop-tls"));
  c = tracker.commit(false);
  EXPECT_TRUE(c.changes.ingressChanged);
  EXPECT_TRUE(c.state->ingress().secrets.empty());
}

}  // namespace
}  // namespace capstan::control
