#include "iptables/iptables_proxier.h"

#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "iptables/chain_names.h"

namespace capstan::iptables {

namespace {

Table tableOf(const char* name) {
  std::string_view n = name;
  if (n == "nat") return Table::kNat;
  if (n == "mangle") return Table::kMangle;
  return Table::kFilter;
}

// Chain names declared in iptables-save output.
std::set<std::string> chainsIn(const std::string& save) {
  std::set<std::string> out;
  std::istringstream in(save);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > 1 && line[0] == ':') out.insert(line.substr(1, line.find(' ') - 1));
  }
  return out;
}

}  // namespace

IptablesProxier::IptablesProxier(IptablesConfig config, std::unique_ptr<IptablesRunner> runner)
    : config_(std::move(config)), runner_(std::move(runner)) {
  families_[0].family = IpFamily::kV4;
  families_[1].family = IpFamily::kV6;
  for (FamilyState& fs : families_) fs.available = runner_->available(fs.family);
  // kube-proxy drops INVALID packets in KUBE-FORWARD unless conntrack is liberal already.
  auto liberal = runner_->readSysctl("net/netfilter/nf_conntrack_tcp_be_liberal");
  conntrackTcpLiberal_ = liberal.ok() && liberal->starts_with("1");
}

std::vector<IpFamily> IptablesProxier::families() const {
  std::vector<IpFamily> out;
  for (const FamilyState& fs : families_) {
    if (fs.available) out.push_back(fs.family);
  }
  return out;
}

RuleOptions IptablesProxier::optionsFor(IpFamily family, const ProxyState& state) const {
  RuleOptions o;
  o.family = family;
  for (const Cidr& cidr : config_.clusterCIDRs) {
    if (cidr.family() == family) {
      o.clusterCIDR = cidr;
      break;
    }
  }
  o.masqueradeAll = config_.masqueradeAll;
  o.localhostNodePorts = config_.localhostNodePorts;
  o.conntrackTcpLiberal = conntrackTcpLiberal_;

  std::vector<IpAddress> nodeAddresses;
  for (const IpAddress& ip : state.node().addresses) {
    if (ip.family() == family) nodeAddresses.push_back(ip);
  }
  std::optional<std::vector<IpAddress>> local;
  auto localAddresses = [&]() -> const std::vector<IpAddress>& {
    if (!local) local = runner_->localAddresses(family);
    return *local;
  };
  if (!nodeAddresses.empty()) {
    o.nodeIP = nodeAddresses.front();
  } else {
    for (const IpAddress& ip : localAddresses()) {
      if (!ip.isLoopback()) {
        o.nodeIP = ip;
        break;
      }
    }
  }
  if (!config_.nodePortAddresses.empty()) {
    std::vector<IpAddress> selected;
    bool all = false;
    bool familyMentioned = false;
    for (const std::string& entry : config_.nodePortAddresses) {
      if (entry == "primary") {
        familyMentioned = true;
        selected.insert(selected.end(), nodeAddresses.begin(), nodeAddresses.end());
        continue;
      }
      auto cidr = Cidr::parse(entry);
      if (!cidr || cidr->family() != family) continue;
      familyMentioned = true;
      if (cidr->prefixLength() == 0) all = true;
      for (const IpAddress& ip : localAddresses()) {
        if (cidr->contains(ip)) selected.push_back(ip);
      }
    }
    // kube-proxy: a family the flag says nothing about gets NodePorts on every address, and
    // 0.0.0.0/0 (or ::/0) means every address too.
    if (familyMentioned && !all) {
      std::sort(selected.begin(), selected.end());
      selected.erase(std::unique(selected.begin(), selected.end()), selected.end());
      o.nodePortAddresses = std::move(selected);
    }
  }
  return o;
}

SyncResult IptablesProxier::sync(const ProxyState& state, const ChangeSet& changes) {
  SyncStats stats;
  for (FamilyState& fs : families_) {
    if (!fs.available) continue;
    RuleOptions options = optionsFor(fs.family, state);
    if (fs.family == IpFamily::kV4 && options.localhostNodePorts && !routeLocalnetSet_) {
      // Localhost NodePorts need the kernel to route 127/8 packets to non-local destinations;
      // the KUBE-FIREWALL rule closes what that opens.
      if (Status st = runner_->writeSysctl("net/ipv4/conf/all/route_localnet", "1"); !st.ok()) {
        spdlog::warn(
            "iptables: cannot enable route_localnet, NodePorts on 127.0.0.1 will not "
            "work: {}",
            st.error().message());
      }
      routeLocalnetSet_ = true;
    }
    bool full = changes.full || fs.needFull || !fs.options || *fs.options != options ||
                isLargeCluster(state, options) != fs.largeCluster;
    if (!full && !runner_->chainHasRules(fs.family, Table::kMangle, kCanaryChain)) {
      spdlog::warn("iptables: the {} tables were flushed by someone else; syncing everything",
                   capstan::toString(fs.family));
      full = true;
    }
    Status st = full ? syncFull(fs, state, options, stats)
                     : syncPartial(fs, state, options, changes, stats);
    if (!st.ok()) {
      fs.needFull = true;
      return st.error().withContext(std::string(capstan::toString(fs.family)));
    }
    stats.full |= full;
  }
  return stats;
}

Status IptablesProxier::syncFull(FamilyState& fs, const ProxyState& state,
                                 const RuleOptions& options, SyncStats& stats) {
  // Service chains nothing uses any more are deleted. What this process wrote is known; what a
  // previous process (or kube-proxy) left is found in the kernel, once, on the first full sync
  // and after a failure.
  std::set<std::string> candidates;
  if (fs.needFull) {
    auto save = runner_->save(fs.family, Table::kNat);
    if (save.ok()) {
      candidates = serviceChainsIn(*save);
    } else {
      spdlog::warn("iptables: iptables-save failed, stale chains stay for now: {}",
                   save.error().message());
    }
  }
  for (const auto& [name, port] : fs.applied)
    candidates.insert(port.natChains.begin(), port.natChains.end());

  AppliedRules applied;
  Payload payload = fullPayload(state, options, candidates, applied);
  for (const std::string& part :
       splitRestorePayload(payload.text, runner_->maxChainsPerRestore(fs.family))) {
    if (Status st = runner_->restore(fs.family, part); !st.ok()) return st;
  }
  // The jumps from the built-in chains, now that the chains they point to exist.
  for (const JumpRule& jump : jumpRules(options)) {
    if (Status st = runner_->ensureRule(fs.family, tableOf(jump.table), jump.from, jump.args);
        !st.ok()) {
      return st;
    }
  }
  stats.servicePorts += applied.size();
  stats.rulesWritten += payload.rules;
  stats.bytesWritten += payload.text.size();
  fs.applied = std::move(applied);
  fs.options = options;
  fs.largeCluster = isLargeCluster(state, options);
  fs.needFull = false;
  // The payload, the iptables-save text and the chain sets of a large full sync leave tens of
  // megabytes of freed small blocks in the heap: hand them back to the kernel.
  payload = Payload{};
  candidates.clear();
  malloc_trim(0);
  return okStatus();
}

Status IptablesProxier::syncPartial(FamilyState& fs, const ProxyState& state,
                                    const RuleOptions& options, const ChangeSet& changes,
                                    SyncStats& stats) {
  std::vector<ServicePortName> names = changes.changed;
  names.insert(names.end(), changes.removed.begin(), changes.removed.end());
  AppliedUpdates updates;
  Payload payload = partialPayload(state, options, names, fs.applied, updates);
  if (payload.text.empty()) return okStatus();
  if (Status st = runner_->restore(fs.family, payload.text); !st.ok()) return st;
  stats.servicePorts += updates.size();
  stats.rulesWritten += payload.rules;
  stats.bytesWritten += payload.text.size();
  applyUpdates(fs.applied, std::move(updates));
  return okStatus();
}

Result<std::string> IptablesProxier::render(const ProxyState& state) const {
  std::string out;
  for (const FamilyState& fs : families_) {
    if (!fs.available) continue;
    AppliedRules applied;
    Payload payload = fullPayload(state, optionsFor(fs.family, state), {}, applied);
    out += std::string("# ") + (fs.family == IpFamily::kV4 ? "iptables" : "ip6tables") +
           "-restore --noflush input: " + std::to_string(payload.rules) + " rules for " +
           std::to_string(applied.size()) + " service ports\n";
    out += payload.text;
  }
  if (out.empty()) return Error("iptables: neither iptables-restore nor ip6tables-restore found");
  return out;
}

Status IptablesProxier::cleanup() {
  std::string errors;
  for (FamilyState& fs : families_) {
    if (!fs.available) continue;
    RuleOptions options;
    options.family = fs.family;
    options.localhostNodePorts = true;  // so the KUBE-FIREWALL jumps are removed too
    for (const JumpRule& jump : jumpRules(options)) {
      if (Status st = runner_->deleteRule(fs.family, tableOf(jump.table), jump.from, jump.args);
          !st.ok()) {
        errors += st.error().message() + "; ";
      }
    }
    static const std::set<std::string> kNatChains = {
        kServicesChain, kNodePortsChain, kPostroutingChain, kMarkMasqChain, kCanaryChain};
    static const std::set<std::string> kFilterChains = {
        kServicesChain,      kExternalServicesChain, kForwardChain, kNodePortsChain,
        kProxyFirewallChain, kCanaryChain,           kFirewallChain};
    std::vector<std::string> nat, filter, mangle;
    auto natSave = runner_->save(fs.family, Table::kNat);
    auto filterSave = runner_->save(fs.family, Table::kFilter);
    auto mangleSave = runner_->save(fs.family, Table::kMangle);
    if (mangleSave.ok() && chainsIn(*mangleSave).count(kCanaryChain)) {
      mangle.push_back(kCanaryChain);
    }
    if (!natSave.ok() || !filterSave.ok()) {
      errors += "iptables-save failed; ";
      continue;
    }
    for (const std::string& chain : chainsIn(*natSave)) {
      if (kNatChains.count(chain) || isServiceChain(chain)) {
        nat.push_back(chain);
      }
    }
    for (const std::string& chain : chainsIn(*filterSave)) {
      if (kFilterChains.count(chain)) filter.push_back(chain);
    }
    std::string payload = cleanupPayload(nat, filter, mangle);
    if (payload.empty()) continue;
    if (Status st = runner_->restore(fs.family, payload); !st.ok()) {
      errors += st.error().message() + "; ";
    }
    fs.applied.clear();
    fs.needFull = true;
  }
  if (!errors.empty()) return Error("iptables cleanup: " + errors.substr(0, errors.size() - 2));
  return okStatus();
}

}  // namespace capstan::iptables
