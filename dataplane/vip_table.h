// VipTable: the services the packet core serves, looked up by (VIP address, IP protocol, port),
// each with the endpoints new flows may go to (a Maglev table over them) and the endpoints
// established flows may keep.
//
// The control thread builds one from each ProxyState (VipTable::build) and publishes it to the
// lcores as an immutable snapshot (RCU in the DPDK shell); PacketCore reads it on every packet
// without locks. Which VIPs exist follows kube-proxy: LoadBalancer ingress IPs, external IPs,
// NodePorts on the node's dataplane addresses, and ClusterIPs when asked to serve them.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/flow_key.h"
#include "model/maglev.h"
#include "model/proxy_state.h"

namespace capstan::dataplane {

struct VipTableConfig {
  // The node's dataplane addresses: NodePorts are served on each (kube-proxy's
  // --nodeport-addresses, restricted to the addresses the dataplane owns).
  std::vector<IpAddress> nodePortAddresses;
  // Serve ClusterIPs too (--dpdk-serve-cluster-ips): when the dataplane sits on the path of
  // in-cluster traffic.
  bool serveClusterIPs = false;
  // Maglev table size per endpoint set: prime, larger than the endpoint count (model/maglev.h).
  uint32_t maglevSize = MaglevTable::kDefaultSize;
};

enum class VipKind : uint8_t { kClusterIP, kExternalIP, kLoadBalancerIP, kNodePort };

std::string_view toString(VipKind kind);

// One endpoint as the NAT needs it: address bytes (IpAddress::bytes() layout) and port.
struct Backend {
  std::array<uint8_t, 16> address{};
  uint16_t port = 0;

  auto operator<=>(const Backend&) const = default;
  bool operator==(const Backend&) const = default;
};

// The endpoints one kind of traffic (Cluster or Local policy) to one service port reaches, in one
// IP family. Shared by the VIPs of the port that use the same policy.
struct BackendSet {
  // Endpoints for new flows, in the order of maglev.backends() (sorted by "ip:port").
  std::vector<Backend> backends;
  MaglevTable maglev;
  // Every endpoint of the port in this family whatever its conditions, sorted: a flow established
  // to one of these keeps it (terminating endpoints keep their flows and get no new ones).
  std::vector<Backend> present;
  // kube-proxy's distinction: no usable endpoint anywhere ("reject"), or endpoints but none for
  // this policy (Local without a local endpoint: "drop"). Both drop here for now.
  bool hasAnyEndpoints = false;
};

struct Vip {
  std::array<uint8_t, 16> address{};
  IpFamily family = IpFamily::kV4;
  uint8_t protocol = 0;  // IP protocol number
  uint16_t port = 0;
  VipKind kind = VipKind::kClusterIP;
  bool clientIPAffinity = false;  // sessionAffinity: ClientIP
  ServicePortName servicePort;
  // loadBalancerSourceRanges of this family (LoadBalancer IPs only); empty allows every source.
  std::vector<Cidr> sourceRanges;
  std::shared_ptr<const BackendSet> backends;

  // "203.0.113.10:80/TCP", for logs and metric labels.
  std::string toString() const;
};

class VipTable {
 public:
  static constexpr uint32_t kNoVip = UINT32_MAX;

  struct BuildResult {
    std::shared_ptr<const VipTable> table;
    // Inputs that could not be served as asked, one message each (a VIP claimed by two service
    // ports, an endpoint set too large for the Maglev size). Everything else is in the table.
    std::vector<std::string> problems;
  };
  static BuildResult build(const ProxyState& state, const VipTableConfig& config);

  // The VIP a packet's destination (address, protocol, port) names, or kNoVip. No allocation.
  uint32_t find(const FlowKey& key) const;

  const Vip& vip(uint32_t index) const { return vips_[index]; }
  const std::vector<Vip>& vips() const { return vips_; }
  size_t size() const { return vips_.size(); }

  // Unique per built table in this process: flows remember the generation they were checked
  // against and re-check their endpoint when it changes.
  uint64_t generation() const { return generation_; }
  uint64_t stateGeneration() const { return stateGeneration_; }

  // The endpoint for a new flow `key` (as received, client to VIP): Maglev on the 5-tuple, or on
  // the client address under ClientIP affinity. Null when there is none for this traffic.
  static const Backend* chooseBackend(const Vip& vip, const FlowKey& key);
  // Whether `key`'s source may reach `vip` (loadBalancerSourceRanges).
  static bool sourceAllowed(const Vip& vip, const FlowKey& key);
  // Whether an established flow may stay on `backend` (it is still an endpoint of the port).
  static bool backendPresent(const Vip& vip, const Backend& backend);

 private:
  VipTable() = default;

  std::vector<Vip> vips_;
  // Open addressing over vips_ (linear probing, a power-of-two size at most half full).
  std::vector<uint32_t> index_;
  uint64_t mask_ = 0;
  uint64_t seed_ = 0;
  uint64_t generation_ = 0;
  uint64_t stateGeneration_ = 0;
};

}  // namespace capstan::dataplane
