// kube-proxy's iptables chain names. They are derived from the service port (and endpoint) by
// a stable hash, so a restarted proxy, or kube-proxy itself, finds the same chains:
//   KUBE-SVC-<hash>  the service port's endpoints for Cluster traffic policy
//   KUBE-SVL-<hash>  ... for Local traffic policy
//   KUBE-EXT-<hash>  external traffic (NodePort, LoadBalancer, external IPs)
//   KUBE-FW-<hash>   loadBalancerSourceRanges firewall
//   KUBE-SEP-<hash>  one endpoint (DNAT)
// where <hash> is the first 16 characters of base32(sha256(name + protocol [+ endpoint])), as
// kube-proxy's portProtoHash and servicePortEndpointChainName compute it.
#pragma once

#include <string>
#include <string_view>

#include "model/endpoint.h"
#include "model/service.h"

namespace capstan::iptables {

// The 16-character hash of a service port ("ns/name:port" and "tcp").
std::string portProtoHash(const ServicePortName& port);

std::string clusterPolicyChain(const ServicePortName& port);                       // KUBE-SVC-
std::string localPolicyChain(const ServicePortName& port);                         // KUBE-SVL-
std::string externalChain(const ServicePortName& port);                            // KUBE-EXT-
std::string firewallChain(const ServicePortName& port);                            // KUBE-FW-
std::string endpointChain(const ServicePortName& port, const Endpoint& endpoint);  // KUBE-SEP-

// Whether `chain` is a per-service chain of the kind above (a stale one may be deleted).
bool isServiceChain(std::string_view chain);

// Lower-case protocol as kube-proxy hashes and matches it: "tcp", "udp", "sctp".
std::string_view lowerProtocol(Protocol protocol);

}  // namespace capstan::iptables
