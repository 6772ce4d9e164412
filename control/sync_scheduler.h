// SyncScheduler: when to sync, with kube-proxy's semantics.
//
// - A change asks for a sync; syncs start no closer together than --min-sync-period (changes
//   arriving meanwhile are batched into the next one).
// - A full sync runs at least every --sync-period, changes or not, so a dataplane someone
//   tampered with is put right.
// - After a failed sync the next one is full and is retried after a backoff that starts at
//   --min-sync-period (at least 1 s) and doubles up to --sync-period.
// - The first sync is full and runs as soon as it is asked for.
//
// Pure logic over a time the caller passes in, so tests drive it with a fake clock; the daemon
// arms one timer for nextSyncAt().
#pragma once

#include <chrono>
#include <optional>

namespace capstan::control {

class SyncScheduler {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;
  using Duration = Clock::duration;

  struct Options {
    Duration minSyncPeriod = std::chrono::seconds(1);
    Duration syncPeriod = std::chrono::seconds(30);
  };

  explicit SyncScheduler(Options options) : options_(options) {}

  void setOptions(Options options) { options_ = options; }
  const Options& options() const { return options_; }

  // Something changed: a sync is wanted.
  void requestSync() { requested_ = true; }
  // Something changed that touches every port (dataplane settings): the next sync is full.
  void requestFullSync() {
    requested_ = true;
    fullPending_ = true;
  }

  // When the next sync is due, or nullopt when nothing is waiting (before the first request).
  std::optional<TimePoint> nextSyncAt() const;

  struct Decision {
    bool run = false;
    bool full = false;
  };
  // Whether to sync at `now`, and whether that sync must be full.
  Decision due(TimePoint now) const;

  void syncStarted(TimePoint now, bool full);
  void syncFinished(TimePoint now, bool ok);

  bool hasSynced() const { return lastStart_.has_value(); }
  int consecutiveFailures() const { return failures_; }

 private:
  Duration retryBackoff() const;

  Options options_;
  bool requested_ = false;
  bool fullPending_ = true;  // the first sync is full
  bool startedFull_ = false;
  std::optional<TimePoint> lastStart_;
  std::optional<TimePoint> lastFullStart_;
  std::optional<TimePoint> retryAt_;
  int failures_ = 0;
};

}  // namespace capstan::control
