// Child processes for integration tests: start one (optionally inside a network namespace) with
// its output in files, wait for it within a bound; and the small waiting and port-picking
// helpers the tests that run real processes share. Header-only, like loopback_http.h.
//
// Every wait is bounded in time and in iterations; a child gets PR_SET_PDEATHSIG, so the kernel
// kills it if the thread that started it dies first (start children from the test's own
// thread, not from a short-lived one).
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace capstan::support {

inline constexpr std::chrono::milliseconds kDefaultWaitLimit{10000};

// Polls `done` every 20 ms until it holds or `limit` passes (and at most limit/20ms+1 times).
inline bool waitFor(const std::function<bool()>& done,
                    std::chrono::milliseconds limit = kDefaultWaitLimit) {
  using Clock = std::chrono::steady_clock;
  constexpr std::chrono::milliseconds kPollInterval{20};
  auto deadline = Clock::now() + limit;
  size_t maxTries = static_cast<size_t>(limit / kPollInterval) + 1;
  for (size_t i = 0; i < maxTries; ++i) {
    if (done()) return true;
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(kPollInterval);
  }
  return done();
}

// `n` distinct TCP ports free right now on 127.0.0.1 (of the calling thread's network
// namespace): bind port 0 and read back what the kernel chose, keeping every socket open until
// all are chosen so no port comes twice.
inline std::vector<uint16_t> freePorts(size_t n) {
  std::vector<int> fds;
  std::vector<uint16_t> ports;
  for (size_t i = 0; i < n; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    fds.push_back(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      break;
    }
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : fds) ::close(fd);
  return ports;
}

// The full path of `program`: itself if it names a path, else the first executable of that name
// on $PATH (looked up before fork, so that the child only has to execv). Empty if none.
inline std::string findProgram(const std::string& program) {
  if (program.find('/') != std::string::npos) return program;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

// fork + exec of `args` (args[0] a path, or a name looked up on $PATH) with stdin from
// /dev/null and stdout/stderr to the files `outPath` and `errPath` (the same path twice: one
// file with both, interleaved). If `netnsFd` is an open network namespace, the child enters it
// before exec. Returns the child's pid, or -1.
inline pid_t spawn(const std::vector<std::string>& args, const std::string& outPath,
                   const std::string& errPath, int netnsFd = -1) {
  if (args.empty()) return -1;
  std::string program = findProgram(args[0]);
  if (program.empty()) return -1;
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out = ::open(outPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err = errPath == outPath
                ? ::dup(out)
                : ::open(errPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (err >= 0) ::fcntl(err, F_SETFD, FD_CLOEXEC);
  pid_t parent = ::getpid();
  pid_t pid = (in >= 0 && out >= 0 && err >= 0) ? ::fork() : -1;
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    if (netnsFd >= 0 && ::setns(netnsFd, CLONE_NEWNET) != 0) ::_exit(126);
    if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) ::_exit(127);
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  for (int fd : {in, out, err}) {
    if (fd >= 0) ::close(fd);
  }
  return pid;
}

// The child's wait status once it has exited, or nullopt if it is still running at `limit`.
inline std::optional<int> waitExit(pid_t pid, std::chrono::milliseconds limit) {
  std::optional<int> result;
  waitFor(
      [&] {
        int status = 0;
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) result = status;
        return r != 0;  // exited, or an error (not our child): stop waiting either way
      },
      limit);
  return result;
}

}  // namespace capstan::support
