// runCommand(): capture, exit status, large input and output without deadlock, time limit.
// Needs no privileges.
#include "iptables/process.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>

namespace capstan::iptables {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

TEST(RunCommandTest, CapturesStdoutStderrAndExitStatus) {
  auto run = runCommand({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, "");
  ASSERT_TRUE(run.ok()) << run.error().message();
  EXPECT_EQ(run->stdoutText, "out\n");
  EXPECT_EQ(run->stderrText, "err\n");
  EXPECT_EQ(run->exitCode, 3);
  EXPECT_EQ(run->termSignal, 0);
  EXPECT_FALSE(run->succeeded());
  EXPECT_EQ(describeExit(*run), "exit status 3");
}

TEST(RunCommandTest, ArgumentsReachTheProgramUntouched) {
  // No shell: quotes, spaces, globs and $ stay as they are.
  auto run = runCommand({"/bin/echo", "a b", "*", "$HOME", "'q'"}, "");
  ASSERT_TRUE(run.ok()) << run.error().message();
  EXPECT_EQ(run->stdoutText, "a b * $HOME 'q'\n");
}

TEST(RunCommandTest, FindsProgramsOnPath) {
  auto run = runCommand({"cat"}, "hello");
  ASSERT_TRUE(run.ok()) << run.error().message();
  EXPECT_EQ(run->stdoutText, "hello");
  EXPECT_TRUE(run->succeeded());
  EXPECT_FALSE(run->inputUnread);
}

TEST(RunCommandTest, LargeInputAndOutputAtOnceDoNotDeadlock) {
  // cat writes back while we still write: both pipes fill unless they are served together.
  std::string input;
  input.reserve(32 << 20);
  for (int i = 0; input.size() < (32u << 20); ++i) input += "line " + std::to_string(i) + "\n";
  auto start = Clock::now();
  auto run = runCommand({"/bin/cat"}, input);
  double seconds = secondsSince(start);
  ASSERT_TRUE(run.ok()) << run.error().message();
  EXPECT_TRUE(run->stdoutText == input) << "output of " << run->stdoutText.size() << " bytes";
  std::printf("[ timing   ] 32 MiB through cat: %.3f s\n", seconds);
}

TEST(RunCommandTest, ChildThatIgnoresItsInputIsNotAnError) {
  // The child exits without reading: our writes get EPIPE, never a SIGPIPE.
  std::string input(8 << 20, 'x');
  auto run = runCommand({"/bin/true"}, input);
  ASSERT_TRUE(run.ok()) << run.error().message();
  EXPECT_TRUE(run->succeeded());
  EXPECT_TRUE(run->inputUnread);
}

TEST(RunCommandTest, TimeLimitKillsASleepingChild) {
  CommandLimits limits;
  limits.timeout = std::chrono::seconds(1);
  auto start = Clock::now();
  auto run = runCommand({"/bin/sleep", "30"}, "", limits);
  double seconds = secondsSince(start);
  ASSERT_FALSE(run.ok());
  EXPECT_THAT(run.error().message(), HasSubstr("killed after 1000 ms (time limit)"));
  EXPECT_THAT(run.error().message(), HasSubstr("/sleep"));
  EXPECT_GE(seconds, 0.9);
  EXPECT_LT(seconds, 3.0);
}

TEST(RunCommandTest, TimeLimitCoversDescendantsHoldingTheOutput) {
  // The shell exits at once; the sleep it left behind keeps stdout open. The whole process group
  // goes at the limit.
  CommandLimits limits;
  limits.timeout = std::chrono::seconds(1);
  auto start = Clock::now();
  auto run = runCommand({"/bin/sh", "-c", "/bin/sleep 30 & exit 0"}, "", limits);
  double seconds = secondsSince(start);
  ASSERT_FALSE(run.ok());
  EXPECT_THAT(run.error().message(), HasSubstr("time limit"));
  EXPECT_LT(seconds, 3.0);
}

TEST(RunCommandTest, KilledBySignalIsReported) {
  auto run = runCommand({"/bin/sh", "-c", "kill -TERM $$"}, "");
  ASSERT_TRUE(run.ok()) << run.error().message();
  EXPECT_EQ(run->exitCode, -1);
  EXPECT_EQ(run->termSignal, SIGTERM);
  EXPECT_EQ(describeExit(*run), "killed by signal 15");
}

TEST(RunCommandTest, MissingProgramIsAnError) {
  auto run = runCommand({"capstan-no-such-program"}, "");
  ASSERT_FALSE(run.ok());
  EXPECT_THAT(run.error().message(), HasSubstr("capstan-no-such-program: no such executable"));
  EXPECT_FALSE(runCommand({"/nonexistent/bin/tool"}, "").ok());
}

TEST(RunCommandTest, StdoutPastTheLimitIsAnError) {
  CommandLimits limits;
  limits.maxStdoutBytes = 1 << 20;
  auto run = runCommand({"/usr/bin/head", "-c", "4194304", "/dev/zero"}, "", limits);
  ASSERT_FALSE(run.ok());
  EXPECT_THAT(run.error().message(), HasSubstr("more than 1048576 bytes to stdout"));
}

TEST(RunCommandTest, StderrPastTheLimitIsTruncated) {
  CommandLimits limits;
  limits.maxStderrBytes = 1000;
  auto run = runCommand({"/bin/sh", "-c", "/usr/bin/head -c 100000 /dev/zero >&2"}, "", limits);
  ASSERT_TRUE(run.ok()) << run.error().message();
  EXPECT_TRUE(run->succeeded());
  EXPECT_EQ(run->stderrText.size(), 1000u);
  EXPECT_TRUE(run->stderrTruncated);
}

TEST(RunCommandTest, ChildGetsNoDescriptorsBeyondStdio) {
  // /proc/self/fd of the child lists 0, 1, 2 and the one ls opens for the listing.
  auto run = runCommand({"/bin/ls", "/proc/self/fd"}, "");
  ASSERT_TRUE(run.ok()) << run.error().message();
  EXPECT_EQ(run->stdoutText, "0\n1\n2\n3\n");
}

TEST(FindExecutableTest, LooksOnPathAndInSbin) {
  EXPECT_THAT(findExecutable("sh"), testing::EndsWith("/sh"));
  EXPECT_EQ(findExecutable("/bin/sh"), "/bin/sh");
  EXPECT_EQ(findExecutable(""), "");
  EXPECT_EQ(findExecutable("capstan-no-such-program"), "");
  EXPECT_EQ(findExecutable("/tmp"), "");  // a directory is not a program
}

}  // namespace
}  // namespace capstan::iptables
