// staleConntrackFilters: a table of before/after states and the filters they must produce, and
// the filter set's matching.
#include "model/conntrack_cleanup.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include "tests/support/proxy_state.h"

namespace capstan {
namespace {

IpAddress ip(const std::string& text) {
  auto parsed = IpAddress::parse(text);
  EXPECT_TRUE(parsed.has_value()) << text;
  return parsed.value_or(IpAddress());
}

struct Ep {
  std::string ip;
  uint16_t port = 5353;
  bool ready = true;
  bool serving = true;
  bool terminating = false;
  std::string node = "node-b";
};

// One single-port Service and its endpoints, described the way the cases need them.
struct Svc {
  std::string name = "dns";
  Protocol protocol = Protocol::kUDP;
  std::vector<std::string> clusterIPs = {"10.96.0.10"};
  uint16_t port = 53;
  uint16_t nodePort = 0;
  std::vector<std::string> externalIPs;
  std::vector<std::string> lbIPs;
  ServiceType type = ServiceType::kClusterIP;
  TrafficPolicy externalPolicy = TrafficPolicy::kCluster;
  bool headless = false;
  std::vector<Ep> endpoints;
};

Svc withEndpoints(Svc s, std::vector<Ep> eps) {
  s.endpoints = std::move(eps);
  return s;
}

std::vector<std::shared_ptr<const ServicePort>> portsOf(const Svc& d) {
  auto svc = std::make_shared<Service>();
  svc->name = {"default", d.name};
  svc->type = d.type;
  if (d.nodePort != 0 && svc->type == ServiceType::kClusterIP) svc->type = ServiceType::kNodePort;
  if (!d.lbIPs.empty()) svc->type = ServiceType::kLoadBalancer;
  for (const auto& c : d.clusterIPs) svc->clusterIPs.push_back(ip(c));
  svc->headless = d.headless;
  for (const auto& e : d.externalIPs) svc->externalIPs.push_back(ip(e));
  for (const auto& l : d.lbIPs) svc->loadBalancerIPs.push_back(ip(l));
  svc->externalTrafficPolicy = d.externalPolicy;
  ServicePortSpec spec;
  spec.name = "dns";
  spec.protocol = d.protocol;
  spec.port = d.port;
  spec.targetPort = int32_t{5353};
  spec.nodePort = d.nodePort;
  svc->ports = {spec};

  std::vector<std::shared_ptr<const EndpointSlice>> slices;
  for (AddressType type : {AddressType::kIPv4, AddressType::kIPv6}) {
    auto slice = std::make_shared<EndpointSlice>();
    slice->name = {"default", d.name + (type == AddressType::kIPv4 ? "-v4" : "-v6")};
    slice->serviceName = d.name;
    slice->addressType = type;
    // One slice port per endpoint port in use (endpoints of a port-changed pod appear under the
    // port their slice names).
    for (const Ep& e : d.endpoints) {
      IpAddress addr = ip(e.ip);
      if ((type == AddressType::kIPv4) != addr.isV4()) continue;
      EndpointSliceEndpoint ep;
      ep.addresses = {addr};
      ep.conditions = {e.ready, e.serving, e.terminating};
      ep.nodeName = e.node;
      slice->endpoints.push_back(ep);
      slice->ports = {{"dns", d.protocol, e.port, ""}};
    }
    if (!slice->endpoints.empty()) slices.push_back(slice);
  }
  return makeServicePorts(svc, slices, NodeInfo{.name = "node-a"});
}

std::shared_ptr<ProxyState> stateOf(const std::vector<Svc>& services) {
  return support::stateOf(services, portsOf);
}

std::vector<std::string> filtersText(const ProxyState& before, const ProxyState& after) {
  std::vector<std::string> out;
  for (const ConntrackFilter& f : staleConntrackFilters(before, after)) out.push_back(f.toString());
  return out;
}

const Svc kDns;  // UDP 10.96.0.10:53, no endpoints
const Ep kA{"10.0.0.1"};
const Ep kB{"10.0.0.2"};

Svc dualStack() {
  Svc s;
  s.clusterIPs = {"10.96.0.10", "fd00::10"};
  return s;
}

Svc nodePortDns() {
  Svc s;
  s.nodePort = 30053;
  return s;
}

Svc externalDns() {
  Svc s;
  s.externalIPs = {"192.0.2.1", "192.0.2.2"};
  return s;
}

Svc lbDns() {
  Svc s;
  s.nodePort = 30053;
  s.lbIPs = {"198.51.100.1"};
  return s;
}

Svc tcp() {
  Svc s;
  s.protocol = Protocol::kTCP;
  return s;
}

struct Case {
  const char* name;
  std::vector<Svc> before;
  std::vector<Svc> after;
  std::vector<std::string> want;
};

// kube-proxy's cases (pkg/proxy/conntrack/cleanup_test.go and the endpoints change tracker's
// "deleted UDP endpoints" / "newly active UDP services"), and Capstan's per-frontend ones.
const std::vector<Case>& cases() {
  static const std::vector<Case> kCases = {
      {"endpoint removed",
       {withEndpoints(kDns, {kA, kB})},
       {withEndpoints(kDns, {kA})},
       {"IPv4 UDP orig-dst=10.96.0.10 orig-dport=53 reply-src=10.0.0.2"}},
      {"endpoint added: nothing", {withEndpoints(kDns, {kA})}, {withEndpoints(kDns, {kA, kB})}, {}},
      {"last endpoint removed: its flows, not the Service's",
       {withEndpoints(kDns, {kA})},
       {kDns},
       {"IPv4 UDP orig-dst=10.96.0.10 orig-dport=53 reply-src=10.0.0.1"}},
      {"TCP endpoint removed: nothing",
       {withEndpoints(tcp(), {kA, kB})},
       {withEndpoints(tcp(), {kA})},
       {}},
      {"TCP newly active: nothing", {tcp()}, {withEndpoints(tcp(), {kA})}, {}},
      {"newly active",
       {kDns},
       {withEndpoints(kDns, {kA})},
       {"IPv4 UDP orig-dst=10.96.0.10 orig-dport=53"}},
      {"new Service with endpoints is newly active",
       {},
       {withEndpoints(kDns, {kA})},
       {"IPv4 UDP orig-dst=10.96.0.10 orig-dport=53"}},
      {"new Service without endpoints: nothing", {}, {kDns}, {}},
      {"Service deleted",
       {withEndpoints(kDns, {kA})},
       {},
       {"IPv4 UDP orig-dst=10.96.0.10 orig-dport=53"}},
      {"Service without endpoints deleted",
       {kDns},
       {},
       {"IPv4 UDP orig-dst=10.96.0.10 orig-dport=53"}},
      {"NodePort endpoint removed",
       {withEndpoints(nodePortDns(), {kA, kB})},
       {withEndpoints(nodePortDns(), {kA})},
       {"IPv4 UDP orig-dport=30053 reply-src=10.0.0.2",
        "IPv4 UDP orig-dst=10.96.0.10 orig-dport=53 reply-src=10.0.0.2"}},
      {"NodePort newly active",
       {nodePortDns()},
       {withEndpoints(nodePortDns(), {kA})},
       {"IPv4 UDP orig-dport=30053", "IPv4 UDP orig-dst=10.96.0.10 orig-dport=53"}},
      {"NodePort Service deleted",
       {withEndpoints(nodePortDns(), {kA})},
       {},
       {"IPv4 UDP orig-dport=30053", "IPv4 UDP orig-dst=10.96.0.10 orig-dport=53"}},
      {"NodePort changed: the old one is gone, the new one newly active",
       {withEndpoints(nodePortDns(), {kA})},
       {withEndpoints(
           [] {
             auto s = nodePortDns();
             s.nodePort = 30054;
             return s;
           }(),
           {kA})},
       {"IPv4 UDP orig-dport=30053", "IPv4 UDP orig-dport=30054"}},
      {"external IPs: endpoint removed",
       {withEndpoints(externalDns(), {kA, kB})},
       {withEndpoints(externalDns(), {kB})},
       {"IPv4 UDP orig-dst=10.96.0.10 orig-dport=53 reply-src=10.0.0.1",
        "IPv4 UDP orig-dst=192.0.2.1 orig-dport=53 reply-src=10.0.0.1",
        "IPv4 UDP orig-dst=192.0.2.2 orig-dport=53 reply-src=10.0.0.1"}},
      {"external IPs: newly active",
       {externalDns()},
       {withEndpoints(externalDns(), {kA})},
       {"IPv4 UDP orig-dst=10.96.0.10 orig-dport=53", "IPv4 UDP orig-dst=192.0.2.1 orig-dport=53",
        "IPv4 UDP orig-dst=192.0.2.2 orig-dport=53"}},
      {"external IP removed: its flows go, the others stay",
       {withEndpoints(externalDns(), {kA})},
       {withEndpoints(
           [] {
             auto s = externalDns();
             s.externalIPs.pop_back();
             return s;
           }(),
           {kA})},
       {"IPv4 UDP orig-dst=192.0.2.2 orig-dport=53"}},
      {"external IP added to an active port: newly active there only",
       {withEndpoints(
           [] {
             auto s = externalDns();
             s.externalIPs.pop_back();
             return s;
           }(),
           {kA})},
       {withEndpoints(externalDns(), {kA})},
       {"IPv4 UDP orig-dst=192.0.2.2 orig-dport=53"}},
      {"LoadBalancer IPs: endpoint removed",
       {withEndpoints(lbDns(), {kA, kB})},
       {withEndpoints(lbDns(), {kA})},
       {"IPv4 UDP orig-dport=30053 reply-src=10.0.0.2",
        "IPv4 UDP orig-dst=10.96.0.10 orig-dport=53 reply-src=10.0.0.2",
        "IPv4 UDP orig-dst=198.51.100.1 orig-dport=53 reply-src=10.0.0.2"}},
      {"LoadBalancer IPs: newly active",
       {lbDns()},
       {withEndpoints(lbDns(), {kA})},
       {"IPv4 UDP orig-dport=30053", "IPv4 UDP orig-dst=10.96.0.10 orig-dport=53",
        "IPv4 UDP orig-dst=198.51.100.1 orig-dport=53"}},
      {"dual-stack: endpoints removed in both families",
       {withEndpoints(dualStack(), {kA, kB, {"fd00::1"}, {"fd00::2"}})},
       {withEndpoints(dualStack(), {kA, {"fd00::1"}})},
       {"IPv4 UDP orig-dst=10.96.0.10 orig-dport=53 reply-src=10.0.0.2",
        "IPv6 UDP orig-dst=fd00::10 orig-dport=53 reply-src=fd00::2"}},
      {"dual-stack: only IPv6 newly active",
       {withEndpoints(dualStack(), {kA})},
       {withEndpoints(dualStack(), {kA, {"fd00::1"}})},
       {"IPv6 UDP orig-dst=fd00::10 orig-dport=53"}},
      {"single-stack IPv4 Service ignores IPv6 endpoints",
       {withEndpoints(kDns, {kA, {"fd00::1"}})},
       {withEndpoints(kDns, {kA})},
       {}},
      {"endpoint port changed: the IP's flows go",
       {withEndpoints(kDns, {kA})},
       {withEndpoints(kDns, {{"10.0.0.1", 5354}})},
       {"IPv4 UDP orig-dst=10.96.0.10 orig-dport=53 reply-src=10.0.0.1"}},
      {"endpoint no longer ready",
       {withEndpoints(kDns, {kA, kB})},
       {withEndpoints(kDns, {kA, {"10.0.0.2", 5353, false, false}})},
       {"IPv4 UDP orig-dst=10.96.0.10 orig-dport=53 reply-src=10.0.0.2"}},
      {"terminating but serving keeps its flows",
       {withEndpoints(kDns, {kA, kB})},
       {withEndpoints(kDns, {kA, {"10.0.0.2", 5353, false, true, true}})},
       {}},
      {"terminating endpoint stops serving",
       {withEndpoints(kDns, {kA, {"10.0.0.2", 5353, false, true, true}})},
       {withEndpoints(kDns, {kA, {"10.0.0.2", 5353, false, false, true}})},
       {"IPv4 UDP orig-dst=10.96.0.10 orig-dport=53 reply-src=10.0.0.2"}},
      {"headless Service: nothing",
       {withEndpoints(
           [] {
             Svc s;
             s.clusterIPs.clear();
             s.headless = true;
             return s;
           }(),
           {kA, kB})},
       {withEndpoints(
           [] {
             Svc s;
             s.clusterIPs.clear();
             s.headless = true;
             return s;
           }(),
           {kA})},
       {}},
      {"became ExternalName: like deleted",
       {withEndpoints(kDns, {kA})},
       {[] {
         Svc s;
         s.type = ServiceType::kExternalName;
         s.clusterIPs.clear();
         return s;
       }()},
       {"IPv4 UDP orig-dst=10.96.0.10 orig-dport=53"}},
      {"service port number changed",
       {withEndpoints(kDns, {kA})},
       {withEndpoints(
           [] {
             Svc s;
             s.port = 54;
             return s;
           }(),
           {kA})},
       {"IPv4 UDP orig-dst=10.96.0.10 orig-dport=53",
        "IPv4 UDP orig-dst=10.96.0.10 orig-dport=54"}},
      {"two Services: only the changed one",
       {withEndpoints(kDns, {kA, kB}), withEndpoints(
                                           [] {
                                             Svc s;
                                             s.name = "ntp";
                                             s.clusterIPs = {"10.96.0.11"};
                                             s.port = 123;
                                             return s;
                                           }(),
                                           {kA, kB})},
       {withEndpoints(kDns, {kA, kB}), withEndpoints(
                                           [] {
                                             Svc s;
                                             s.name = "ntp";
                                             s.clusterIPs = {"10.96.0.11"};
                                             s.port = 123;
                                             return s;
                                           }(),
                                           {kA})},
       {"IPv4 UDP orig-dst=10.96.0.11 orig-dport=123 reply-src=10.0.0.2"}},
      {"rebuilt but equal: nothing",
       {withEndpoints(lbDns(), {kA, kB})},
       {withEndpoints(lbDns(), {kA, kB})},
       {}},
  };
  return kCases;
}

TEST(StaleConntrackFilters, Table) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    auto before = stateOf(c.before);
    auto after = stateOf(c.after);
    EXPECT_EQ(filtersText(*before, *after), c.want);
  }
}

TEST(StaleConntrackFilters, UnchangedStateCostsNothing) {
  auto state = stateOf({withEndpoints(lbDns(), {kA, kB}), withEndpoints(dualStack(), {kA})});
  // The same snapshot, and a new snapshot sharing every port.
  EXPECT_TRUE(staleConntrackFilters(*state, *state).empty());
  ProxyState next(2, state->node(), state->servicePorts(), IngressState{});
  EXPECT_TRUE(staleConntrackFilters(*state, next).empty());
}

TEST(StaleConntrackFilters, WideFilterAbsorbsNarrowOnes) {
  // Two Services share a LoadBalancer IP and port (Kubernetes refuses it, manifests need not):
  // B leaves dns while dns2 becomes active. The "every entry" filter for 198.51.100.1:53 makes
  // dns's per-endpoint one for that frontend redundant; the others stay.
  Svc dns = lbDns();
  Svc dns2 = lbDns();
  dns2.name = "dns2";
  dns2.clusterIPs = {"10.96.0.12"};
  dns2.nodePort = 30054;
  auto before = stateOf({withEndpoints(dns, {kA, kB}), dns2});
  auto after = stateOf({withEndpoints(dns, {kA}), withEndpoints(dns2, {kB})});
  EXPECT_EQ(filtersText(*before, *after),
            (std::vector<std::string>{
                "IPv4 UDP orig-dport=30053 reply-src=10.0.0.2",
                "IPv4 UDP orig-dport=30054",
                "IPv4 UDP orig-dst=10.96.0.10 orig-dport=53 reply-src=10.0.0.2",
                "IPv4 UDP orig-dst=10.96.0.12 orig-dport=53",
                "IPv4 UDP orig-dst=198.51.100.1 orig-dport=53",
            }));
}

TEST(ConntrackFilterSet, MatchesEverySetField) {
  std::vector<ConntrackFilter> filters = {
      {IpFamily::kV4, Protocol::kUDP, ip("10.96.0.10"), 53, ip("10.0.0.2")},
      {IpFamily::kV4, Protocol::kUDP, ip("10.96.0.11"), 123, std::nullopt},
      {IpFamily::kV4, Protocol::kUDP, std::nullopt, 30053, ip("10.0.0.2")},
      {IpFamily::kV6, Protocol::kUDP, std::nullopt, 30054, std::nullopt},
  };
  ConntrackFilterSet set(filters);
  auto key = [](const char* dst, uint16_t port, const char* reply, Protocol p = Protocol::kUDP) {
    IpAddress d = ip(dst);
    return ConntrackEntryKey{d.family(), p, d, port, ip(reply)};
  };
  EXPECT_TRUE(set.matches(key("10.96.0.10", 53, "10.0.0.2")));
  EXPECT_FALSE(set.matches(key("10.96.0.10", 53, "10.0.0.1")));  // other endpoint
  EXPECT_FALSE(set.matches(key("10.96.0.10", 54, "10.0.0.2")));  // other port
  EXPECT_FALSE(set.matches(key("10.96.0.10", 53, "10.0.0.2", Protocol::kTCP)));
  EXPECT_TRUE(set.matches(key("10.96.0.11", 123, "10.0.0.7")));     // any reply source
  EXPECT_TRUE(set.matches(key("10.96.0.11", 123, "10.96.0.11")));   // un-NATed
  EXPECT_TRUE(set.matches(key("192.168.1.5", 30053, "10.0.0.2")));  // NodePort, any address
  EXPECT_FALSE(set.matches(key("192.168.1.5", 30053, "10.0.0.1")));
  EXPECT_TRUE(set.matches(key("fd00::5", 30054, "fd00::9")));
  EXPECT_FALSE(set.matches(key("192.168.1.5", 30054, "10.0.0.9")));  // family differs
  EXPECT_TRUE(ConntrackFilterSet({}).empty());
  EXPECT_FALSE(ConntrackFilterSet({}).matches(key("10.96.0.10", 53, "10.0.0.2")));
  // A filter with nothing set takes every entry of its family and protocol.
  ConntrackFilter all{IpFamily::kV6, Protocol::kUDP};
  EXPECT_EQ(all.toString(), "IPv6 UDP (every entry)");
  ConntrackFilterSet everything(std::span<const ConntrackFilter>(&all, 1));
  EXPECT_TRUE(everything.matches(key("fd00::5", 1, "fd00::9")));
  EXPECT_FALSE(everything.matches(key("10.0.0.5", 1, "10.0.0.9")));
}

// Every filter staleConntrackFilters makes matches what it names and nothing of other Services.
TEST(ConntrackFilterSet, AgreesWithTheFiltersOfTheTable) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    auto filters = staleConntrackFilters(*stateOf(c.before), *stateOf(c.after));
    ConntrackFilterSet set(filters);
    for (const ConntrackFilter& f : filters) {
      ConntrackEntryKey e{
          f.family, f.protocol,
          f.origDst.value_or(ip(f.family == IpFamily::kV4 ? "192.168.9.9" : "fd09::9")),
          f.origDstPort.value_or(1),
          f.replySrc.value_or(ip(f.family == IpFamily::kV4 ? "10.9.9.9" : "fd09::1"))};
      EXPECT_TRUE(set.matches(e)) << f.toString();
      e.origDstPort = 9;  // no case uses port 9
      EXPECT_FALSE(set.matches(e)) << f.toString();
    }
  }
}

// The cost that matters: a sync of 30,000 ports with one changed. Printed for the record and
// bounded loosely (an O(ports) walk is well under a millisecond; anything quadratic is not).
TEST(StaleConntrackFilters, ThirtyThousandPortsOneChanged) {
  constexpr int kServices = 15000;  // two ports each: one UDP, one TCP
  ServicePortList ports;
  ports.reserve(2 * kServices);
  for (int i = 0; i < kServices; ++i) {
    Svc udp;
    udp.name = "svc-" + std::to_string(100000 + i);
    udp.clusterIPs = {IpAddress::v4(0x0a600000u + static_cast<uint32_t>(i)).toString()};
    udp.endpoints = {{IpAddress::v4(0x0a000000u + static_cast<uint32_t>(2 * i)).toString()},
                     {IpAddress::v4(0x0a000001u + static_cast<uint32_t>(2 * i)).toString()}};
    Svc tcpSvc = udp;
    tcpSvc.name += "-tcp";
    tcpSvc.protocol = Protocol::kTCP;
    for (const Svc* s : {&udp, &tcpSvc}) {
      auto p = portsOf(*s);
      ports.insert(ports.end(), p.begin(), p.end());
    }
  }
  std::sort(ports.begin(), ports.end(),
            [](const auto& a, const auto& b) { return a->name < b->name; });
  ASSERT_EQ(ports.size(), 30000u);
  ProxyState before(1, NodeInfo{.name = "node-a"}, ports, IngressState{});
  Svc changed;
  changed.name = "svc-" + std::to_string(100000 + 7777);
  changed.clusterIPs = {IpAddress::v4(0x0a600000u + 7777).toString()};
  changed.endpoints = {{IpAddress::v4(0x0a000000u + 2 * 7777).toString()}};
  auto replacement = portsOf(changed);
  auto it = std::find_if(ports.begin(), ports.end(),
                         [&](const auto& p) { return p->name == replacement[0]->name; });
  ASSERT_NE(it, ports.end());
  *it = replacement[0];
  ProxyState after(2, NodeInfo{.name = "node-a"}, ports, IngressState{});

  constexpr int kRounds = 200;
  std::vector<ConntrackFilter> filters;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kRounds; ++i) filters = staleConntrackFilters(before, after);
  double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
      kRounds;
  std::printf("staleConntrackFilters, 30000 ports, 1 changed: %.1f us\n", us);
  ASSERT_EQ(filters.size(), 1u);
  EXPECT_EQ(filters[0].toString(),
            "IPv4 UDP orig-dst=10.96.30.97 orig-dport=53 reply-src=10.0.60.195");
  EXPECT_LT(us, 20000.0);

  // Every port rebuilt (a node-wide change): still one walk, with a diff per UDP port.
  ServicePortList rebuilt;
  for (const auto& p : after.servicePorts()) rebuilt.push_back(std::make_shared<ServicePort>(*p));
  ProxyState all(3, NodeInfo{.name = "node-a"}, rebuilt, IngressState{});
  start = std::chrono::steady_clock::now();
  EXPECT_TRUE(staleConntrackFilters(after, all).empty());
  std::printf(
      "staleConntrackFilters, 30000 ports, all rebuilt equal: %.1f ms\n",
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace
}  // namespace capstan
