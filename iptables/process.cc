#include "iptables/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdlib>
#include <cstring>

extern char** environ;

namespace capstan::iptables {

namespace {

using Clock = std::chrono::steady_clock;

// Owns one file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

std::string errnoText(int err) { return std::strerror(err); }

// The child's end of a channel must not be 0, 1 or 2 already (dup2(fd, fd) would keep its
// close-on-exec flag, and the child would start without that descriptor): move it to 3 or above.
bool moveAboveStdio(UniqueFd& fd) {
  if (fd.get() > 2) return true;
  int moved = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3);
  if (moved < 0) return false;
  fd.reset(moved);
  return true;
}

bool setNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

bool isExecutableFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// Spawn attributes and file actions, destroyed on every path out.
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  bool actionsReady = false;
  bool attrReady = false;
  ~SpawnSetup() {
    if (actionsReady) posix_spawn_file_actions_destroy(&actions);
    if (attrReady) posix_spawnattr_destroy(&attr);
  }
};

// Reads what is available on `fd` into `sink` (at most `cap` bytes kept). Returns false at EOF
// or on an error other than EAGAIN/EINTR. A bounded number of reads per call keeps one busy
// stream from starving the others.
bool drain(int fd, std::string& sink, size_t cap, bool& overflow) {
  char buf[1 << 16];
  for (int i = 0; i < 16; ++i) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n > 0) {
      size_t room = cap > sink.size() ? cap - sink.size() : 0;
      size_t keep = std::min(room, static_cast<size_t>(n));
      sink.append(buf, keep);
      if (keep < static_cast<size_t>(n)) overflow = true;
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
  return true;
}

void killGroup(pid_t pid) {
  // The child leads its own process group (POSIX_SPAWN_SETPGROUP); anything it started goes too.
  // Until the child is reaped its pid, and so the group id, cannot be reused.
  ::kill(-pid, SIGKILL);
  ::kill(pid, SIGKILL);
}

}  // namespace

std::string findExecutable(std::string_view name) {
  if (name.empty()) return "";
  if (name.find('/') != std::string_view::npos) {
    std::string path(name);
    return isExecutableFile(path) ? path : "";
  }
  const char* env = std::getenv("PATH");
  std::string dirs = env != nullptr && *env != '\0' ? env : "/usr/local/bin:/usr/bin:/bin";
  dirs += ":/usr/local/sbin:/usr/sbin:/sbin";
  size_t start = 0;
  while (start <= dirs.size()) {  // each pass consumes at least one character
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    if (dir.empty()) dir = ".";  // POSIX: an empty PATH entry is the current directory
    std::string candidate = dir + "/" + std::string(name);
    if (isExecutableFile(candidate)) return candidate;
    start = end + 1;
  }
  return "";
}

std::string describeExit(const CommandOutput& output) {
  if (output.termSignal != 0) return "killed by signal " + std::to_string(output.termSignal);
  return "exit status " + std::to_string(output.exitCode);
}

Result<CommandOutput> runCommand(const std::vector<std::string>& argv, std::string_view input,
                                 const CommandLimits& limits) {
  assert(!argv.empty());
  const std::string& program = argv.front();
  std::string path = findExecutable(program);
  if (path.empty()) return Error(program + ": no such executable on PATH");

  // Stdin is a socket rather than a pipe so that writing to a child that has already exited is
  // EPIPE from send(MSG_NOSIGNAL), never a SIGPIPE to the daemon.
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return Error(program + ": socketpair: " + errnoText(errno));
  }
  UniqueFd stdinParent(sv[0]), stdinChild(sv[1]);
  ::shutdown(stdinParent.get(), SHUT_RD);
  ::shutdown(stdinChild.get(), SHUT_WR);
  int outPipe[2];
  if (::pipe2(outPipe, O_CLOEXEC) != 0) return Error(program + ": pipe: " + errnoText(errno));
  UniqueFd stdoutParent(outPipe[0]), stdoutChild(outPipe[1]);
  int errPipe[2];
  if (::pipe2(errPipe, O_CLOEXEC) != 0) return Error(program + ": pipe: " + errnoText(errno));
  UniqueFd stderrParent(errPipe[0]), stderrChild(errPipe[1]);
  if (!moveAboveStdio(stdinChild) || !moveAboveStdio(stdoutChild) || !moveAboveStdio(stderrChild)) {
    return Error(program + ": fcntl: " + errnoText(errno));
  }
  if (!setNonBlocking(stdinParent.get()) || !setNonBlocking(stdoutParent.get()) ||
      !setNonBlocking(stderrParent.get())) {
    return Error(program + ": fcntl: " + errnoText(errno));
  }

  SpawnSetup setup;
  if (int rc = posix_spawn_file_actions_init(&setup.actions); rc != 0) {
    return Error(program + ": posix_spawn_file_actions_init: " + errnoText(rc));
  }
  setup.actionsReady = true;
  if (int rc = posix_spawnattr_init(&setup.attr); rc != 0) {
    return Error(program + ": posix_spawnattr_init: " + errnoText(rc));
  }
  setup.attrReady = true;
  posix_spawn_file_actions_adddup2(&setup.actions, stdinChild.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&setup.actions, stdoutChild.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&setup.actions, stderrChild.get(), STDERR_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  // The daemon's sockets and files are none of the child's business, close-on-exec or not.
  posix_spawn_file_actions_addclosefrom_np(&setup.actions, 3);
#endif
  sigset_t noSignals, allSignals;
  sigemptyset(&noSignals);
  sigfillset(&allSignals);
  posix_spawnattr_setsigmask(&setup.attr, &noSignals);
  posix_spawnattr_setsigdefault(&setup.attr, &allSignals);  // e.g. SIGPIPE ignored by the daemon
  posix_spawnattr_setpgroup(&setup.attr, 0);
  posix_spawnattr_setflags(&setup.attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  cargv.push_back(path.data());
  for (size_t i = 1; i < argv.size(); ++i) cargv.push_back(const_cast<char*>(argv[i].c_str()));
  cargv.push_back(nullptr);

  const Clock::time_point deadline = Clock::now() + limits.timeout;
  pid_t pid = -1;
  if (int rc =
          ::posix_spawn(&pid, path.c_str(), &setup.actions, &setup.attr, cargv.data(), environ);
      rc != 0) {
    return Error(path + ": posix_spawn: " + errnoText(rc));
  }
  stdinChild.reset();
  stdoutChild.reset();
  stderrChild.reset();

  // A pidfd makes the child's exit one more poll() event; without one (kernel < 5.3) the loop
  // polls waitpid() every 20 ms instead.
  UniqueFd pidFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));

  CommandOutput output;
  size_t written = 0;
  if (input.empty()) stdinParent.reset();
  bool stdoutOverflow = false;
  bool exited = false;
  int status = 0;
  std::string failure;

  // Every pass either makes progress or waits in poll() no later than the deadline, which bounds
  // the loop.
  while (stdinParent.valid() || stdoutParent.valid() || stderrParent.valid() || !exited) {
    auto now = Clock::now();
    if (now >= deadline) {
      failure = "killed after " + std::to_string(limits.timeout.count()) + " ms (time limit)";
      break;
    }
    pollfd fds[4];
    int count = 0;
    int inIdx = -1, outIdx = -1, errIdx = -1, pidIdx = -1;
    if (stdinParent.valid()) {
      inIdx = count;
      fds[count++] = {stdinParent.get(), POLLOUT, 0};
    }
    if (stdoutParent.valid()) {
      outIdx = count;
      fds[count++] = {stdoutParent.get(), POLLIN, 0};
    }
    if (stderrParent.valid()) {
      errIdx = count;
      fds[count++] = {stderrParent.get(), POLLIN, 0};
    }
    if (!exited && pidFd.valid()) {
      pidIdx = count;
      fds[count++] = {pidFd.get(), POLLIN, 0};
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
    int waitMs = static_cast<int>(std::min<long long>(left, 60'000));
    if (!exited && !pidFd.valid()) waitMs = std::min(waitMs, 20);
    int ready = ::poll(fds, static_cast<nfds_t>(count), waitMs);
    if (ready < 0 && errno != EINTR) {
      failure = "poll: " + errnoText(errno);
      break;
    }
    if (inIdx >= 0 && fds[inIdx].revents != 0) {
      for (int i = 0; i < 16 && written < input.size(); ++i) {
        size_t chunk = std::min<size_t>(input.size() - written, size_t{1} << 20);
        ssize_t n =
            ::send(stdinParent.get(), input.data() + written, chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          written += static_cast<size_t>(n);
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        output.inputUnread = true;  // EPIPE, ECONNRESET: the child stopped reading
        break;
      }
      if (written == input.size() || output.inputUnread) stdinParent.reset();  // EOF for the child
    }
    if (outIdx >= 0 && fds[outIdx].revents != 0) {
      if (!drain(stdoutParent.get(), output.stdoutText, limits.maxStdoutBytes, stdoutOverflow)) {
        stdoutParent.reset();
      }
      if (stdoutOverflow) {
        failure = "wrote more than " + std::to_string(limits.maxStdoutBytes) + " bytes to stdout";
        break;
      }
    }
    if (errIdx >= 0 && fds[errIdx].revents != 0) {
      if (!drain(stderrParent.get(), output.stderrText, limits.maxStderrBytes,
                 output.stderrTruncated)) {
        stderrParent.reset();
      }
    }
    if (!exited && (pidIdx < 0 || fds[pidIdx].revents != 0)) {
      pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid) {
        exited = true;
      } else if (r < 0 && errno != EINTR) {
        failure = "waitpid: " + errnoText(errno);  // e.g. someone else reaped our child
        exited = true;
        break;
      }
    }
  }

  if (!failure.empty()) {
    if (!exited) {
      killGroup(pid);
      // After SIGKILL the wait is short; bounded in case of a signal interrupting it.
      for (int i = 0; i < 100 && ::waitpid(pid, &status, 0) < 0 && errno == EINTR; ++i) {
      }
    } else {
      ::kill(-pid, SIGKILL);  // descendants still holding our pipes
    }
    return Error(path + ": " + failure);
  }
  if (written < input.size()) output.inputUnread = true;
  if (WIFEXITED(status)) {
    output.exitCode = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    output.termSignal = WTERMSIG(status);
  }
  return output;
}

}  // namespace capstan::iptables
