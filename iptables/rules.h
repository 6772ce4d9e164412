// The iptables ruleset of kube-proxy's iptables mode, generated from a ProxyState: pure
// functions, text in iptables-restore syntax, no I/O.
//
// The rules follow kube-proxy's (pkg/proxy/iptables/proxier.go, syncProxyRules) so that a node
// moved from kube-proxy to Capstan, or back, ends up with the same chains; see rules.cc for each
// rule's reason. What differs is how much is written on a partial sync: kube-proxy rewrites its
// top-level chains (one KUBE-SERVICES rule per service IP: ~10,000 lines in a 10,000-service
// cluster) on every sync; Capstan deletes and inserts only the top-level rules of the ports that
// changed, so a one-endpoint change writes the same few lines at any cluster size.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "model/proxy_state.h"

namespace capstan::iptables {

// Top-level chains.
inline constexpr char kServicesChain[] = "KUBE-SERVICES";
inline constexpr char kExternalServicesChain[] = "KUBE-EXTERNAL-SERVICES";
inline constexpr char kNodePortsChain[] = "KUBE-NODEPORTS";
inline constexpr char kPostroutingChain[] = "KUBE-POSTROUTING";
inline constexpr char kMarkMasqChain[] = "KUBE-MARK-MASQ";
inline constexpr char kForwardChain[] = "KUBE-FORWARD";
inline constexpr char kProxyFirewallChain[] = "KUBE-PROXY-FIREWALL";
inline constexpr char kFirewallChain[] = "KUBE-FIREWALL";    // blocks martian localnet traffic
inline constexpr char kCanaryChain[] = "KUBE-PROXY-CANARY";  // in mangle

// Settings of one IP family's ruleset.
struct RuleOptions {
  IpFamily family = IpFamily::kV4;
  // The pod CIDR of this family (--cluster-cidr): traffic from outside it to a ClusterIP is
  // masqueraded, pod traffic to external destinations short-circuits to the cluster chain.
  std::optional<Cidr> clusterCIDR;
  bool masqueradeAll = false;
  std::string masqueradeMark = "0x4000";  // bit 14, kube-proxy's default
  // NodePorts on 127.0.0.1 (kube-proxy's --iptables-localhost-nodeports; IPv4 only).
  bool localhostNodePorts = true;
  // Where NodePorts are served: every local address when unset (--nodeport-addresses empty),
  // else exactly these.
  std::optional<std::vector<IpAddress>> nodePortAddresses;
  // The node's own IP of this family: a loadBalancerSourceRanges entry covering it lets the
  // node reach its own LoadBalancer IPs.
  std::optional<IpAddress> nodeIP;
  // When the kernel is not in nf_conntrack_tcp_be_liberal mode, INVALID packets are dropped in
  // KUBE-FORWARD (kubernetes/kubernetes#74839).
  bool conntrackTcpLiberal = false;
  // MASQUERADE --random-fully (iptables >= 1.6.2), against SNAT port collisions.
  bool randomFully = true;
  // Beyond this many endpoints in the whole ruleset, per-endpoint comments are left out to keep
  // the restore input small, as kube-proxy does (largeClusterEndpointsThreshold).
  size_t largeClusterEndpoints = 1000;

  bool operator==(const RuleOptions&) const = default;
};

// What one service port contributes to the ruleset of one family.
struct PortRules {
  // Top-level rules, as rule bodies (what follows "-A <chain> ").
  std::vector<std::string> natServices;             // nat KUBE-SERVICES
  std::vector<std::string> natNodePorts;            // nat KUBE-NODEPORTS
  std::vector<std::string> filterServices;          // filter KUBE-SERVICES
  std::vector<std::string> filterExternalServices;  // filter KUBE-EXTERNAL-SERVICES
  std::vector<std::string> filterNodePorts;         // filter KUBE-NODEPORTS
  std::vector<std::string> filterFirewall;          // filter KUBE-PROXY-FIREWALL
  // The nat chains the port owns, and their rules ("-A CHAIN ...\n" lines).
  std::vector<std::string> natChains;
  std::string natChainRules;
  size_t natChainRuleCount = 0;

  size_t ruleCount() const;
  bool operator==(const PortRules&) const = default;
};

// The rules of `port` for options.family; empty when the Service is not proxied or has no
// ClusterIP of that family. `largeCluster` leaves per-endpoint comments out.
PortRules portRules(const ServicePort& port, const RuleOptions& options, bool largeCluster);

// Whether the state is past RuleOptions::largeClusterEndpoints for this family.
bool isLargeCluster(const ProxyState& state, const RuleOptions& options);

// What is known of a port once its rules are in the kernel: enough to take them out again
// (the chains and the top-level rule bodies) and to see whether they changed (a digest of all of
// them), without keeping the per-endpoint text of 10,000 services in memory.
struct AppliedPort {
  uint64_t digest = 0;
  std::vector<std::string> natChains;
  std::vector<std::string> natServices, natNodePorts;
  std::vector<std::string> filterServices, filterExternalServices, filterNodePorts, filterFirewall;

  static AppliedPort of(const PortRules& rules);
};

using AppliedRules = std::map<ServicePortName, AppliedPort>;

struct Payload {
  std::string text;  // iptables-restore input
  size_t rules = 0;  // rules written (lines starting with -A/-I/-D)
};

// The whole ruleset: every top-level chain rewritten, every service chain written, and the
// `staleChains` (service chains found in the kernel that nothing uses any more) deleted. Also
// returns what is applied once it succeeds.
Payload fullPayload(const ProxyState& state, const RuleOptions& options,
                    const std::set<std::string>& staleChains, AppliedRules& applied);

// What a partial payload changes in AppliedRules once it succeeds: a new value per port, or
// nullopt for a port whose rules are gone.
using AppliedUpdates = std::vector<std::pair<ServicePortName, std::optional<AppliedPort>>>;

// Only what changed for `ports` (those in `applied` that are gone or differ, and new ones):
// their chains rewritten or deleted, their top-level rules deleted and inserted. `applied` is
// not touched: the caller applies `updates` once the kernel took the payload. Returns an empty
// payload when nothing differs.
Payload partialPayload(const ProxyState& state, const RuleOptions& options,
                       const std::vector<ServicePortName>& ports, const AppliedRules& applied,
                       AppliedUpdates& updates);

void applyUpdates(AppliedRules& applied, AppliedUpdates&& updates);

// Removes every chain and rule this mode ever created (--cleanup): the jumps from the built-in
// chains are deleted by the caller; this flushes and deletes `chains` (found in the kernel).
std::string cleanupPayload(const std::vector<std::string>& natChains,
                           const std::vector<std::string>& filterChains,
                           const std::vector<std::string>& mangleChains);

// The jumps from built-in chains into ours, kube-proxy's iptablesJumpChains.
struct JumpRule {
  const char* table;              // "filter" or "nat"
  const char* from;               // built-in chain
  std::vector<std::string> args;  // argv: match and comment, then "-j" target
};
std::vector<JumpRule> jumpRules(const RuleOptions& options);

// `payload` (a full one: every table section of one family) as several iptables-restore inputs
// to apply in order, each with at most `maxServiceChains` service chains, or `payload` alone
// when it has no more than that (or `maxServiceChains` is 0).
//
// Why: iptables-nft-restore 1.8 slows down quadratically in the chains declared in one call
// (146,000 chains, 10,000 Services of 10 endpoints, never finish; 14,000 take 9.3 s in one call
// and 3.9 s in chunks of 2,000), while iptables-legacy copies the whole table per call and
// gains nothing from splitting. The order keeps every jump valid at every moment: first
// KUBE-MARK-MASQ, then the KUBE-SEP chains, then KUBE-SVC/SVL, then KUBE-EXT, then KUBE-FW, each
// rewritten whole; the last input holds the top-level chains of nat (which is what makes new
// services reachable), the chain deletions, and the other tables. Each input is atomic, the
// whole is not: a failure part-way leaves new chains that nothing jumps to yet, which the forced
// full sync that follows rewrites or deletes.
std::vector<std::string> splitRestorePayload(const std::string& payload, size_t maxServiceChains);

// The names of the service chains in `save` (iptables-save output of one table).
std::set<std::string> serviceChainsIn(const std::string& save);

}  // namespace capstan::iptables
