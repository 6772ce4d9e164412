#include "model/proxy_state.h"

#include <gtest/gtest.h>

namespace capstan {
namespace {

std::shared_ptr<Service> service(const std::string& name, std::vector<ServicePortSpec> ports) {
  auto s = std::make_shared<Service>();
  s->name = {"default", name};
  s->clusterIPs = {*IpAddress::parse("10.96.0.10")};
  s->ports = std::move(ports);
  return s;
}

ServicePortSpec port(const std::string& name, uint16_t number, Protocol p = Protocol::kTCP) {
  ServicePortSpec spec;
  spec.name = name;
  spec.port = number;
  spec.protocol = p;
  spec.targetPort = int32_t{number};
  return spec;
}

std::shared_ptr<const EndpointSlice> slice(const std::string& svc,
                                           std::vector<std::pair<std::string, std::string>> eps,
                                           std::vector<EndpointSlicePort> ports) {
  auto s = std::make_shared<EndpointSlice>();
  s->name = {"default", svc + "-abc"};
  s->serviceName = svc;
  for (auto& [ip, node] : eps) {
    EndpointSliceEndpoint e;
    e.addresses = {*IpAddress::parse(ip)};
    e.nodeName = node;
    s->endpoints.push_back(e);
  }
  s->ports = std::move(ports);
  return s;
}

TEST(MakeServicePorts, OnePerPortSortedWithEndpointsAndSelection) {
  auto svc = service("web", {port("metrics", 9090), port("http", 80)});
  svc->internalTrafficPolicy = TrafficPolicy::kLocal;
  std::vector<std::shared_ptr<const EndpointSlice>> slices = {
      slice("web", {{"10.0.0.1", "node-a"}, {"10.0.0.2", "node-b"}},
            {{"http", Protocol::kTCP, 8080, ""}, {"metrics", Protocol::kTCP, 9090, ""}})};
  NodeInfo node{.name = "node-a"};
  auto ports = makeServicePorts(svc, slices, node);
  ASSERT_EQ(ports.size(), 2u);
  EXPECT_EQ(ports[0]->name.toString(), "default/web:http");
  EXPECT_EQ(ports[1]->name.toString(), "default/web:metrics");
  EXPECT_EQ(ports[0]->endpoints.size(), 2u);
  EXPECT_EQ(ports[0]->endpoints[0].port, 8080);
  EXPECT_FALSE(ports[0]->usesClusterEndpoints(IpFamily::kV4));
  EXPECT_TRUE(ports[0]->usesLocalEndpoints(IpFamily::kV4));
  EXPECT_EQ(ports[0]->selectionFor(IpFamily::kV4).local, (std::vector<uint32_t>{0}));
  EXPECT_TRUE(ports[0]->selectionFor(IpFamily::kV6).local.empty());
  EXPECT_EQ(ports[0]->service.get(), ports[1]->service.get());
}

TEST(MakeServicePorts, ExternalNameHasNoneAndHeadlessIsNotProxied) {
  auto ext = service("ext", {port("", 80)});
  ext->type = ServiceType::kExternalName;
  ext->clusterIPs.clear();
  EXPECT_TRUE(makeServicePorts(ext, {}, {}).empty());

  auto headless = service("db", {port("", 5432)});
  headless->clusterIPs.clear();
  headless->headless = true;
  auto ports = makeServicePorts(headless, {}, {});
  ASSERT_EQ(ports.size(), 1u);
  EXPECT_FALSE(ports[0]->service->isProxied());
}

TEST(ServicePort, ExternalAccessIsPerPortAndFamily) {
  auto svc = service("web", {port("", 80)});
  svc->externalTrafficPolicy = TrafficPolicy::kLocal;
  EXPECT_FALSE(svc->externalPolicyLocal());  // a ClusterIP Service has no external traffic
  svc->type = ServiceType::kLoadBalancer;
  EXPECT_TRUE(svc->externalPolicyLocal());
  // A LoadBalancer whose balancer has no address yet and no NodePort (as with
  // allocateLoadBalancerNodePorts: false) takes no external traffic yet.
  auto ports = makeServicePorts(svc, {}, {});
  EXPECT_FALSE(ports[0]->externallyAccessible(IpFamily::kV4));
  EXPECT_FALSE(ports[0]->usesLocalEndpoints(IpFamily::kV4));
  svc->loadBalancerIPs = {*IpAddress::parse("fd00::9")};
  ports = makeServicePorts(svc, {}, {});
  EXPECT_FALSE(ports[0]->externallyAccessible(IpFamily::kV4));
  EXPECT_TRUE(ports[0]->externallyAccessible(IpFamily::kV6));
  svc->ports[0].nodePort = 30080;
  ports = makeServicePorts(svc, {}, {});
  EXPECT_TRUE(ports[0]->externallyAccessible(IpFamily::kV4));
  EXPECT_TRUE(ports[0]->usesClusterEndpoints(IpFamily::kV4));  // cluster-internal short-circuit
  EXPECT_TRUE(ports[0]->usesLocalEndpoints(IpFamily::kV4));
}

TEST(ProxyState, FindAndPortsOf) {
  ServicePortList all;
  for (const char* name : {"a", "b", "c"}) {
    auto ports = makeServicePorts(service(name, {port("x", 1), port("y", 2)}), {}, {});
    all.insert(all.end(), ports.begin(), ports.end());
  }
  ProxyState state(7, NodeInfo{.name = "n"}, all, {});
  EXPECT_EQ(state.generation(), 7u);
  ServicePortName name{{"default", "b"}, "y", Protocol::kTCP};
  ASSERT_NE(state.find(name), nullptr);
  EXPECT_EQ(state.find(name)->spec.port, 2);
  name.protocol = Protocol::kUDP;
  EXPECT_EQ(state.find(name), nullptr);
  auto ports = state.portsOf({"default", "b"});
  ASSERT_EQ(ports.size(), 2u);
  EXPECT_EQ(ports[0]->name.port, "x");
  EXPECT_TRUE(state.portsOf({"default", "zz"}).empty());
  EXPECT_TRUE(state.portsOf({"other", "a"}).empty());
}

TEST(ProxyState, DescribeNamesEveryPortAndRoute) {
  auto svc = service("web", {port("http", 80)});
  svc->type = ServiceType::kNodePort;
  svc->ports[0].nodePort = 30080;
  svc->sessionAffinity = SessionAffinity::kClientIP;
  auto ports =
      makeServicePorts(svc,
                       std::vector<std::shared_ptr<const EndpointSlice>>{slice(
                           "web", {{"10.0.0.1", "node-a"}}, {{"http", Protocol::kTCP, 8080, ""}})},
                       NodeInfo{.name = "node-a"});
  auto ingress = std::make_shared<Ingress>();
  ingress->name = {"default", "shop"};
  IngressPath path{"/api", PathType::kPrefix, {IngressServiceBackend{"web", 80, ""}, "", ""}};
  ingress->rules.push_back({"shop.example.com", {path}});
  IngressState ingressState;
  ingressState.ingresses.push_back(ingress);
  ProxyState state(1, NodeInfo{.name = "node-a"}, ports, ingressState);
  std::string text = describeState(state);
  EXPECT_NE(text.find("service default/web:http TCP type=NodePort"), std::string::npos) << text;
  EXPECT_NE(text.find("nodePort 30080"), std::string::npos) << text;
  EXPECT_NE(text.find("affinity=ClientIP/10800s"), std::string::npos) << text;
  EXPECT_NE(text.find("10.0.0.1:8080 (local)"), std::string::npos) << text;
  EXPECT_NE(text.find("shop.example.com/api (Prefix) -> service web:80"), std::string::npos)
      << text;
}

TEST(Ingress, ServedByClassNameAnnotationOrDefaultClass) {
  IngressClassSelector ours;  // class "capstan"
  Ingress named;
  named.ingressClassName = "capstan";
  Ingress other;
  other.ingressClassName = "nginx";
  Ingress annotated;
  annotated.classAnnotation = "capstan";
  Ingress unnamed;
  std::vector<IngressClass> classes = {{"capstan", "capstan.io/ingress-controller", false}};
  EXPECT_TRUE(servesIngress(named, classes, ours));
  EXPECT_FALSE(servesIngress(other, classes, ours));
  EXPECT_TRUE(servesIngress(annotated, classes, ours));
  EXPECT_FALSE(servesIngress(unnamed, classes, ours));  // no default class
  classes[0].isDefault = true;
  EXPECT_TRUE(servesIngress(unnamed, classes, ours));
  classes = {{"nginx", "k8s.io/ingress-nginx", true}};
  EXPECT_FALSE(servesIngress(unnamed, classes, ours));  // the default is someone else's
}

}  // namespace
}  // namespace capstan
