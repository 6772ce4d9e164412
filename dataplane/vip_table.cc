#include "dataplane/vip_table.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <map>
#include <tuple>

#include "dataplane/bytes.h"
#include "model/hash.h"

namespace capstan::dataplane {

namespace {

// Every table built in this process gets the next number (see VipTable::generation()).
std::atomic<uint64_t> nextGeneration{1};

// The lookup key of a VIP: destination fields only, the rest zero.
FlowKey vipKey(IpFamily family, const std::array<uint8_t, 16>& address, uint8_t protocol,
               uint16_t port) {
  FlowKey k;
  k.family = family;
  k.dst = address;
  k.protocol = protocol;
  k.dstPort = port;
  return k;
}

Backend toBackend(const Endpoint& ep) { return Backend{ep.ip.bytes(), ep.port}; }

// The endpoints of `port` in `family` for new flows under `local` policy, with their Maglev table.
std::shared_ptr<const BackendSet> makeBackendSet(const ServicePort& port, IpFamily family,
                                                 bool local, const VipTableConfig& config,
                                                 std::vector<std::string>& problems) {
  auto set = std::make_shared<BackendSet>();
  const EndpointSelection& sel = port.selectionFor(family);
  set->hasAnyEndpoints = sel.hasAnyEndpoints;
  for (const Endpoint& ep : port.endpoints) {
    if (ep.ip.family() == family) set->present.push_back(toBackend(ep));
  }
  std::sort(set->present.begin(), set->present.end());

  const std::vector<uint32_t>& chosen = local ? sel.local : sel.cluster;
  std::map<std::string, Backend> byName;
  std::vector<MaglevBackend> maglevInput;
  for (uint32_t i : chosen) {
    const Endpoint& ep = port.endpoints[i];
    std::string name = ep.toString();
    byName.emplace(name, toBackend(ep));
    maglevInput.push_back({std::move(name), 1});
  }
  Result<MaglevTable> table = MaglevTable::build(std::move(maglevInput), config.maglevSize);
  if (!table.ok()) {
    problems.push_back("service port " + port.name.toString() + " (" +
                       std::string(capstan::toString(family)) +
                       "): no backends: " + table.error().message());
    return set;
  }
  set->maglev = std::move(table).value();
  for (const MaglevBackend& b : set->maglev.backends()) set->backends.push_back(byName[b.name]);
  return set;
}

}  // namespace

std::string_view toString(VipKind kind) {
  switch (kind) {
    case VipKind::kClusterIP:
      return "ClusterIP";
    case VipKind::kExternalIP:
      return "ExternalIP";
    case VipKind::kLoadBalancerIP:
      return "LoadBalancerIP";
    case VipKind::kNodePort:
      return "NodePort";
  }
  return "unknown";
}

std::string Vip::toString() const {
  const IpAddress ip =
      family == IpFamily::kV4 ? IpAddress::v4(load32be(address.data())) : IpAddress::v6(address);
  std::string proto = protocol == kIpProtoTcp   ? "TCP"
                      : protocol == kIpProtoUdp ? "UDP"
                                                : std::to_string(protocol);
  return joinHostPort(ip, port) + "/" + proto;
}

VipTable::BuildResult VipTable::build(const ProxyState& state, const VipTableConfig& config) {
  BuildResult result;
  std::shared_ptr<VipTable> table(new VipTable());
  table->generation_ = nextGeneration.fetch_add(1, std::memory_order_relaxed);
  table->stateGeneration_ = state.generation();

  // The VIPs in ProxyState order (sorted by service port name): when two ports claim one VIP, the
  // first keeps it, the same on every node.
  std::map<std::tuple<IpFamily, std::array<uint8_t, 16>, uint8_t, uint16_t>, size_t> seen;
  for (const auto& portPtr : state.servicePorts()) {
    const ServicePort& port = *portPtr;
    const Service& svc = *port.service;
    if (!svc.isProxied()) continue;
    // SCTP needs CRC32c over the whole packet after NAT: not served by this dataplane yet.
    if (port.name.protocol != Protocol::kTCP && port.name.protocol != Protocol::kUDP) continue;
    const uint8_t protocol = ipProtocol(port.name.protocol);

    for (IpFamily family : {IpFamily::kV4, IpFamily::kV6}) {
      // kube-proxy: external traffic follows externalTrafficPolicy, ClusterIP traffic
      // internalTrafficPolicy; each reaches the Cluster ([0]) or the Local ([1]) endpoints. VIPs
      // that reach the same ones share one set.
      std::array<std::shared_ptr<const BackendSet>, 2> sets;
      auto backendsFor = [&](bool externalTraffic) {
        const bool local = externalTraffic ? svc.externalPolicyLocal() : svc.internalPolicyLocal();
        if (!sets[local])
          sets[local] = makeBackendSet(port, family, local, config, result.problems);
        return sets[local];
      };
      auto addVip = [&](const IpAddress& address, uint16_t vipPort, VipKind kind) {
        if (address.family() != family || vipPort == 0) return;
        Vip vip;
        vip.address = address.bytes();
        vip.family = family;
        vip.protocol = protocol;
        vip.port = vipPort;
        vip.kind = kind;
        vip.clientIPAffinity = svc.sessionAffinity == SessionAffinity::kClientIP;
        vip.servicePort = port.name;
        if (kind == VipKind::kLoadBalancerIP) {
          for (const Cidr& c : svc.loadBalancerSourceRanges) {
            if (c.family() == family) vip.sourceRanges.push_back(c);
          }
        }
        vip.backends = backendsFor(kind != VipKind::kClusterIP);
        const auto [it, inserted] = seen.emplace(
            std::make_tuple(family, vip.address, protocol, vipPort), table->vips_.size());
        if (!inserted) {
          result.problems.push_back(std::string(toString(kind)) + " " + vip.toString() + " of " +
                                    port.name.toString() + " is already served by " +
                                    table->vips_[it->second].servicePort.toString());
          return;
        }
        table->vips_.push_back(std::move(vip));
      };

      if (config.serveClusterIPs) {
        if (const IpAddress* cip = svc.clusterIP(family)) {
          addVip(*cip, port.spec.port, VipKind::kClusterIP);
        }
      }
      for (const IpAddress& a : svc.externalIPs) addVip(a, port.spec.port, VipKind::kExternalIP);
      for (const IpAddress& a : svc.loadBalancerIPs) {
        addVip(a, port.spec.port, VipKind::kLoadBalancerIP);
      }
      if (port.spec.nodePort != 0) {
        for (const IpAddress& a : config.nodePortAddresses) {
          addVip(a, port.spec.nodePort, VipKind::kNodePort);
        }
      }
    }
  }

  // Open addressing, at most half full.
  const uint64_t capacity = std::bit_ceil(std::max<uint64_t>(16, 2 * table->vips_.size()));
  table->index_.assign(capacity, kNoVip);
  table->mask_ = capacity - 1;
  table->seed_ = mixHash64(table->generation_);
  for (uint32_t i = 0; i < table->vips_.size(); ++i) {
    const Vip& v = table->vips_[i];
    uint64_t slot =
        flowTableHash(vipKey(v.family, v.address, v.protocol, v.port), table->seed_) & table->mask_;
    while (table->index_[slot] != kNoVip) slot = (slot + 1) & table->mask_;
    table->index_[slot] = i;
  }
  result.table = std::move(table);
  return result;
}

uint32_t VipTable::find(const FlowKey& key) const {
  const FlowKey probe = vipKey(key.family, key.dst, key.protocol, key.dstPort);
  // The table is never full, so an empty slot ends every probe sequence.
  for (uint64_t slot = flowTableHash(probe, seed_) & mask_;; slot = (slot + 1) & mask_) {
    const uint32_t i = index_[slot];
    if (i == kNoVip) return kNoVip;
    const Vip& v = vips_[i];
    if (v.port == key.dstPort && v.protocol == key.protocol && v.family == key.family &&
        v.address == key.dst) {
      return i;
    }
  }
}

const Backend* VipTable::chooseBackend(const Vip& vip, const FlowKey& key) {
  const BackendSet& set = *vip.backends;
  const uint64_t hash = vip.clientIPAffinity ? maglevClientHash(key) : maglevFlowHash(key);
  const uint32_t i = set.maglev.lookup(hash);
  if (i == MaglevTable::kNoBackend) return nullptr;
  return &set.backends[i];
}

bool VipTable::sourceAllowed(const Vip& vip, const FlowKey& key) {
  if (vip.sourceRanges.empty()) return true;
  const IpAddress source = key.srcAddress();
  return std::any_of(vip.sourceRanges.begin(), vip.sourceRanges.end(),
                     [&](const Cidr& c) { return c.contains(source); });
}

bool VipTable::backendPresent(const Vip& vip, const Backend& backend) {
  const std::vector<Backend>& present = vip.backends->present;
  return std::binary_search(present.begin(), present.end(), backend);
}

}  // namespace capstan::dataplane
