// The iptables ruleset: kube-proxy's chain names and rules, a golden file of a table of
// services covering every feature, and partial payloads.
//
// Regenerate the golden files after an intended change with
//   CAPSTAN_UPDATE_GOLDEN=1 build/release/tests/iptables_tests
// and read the diff before committing it.
#include "iptables/rules.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "iptables/chain_names.h"
#include "iptables/iptables_runner.h"
#include "tests/support/netns_child.h"
#include "tests/support/text_lines.h"

namespace capstan::iptables {
namespace {

// --- building states ------------------------------------------------------------------------

struct Ep {
  std::string ip;
  std::string node = "node-b";
  bool ready = true;
  bool serving = true;
  bool terminating = false;
};

struct Svc {
  std::string ns = "ns1";
  std::string name;
  std::string clusterIP;
  std::vector<ServicePortSpec> ports;
  std::vector<Ep> endpoints;
  std::vector<uint16_t> targetPorts;  // per port
  std::function<void(Service&)> tweak = nullptr;
};

ServicePortSpec port(const std::string& name, uint16_t number, Protocol p = Protocol::kTCP,
                     uint16_t nodePort = 0) {
  ServicePortSpec s;
  s.name = name;
  s.port = number;
  s.protocol = p;
  s.nodePort = nodePort;
  s.targetPort = int32_t{number};
  return s;
}

std::shared_ptr<const ProxyState> makeState(const std::vector<Svc>& svcs,
                                            const std::string& nodeName = "node-a") {
  ServicePortList all;
  NodeInfo node{.name = nodeName};
  for (const Svc& def : svcs) {
    auto svc = std::make_shared<Service>();
    svc->name = {def.ns, def.name};
    for (const auto& ip : {def.clusterIP}) {
      if (!ip.empty()) svc->clusterIPs.push_back(*IpAddress::parse(ip));
    }
    svc->ports = def.ports;
    if (def.tweak) def.tweak(*svc);
    std::vector<std::shared_ptr<const EndpointSlice>> slices;
    for (IpFamily family : {IpFamily::kV4, IpFamily::kV6}) {
      auto slice = std::make_shared<EndpointSlice>();
      slice->name = {def.ns, def.name + (family == IpFamily::kV4 ? "-v4" : "-v6")};
      slice->serviceName = def.name;
      slice->addressType = family == IpFamily::kV4 ? AddressType::kIPv4 : AddressType::kIPv6;
      for (const Ep& e : def.endpoints) {
        auto ip = *IpAddress::parse(e.ip);
        if (ip.family() != family) continue;
        EndpointSliceEndpoint ep;
        ep.addresses = {ip};
        ep.nodeName = e.node;
        ep.conditions = {e.ready, e.serving, e.terminating};
        slice->endpoints.push_back(ep);
      }
      for (size_t i = 0; i < def.ports.size(); ++i) {
        uint16_t target = i < def.targetPorts.size() ? def.targetPorts[i] : def.ports[i].port;
        slice->ports.push_back({def.ports[i].name, def.ports[i].protocol, target, ""});
      }
      slices.push_back(slice);
    }
    auto ports = makeServicePorts(svc, slices, node);
    all.insert(all.end(), ports.begin(), ports.end());
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a->name < b->name; });
  return std::make_shared<ProxyState>(1, node, all, IngressState{});
}

using support::lines;

bool hasLine(const std::string& text, const std::string& line) {
  auto all = lines(text);
  return std::find(all.begin(), all.end(), line) != all.end();
}

RuleOptions v4Options() {
  RuleOptions o;
  o.family = IpFamily::kV4;
  o.clusterCIDR = Cidr::parse("10.0.0.0/24");
  o.randomFully = false;
  o.nodeIP = IpAddress::parse("192.168.0.2");
  return o;
}

// --- chain names ----------------------------------------------------------------------------

TEST(ChainNames, MatchKubeProxy) {
  // Values from kube-proxy's own tests (pkg/proxy/iptables/proxier_test.go).
  ServicePortName svc1{{"ns1", "svc1"}, "p80", Protocol::kTCP};
  EXPECT_EQ(clusterPolicyChain(svc1), "KUBE-SVC-XPGD46QRK7WJZT7O");
  Endpoint ep;
  ep.ip = *IpAddress::parse("10.180.0.1");
  ep.port = 80;
  EXPECT_EQ(endpointChain(svc1, ep), "KUBE-SEP-SXIVWICOYRO3J4NJ");
  ServicePortName svc2{{"ns2", "svc2"}, "p80", Protocol::kTCP};
  EXPECT_EQ(clusterPolicyChain(svc2), "KUBE-SVC-GNZBNJ2PO5MGZ6GT");
  EXPECT_EQ(externalChain(svc2), "KUBE-EXT-GNZBNJ2PO5MGZ6GT");
  EXPECT_EQ(localPolicyChain(svc2), "KUBE-SVL-GNZBNJ2PO5MGZ6GT");
  EXPECT_EQ(firewallChain(svc2), "KUBE-FW-GNZBNJ2PO5MGZ6GT");
  // The protocol is part of the hash.
  ServicePortName udp = svc1;
  udp.protocol = Protocol::kUDP;
  EXPECT_NE(clusterPolicyChain(udp), clusterPolicyChain(svc1));
  EXPECT_TRUE(isServiceChain("KUBE-SEP-SXIVWICOYRO3J4NJ"));
  EXPECT_FALSE(isServiceChain("KUBE-SERVICES"));
  EXPECT_FALSE(isServiceChain("KUBE-NODEPORTS"));
}

// --- kube-proxy's basic case, line by line ---------------------------------------------------

TEST(Rules, KubeProxyBasicCase) {
  // kube-proxy's TestParseIPTablesData input: ns1/svc1:p80 at 10.20.30.41, one endpoint.
  auto state = makeState({{.name = "svc1",
                           .clusterIP = "10.20.30.41",
                           .ports = {port("p80", 80)},
                           .endpoints = {{"10.180.0.1"}}}});
  AppliedRules applied;
  RuleOptions o = v4Options();
  Payload p = fullPayload(*state, o, {}, applied);
  for (const char* expected : {
           "*nat",
           ":KUBE-SERVICES - [0:0]",
           ":KUBE-NODEPORTS - [0:0]",
           ":KUBE-POSTROUTING - [0:0]",
           ":KUBE-MARK-MASQ - [0:0]",
           ":KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]",
           ":KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]",
           "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
           "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
           "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring "
           "SNAT\" -j MASQUERADE",
           "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
           "-A KUBE-SERVICES -m comment --comment \"ns1/svc1:p80 cluster IP\" -m tcp -p tcp -d "
           "10.20.30.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O",
           "-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment \"ns1/svc1:p80 cluster IP\" -m tcp "
           "-p tcp -d 10.20.30.41 --dport 80 ! -s 10.0.0.0/24 -j KUBE-MARK-MASQ",
           "-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment \"ns1/svc1:p80 -> 10.180.0.1:80\" "
           "-j KUBE-SEP-SXIVWICOYRO3J4NJ",
           "-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j "
           "KUBE-MARK-MASQ",
           "-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT "
           "--to-destination 10.180.0.1:80",
           "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must "
           "be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS",
           "*filter",
           "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
           "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark "
           "0x4000/0x4000 -j ACCEPT",
           "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m "
           "conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
       }) {
    EXPECT_TRUE(hasLine(p.text, expected)) << "missing: " << expected << "\n" << p.text;
  }
  // The nodeports jump is the last rule of nat KUBE-SERVICES.
  auto all = lines(p.text);
  auto last = std::find_if(all.rbegin(), all.rend(),
                           [](const std::string& l) { return l.starts_with("-A KUBE-SERVICES "); });
  ASSERT_NE(last, all.rend());
  EXPECT_NE(last->find("-j KUBE-NODEPORTS"), std::string::npos);
  ASSERT_EQ(applied.size(), 1u);
}

// --- a golden file of every feature ---------------------------------------------------------

std::vector<Svc> everyFeature() {
  return {
      // Three endpoints: the random spread; one of them local.
      {.name = "web",
       .clusterIP = "10.96.0.10",
       .ports = {port("http", 80)},
       .endpoints = {{"10.244.1.5", "node-a"}, {"10.244.2.7"}, {"10.244.2.8"}},
       .targetPorts = {8080}},
      // UDP and TCP ports of one Service, ClientIP affinity.
      {.ns = "kube-system",
       .name = "kube-dns",
       .clusterIP = "10.96.0.53",
       .ports = {port("dns", 53, Protocol::kUDP), port("dns-tcp", 53)},
       .endpoints = {{"10.244.1.2", "node-a"}, {"10.244.2.3"}},
       .tweak =
           [](Service& s) {
             s.sessionAffinity = SessionAffinity::kClientIP;
             s.affinityTimeoutSeconds = 600;
           }},
      // NodePort, external IP, SCTP.
      {.name = "np",
       .clusterIP = "10.96.0.20",
       .ports = {port("p", 8080, Protocol::kTCP, 30080), port("s", 9000, Protocol::kSCTP, 30900)},
       .endpoints = {{"10.244.2.20"}},
       .tweak =
           [](Service& s) {
             s.type = ServiceType::kNodePort;
             s.externalIPs = {*IpAddress::parse("192.168.0.100"), *IpAddress::parse("fd00::100")};
           }},
      // LoadBalancer, externalTrafficPolicy Local with a local endpoint, health check node
      // port, source ranges that include the node.
      {.name = "lb-local",
       .clusterIP = "10.96.0.30",
       .ports = {port("https", 443, Protocol::kTCP, 30443)},
       .endpoints = {{"10.244.1.30", "node-a"}, {"10.244.2.30"}},
       .tweak =
           [](Service& s) {
             s.type = ServiceType::kLoadBalancer;
             s.externalTrafficPolicy = TrafficPolicy::kLocal;
             s.healthCheckNodePort = 32000;
             s.loadBalancerIPs = {*IpAddress::parse("203.0.113.30")};
             s.loadBalancerSourceRanges = {*Cidr::parse("192.168.0.0/16"),
                                           *Cidr::parse("198.51.100.0/24")};
           }},
      // LoadBalancer, externalTrafficPolicy Local, no local endpoint: external traffic dropped.
      {.name = "lb-remote",
       .clusterIP = "10.96.0.31",
       .ports = {port("http", 80, Protocol::kTCP, 30081)},
       .endpoints = {{"10.244.2.31"}},
       .tweak =
           [](Service& s) {
             s.type = ServiceType::kLoadBalancer;
             s.externalTrafficPolicy = TrafficPolicy::kLocal;
             s.healthCheckNodePort = 32001;
             s.loadBalancerIPs = {*IpAddress::parse("203.0.113.31")};
           }},
      // internalTrafficPolicy Local without local endpoints: ClusterIP traffic dropped.
      {.name = "itp-local",
       .clusterIP = "10.96.0.40",
       .ports = {port("", 80)},
       .endpoints = {{"10.244.2.40"}},
       .tweak = [](Service& s) { s.internalTrafficPolicy = TrafficPolicy::kLocal; }},
      // No endpoints: rejected (ClusterIP, NodePort, external IP, LB IP).
      {.name = "empty",
       .clusterIP = "10.96.0.50",
       .ports = {port("http", 80, Protocol::kTCP, 30050)},
       .tweak =
           [](Service& s) {
             s.type = ServiceType::kLoadBalancer;
             s.externalIPs = {*IpAddress::parse("192.168.0.150")};
             s.loadBalancerIPs = {*IpAddress::parse("203.0.113.50")};
           }},
      // Only terminating endpoints: the serving-and-terminating fallback.
      {.name = "draining",
       .clusterIP = "10.96.0.60",
       .ports = {port("", 80)},
       .endpoints = {{"10.244.2.60", "node-b", false, true, true},
                     {"10.244.2.61", "node-b", false, false, true}}},
      // Dual-stack: the IPv6 half belongs to the ip6tables ruleset.
      {.name = "dual",
       .clusterIP = "10.96.0.70",
       .ports = {port("", 80)},
       .endpoints = {{"10.244.2.70"}, {"fd00:244::70"}},
       .tweak = [](Service& s) { s.clusterIPs.push_back(*IpAddress::parse("fd00:96::70")); }},
      // Headless and ExternalName: nothing at all.
      {.name = "headless",
       .ports = {port("", 80)},
       .endpoints = {{"10.244.2.80"}},
       .tweak = [](Service& s) { s.headless = true; }},
  };
}

void checkGolden(const std::string& name, const std::string& actual) {
  std::string path = std::string(CAPSTAN_SOURCE_DIR) + "/tests/iptables/testdata/" + name;
  if (std::getenv("CAPSTAN_UPDATE_GOLDEN")) {
    std::ofstream(path) << actual;
    GTEST_SKIP() << "wrote " << path;
  }
  std::ifstream in(path);
  ASSERT_TRUE(in) << "no golden file " << path << " (CAPSTAN_UPDATE_GOLDEN=1 writes it)";
  std::stringstream expected;
  expected << in.rdbuf();
  EXPECT_EQ(actual, expected.str()) << "golden " << name << " differs";
}

TEST(Rules, GoldenEveryFeatureIPv4) {
  auto state = makeState(everyFeature());
  AppliedRules applied;
  RuleOptions o = v4Options();
  o.randomFully = true;
  Payload p = fullPayload(*state, o, {"KUBE-SEP-STALESTALESTALE1"}, applied);
  checkGolden("every_feature_v4.golden", p.text);
}

TEST(Rules, GoldenEveryFeatureIPv6) {
  auto state = makeState(everyFeature());
  AppliedRules applied;
  RuleOptions o;
  o.family = IpFamily::kV6;
  o.clusterCIDR = Cidr::parse("fd00:244::/64");
  Payload p = fullPayload(*state, o, {}, applied);
  checkGolden("every_feature_v6.golden", p.text);
}

TEST(Rules, NodePortAddressesAndLocalhost) {
  auto state = makeState({});
  AppliedRules applied;
  RuleOptions o = v4Options();
  o.localhostNodePorts = false;
  Payload p = fullPayload(*state, o, {}, applied);
  EXPECT_NE(p.text.find("-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS"),
            std::string::npos);
  EXPECT_EQ(p.text.find("KUBE-FIREWALL"), std::string::npos);  // no localnet guard needed
  o.nodePortAddresses =
      std::vector<IpAddress>{*IpAddress::parse("192.168.0.2"), *IpAddress::parse("127.0.0.1"),
                             *IpAddress::parse("fd00::2")};
  p = fullPayload(*state, o, {}, applied);
  EXPECT_NE(p.text.find("-d 192.168.0.2 -j KUBE-NODEPORTS"), std::string::npos) << p.text;
  EXPECT_EQ(p.text.find("-d 127.0.0.1 -j KUBE-NODEPORTS"), std::string::npos);  // not enabled
  EXPECT_EQ(p.text.find("fd00::2"), std::string::npos);                         // other family
  EXPECT_EQ(p.text.find("--dst-type LOCAL -j KUBE-NODEPORTS"), std::string::npos);
}

TEST(Rules, MasqueradeAllAndNoClusterCidr) {
  auto state = makeState({{.name = "svc1",
                           .clusterIP = "10.20.30.41",
                           .ports = {port("p80", 80)},
                           .endpoints = {{"10.180.0.1"}}}});
  AppliedRules applied;
  RuleOptions o = v4Options();
  o.clusterCIDR.reset();
  Payload p = fullPayload(*state, o, {}, applied);
  EXPECT_EQ(p.text.find("cluster IP\" -m tcp -p tcp -d 10.20.30.41 --dport 80 ! -s"),
            std::string::npos);
  EXPECT_EQ(p.text.find("-d 10.20.30.41 --dport 80 -j KUBE-MARK-MASQ"), std::string::npos);
  o.masqueradeAll = true;
  p = fullPayload(*state, o, {}, applied);
  EXPECT_TRUE(hasLine(p.text,
                      "-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment \"ns1/svc1:p80 cluster "
                      "IP\" -m tcp -p tcp -d 10.20.30.41 --dport 80 -j KUBE-MARK-MASQ"))
      << p.text;
}

TEST(Rules, LargeClustersLeaveEndpointCommentsOut) {
  std::vector<Ep> eps;
  for (int i = 0; i < 20; ++i) eps.push_back({"10.180.0." + std::to_string(i + 1)});
  auto state = makeState(
      {{.name = "svc1", .clusterIP = "10.20.30.41", .ports = {port("p80", 80)}, .endpoints = eps}});
  RuleOptions o = v4Options();
  o.largeClusterEndpoints = 10;
  ASSERT_TRUE(isLargeCluster(*state, o));
  AppliedRules applied;
  Payload p = fullPayload(*state, o, {}, applied);
  EXPECT_EQ(p.text.find("-> 10.180.0.1:80"), std::string::npos);
  EXPECT_EQ(p.text.find("-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment"), std::string::npos);
  EXPECT_TRUE(hasLine(p.text, "-A KUBE-SEP-SXIVWICOYRO3J4NJ -s 10.180.0.1 -j KUBE-MARK-MASQ"));
  EXPECT_NE(p.text.find("-m statistic --mode random --probability 0.0500000000 -j KUBE-SEP-"),
            std::string::npos);
}

// --- partial payloads -----------------------------------------------------------------------

class PartialTest : public testing::Test {
 protected:
  std::vector<Svc> svcs = {
      {.name = "a",
       .clusterIP = "10.96.0.1",
       .ports = {port("", 80)},
       .endpoints = {{"10.244.0.1"}, {"10.244.0.2"}}},
      {.name = "b",
       .clusterIP = "10.96.0.2",
       .ports = {port("", 80, Protocol::kUDP, 30002)},
       .endpoints = {{"10.244.0.3"}},
       .tweak = [](Service& s) { s.type = ServiceType::kNodePort; }},
  };
  RuleOptions o = v4Options();
  AppliedRules applied;

  void SetUp() override { fullPayload(*makeState(svcs), o, {}, applied); }

  // A partial payload, taken as applied.
  Payload partial(const std::vector<ServicePortName>& names) {
    AppliedUpdates updates;
    Payload p = partialPayload(*makeState(svcs), o, names, applied, updates);
    applyUpdates(applied, std::move(updates));
    return p;
  }
  ServicePortName name(const std::string& svc, Protocol p = Protocol::kTCP) {
    return {{"ns1", svc}, "", p};
  }
};

TEST_F(PartialTest, NothingChangedWritesNothing) {
  Payload p = partial({name("a"), name("b", Protocol::kUDP)});
  EXPECT_EQ(p.text, "");
  EXPECT_EQ(p.rules, 0u);
}

TEST_F(PartialTest, AnEndpointAddedRewritesOnlyThatPortsChains) {
  svcs[0].endpoints.push_back({"10.244.0.9"});
  Payload p = partial({name("a")});
  const std::string svc = clusterPolicyChain(name("a"));
  EXPECT_EQ(p.text.find("*filter"), std::string::npos) << p.text;  // nothing top-level changed
  EXPECT_TRUE(hasLine(p.text, ":" + svc + " - [0:0]")) << p.text;
  EXPECT_NE(p.text.find("--to-destination 10.244.0.9:80"), std::string::npos);
  EXPECT_EQ(p.text.find("KUBE-SERVICES"), std::string::npos) << p.text;
  EXPECT_EQ(p.text.find("10.96.0.2"), std::string::npos);  // b untouched
  EXPECT_EQ(p.text.find("-X "), std::string::npos);
  // Rules of a: 1 masquerade + 3 spread + 3 x 2 endpoint rules.
  EXPECT_EQ(p.rules, 10u) << p.text;
}

TEST_F(PartialTest, AnEndpointRemovedDeletesItsChainAfterUse) {
  Endpoint gone;
  gone.ip = *IpAddress::parse("10.244.0.2");
  gone.port = 80;
  const std::string sep = endpointChain(name("a"), gone);
  svcs[0].endpoints.pop_back();
  Payload p = partial({name("a")});
  auto all = lines(p.text);
  auto flush = std::find(all.begin(), all.end(), ":" + sep + " - [0:0]");
  auto drop = std::find(all.begin(), all.end(), "-X " + sep);
  ASSERT_NE(flush, all.end()) << p.text;
  ASSERT_NE(drop, all.end()) << p.text;
  EXPECT_LT(flush, drop);
  EXPECT_EQ(all.back(), "COMMIT");
}

TEST_F(PartialTest, LosingAllEndpointsMovesToARejectAndBack) {
  auto saved = svcs[0].endpoints;
  svcs[0].endpoints.clear();
  Payload p = partial({name("a")});
  const std::string svc = clusterPolicyChain(name("a"));
  EXPECT_NE(p.text.find("-D KUBE-SERVICES -m comment --comment \"ns1/a cluster IP\" -m tcp -p tcp "
                        "-d 10.96.0.1 --dport 80 -j " +
                        svc),
            std::string::npos)
      << p.text;
  EXPECT_NE(p.text.find("-A KUBE-SERVICES -m comment --comment \"ns1/a has no endpoints\" -m tcp "
                        "-p tcp -d 10.96.0.1 --dport 80 -j REJECT"),
            std::string::npos)
      << p.text;
  EXPECT_NE(p.text.find("-X " + svc), std::string::npos);
  // The filter section comes before nat; nat deletes the jump before deleting the chain.
  EXPECT_LT(p.text.find("*filter"), p.text.find("*nat"));
  EXPECT_LT(p.text.find("-D KUBE-SERVICES"), p.text.find("-X " + svc));

  svcs[0].endpoints = saved;
  p = partial({name("a")});
  EXPECT_NE(p.text.find("-D KUBE-SERVICES -m comment --comment \"ns1/a has no endpoints\""),
            std::string::npos)
      << p.text;
  EXPECT_NE(p.text.find("-I KUBE-SERVICES 1 -m comment --comment \"ns1/a cluster IP\""),
            std::string::npos)
      << p.text;
}

TEST_F(PartialTest, ADeletedServiceTakesAllOfItsRulesAway) {
  svcs.pop_back();
  Payload p = partial({name("b", Protocol::kUDP)});
  EXPECT_NE(p.text.find("-D KUBE-SERVICES"), std::string::npos) << p.text;
  EXPECT_NE(p.text.find("-D KUBE-NODEPORTS"), std::string::npos) << p.text;
  EXPECT_NE(p.text.find("-X " + clusterPolicyChain(name("b", Protocol::kUDP))), std::string::npos);
  EXPECT_NE(p.text.find("-X " + externalChain(name("b", Protocol::kUDP))), std::string::npos);
  EXPECT_EQ(applied.count(name("b", Protocol::kUDP)), 0u);
  // Once gone, asking again writes nothing.
  EXPECT_EQ(partial({name("b", Protocol::kUDP)}).text, "");
}

TEST_F(PartialTest, AppliedIsUntouchedUntilTheUpdatesAreApplied) {
  svcs.pop_back();
  AppliedUpdates updates;
  Payload p = partialPayload(*makeState(svcs), o, {name("b", Protocol::kUDP)}, applied, updates);
  EXPECT_FALSE(p.text.empty());
  EXPECT_EQ(applied.count(name("b", Protocol::kUDP)), 1u);  // as if the restore failed
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_FALSE(updates[0].second.has_value());
}

TEST_F(PartialTest, PartialThenFullAgreeOnWhatIsApplied) {
  svcs[0].endpoints.push_back({"10.244.0.9"});
  svcs.push_back({.name = "c", .clusterIP = "10.96.0.3", .ports = {port("", 80)}});
  partial({name("a"), name("c")});
  AppliedRules fresh;
  fullPayload(*makeState(svcs), o, {}, fresh);
  ASSERT_EQ(applied.size(), fresh.size());
  for (const auto& [key, value] : fresh) {
    ASSERT_TRUE(applied.count(key)) << key.toString();
    EXPECT_EQ(applied.at(key).digest, value.digest) << key.toString();
  }
}

TEST(Rules, ServiceChainsInSave) {
  std::string save =
      "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-AAAA - [0:0]\n"
      ":KUBE-SEP-BBBB - [0:0]\n:OTHER-CHAIN - [0:0]\n-A KUBE-SVC-AAAA -j KUBE-SEP-BBBB\nCOMMIT\n";
  EXPECT_EQ(serviceChainsIn(save), (std::set<std::string>{"KUBE-SEP-BBBB", "KUBE-SVC-AAAA"}));
}

}  // namespace

// ---- Full payloads split for iptables-nft-restore (splitRestorePayload) ----

std::string chainDeclared(const std::string& line) {
  return line.starts_with(":") ? line.substr(1, line.find(' ') - 1) : "";
}

// The service chain a rule jumps to, or "".
std::string jumpTarget(const std::string& line) {
  size_t at = line.find(" -j ");
  if (at == std::string::npos) return "";
  std::string target = line.substr(at + 4, line.find(' ', at + 4) - at - 4);
  return isServiceChain(target) ? target : "";
}

TEST(SplitRestorePayload, SmallPayloadsAndNoLimitStayWhole) {
  auto state = makeState(everyFeature());
  AppliedRules applied;
  Payload p = fullPayload(*state, v4Options(), {}, applied);
  EXPECT_EQ(splitRestorePayload(p.text, 0), std::vector<std::string>{p.text});
  EXPECT_EQ(splitRestorePayload(p.text, 100000), std::vector<std::string>{p.text});
}

TEST(SplitRestorePayload, PartsKeepEveryLineAndEveryJumpValidAtEveryStep) {
  auto state = makeState(everyFeature());
  AppliedRules applied;
  const std::string stale = "KUBE-SEP-STALESTALESTALE1";
  Payload p = fullPayload(*state, v4Options(), {stale}, applied);
  constexpr size_t kMax = 3;
  std::vector<std::string> parts = splitRestorePayload(p.text, kMax);
  ASSERT_GT(parts.size(), 3u);

  // Every line of the payload is in exactly one part (table headers and COMMITs aside).
  std::multiset<std::string> want, got;
  for (const auto& l : lines(p.text)) {
    if (!l.starts_with("*") && l != "COMMIT") want.insert(l);
  }
  std::set<std::string> declared;  // by the parts applied so far
  for (size_t i = 0; i < parts.size(); ++i) {
    size_t serviceChains = 0;
    std::set<std::string> here;
    for (const auto& l : lines(parts[i])) {
      if (!l.starts_with("*") && l != "COMMIT") got.insert(l);
      std::string chain = chainDeclared(l);
      if (!chain.empty()) {
        here.insert(chain);
        serviceChains += isServiceChain(chain) ? 1 : 0;
      }
    }
    if (i + 1 < parts.size()) {
      EXPECT_LE(serviceChains, kMax) << "part " << i;
      EXPECT_EQ(parts[i].find("*filter"), std::string::npos) << "part " << i;
      EXPECT_EQ(parts[i].find(":KUBE-SERVICES "), std::string::npos) << "part " << i;
    }
    // A jump goes to a chain this part or an earlier one declares.
    for (const auto& l : lines(parts[i])) {
      std::string target = jumpTarget(l);
      if (target.empty()) continue;
      EXPECT_TRUE(here.count(target) || declared.count(target))
          << "part " << i << " jumps to " << target << " before it exists: " << l;
    }
    declared.insert(here.begin(), here.end());
  }
  EXPECT_EQ(got, want);
  // KUBE-MARK-MASQ first; the top-level chains, the stale chain's flush and deletion, and the
  // other tables last.
  EXPECT_NE(parts.front().find(":KUBE-MARK-MASQ "), std::string::npos);
  const std::string& last = parts.back();
  for (const std::string& expected : {std::string(":KUBE-SERVICES "), std::string("*filter"),
                                      std::string("*mangle"), ":" + stale + " ", "-X " + stale}) {
    EXPECT_NE(last.find(expected), std::string::npos) << expected;
  }
}

// Applied for real with iptables-nft-restore --noflush, the parts leave the same tables as the
// whole payload in one call.
TEST(SplitRestorePayload, PartsApplyToTheSameRulesAsTheWhole) {
  auto state = makeState(everyFeature());
  AppliedRules applied;
  Payload p = fullPayload(*state, v4Options(), {}, applied);
  std::vector<std::string> parts = splitRestorePayload(p.text, 2);
  ASSERT_GT(parts.size(), 2u);
  // The tables after applying `inputs` in a fresh namespace (the child writes them to a file).
  int calls = 0;
  auto saveAfter = [&](const std::vector<std::string>& inputs) {
    const std::string file =
        std::filesystem::temp_directory_path() /
        ("capstan-split-" + std::to_string(::getpid()) + "-" + std::to_string(++calls) + ".txt");
    support::TestNetns ns;
    EXPECT_TRUE(ns.ok()) << ns.error();
    EXPECT_EQ(ns.runInChild([&] {
      auto runner = makeExecRunner("nft");
      for (const std::string& input : inputs) {
        Status st = runner->restore(IpFamily::kV4, input);
        ASSERT_TRUE(st.ok()) << st.error().message();
      }
      std::ofstream out(file);
      for (Table t : {Table::kFilter, Table::kNat, Table::kMangle}) {
        auto saved = runner->save(IpFamily::kV4, t);
        ASSERT_TRUE(saved.ok()) << saved.error().message();
        for (const auto& l : lines(*saved)) {
          if (!l.starts_with("#")) out << l << "\n";
        }
      }
    }),
              "");
    std::ifstream in(file);
    std::stringstream text;
    text << in.rdbuf();
    std::filesystem::remove(file);
    return text.str();
  };
  std::string whole = saveAfter({p.text});
  std::string split = saveAfter(parts);
  EXPECT_FALSE(whole.empty());
  EXPECT_EQ(split, whole);
}

}  // namespace capstan::iptables
