// ConntrackTable: where Capstan deletes the kernel's connection tracking entries that a sync left
// stale (see model/conntrack_cleanup.h for which and why), and StaleConntrackCleaner, the step of
// the control loop that decides what to delete after each successful sync.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <vector>

#include "model/conntrack_cleanup.h"
#include "model/proxy_state.h"
#include "model/result.h"

namespace capstan::control {

// The kernel's conntrack table of the network namespace the object was made in. A system
// boundary: unit tests use a fake, tests/control/conntrack_table_test.cc the real one.
// Implementations must be safe to call from the control thread only.
class ConntrackTable {
 public:
  virtual ~ConntrackTable();

  // Deletes every entry that matches at least one filter and returns how many were deleted.
  // Entries that disappear on their own meanwhile are not errors (and not counted). An error
  // means the table could not be read, or some matching entries could not be deleted; those
  // that could were.
  virtual Result<size_t> remove(const std::vector<ConntrackFilter>& filters) = 0;
};

// The real table, through ctnetlink (libnetfilter_conntrack): per IP family that has filters,
// one dump of that family's entries, matched against the filters here (the kernel's own dump
// filters cannot express "reply source"), then one delete (NFCT_Q_DESTROY) per match on a second
// socket. Needs CAP_NET_ADMIN.
std::unique_ptr<ConntrackTable> makeNetlinkConntrackTable();

// What one cleanup did, for the log and the metrics.
struct ConntrackCleanupReport {
  std::vector<ConntrackFilter> filters;  // none: nothing to do, the table was not touched
  size_t deleted = 0;                    // entries deleted
  std::optional<Error> error;
};

// Keeps the state the dataplane was last programmed with and, after each successful sync,
// deletes through `table` the entries the change from it leaves stale. The first sync is diffed
// against an empty state: every UDP frontend with endpoints is "newly active" then (entries
// made while Capstan was not running, or by another proxy, may point anywhere), as kube-proxy
// does after a restart.
//
// A failed removal is reported, not retried: the next sync diffs from the state just programmed
// (kube-proxy does the same); the entries it missed expire with their conntrack timeout once
// their client stops sending.
class StaleConntrackCleaner {
 public:
  explicit StaleConntrackCleaner(ConntrackTable& table);

  // `state` has just been programmed successfully.
  ConntrackCleanupReport synced(std::shared_ptr<const ProxyState> state);

  // The state of the last successful sync (an empty one before the first).
  const std::shared_ptr<const ProxyState>& lastSynced() const { return last_; }

 private:
  ConntrackTable& table_;
  std::shared_ptr<const ProxyState> last_;
};

}  // namespace capstan::control
