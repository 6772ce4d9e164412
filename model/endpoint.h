// Endpoints: the discovery.k8s.io/v1 EndpointSlice as decoded, and the per-service-port endpoint
// list kube-proxy derives from a Service's slices.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/ip.h"
#include "model/service.h"

namespace capstan {

enum class AddressType : uint8_t { kIPv4, kIPv6, kFQDN };

struct EndpointConditions {
  // Unset means "unknown", which the API defines as ready (and serving, for `serving`).
  std::optional<bool> ready;
  std::optional<bool> serving;
  std::optional<bool> terminating;

  bool operator==(const EndpointConditions&) const = default;
};

struct EndpointSliceEndpoint {
  std::vector<IpAddress> addresses;  // empty for FQDN slices, which proxies ignore
  EndpointConditions conditions;
  std::string hostname;
  std::string nodeName;
  std::string zone;
  std::vector<std::string> zoneHints;  // hints.forZones[].name
  std::vector<std::string> nodeHints;  // hints.forNodes[].name

  bool operator==(const EndpointSliceEndpoint&) const = default;
};

struct EndpointSlicePort {
  std::string name;
  Protocol protocol = Protocol::kTCP;
  std::optional<uint16_t> port;  // unset: "all ports", which a proxy cannot use
  std::string appProtocol;

  bool operator==(const EndpointSlicePort&) const = default;
};

struct EndpointSlice {
  NamespacedName name;
  std::string serviceName;  // label kubernetes.io/service-name
  AddressType addressType = AddressType::kIPv4;
  std::vector<EndpointSliceEndpoint> endpoints;
  std::vector<EndpointSlicePort> ports;
  // Annotation endpoints.kubernetes.io/last-change-trigger-time, as Unix nanoseconds; 0 if unset.
  // Not part of the slice's identity for change detection: see sameEndpoints().
  int64_t lastChangeTriggerTimeNs = 0;

  NamespacedName serviceKey() const { return {name.ns, serviceName}; }
  bool operator==(const EndpointSlice&) const = default;
};

// One endpoint of one service port, with kube-proxy's view of its conditions.
struct Endpoint {
  IpAddress ip;
  uint16_t port = 0;
  bool ready = false;
  bool serving = false;
  bool terminating = false;
  bool isLocal = false;  // on this node (nodeName == the node's name)
  std::string nodeName;
  std::string zone;
  std::vector<std::string> zoneHints;
  std::vector<std::string> nodeHints;

  // "10.0.0.1:8080" / "[fd00::1]:8080": the endpoint's identity, as kube-proxy names it.
  std::string toString() const { return joinHostPort(ip, port); }
  bool operator==(const Endpoint&) const = default;
};

// The endpoints of the service port named `portName`/`protocol`, gathered from one Service's
// EndpointSlices the way kube-proxy's EndpointSliceCache does:
// - slices of addressType FQDN are ignored; an endpoint's first address is the one used;
// - a slice port matches by name and protocol, and must have a port number;
// - ready defaults to true, serving to true, terminating to false when unset;
// - an endpoint listed twice (in overlapping slices) appears once; a local copy wins;
// - `nodeName` marks endpoints on this node as local.
// The result is sorted by (family, address, port) so every caller sees one order. Slices are
// visited in name order, which makes the choice between conflicting duplicates deterministic.
std::vector<Endpoint> endpointsForPort(std::span<const std::shared_ptr<const EndpointSlice>> slices,
                                       std::string_view portName, Protocol protocol,
                                       std::string_view nodeName);

}  // namespace capstan
