// Proxier: the one interface floor 2 implements (iptables/, nftables/, ipvs/, dataplane/, l7/).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/proxy_state.h"
#include "model/result.h"

namespace capstan {

struct SyncStats {
  bool full = false;        // whether everything was re-programmed
  size_t servicePorts = 0;  // ports programmed in this sync
  size_t rulesWritten = 0;  // rules, map elements or table entries written
  size_t bytesWritten = 0;  // bytes handed to the kernel or dataplane
  // Inputs programmed otherwise than asked (e.g. a VIP claimed by two service ports), one message
  // each: the sync succeeded and the caller logs them. Backends that do not log say it here.
  std::vector<std::string> warnings;
};

using SyncResult = Result<SyncStats>;

class Proxier {
 public:
  virtual ~Proxier() = default;

  // The mode name, as --proxy-mode spells it.
  virtual std::string_view name() const = 0;

  // Programs the dataplane to match `state`. `changes` says what differs from the state of the
  // last successful sync; when changes.full is set the implementation must re-program everything.
  // On failure the dataplane must keep the state of the last successful sync (never half of
  // both), and the caller's next sync will be a full one.
  // Called from the control thread only.
  virtual SyncResult sync(const ProxyState& state, const ChangeSet& changes) = 0;

  // What sync() would program for `state`, as text (--dry-run). Touches nothing.
  virtual Result<std::string> render(const ProxyState& state) const = 0;

  // Removes everything this mode ever programmed (--cleanup).
  virtual Status cleanup() = 0;

  // Whether the dataplane has ended by itself (a DPDK run with --dpdk-exit-when-idle): then a
  // summary to log before the daemon exits 0, else nullopt. The daemon polls it periodically.
  virtual std::optional<std::string> finished() { return std::nullopt; }
};

}  // namespace capstan
