#include "control/proxier_health.h"

#include "control/kube_time.h"

namespace capstan::control {

namespace {

int64_t unixNanos(ProxierHealth::WallClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// Go's %q of a time.Time: its String() in quotes. The zero time prints as Go's zero time.
std::string quotedTime(std::optional<ProxierHealth::WallClock::time_point> t) {
  if (!t) return "\"0001-01-01 00:00:00 +0000 UTC\"";
  return "\"" + formatGoTime(unixNanos(*t)) + "\"";
}

}  // namespace

void ProxierHealth::setTimeout(std::chrono::nanoseconds timeout) {
  std::lock_guard lock(mu_);
  timeout_ = timeout;
}

void ProxierHealth::queuedUpdate(WallClock::time_point now) {
  std::lock_guard lock(mu_);
  if (!oldestPendingQueued_) oldestPendingQueued_ = now;
}

void ProxierHealth::updated(WallClock::time_point now) {
  std::lock_guard lock(mu_);
  lastUpdated_ = now;
  oldestPendingQueued_.reset();
}

void ProxierHealth::setNodeEligible(bool eligible) {
  std::lock_guard lock(mu_);
  nodeEligible_ = eligible;
}

void ProxierHealth::setSourceReady(bool ready) {
  std::lock_guard lock(mu_);
  sourceReady_ = ready;
}

bool ProxierHealth::healthyLocked(WallClock::time_point now) const {
  // Healthy while starting up or fully synced, and while the oldest queued change is younger
  // than the timeout.
  return !oldestPendingQueued_ || now - *oldestPendingQueued_ < timeout_;
}

ProxierHealth::Report ProxierHealth::healthz(WallClock::time_point now) const {
  std::lock_guard lock(mu_);
  Report r;
  r.healthy = healthyLocked(now) && nodeEligible_ && sourceReady_;
  r.status = r.healthy ? 200 : 503;
  // kube-proxy reports lastUpdated as "now" when healthy, for compatibility with older releases.
  auto lastUpdated = r.healthy ? std::optional(now) : lastUpdated_;
  r.body = "{\"lastUpdated\": " + quotedTime(lastUpdated) + ",\"currentTime\": " + quotedTime(now) +
           ", \"nodeEligible\": " + (nodeEligible_ ? "true" : "false") + "}";
  return r;
}

ProxierHealth::Report ProxierHealth::livez(WallClock::time_point now) const {
  std::lock_guard lock(mu_);
  Report r;
  r.healthy = healthyLocked(now);
  r.status = r.healthy ? 200 : 503;
  auto lastUpdated = r.healthy ? std::optional(now) : lastUpdated_;
  r.body =
      "{\"lastUpdated\": " + quotedTime(lastUpdated) + ",\"currentTime\": " + quotedTime(now) + "}";
  return r;
}

double ProxierHealth::secondsSinceUpdate(WallClock::time_point now) const {
  std::lock_guard lock(mu_);
  if (!lastUpdated_) return -1;
  return std::chrono::duration<double>(now - *lastUpdated_).count();
}

}  // namespace capstan::control
