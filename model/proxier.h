// Proxier: the one interface floor 2 implements (iptables/, nftables/, ipvs/, dataplane/, l7/).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "model/proxy_state.h"
#include "model/result.h"

namespace capstan {

struct SyncStats {
  bool full = false;        // whether everything was re-programmed
  size_t servicePorts = 0;  // ports programmed in this sync
  size_t rulesWritten = 0;  // rules, map elements or table entries written
  size_t bytesWritten = 0;  // bytes handed to the kernel or dataplane
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
};

}  // namespace capstan
