// SyncScheduler with a fake clock: kube-proxy's bounded-frequency semantics.
#include "control/sync_scheduler.h"

#include <gtest/gtest.h>

namespace capstan::control {
namespace {

using namespace std::chrono_literals;
using TimePoint = SyncScheduler::TimePoint;

class SyncSchedulerTest : public testing::Test {
 protected:
  TimePoint t0 = TimePoint() + 1000s;
  SyncScheduler s{{1s, 30s}};

  // Runs a sync at `now` if one is due; returns whether it ran.
  bool tick(TimePoint now, bool ok = true) {
    auto d = s.due(now);
    if (!d.run) return false;
    lastFull = d.full;
    s.syncStarted(now, d.full);
    s.syncFinished(now, ok);
    return true;
  }
  bool lastFull = false;
};

TEST_F(SyncSchedulerTest, NothingBeforeTheFirstRequest) {
  EXPECT_FALSE(s.nextSyncAt());
  EXPECT_FALSE(s.due(t0).run);
}

TEST_F(SyncSchedulerTest, FirstSyncRunsAtOnceAndIsFull) {
  s.requestSync();
  EXPECT_TRUE(s.due(t0).run);
  EXPECT_TRUE(tick(t0));
  EXPECT_TRUE(lastFull);
  EXPECT_TRUE(s.hasSynced());
}

TEST_F(SyncSchedulerTest, ChangesWaitForMinSyncPeriodAndAreBatched) {
  s.requestSync();
  tick(t0);
  s.requestSync();
  s.requestSync();
  EXPECT_EQ(*s.nextSyncAt(), t0 + 1s);
  EXPECT_FALSE(tick(t0 + 100ms));
  EXPECT_FALSE(tick(t0 + 999ms));
  EXPECT_TRUE(tick(t0 + 1s));
  EXPECT_FALSE(lastFull);  // a partial sync
  // Both requests were served by that one sync.
  EXPECT_FALSE(tick(t0 + 2s));
}

TEST_F(SyncSchedulerTest, LateChangeSyncsAtOnce) {
  s.requestSync();
  tick(t0);
  s.requestSync();
  EXPECT_TRUE(tick(t0 + 5s));
  EXPECT_FALSE(lastFull);
}

TEST_F(SyncSchedulerTest, FullSyncAtLeastEverySyncPeriod) {
  s.requestSync();
  tick(t0);
  EXPECT_EQ(*s.nextSyncAt(), t0 + 30s);
  EXPECT_FALSE(tick(t0 + 29s));
  EXPECT_TRUE(tick(t0 + 30s));
  EXPECT_TRUE(lastFull);
  // Partial syncs in between do not postpone the periodic full one.
  s.requestSync();
  EXPECT_TRUE(tick(t0 + 35s));
  EXPECT_FALSE(lastFull);
  EXPECT_EQ(*s.nextSyncAt(), t0 + 60s);
  EXPECT_TRUE(tick(t0 + 60s));
  EXPECT_TRUE(lastFull);
}

TEST_F(SyncSchedulerTest, FailureRetriesWithBackoffAndAFullSync) {
  s.requestSync();
  tick(t0, /*ok=*/false);
  EXPECT_EQ(s.consecutiveFailures(), 1);
  EXPECT_EQ(*s.nextSyncAt(), t0 + 1s);
  EXPECT_TRUE(tick(t0 + 1s, false));
  EXPECT_TRUE(lastFull);
  EXPECT_EQ(*s.nextSyncAt(), t0 + 1s + 2s);
  EXPECT_TRUE(tick(t0 + 3s, false));
  EXPECT_EQ(*s.nextSyncAt(), t0 + 3s + 4s);
  TimePoint t = t0 + 7s;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(tick(t, false));
    t = *s.nextSyncAt();
  }
  // Capped at the sync period.
  tick(t, false);
  EXPECT_EQ(*s.nextSyncAt() - t, 30s);
  // Success resets, and was a full sync.
  EXPECT_TRUE(tick(*s.nextSyncAt(), true));
  EXPECT_TRUE(lastFull);
  EXPECT_EQ(s.consecutiveFailures(), 0);
}

TEST_F(SyncSchedulerTest, PartialSyncFailureMakesNextOneFull) {
  s.requestSync();
  tick(t0);
  s.requestSync();
  tick(t0 + 2s, false);
  EXPECT_FALSE(lastFull);
  EXPECT_TRUE(tick(*s.nextSyncAt()));
  EXPECT_TRUE(lastFull);
  s.requestSync();
  EXPECT_TRUE(tick(*s.nextSyncAt()));
  EXPECT_FALSE(lastFull);
}

TEST_F(SyncSchedulerTest, RequestFullSyncMakesTheNextSyncFull) {
  s.requestSync();
  tick(t0);
  s.requestFullSync();
  EXPECT_FALSE(tick(t0 + 500ms));  // still bounded by the min sync period
  EXPECT_TRUE(tick(t0 + 1s));
  EXPECT_TRUE(lastFull);
  s.requestSync();
  EXPECT_TRUE(tick(t0 + 2s));
  EXPECT_FALSE(lastFull);
}

TEST_F(SyncSchedulerTest, ZeroMinSyncPeriodSyncsEveryChange) {
  s.setOptions({0s, 30s});
  s.requestSync();
  tick(t0);
  s.requestSync();
  EXPECT_TRUE(tick(t0));
}

}  // namespace
}  // namespace capstan::control
