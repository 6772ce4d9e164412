#include "control/kube_time.h"
#include "model/go_duration.h"

#include <gtest/gtest.h>

namespace capstan::control {
namespace {

TEST(KubeTime, ParsesRfc3339) {
  EXPECT_EQ(parseRfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parseRfc3339("2026-11-24T10:00:00Z"), int64_t{1795514400} * 1'000'000'000);
  EXPECT_EQ(parseRfc3339("2026-11-24T12:00:00+02:00"), int64_t{1795514400} * 1'000'000'000);
  EXPECT_EQ(parseRfc3339("2026-11-24T10:00:00.5Z"),
            int64_t{1795514400} * 1'000'000'000 + 500'000'000);
  EXPECT_EQ(parseRfc3339("2000-02-29T00:00:00Z"), int64_t{951782400} * 1'000'000'000);
  for (const char* bad : {"", "2026-11-24", "2026-11-24T10:00:00", "2026-13-01T00:00:00Z",
                          "2026-11-24T25:00:00Z", "2026-11-24T10:00:00.Z",
                          "2026-11-24T10:00:00+0200", "2026-11-24T10:00:00Zjunk", "yesterday"}) {
    EXPECT_FALSE(parseRfc3339(bad)) << bad;
  }
}

TEST(KubeTime, FormatsLikeGo) {
  EXPECT_EQ(formatGoTime(0), "1970-01-01 00:00:00 +0000 UTC");
  EXPECT_EQ(formatGoTime(int64_t{1795514400} * 1'000'000'000 + 120'000'000),
            "2026-11-24 10:00:00.12 +0000 UTC");
  EXPECT_EQ(formatGoTime(-1'000'000'000), "1969-12-31 23:59:59 +0000 UTC");
}

TEST(KubeTime, ParsesGoDurations) {
  EXPECT_EQ(parseGoDuration("1s"), 1'000'000'000);
  EXPECT_EQ(parseGoDuration("500ms"), 500'000'000);
  EXPECT_EQ(parseGoDuration("1m30s"), 90'000'000'000);
  EXPECT_EQ(parseGoDuration("1.5h"), int64_t{5400} * 1'000'000'000);
  EXPECT_EQ(parseGoDuration("2h45m"), int64_t{9900} * 1'000'000'000);
  EXPECT_EQ(parseGoDuration("10us"), 10'000);
  EXPECT_EQ(parseGoDuration("10\xc2\xb5s"), 10'000);
  EXPECT_EQ(parseGoDuration("7ns"), 7);
  EXPECT_EQ(parseGoDuration("0"), 0);
  EXPECT_EQ(parseGoDuration("-1s"), -1'000'000'000);
  for (const char* bad : {"", "1", "s", "1x", "1.s.", "1s2", "--1s", "9999999999h"}) {
    EXPECT_FALSE(parseGoDuration(bad)) << bad;
  }
}

TEST(KubeTime, FormatsGoDurations) {
  EXPECT_EQ(formatGoDuration(1'000'000'000), "1s");
  EXPECT_EQ(formatGoDuration(1'500'000'000), "1.5s");
  EXPECT_EQ(formatGoDuration(90'000'000'000), "1m30s");
  EXPECT_EQ(formatGoDuration(int64_t{3600} * 1'000'000'000), "1h0m0s");
  EXPECT_EQ(formatGoDuration(250'000'000), "250ms");
  EXPECT_EQ(formatGoDuration(0), "0s");
}

}  // namespace
}  // namespace capstan::control
