// endpointsForPort: the merge of a Service's EndpointSlices into one endpoint list per port, as
// kube-proxy's EndpointSliceCache does it.
#include "model/endpoint.h"

#include <gtest/gtest.h>

namespace capstan {
namespace {

EndpointSliceEndpoint ep(const std::string& ip, std::optional<bool> ready = std::nullopt,
                         std::optional<bool> serving = std::nullopt,
                         std::optional<bool> terminating = std::nullopt,
                         const std::string& node = "") {
  EndpointSliceEndpoint e;
  e.addresses.push_back(*IpAddress::parse(ip));
  e.conditions = {ready, serving, terminating};
  e.nodeName = node;
  return e;
}

std::shared_ptr<const EndpointSlice> slice(const std::string& name, AddressType type,
                                           std::vector<EndpointSliceEndpoint> endpoints,
                                           std::vector<EndpointSlicePort> ports) {
  auto s = std::make_shared<EndpointSlice>();
  s->name = {"default", name};
  s->serviceName = "web";
  s->addressType = type;
  s->endpoints = std::move(endpoints);
  s->ports = std::move(ports);
  return s;
}

std::vector<std::string> names(const std::vector<Endpoint>& eps) {
  std::vector<std::string> out;
  for (const auto& e : eps) out.push_back(e.toString());
  return out;
}

TEST(EndpointsForPort, MatchesPortByNameAndProtocol) {
  std::vector<std::shared_ptr<const EndpointSlice>> slices = {
      slice("web-1", AddressType::kIPv4, {ep("10.0.0.2"), ep("10.0.0.1")},
            {{"http", Protocol::kTCP, 8080, ""}, {"dns", Protocol::kUDP, 53, ""}})};
  EXPECT_EQ(names(endpointsForPort(slices, "http", Protocol::kTCP, "n")),
            (std::vector<std::string>{"10.0.0.1:8080", "10.0.0.2:8080"}));
  EXPECT_EQ(names(endpointsForPort(slices, "dns", Protocol::kUDP, "n")),
            (std::vector<std::string>{"10.0.0.1:53", "10.0.0.2:53"}));
  EXPECT_TRUE(endpointsForPort(slices, "dns", Protocol::kTCP, "n").empty());
  EXPECT_TRUE(endpointsForPort(slices, "", Protocol::kTCP, "n").empty());
}

TEST(EndpointsForPort, ConditionDefaultsAndLocality) {
  std::vector<std::shared_ptr<const EndpointSlice>> slices = {slice(
      "web-1", AddressType::kIPv4,
      {ep("10.0.0.1", std::nullopt, std::nullopt, std::nullopt, "node-a"),
       ep("10.0.0.2", false, true, true, "node-b"), ep("10.0.0.3", true, std::nullopt, false)},
      {{"", Protocol::kTCP, 80, ""}})};
  auto eps = endpointsForPort(slices, "", Protocol::kTCP, "node-a");
  ASSERT_EQ(eps.size(), 3u);
  // Unset ready and serving mean true; unset terminating means false.
  EXPECT_TRUE(eps[0].ready && eps[0].serving && !eps[0].terminating && eps[0].isLocal);
  EXPECT_TRUE(!eps[1].ready && eps[1].serving && eps[1].terminating && !eps[1].isLocal);
  EXPECT_TRUE(eps[2].ready && eps[2].serving && !eps[2].terminating && !eps[2].isLocal);
}

TEST(EndpointsForPort, SkipsFqdnSlicesAndPortlessPorts) {
  auto fqdn = std::make_shared<EndpointSlice>();
  fqdn->name = {"default", "web-fqdn"};
  fqdn->addressType = AddressType::kFQDN;
  fqdn->endpoints.push_back({});  // FQDN endpoints carry no IP
  fqdn->ports = {{"", Protocol::kTCP, 80, ""}};
  std::vector<std::shared_ptr<const EndpointSlice>> slices = {
      fqdn, slice("web-1", AddressType::kIPv4, {ep("10.0.0.1")}, {{"", Protocol::kTCP, {}, ""}})};
  EXPECT_TRUE(endpointsForPort(slices, "", Protocol::kTCP, "n").empty());
}

TEST(EndpointsForPort, UsesFirstAddressAndDeduplicatesAcrossSlicesPreferringLocal) {
  EndpointSliceEndpoint twoAddrs = ep("10.0.0.5");
  twoAddrs.addresses.push_back(*IpAddress::parse("10.0.0.6"));
  std::vector<std::shared_ptr<const EndpointSlice>> slices = {
      slice("web-b", AddressType::kIPv4, {ep("10.0.0.1", true, true, false, "node-a"), twoAddrs},
            {{"", Protocol::kTCP, 80, ""}}),
      slice("web-a", AddressType::kIPv4, {ep("10.0.0.1", false, false, false, "node-x")},
            {{"", Protocol::kTCP, 80, ""}})};
  auto eps = endpointsForPort(slices, "", Protocol::kTCP, "node-a");
  EXPECT_EQ(names(eps), (std::vector<std::string>{"10.0.0.1:80", "10.0.0.5:80"}));
  // web-a sorts first, but the copy in web-b is local and wins.
  EXPECT_TRUE(eps[0].isLocal);
  EXPECT_TRUE(eps[0].ready);
}

TEST(EndpointsForPort, DuplicateOrderIndependentOfSliceOrder) {
  auto a =
      slice("web-a", AddressType::kIPv4, {ep("10.0.0.1", true)}, {{"", Protocol::kTCP, 80, ""}});
  auto b =
      slice("web-b", AddressType::kIPv4, {ep("10.0.0.1", false)}, {{"", Protocol::kTCP, 80, ""}});
  std::vector<std::shared_ptr<const EndpointSlice>> ab = {a, b}, ba = {b, a};
  EXPECT_EQ(endpointsForPort(ab, "", Protocol::kTCP, "n"),
            endpointsForPort(ba, "", Protocol::kTCP, "n"));
  EXPECT_TRUE(endpointsForPort(ba, "", Protocol::kTCP, "n")[0].ready);  // web-a first
}

TEST(EndpointsForPort, DualStackSlicesBothKeptSortedByFamily) {
  std::vector<std::shared_ptr<const EndpointSlice>> slices = {
      slice("web-v6", AddressType::kIPv6, {ep("fd00::1")}, {{"", Protocol::kTCP, 80, ""}}),
      slice("web-v4", AddressType::kIPv4, {ep("10.0.0.1")}, {{"", Protocol::kTCP, 80, ""}})};
  EXPECT_EQ(names(endpointsForPort(slices, "", Protocol::kTCP, "n")),
            (std::vector<std::string>{"10.0.0.1:80", "[fd00::1]:80"}));
}

}  // namespace
}  // namespace capstan
