// Endpoint selection, as a table of kube-proxy's rules (pkg/proxy/topology.go and the cases of
// its TestCategorizeEndpoints): ready endpoints, the serving-and-terminating fallback, the Local
// policies, and topology hints used only when every ready endpoint has them and one matches.
#include "model/endpoint_selection.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace capstan {
namespace {

struct Ep {
  std::string ip;
  bool ready = true;
  bool serving = true;
  bool terminating = false;
  bool local = false;
  std::vector<std::string> zoneHints = {};
  std::vector<std::string> nodeHints = {};
};

Ep ready(std::string ip, bool local = false) { return {std::move(ip), true, true, false, local}; }
Ep terminating(std::string ip, bool serving, bool local = false) {
  return {std::move(ip), false, serving, true, local};
}
Ep unready(std::string ip, bool local = false) {
  return {std::move(ip), false, false, false, local};
}
Ep hinted(std::string ip, std::vector<std::string> zones, bool local = false) {
  Ep e = ready(std::move(ip), local);
  e.zoneHints = std::move(zones);
  return e;
}

using IpSet = std::set<std::string>;

struct Case {
  std::string name;
  bool internalLocal = false;  // internalTrafficPolicy: Local
  bool externalLocal = false;  // externalTrafficPolicy: Local (on an externally reachable port)
  bool external = false;       // externally reachable (NodePort, LB, external IPs)
  std::string zone = "zone-a";
  std::vector<Ep> endpoints;
  // nullopt-like marker: an empty set with usesCluster false is checked as "not computed".
  IpSet cluster;
  IpSet local;
  IpSet allReachable;
  bool hasAnyEndpoints;
};

std::vector<Endpoint> makeEndpoints(const std::vector<Ep>& eps) {
  std::vector<Endpoint> out;
  for (const Ep& e : eps) {
    Endpoint ep;
    ep.ip = *IpAddress::parse(e.ip);
    ep.port = 80;
    ep.ready = e.ready;
    ep.serving = e.serving;
    ep.terminating = e.terminating;
    ep.isLocal = e.local;
    ep.nodeName = e.local ? "node-a" : "node-x";
    ep.zoneHints = e.zoneHints;
    ep.nodeHints = e.nodeHints;
    out.push_back(ep);
  }
  return out;
}

IpSet ips(const std::vector<Endpoint>& endpoints, const std::vector<uint32_t>& indices) {
  IpSet out;
  for (uint32_t i : indices) out.insert(endpoints[i].ip.toString());
  return out;
}

class EndpointSelectionTable : public testing::TestWithParam<Case> {};

TEST_P(EndpointSelectionTable, MatchesKubeProxy) {
  const Case& c = GetParam();
  std::vector<Endpoint> endpoints = makeEndpoints(c.endpoints);
  // ServicePort::usesClusterEndpoints / usesLocalEndpoints.
  SelectionPolicy policy{!c.internalLocal || c.external,
                         c.internalLocal || (c.externalLocal && c.external)};
  EndpointSelection sel = selectEndpoints(endpoints, IpFamily::kV4, policy, "node-a", c.zone);
  EXPECT_EQ(ips(endpoints, sel.cluster), c.cluster);
  EXPECT_EQ(ips(endpoints, sel.local), c.local);
  EXPECT_EQ(ips(endpoints, sel.allReachable), c.allReachable);
  EXPECT_EQ(sel.hasAnyEndpoints, c.hasAnyEndpoints);
  // allReachable is in list order without duplicates.
  EXPECT_TRUE(std::is_sorted(sel.allReachable.begin(), sel.allReachable.end()));
  EXPECT_EQ(std::set<uint32_t>(sel.allReachable.begin(), sel.allReachable.end()).size(),
            sel.allReachable.size());
}

const Case kCases[] = {
    {.name = "ClusterAllReady",
     .endpoints = {ready("10.0.0.1"), ready("10.0.0.2")},
     .cluster = {"10.0.0.1", "10.0.0.2"},
     .allReachable = {"10.0.0.1", "10.0.0.2"},
     .hasAnyEndpoints = true},
    {.name = "ClusterNoEndpoints", .endpoints = {}, .hasAnyEndpoints = false},
    {.name = "ClusterSomeReady",
     .endpoints = {ready("10.0.0.1"), unready("10.0.0.2"), terminating("10.0.0.3", true)},
     .cluster = {"10.0.0.1"},
     .allReachable = {"10.0.0.1"},
     .hasAnyEndpoints = true},
    {.name = "ClusterNoneReadyFallsBackToServingTerminating",
     .endpoints = {terminating("10.0.0.1", true), terminating("10.0.0.2", false),
                   unready("10.0.0.3")},
     .cluster = {"10.0.0.1"},
     .allReachable = {"10.0.0.1"},
     .hasAnyEndpoints = true},
    {.name = "ClusterNoneReadyNoneServing",
     .endpoints = {terminating("10.0.0.1", false), unready("10.0.0.2")},
     .hasAnyEndpoints = false},
    {.name = "InternalLocalNoEndpoints", .internalLocal = true, .hasAnyEndpoints = false},
    {.name = "InternalLocalAllRemote",
     .internalLocal = true,
     .endpoints = {ready("10.0.0.1"), ready("10.0.0.2")},
     .hasAnyEndpoints = true},  // drop, not reject
    {.name = "InternalLocalAllLocal",
     .internalLocal = true,
     .endpoints = {ready("10.0.0.1", true), ready("10.0.0.2", true)},
     .local = {"10.0.0.1", "10.0.0.2"},
     .allReachable = {"10.0.0.1", "10.0.0.2"},
     .hasAnyEndpoints = true},
    {.name = "InternalLocalSomeLocal",
     .internalLocal = true,
     .endpoints = {ready("10.0.0.1", true), ready("10.0.0.2")},
     .local = {"10.0.0.1"},
     .allReachable = {"10.0.0.1"},
     .hasAnyEndpoints = true},
    {.name = "InternalLocalExternalClusterSomeLocal",
     .internalLocal = true,
     .external = true,
     .endpoints = {ready("10.0.0.1", true), ready("10.0.0.2")},
     .cluster = {"10.0.0.1", "10.0.0.2"},
     .local = {"10.0.0.1"},
     .allReachable = {"10.0.0.1", "10.0.0.2"},
     .hasAnyEndpoints = true},
    {.name = "ExternalLocalSomeLocal",
     .externalLocal = true,
     .external = true,
     .endpoints = {ready("10.0.0.1", true), ready("10.0.0.2")},
     .cluster = {"10.0.0.1", "10.0.0.2"},
     .local = {"10.0.0.1"},
     .allReachable = {"10.0.0.1", "10.0.0.2"},
     .hasAnyEndpoints = true},
    {.name = "ExternalLocalWithoutExternalAccessIsCluster",
     .externalLocal = true,
     .external = false,
     .endpoints = {ready("10.0.0.1", true), ready("10.0.0.2")},
     .cluster = {"10.0.0.1", "10.0.0.2"},
     .allReachable = {"10.0.0.1", "10.0.0.2"},
     .hasAnyEndpoints = true},
    {.name = "BothLocalSomeLocal",
     .internalLocal = true,
     .externalLocal = true,
     .external = true,
     .endpoints = {ready("10.0.0.1", true), ready("10.0.0.2")},
     .cluster = {"10.0.0.1", "10.0.0.2"},
     .local = {"10.0.0.1"},
     .allReachable = {"10.0.0.1", "10.0.0.2"},
     .hasAnyEndpoints = true},
    {.name = "BothLocalLocalOnesTerminatingServing",
     .internalLocal = true,
     .externalLocal = true,
     .external = true,
     .endpoints = {terminating("10.0.0.1", true, true), terminating("10.0.0.2", true, true),
                   ready("10.0.0.3"), ready("10.0.0.4")},
     .cluster = {"10.0.0.3", "10.0.0.4"},
     .local = {"10.0.0.1", "10.0.0.2"},
     .allReachable = {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"},
     .hasAnyEndpoints = true},
    {.name = "BothLocalLocalOnesTerminatingNotServing",
     .internalLocal = true,
     .externalLocal = true,
     .external = true,
     .endpoints = {terminating("10.0.0.1", false, true), terminating("10.0.0.2", false, true),
                   ready("10.0.0.3"), ready("10.0.0.4")},
     .cluster = {"10.0.0.3", "10.0.0.4"},
     .allReachable = {"10.0.0.3", "10.0.0.4"},
     .hasAnyEndpoints = true},
    {.name = "ExternalLocalAllTerminating",
     .externalLocal = true,
     .external = true,
     .endpoints = {terminating("10.0.0.1", true, true), terminating("10.0.0.2", true),
                   terminating("10.0.0.3", false, true)},
     .cluster = {"10.0.0.1", "10.0.0.2"},
     .local = {"10.0.0.1"},
     .allReachable = {"10.0.0.1", "10.0.0.2"},
     .hasAnyEndpoints = true},
    {.name = "ExternalLocalOnlyUnready",
     .externalLocal = true,
     .external = true,
     .endpoints = {unready("10.0.0.1", true), terminating("10.0.0.2", false)},
     .hasAnyEndpoints = false},
    {.name = "LocalReadyPreferredOverLocalTerminating",
     .internalLocal = true,
     .endpoints = {ready("10.0.0.1", true), terminating("10.0.0.2", true, true)},
     .local = {"10.0.0.1"},
     .allReachable = {"10.0.0.1"},
     .hasAnyEndpoints = true},
    // Topology hints.
    {.name = "HintsFilterToZone",
     .endpoints = {hinted("10.1.2.3", {"zone-a"}), hinted("10.1.2.4", {"zone-b"}),
                   hinted("10.1.2.5", {"zone-c"}), hinted("10.1.2.6", {"zone-a"})},
     .cluster = {"10.1.2.3", "10.1.2.6"},
     .allReachable = {"10.1.2.3", "10.1.2.6"},
     .hasAnyEndpoints = true},
    {.name = "HintsMultipleZonesPerEndpoint",
     .zone = "zone-b",
     .endpoints = {hinted("10.1.2.3", {"zone-a", "zone-b"}), hinted("10.1.2.4", {"zone-c"}),
                   hinted("10.1.2.5", {"zone-b", "zone-d"})},
     .cluster = {"10.1.2.3", "10.1.2.5"},
     .allReachable = {"10.1.2.3", "10.1.2.5"},
     .hasAnyEndpoints = true},
    {.name = "HintsIgnoredWhenNodeHasNoZone",
     .zone = "",
     .endpoints = {hinted("10.1.2.3", {"zone-a"}), hinted("10.1.2.4", {"zone-b"})},
     .cluster = {"10.1.2.3", "10.1.2.4"},
     .allReachable = {"10.1.2.3", "10.1.2.4"},
     .hasAnyEndpoints = true},
    {.name = "HintsIgnoredWhenNoneForThisZone",
     .zone = "zone-x",
     .endpoints = {hinted("10.1.2.3", {"zone-a"}), hinted("10.1.2.4", {"zone-b"})},
     .cluster = {"10.1.2.3", "10.1.2.4"},
     .allReachable = {"10.1.2.3", "10.1.2.4"},
     .hasAnyEndpoints = true},
    {.name = "HintsIgnoredWhenOneReadyEndpointHasNone",
     .endpoints = {hinted("10.1.2.3", {"zone-a"}), hinted("10.1.2.4", {"zone-b"}),
                   ready("10.1.2.5")},
     .cluster = {"10.1.2.3", "10.1.2.4", "10.1.2.5"},
     .allReachable = {"10.1.2.3", "10.1.2.4", "10.1.2.5"},
     .hasAnyEndpoints = true},
    {.name = "HintsUnreadyEndpointWithoutHintsDoesNotMatter",
     .endpoints = {hinted("10.1.2.3", {"zone-a"}), hinted("10.1.2.4", {"zone-b"}),
                   unready("10.1.2.5")},
     .cluster = {"10.1.2.3"},
     .allReachable = {"10.1.2.3"},
     .hasAnyEndpoints = true},
    {.name = "HintsIgnoredForLocalEndpointsAndMerged",
     .internalLocal = true,
     .external = true,
     .endpoints = {hinted("10.1.2.3", {"zone-a"}), hinted("10.1.2.4", {"zone-b"}, true)},
     .cluster = {"10.1.2.3"},
     .local = {"10.1.2.4"},
     .allReachable = {"10.1.2.3", "10.1.2.4"},
     .hasAnyEndpoints = true},
};

INSTANTIATE_TEST_SUITE_P(KubeProxyRules, EndpointSelectionTable, testing::ValuesIn(kCases),
                         [](const auto& info) { return info.param.name; });

TEST(EndpointSelection, NodeHintsPreferredOverZoneHints) {
  std::vector<Ep> eps = {hinted("10.0.0.1", {"zone-a"}), hinted("10.0.0.2", {"zone-a"}),
                         hinted("10.0.0.3", {"zone-b"})};
  eps[0].nodeHints = {"node-a"};
  eps[1].nodeHints = {"node-b"};
  eps[2].nodeHints = {"node-c"};
  auto endpoints = makeEndpoints(eps);
  auto sel = selectEndpoints(endpoints, IpFamily::kV4, {true, false}, "node-a", "zone-a");
  EXPECT_EQ(sel.topology, TopologyMode::kNodeHints);
  EXPECT_EQ(ips(endpoints, sel.cluster), (IpSet{"10.0.0.1"}));

  // One ready endpoint without a node hint: node hints are off, zone hints still apply.
  eps[2].nodeHints.clear();
  endpoints = makeEndpoints(eps);
  sel = selectEndpoints(endpoints, IpFamily::kV4, {true, false}, "node-a", "zone-a");
  EXPECT_EQ(sel.topology, TopologyMode::kZoneHints);
  EXPECT_EQ(ips(endpoints, sel.cluster), (IpSet{"10.0.0.1", "10.0.0.2"}));
}

TEST(EndpointSelection, EachFamilyFallsBackOnItsOwn) {
  std::vector<Endpoint> endpoints = makeEndpoints({ready("10.0.0.1")});
  Endpoint v6;
  v6.ip = *IpAddress::parse("fd00::1");
  v6.port = 80;
  v6.ready = false;
  v6.serving = true;
  v6.terminating = true;
  endpoints.push_back(v6);
  auto v4sel = selectEndpoints(endpoints, IpFamily::kV4, {true, false}, "node-a", "");
  auto v6sel = selectEndpoints(endpoints, IpFamily::kV6, {true, false}, "node-a", "");
  EXPECT_EQ(v4sel.cluster, (std::vector<uint32_t>{0}));
  EXPECT_EQ(v6sel.cluster, (std::vector<uint32_t>{1}));  // terminating fallback, IPv6 only
  EXPECT_TRUE(v6sel.hasAnyEndpoints);
}

}  // namespace
}  // namespace capstan
