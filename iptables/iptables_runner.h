// IptablesRunner: where the iptables mode meets the kernel. The only class of iptables/ that
// runs anything; everything else in the folder is pure text generation.
//
// The real implementation execs the iptables tools (iptables-restore fed on stdin, one call per
// family and sync, with the xtables lock waited for); unit tests use a fake that records the
// payloads. Implementations must be safe to call from the control thread only.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "model/ip.h"
#include "model/result.h"

namespace capstan::iptables {

enum class Table { kFilter, kNat, kMangle };

std::string_view toString(Table table);  // "filter", "nat", "mangle"

class IptablesRunner {
 public:
  virtual ~IptablesRunner() = default;

  // Whether this family can be programmed at all (the tools exist and the kernel has it).
  virtual bool available(IpFamily family) = 0;

  // Feeds `payload` to `iptables-restore --noflush --counters` (or ip6tables-restore): every
  // table section in it is applied atomically, or nothing of it is. The error carries the
  // tool's message (which names the failing line).
  virtual Status restore(IpFamily family, const std::string& payload) = 0;

  // `iptables-save -t <table>`: the table as text.
  virtual Result<std::string> save(IpFamily family, Table table) = 0;

  // Whether a chain exists (a canary check: one cheap call).
  virtual bool chainExists(IpFamily family, Table table, const std::string& chain) = 0;

  // The node's own addresses of `family` (for --nodeport-addresses).
  virtual std::vector<IpAddress> localAddresses(IpFamily family) = 0;

  // Makes sure `chain` in `table` holds the rule `args` (argv, no shell), inserting it first
  // if it is missing: the jumps from the built-in chains, which iptables-restore --noflush cannot
  // express without duplicating them (`iptables -C` then `iptables -I`).
  virtual Status ensureRule(IpFamily family, Table table, const std::string& chain,
                            const std::vector<std::string>& args) {
    (void)family, (void)table, (void)chain, (void)args;
    return Error("ensureRule: not supported by this runner");
  }
  // Deletes that rule if present (--cleanup).
  virtual Status deleteRule(IpFamily family, Table table, const std::string& chain,
                            const std::vector<std::string>& args) {
    (void)family, (void)table, (void)chain, (void)args;
    return Error("deleteRule: not supported by this runner");
  }
  // Whether `chain` holds at least one rule (`iptables -S chain` lists more than its -N line):
  // the canary check, which a flush of the table fails as surely as a deletion.
  virtual bool chainHasRules(IpFamily family, Table table, const std::string& chain) {
    return chainExists(family, table, chain);
  }
  // How many service chains one full-sync restore may declare (splitRestorePayload in rules.h);
  // 0: no limit, the whole payload in one call. The nft backend wants a limit, legacy does not.
  virtual size_t maxChainsPerRestore(IpFamily family) {
    (void)family;
    return 0;
  }
  // /proc/sys values, e.g. "net/ipv4/conf/all/route_localnet".
  virtual Result<std::string> readSysctl(const std::string& name) {
    return Error("readSysctl " + name + ": not supported by this runner");
  }
  virtual Status writeSysctl(const std::string& name, const std::string& value) {
    (void)value;
    return Error("writeSysctl " + name + ": not supported by this runner");
  }
};

// The real runner: execs iptables-restore/iptables-save/iptables (or their ip6tables twins)
// from PATH, or the `-legacy`/`-nft` variants when `backend` is "legacy" or "nft" (kube-proxy's
// image picks the backend the host already uses; "" means the `iptables` on PATH).
std::unique_ptr<IptablesRunner> makeExecRunner(const std::string& backend = "");

}  // namespace capstan::iptables
