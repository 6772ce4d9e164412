#include "model/service.h"

namespace capstan {

std::string_view toString(Protocol protocol) {
  switch (protocol) {
    case Protocol::kTCP:
      return "TCP";
    case Protocol::kUDP:
      return "UDP";
    case Protocol::kSCTP:
      return "SCTP";
  }
  return "?";
}

std::optional<Protocol> parseProtocol(std::string_view text) {
  if (text == "TCP") return Protocol::kTCP;
  if (text == "UDP") return Protocol::kUDP;
  if (text == "SCTP") return Protocol::kSCTP;
  return std::nullopt;
}

std::string ServicePortName::toString() const {
  std::string out = service.toString();
  if (!port.empty()) out.append(":").append(port);
  return out;
}

std::string_view toString(ServiceType type) {
  switch (type) {
    case ServiceType::kClusterIP:
      return "ClusterIP";
    case ServiceType::kNodePort:
      return "NodePort";
    case ServiceType::kLoadBalancer:
      return "LoadBalancer";
    case ServiceType::kExternalName:
      return "ExternalName";
  }
  return "?";
}

std::string_view toString(TrafficPolicy policy) {
  return policy == TrafficPolicy::kLocal ? "Local" : "Cluster";
}

std::string_view toString(SessionAffinity affinity) {
  return affinity == SessionAffinity::kClientIP ? "ClientIP" : "None";
}

std::string_view toString(TrafficDistribution distribution) {
  switch (distribution) {
    case TrafficDistribution::kUnset:
      return "";
    case TrafficDistribution::kPreferClose:
      return "PreferClose";
    case TrafficDistribution::kPreferSameZone:
      return "PreferSameZone";
    case TrafficDistribution::kPreferSameNode:
      return "PreferSameNode";
  }
  return "?";
}

const IpAddress* Service::clusterIP(IpFamily family) const {
  for (const auto& ip : clusterIPs) {
    if (ip.family() == family) return &ip;
  }
  return nullptr;
}

}  // namespace capstan
