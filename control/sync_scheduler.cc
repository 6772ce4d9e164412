#include "control/sync_scheduler.h"

#include <algorithm>

namespace capstan::control {

SyncScheduler::Duration SyncScheduler::retryBackoff() const {
  Duration base = std::max<Duration>(options_.minSyncPeriod, std::chrono::seconds(1));
  Duration backoff = base;
  for (int i = 1; i < failures_ && backoff < options_.syncPeriod; ++i) backoff *= 2;
  return std::min(backoff, std::max(options_.syncPeriod, base));
}

std::optional<SyncScheduler::TimePoint> SyncScheduler::nextSyncAt() const {
  if (!lastStart_) {
    if (!requested_) return std::nullopt;
    return TimePoint::min();
  }
  if (retryAt_) return *retryAt_;
  TimePoint periodic = *lastFullStart_ + options_.syncPeriod;
  if (!requested_) return periodic;
  return std::min(periodic, *lastStart_ + options_.minSyncPeriod);
}

SyncScheduler::Decision SyncScheduler::due(TimePoint now) const {
  auto at = nextSyncAt();
  if (!at || now < *at) return {};
  bool periodic = lastFullStart_ && now >= *lastFullStart_ + options_.syncPeriod;
  return {true, fullPending_ || periodic || retryAt_.has_value()};
}

void SyncScheduler::syncStarted(TimePoint now, bool full) {
  lastStart_ = now;
  if (full) lastFullStart_ = now;
  if (!lastFullStart_) lastFullStart_ = now;
  startedFull_ = full;
  requested_ = false;
  retryAt_.reset();
}

void SyncScheduler::syncFinished(TimePoint now, bool ok) {
  if (ok) {
    failures_ = 0;
    if (startedFull_) fullPending_ = false;
    return;
  }
  ++failures_;
  fullPending_ = true;
  retryAt_ = now + retryBackoff();
}

}  // namespace capstan::control
