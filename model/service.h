// The v1 Service, as Capstan needs it: every field that changes what a proxy programs.
//
// Field meanings are the Kubernetes API's (core/v1 ServiceSpec); the decoder in control/ fills
// these from manifests and the API, and validates them, so code above may rely on the invariants
// documented here.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "model/ip.h"

namespace capstan {

enum class Protocol : uint8_t { kTCP, kUDP, kSCTP };

std::string_view toString(Protocol protocol);  // "TCP", "UDP", "SCTP"
std::optional<Protocol> parseProtocol(std::string_view text);

// namespace/name of an object.
struct NamespacedName {
  std::string ns;
  std::string name;

  std::string toString() const { return ns + "/" + name; }
  auto operator<=>(const NamespacedName&) const = default;
  bool operator==(const NamespacedName&) const = default;
};

// The identity of one port of one Service: namespace/name:port-name plus the protocol. This is
// kube-proxy's ServicePortName; chain names and map keys derive from it.
struct ServicePortName {
  NamespacedName service;
  std::string port;  // the port's name; empty for a single unnamed port
  Protocol protocol = Protocol::kTCP;

  // "ns/name:port" (or "ns/name" for an unnamed port), as kube-proxy prints it.
  std::string toString() const;
  auto operator<=>(const ServicePortName&) const = default;
  bool operator==(const ServicePortName&) const = default;
};

enum class ServiceType : uint8_t { kClusterIP, kNodePort, kLoadBalancer, kExternalName };
enum class TrafficPolicy : uint8_t { kCluster, kLocal };
enum class SessionAffinity : uint8_t { kNone, kClientIP };
// spec.trafficDistribution. Capstan reads it for display; the routing effect reaches the proxy
// through EndpointSlice hints, exactly as with kube-proxy.
enum class TrafficDistribution : uint8_t { kUnset, kPreferClose, kPreferSameZone, kPreferSameNode };

std::string_view toString(ServiceType type);
std::string_view toString(TrafficPolicy policy);
std::string_view toString(SessionAffinity affinity);
std::string_view toString(TrafficDistribution distribution);

// targetPort: a port number, or the name of a container port.
using IntOrString = std::variant<int32_t, std::string>;

struct ServicePortSpec {
  std::string name;
  Protocol protocol = Protocol::kTCP;
  uint16_t port = 0;          // 1-65535
  IntOrString targetPort{0};  // defaults to `port`
  uint16_t nodePort = 0;      // 0 when none
  std::string appProtocol;

  bool operator==(const ServicePortSpec&) const = default;
};

// Default of spec.sessionAffinityConfig.clientIP.timeoutSeconds (3 hours).
inline constexpr uint32_t kDefaultAffinityTimeoutSeconds = 10800;

struct Service {
  NamespacedName name;
  ServiceType type = ServiceType::kClusterIP;
  // spec.clusterIPs (spec.clusterIP first). Empty when the Service has none allocated (a manifest
  // written without one) and for headless Services.
  std::vector<IpAddress> clusterIPs;
  bool headless = false;  // clusterIP: None
  std::string externalName;
  std::vector<ServicePortSpec> ports;
  std::vector<IpAddress> externalIPs;
  // status.loadBalancer.ingress[].ip, without the entries whose ipMode is Proxy (those are
  // reached through the load balancer, not at the node: kube-proxy does not program them).
  std::vector<IpAddress> loadBalancerIPs;
  std::vector<Cidr> loadBalancerSourceRanges;
  SessionAffinity sessionAffinity = SessionAffinity::kNone;
  uint32_t affinityTimeoutSeconds = kDefaultAffinityTimeoutSeconds;
  TrafficPolicy externalTrafficPolicy = TrafficPolicy::kCluster;
  TrafficPolicy internalTrafficPolicy = TrafficPolicy::kCluster;
  uint16_t healthCheckNodePort = 0;
  TrafficDistribution trafficDistribution = TrafficDistribution::kUnset;
  // The service.kubernetes.io/topology-mode annotation (or its older name
  // service.kubernetes.io/topology-aware-hints), kept for display.
  std::string topologyMode;

  // Whether kube-proxy programs this Service at all: not ExternalName, not headless, and with a
  // ClusterIP (kube-proxy's ShouldSkipService).
  bool isProxied() const {
    return type != ServiceType::kExternalName && !headless && !clusterIPs.empty();
  }
  // Reachable from outside the cluster network: a NodePort or LoadBalancer Service, or one with
  // external IPs (apiservice.ExternallyAccessible).
  bool externallyAccessible() const {
    return type == ServiceType::kNodePort || type == ServiceType::kLoadBalancer ||
           !externalIPs.empty();
  }
  // externalTrafficPolicy: Local only counts where external traffic exists at all.
  bool externalPolicyLocal() const {
    return externallyAccessible() && externalTrafficPolicy == TrafficPolicy::kLocal;
  }
  bool internalPolicyLocal() const { return internalTrafficPolicy == TrafficPolicy::kLocal; }

  const IpAddress* clusterIP(IpFamily family) const;

  bool operator==(const Service&) const = default;
};

}  // namespace capstan
