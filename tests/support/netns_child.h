// Network namespaces for tests that touch the kernel's networking (iptables, nftables, routes,
// sockets between hosts): a named namespace per test, and a child process that runs the test
// body inside it, so the test binary itself never leaves the host's namespace.
//
//   capstan::support::TestNetns ns;
//   ASSERT_TRUE(ns.ok()) << ns.error();
//   EXPECT_EQ(ns.runInChild([&] { ... EXPECT_...; ASSERT_...; }), "");
//
// The namespace is `ip netns add capstan-test-<pid>-<n>` (so `ip netns exec` and veth pairs
// between namespaces work on it, and a person can look at it while a test hangs) and is deleted
// by the destructor; namespaces left by test processes that died (SIGKILL) are swept by the next
// TestNetns. Needs root: without it the error says so, and the test must fail, not skip (CI runs
// as root).
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace capstan::support {

// Runs `ip <args...>` (no shell) and returns its exit status, or -1 if it could not start or
// took longer than 30 s. Output goes to the test's own stdout/stderr.
inline int runIp(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  std::string ip = "ip";
  argv.push_back(ip.data());
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (::posix_spawnp(&pid, "ip", nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int status = 0;
  for (int i = 0; i < 3000; ++i) {  // 30 s in steps of 10 ms
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (r < 0 && errno != EINTR) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

class TestNetns {
 public:
  TestNetns() {
    if (::geteuid() != 0) {
      error_ =
          "this test needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to create a network "
          "namespace; run it as root, as CI does";
      return;
    }
    sweepStale();
    static std::atomic<int> counter{0};
    name_ = "capstan-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    if (int rc = runIp({"netns", "add", name_}); rc != 0) {
      error_ = "`ip netns add " + name_ + "` failed (exit " + std::to_string(rc) +
               "): are network namespaces available here (CONFIG_NET_NS, a writable /run)?";
      name_.clear();
    }
  }
  ~TestNetns() {
    if (!name_.empty()) runIp({"netns", "del", name_});
  }
  TestNetns(const TestNetns&) = delete;
  TestNetns& operator=(const TestNetns&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& name() const { return name_; }

  // Runs `body` in a forked child that has entered this namespace, waits for it (at most
  // `timeout`, then SIGKILL) and returns "" if it finished without a GoogleTest failure, else
  // what went wrong. The child's failures print as usual; the child ends with _exit(), so no
  // destructor or atexit handler of the parent's runs twice.
  std::string runInChild(const std::function<void()>& body,
                         std::chrono::seconds timeout = std::chrono::seconds(240)) const {
    if (!ok()) return error_;
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t pid = ::fork();
    if (pid < 0) return "fork failed";
    if (pid == 0) {
      int code = 0;
      int fd = ::open(("/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
        std::fprintf(stderr, "cannot enter network namespace %s\n", name_.c_str());
        code = 2;
      } else {
        ::close(fd);
        try {
          body();
          code = ::testing::Test::HasFailure() ? 1 : 0;
        } catch (...) {
          std::fprintf(stderr, "the test body threw\n");
          code = 3;
        }
      }
      std::fflush(stdout);
      std::fflush(stderr);
      ::_exit(code);
    }
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {  // bounded by the deadline
      pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid) break;
      if (r < 0 && errno != EINTR) return "waitpid failed";
      if (std::chrono::steady_clock::now() >= deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        return "the child in " + name_ + " ran longer than " + std::to_string(timeout.count()) +
               " s and was killed";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (WIFSIGNALED(status)) return "the child died of signal " + std::to_string(WTERMSIG(status));
    if (WEXITSTATUS(status) == 1) return "the child's assertions failed (see above)";
    if (WEXITSTATUS(status) != 0) return "the child exited " + std::to_string(WEXITSTATUS(status));
    return "";
  }

  // Runs `ip <args...>` inside this namespace (`ip -n <name> ...`); returns its exit status.
  int ip(std::vector<std::string> args) const {
    args.insert(args.begin(), {"-n", name_});
    return runIp(args);
  }

 private:
  // Deletes capstan-test-<pid>-* namespaces whose test process no longer exists. Bounded by the
  // number of entries in /run/netns.
  static void sweepStale() {
    DIR* dir = ::opendir("/run/netns");
    if (dir == nullptr) return;
    std::vector<std::string> stale;
    for (int i = 0; i < 100000; ++i) {
      dirent* entry = ::readdir(dir);
      if (entry == nullptr) break;
      std::string name = entry->d_name;
      const std::string prefix = "capstan-test-";
      if (!name.starts_with(prefix)) continue;
      int pid = std::atoi(name.c_str() + prefix.size());
      if (pid <= 0 || pid == ::getpid()) continue;
      if (::kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(name);
    }
    ::closedir(dir);
    for (const auto& name : stale) runIp({"netns", "del", name});
  }

  std::string name_;
  std::string error_;
};

}  // namespace capstan::support
