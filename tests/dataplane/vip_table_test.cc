// VipTable (dataplane/vip_table.h): which VIPs a ProxyState yields, which endpoints each reaches
// (kube-proxy's selection per traffic policy), and Maglev backend choice per flow and per client.
#include "dataplane/vip_table.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "dataplane/bytes.h"
#include "tests/dataplane/state_builder.h"

namespace capstan::dataplane {
namespace {

using test::ip;
using test::StateBuilder;
using test::TestService;

FlowKey flow(const std::string& src, uint16_t srcPort, const std::string& dst, uint16_t dstPort,
             uint8_t protocol = kIpProtoTcp) {
  FlowKey k;
  const IpAddress s = ip(src), d = ip(dst);
  k.family = s.family();
  k.setSrc(s);
  k.setDst(d);
  k.srcPort = srcPort;
  k.dstPort = dstPort;
  k.protocol = protocol;
  return k;
}

std::string backendText(const Backend* b, IpFamily family = IpFamily::kV4) {
  if (b == nullptr) return "none";
  const IpAddress a = family == IpFamily::kV4 ? IpAddress::v4(load32be(b->address.data()))
                                              : IpAddress::v6(b->address);
  return joinHostPort(a, b->port);
}

TestService webService() {
  TestService s;
  s.type = ServiceType::kLoadBalancer;
  s.clusterIPs = {"10.96.0.10"};
  s.externalIPs = {"198.51.100.10"};
  s.loadBalancerIPs = {"203.0.113.10"};
  s.nodePort = 30080;
  s.endpoints = {{"10.244.1.1"}, {"10.244.1.2"}, {"10.244.2.1"}};
  return s;
}

VipTableConfig nodeConfig(bool clusterIPs = false) {
  VipTableConfig c;
  c.nodePortAddresses = {ip("192.0.2.1")};
  c.serveClusterIPs = clusterIPs;
  c.maglevSize = 251;  // small and prime: fast to build in tests
  return c;
}

const Vip* findVip(const VipTable& table, const std::string& address, uint16_t port,
                   uint8_t protocol = kIpProtoTcp) {
  const uint32_t i =
      table.find(flow(address.find(':') == std::string::npos ? "10.0.0.1" : "fd00::1", 1234,
                      address, port, protocol));
  return i == VipTable::kNoVip ? nullptr : &table.vip(i);
}

TEST(VipTableTest, ExternalVipsAreServedAndClusterIPsOnlyWhenAsked) {
  auto state = StateBuilder().add(webService()).build();
  auto built = VipTable::build(*state, nodeConfig());
  EXPECT_TRUE(built.problems.empty());
  const VipTable& t = *built.table;
  EXPECT_EQ(t.size(), 3u);
  ASSERT_NE(findVip(t, "198.51.100.10", 80), nullptr);
  EXPECT_EQ(findVip(t, "198.51.100.10", 80)->kind, VipKind::kExternalIP);
  ASSERT_NE(findVip(t, "203.0.113.10", 80), nullptr);
  EXPECT_EQ(findVip(t, "203.0.113.10", 80)->kind, VipKind::kLoadBalancerIP);
  ASSERT_NE(findVip(t, "192.0.2.1", 30080), nullptr);
  EXPECT_EQ(findVip(t, "192.0.2.1", 30080)->kind, VipKind::kNodePort);
  EXPECT_EQ(findVip(t, "192.0.2.1", 30080)->toString(), "192.0.2.1:30080/TCP");
  EXPECT_EQ(findVip(t, "10.96.0.10", 80), nullptr);
  // Wrong port, protocol or address: not a VIP.
  EXPECT_EQ(findVip(t, "203.0.113.10", 81), nullptr);
  EXPECT_EQ(findVip(t, "203.0.113.10", 80, kIpProtoUdp), nullptr);
  EXPECT_EQ(findVip(t, "203.0.113.11", 80), nullptr);
  EXPECT_EQ(findVip(t, "192.0.2.1", 80), nullptr);

  auto withCluster = VipTable::build(*state, nodeConfig(true));
  ASSERT_NE(findVip(*withCluster.table, "10.96.0.10", 80), nullptr);
  EXPECT_EQ(findVip(*withCluster.table, "10.96.0.10", 80)->kind, VipKind::kClusterIP);
  EXPECT_NE(withCluster.table->generation(), t.generation());
  EXPECT_EQ(t.stateGeneration(), 1u);
}

TEST(VipTableTest, MaglevSpreadsFlowsAndEveryNodeAgrees) {
  TestService s = webService();
  s.endpoints.clear();
  for (int i = 1; i <= 10; ++i) s.endpoints.push_back({"10.244.0." + std::to_string(i)});
  auto state = StateBuilder().add(s).build();
  // Two nodes build their tables independently, from endpoints listed in different orders.
  TestService reversed = s;
  std::reverse(reversed.endpoints.begin(), reversed.endpoints.end());
  auto a = VipTable::build(*state, nodeConfig()).table;
  auto b = VipTable::build(*StateBuilder().add(reversed).build(), nodeConfig()).table;
  const Vip* va = findVip(*a, "203.0.113.10", 80);
  const Vip* vb = findVip(*b, "203.0.113.10", 80);
  ASSERT_TRUE(va && vb);
  std::set<std::string> used;
  for (uint16_t port = 1000; port < 3000; ++port) {
    const FlowKey k = flow("198.18.0.1", port, "203.0.113.10", 80);
    const std::string ca = backendText(VipTable::chooseBackend(*va, k));
    EXPECT_EQ(ca, backendText(VipTable::chooseBackend(*vb, k)));
    used.insert(ca);
  }
  EXPECT_EQ(used.size(), 10u);
  EXPECT_EQ(used.count("none"), 0u);
  EXPECT_TRUE(used.count("10.244.0.7:8080"));  // targetPort
}

TEST(VipTableTest, ClientIPAffinityHashesTheClientAddressOnly) {
  TestService s = webService();
  s.affinity = SessionAffinity::kClientIP;
  for (int i = 3; i <= 10; ++i) s.endpoints.push_back({"10.244.3." + std::to_string(i)});
  auto table = VipTable::build(*StateBuilder().add(s).build(), nodeConfig()).table;
  const Vip* vip = findVip(*table, "203.0.113.10", 80);
  ASSERT_NE(vip, nullptr);
  EXPECT_TRUE(vip->clientIPAffinity);
  std::set<std::string> clients;
  for (int c = 1; c <= 50; ++c) {
    const std::string client = "198.18.1." + std::to_string(c);
    const std::string first =
        backendText(VipTable::chooseBackend(*vip, flow(client, 1000, "203.0.113.10", 80)));
    for (uint16_t port = 1001; port < 1020; ++port) {
      EXPECT_EQ(backendText(VipTable::chooseBackend(*vip, flow(client, port, "203.0.113.10", 80))),
                first);
    }
    clients.insert(first);
  }
  EXPECT_GT(clients.size(), 3u);  // different clients still spread
}

TEST(VipTableTest, TerminatingEndpointsKeepFlowsButGetNoNewOnes) {
  TestService s = webService();
  s.endpoints = {{"10.244.1.1"}, {"10.244.1.2", false, true, true}, {"10.244.1.3", false, false}};
  auto table = VipTable::build(*StateBuilder().add(s).build(), nodeConfig()).table;
  const Vip* vip = findVip(*table, "203.0.113.10", 80);
  ASSERT_NE(vip, nullptr);
  ASSERT_EQ(vip->backends->backends.size(), 1u);
  EXPECT_EQ(backendText(&vip->backends->backends[0]), "10.244.1.1:8080");
  Backend terminating{ip("10.244.1.2").bytes(), 8080};
  Backend notReady{ip("10.244.1.3").bytes(), 8080};
  Backend gone{ip("10.244.1.4").bytes(), 8080};
  Backend wrongPort{ip("10.244.1.1").bytes(), 9090};
  EXPECT_TRUE(VipTable::backendPresent(*vip, terminating));
  EXPECT_TRUE(VipTable::backendPresent(*vip, notReady));
  EXPECT_FALSE(VipTable::backendPresent(*vip, gone));
  EXPECT_FALSE(VipTable::backendPresent(*vip, wrongPort));
}

TEST(VipTableTest, ExternalTrafficPolicyLocalReachesOnlyLocalEndpoints) {
  TestService s = webService();
  s.externalPolicy = TrafficPolicy::kLocal;
  s.endpoints = {{"10.244.1.1", true, true, false, StateBuilder::kNodeName}, {"10.244.2.1"}};
  auto table = VipTable::build(*StateBuilder().add(s).build(), nodeConfig(true)).table;
  for (const char* external : {"203.0.113.10", "198.51.100.10"}) {
    const Vip* vip = findVip(*table, external, 80);
    ASSERT_NE(vip, nullptr);
    ASSERT_EQ(vip->backends->backends.size(), 1u) << external;
    EXPECT_EQ(backendText(&vip->backends->backends[0]), "10.244.1.1:8080");
  }
  const Vip* nodePort = findVip(*table, "192.0.2.1", 30080);
  ASSERT_NE(nodePort, nullptr);
  EXPECT_EQ(nodePort->backends->backends.size(), 1u);
  // ClusterIP traffic follows internalTrafficPolicy (Cluster): every ready endpoint.
  const Vip* cluster = findVip(*table, "10.96.0.10", 80);
  ASSERT_NE(cluster, nullptr);
  EXPECT_EQ(cluster->backends->backends.size(), 2u);

  // No local endpoint: external VIPs have none for new flows, though the port has endpoints.
  s.endpoints = {{"10.244.2.1"}};
  table = VipTable::build(*StateBuilder().add(s).build(), nodeConfig()).table;
  const Vip* lb = findVip(*table, "203.0.113.10", 80);
  ASSERT_NE(lb, nullptr);
  EXPECT_TRUE(lb->backends->backends.empty());
  EXPECT_TRUE(lb->backends->hasAnyEndpoints);
  EXPECT_EQ(VipTable::chooseBackend(*lb, flow("198.18.0.1", 1, "203.0.113.10", 80)), nullptr);
}

TEST(VipTableTest, ServiceWithoutEndpointsKeepsItsVipsWithNoBackend) {
  TestService s = webService();
  s.endpoints.clear();
  auto table = VipTable::build(*StateBuilder().add(s).build(), nodeConfig()).table;
  const Vip* vip = findVip(*table, "203.0.113.10", 80);
  ASSERT_NE(vip, nullptr);  // packets to it are dropped, not handed to the kernel
  EXPECT_FALSE(vip->backends->hasAnyEndpoints);
  EXPECT_EQ(VipTable::chooseBackend(*vip, flow("198.18.0.1", 1, "203.0.113.10", 80)), nullptr);
}

TEST(VipTableTest, LoadBalancerSourceRangesApplyToLoadBalancerIPsOnly) {
  TestService s = webService();
  s.sourceRanges = {"192.0.2.0/24", "2001:db8::/32"};
  auto table = VipTable::build(*StateBuilder().add(s).build(), nodeConfig()).table;
  const Vip* lb = findVip(*table, "203.0.113.10", 80);
  ASSERT_NE(lb, nullptr);
  EXPECT_EQ(lb->sourceRanges.size(), 1u);  // this family's only
  EXPECT_TRUE(VipTable::sourceAllowed(*lb, flow("192.0.2.77", 1, "203.0.113.10", 80)));
  EXPECT_FALSE(VipTable::sourceAllowed(*lb, flow("198.18.0.1", 1, "203.0.113.10", 80)));
  const Vip* external = findVip(*table, "198.51.100.10", 80);
  ASSERT_NE(external, nullptr);
  EXPECT_TRUE(VipTable::sourceAllowed(*external, flow("198.18.0.1", 1, "198.51.100.10", 80)));
}

TEST(VipTableTest, DualStackServiceHasVipsAndEndpointsPerFamily) {
  TestService s = webService();
  s.clusterIPs = {"10.96.0.10", "fd00:96::10"};
  s.loadBalancerIPs = {"203.0.113.10", "2001:db8:1::10"};
  s.endpoints = {{"10.244.1.1"}, {"fd00:244::1"}, {"fd00:244::2"}};
  VipTableConfig config = nodeConfig(true);
  config.nodePortAddresses.push_back(ip("2001:db8::1"));
  auto table = VipTable::build(*StateBuilder().add(s).build(), config).table;
  const Vip* v6 = findVip(*table, "2001:db8:1::10", 80);
  ASSERT_NE(v6, nullptr);
  EXPECT_EQ(v6->family, IpFamily::kV6);
  EXPECT_EQ(v6->backends->backends.size(), 2u);
  const Backend* b = VipTable::chooseBackend(*v6, flow("2001:db8:ff::1", 5, "2001:db8:1::10", 80));
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(backendText(b, IpFamily::kV6).rfind("[fd00:244::", 0), 0u);
  ASSERT_NE(findVip(*table, "fd00:96::10", 80), nullptr);
  ASSERT_NE(findVip(*table, "2001:db8::1", 30080), nullptr);
  const Vip* v4 = findVip(*table, "203.0.113.10", 80);
  ASSERT_NE(v4, nullptr);
  EXPECT_EQ(v4->backends->backends.size(), 1u);
}

TEST(VipTableTest, UdpServicesAndAVipClaimedTwice) {
  TestService dns = webService();
  dns.name = "dns";
  dns.protocol = Protocol::kUDP;
  dns.port = 53;
  dns.targetPort = 5353;
  dns.nodePort = 0;
  TestService other = webService();
  other.name = "zz-other";  // sorts after "web": loses the shared external IP
  other.loadBalancerIPs.clear();
  other.nodePort = 0;
  other.clusterIPs = {"10.96.0.11"};
  auto built =
      VipTable::build(*StateBuilder().add(dns).add(webService()).add(other).build(), nodeConfig());
  const Vip* udp = findVip(*built.table, "203.0.113.10", 53, kIpProtoUdp);
  ASSERT_NE(udp, nullptr);
  EXPECT_EQ(udp->servicePort.service.name, "dns");
  EXPECT_EQ(udp->backends->backends[0].port, 5353);
  const Vip* shared = findVip(*built.table, "198.51.100.10", 80);
  ASSERT_NE(shared, nullptr);
  EXPECT_EQ(shared->servicePort.service.name, "web");
  ASSERT_EQ(built.problems.size(), 1u);
  EXPECT_EQ(built.problems[0],
            "ExternalIP 198.51.100.10:80/TCP of default/zz-other:p is already served by "
            "default/web:p");
}

TEST(VipTableTest, TooManyEndpointsForTheMaglevSizeIsAProblemNotACrash) {
  TestService s = webService();
  s.endpoints.clear();
  for (int i = 1; i <= 12; ++i) s.endpoints.push_back({"10.244.9." + std::to_string(i)});
  VipTableConfig config = nodeConfig();
  config.maglevSize = 11;
  auto built = VipTable::build(*StateBuilder().add(s).build(), config);
  ASSERT_FALSE(built.problems.empty());
  EXPECT_NE(built.problems[0].find("default/web:p"), std::string::npos);
  const Vip* vip = findVip(*built.table, "203.0.113.10", 80);
  ASSERT_NE(vip, nullptr);
  EXPECT_EQ(VipTable::chooseBackend(*vip, flow("198.18.0.1", 1, "203.0.113.10", 80)), nullptr);
}

TEST(VipTableTest, ManyVipsAreAllFound) {
  StateBuilder builder;
  for (int i = 0; i < 600; ++i) {
    TestService s;
    s.name = "svc-" + std::to_string(i);
    s.type = ServiceType::kLoadBalancer;
    s.clusterIPs = {"10.96." + std::to_string(i / 256) + "." + std::to_string(i % 256)};
    s.loadBalancerIPs = {"203.0." + std::to_string(i / 256) + "." + std::to_string(i % 256)};
    s.endpoints = {{"10.244.0.1"}};
    builder.add(s);
  }
  auto table = VipTable::build(*builder.build(), nodeConfig(true)).table;
  EXPECT_EQ(table->size(), 1200u);
  for (int i = 0; i < 600; ++i) {
    const std::string lb = "203.0." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    const Vip* vip = findVip(*table, lb, 80);
    ASSERT_NE(vip, nullptr) << lb;
    EXPECT_EQ(vip->servicePort.service.name, "svc-" + std::to_string(i));
    EXPECT_EQ(findVip(*table, lb, 81), nullptr);
  }
}

}  // namespace
}  // namespace capstan::dataplane
