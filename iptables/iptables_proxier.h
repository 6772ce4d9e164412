// IptablesProxier: --proxy-mode=iptables. Programs the node's netfilter as kube-proxy's
// iptables mode does, through one iptables-restore call per family and sync.
//
// Full syncs (the first, the periodic one, after a failure, after a canary check finds the
// tables flushed, after a setting changed) rewrite everything and delete stale chains. Partial
// syncs rewrite the chains of the changed service ports only, and delete and insert only their
// rules in the top-level chains (see rules.h). A failed restore changes nothing in the kernel
// (iptables-restore applies each table atomically), nothing in what this class believes is
// applied, and makes the next sync a full one.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "iptables/iptables_runner.h"
#include "iptables/rules.h"
#include "model/proxier.h"

namespace capstan::iptables {

struct IptablesConfig {
  std::vector<Cidr> clusterCIDRs;  // --cluster-cidr, one per family at most
  bool masqueradeAll = false;      // --masquerade-all
  // --nodeport-addresses: CIDRs, or "primary" (the node's addresses from its Node object);
  // empty serves NodePorts on every local address.
  std::vector<std::string> nodePortAddresses;
  bool localhostNodePorts = true;  // --iptables-localhost-nodeports
};

class IptablesProxier : public Proxier {
 public:
  IptablesProxier(IptablesConfig config, std::unique_ptr<IptablesRunner> runner);

  std::string_view name() const override { return "iptables"; }
  SyncResult sync(const ProxyState& state, const ChangeSet& changes) override;
  Result<std::string> render(const ProxyState& state) const override;
  Status cleanup() override;

  // The families this node programs (IPv4, and IPv6 where the kernel and tools have it).
  std::vector<IpFamily> families() const;

 private:
  struct FamilyState {
    IpFamily family;
    bool available = false;
    bool needFull = true;
    std::optional<RuleOptions> options;  // those of the last successful full sync
    bool largeCluster = false;
    AppliedRules applied;
  };

  RuleOptions optionsFor(IpFamily family, const ProxyState& state) const;
  Status syncFull(FamilyState& fs, const ProxyState& state, const RuleOptions& options,
                  SyncStats& stats);
  Status syncPartial(FamilyState& fs, const ProxyState& state, const RuleOptions& options,
                     const ChangeSet& changes, SyncStats& stats);

  IptablesConfig config_;
  std::unique_ptr<IptablesRunner> runner_;
  std::array<FamilyState, 2> families_;
  bool conntrackTcpLiberal_ = false;
  bool routeLocalnetSet_ = false;
};

}  // namespace capstan::iptables
