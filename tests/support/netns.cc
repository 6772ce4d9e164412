#include "tests/support/netns.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "tests/support/child_process.h"

namespace capstan::support {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kNetnsDir = "/run/netns";
constexpr size_t kMaxOutput = size_t{16} << 20;
constexpr size_t kMaxBackends = 50;

std::string readWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string joinArgs(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& a : argv) out += (out.empty() ? "" : " ") + a;
  return out;
}

// What `ip netns del` does: detach the bind mount that keeps the namespace alive and remove the
// file. The namespace itself goes when its last process and open descriptor go.
bool deleteNamedNamespace(const std::string& name) {
  std::string path = std::string(kNetnsDir) + "/" + name;
  ::umount2(path.c_str(), MNT_DETACH);
  return ::unlink(path.c_str()) == 0 || errno == ENOENT;
}

}  // namespace

// ---- CommandResult ----

bool CommandResult::ok() const {
  return !timedOut && status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int CommandResult::exitCode() const {
  return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string CommandResult::describe() const {
  if (timedOut) return "timed out";
  if (status < 0) return "not started";
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

// ---- Process ----

struct Process::State {
  pid_t pid = -1;
  bool reaped = false;
  std::optional<int> status;
  std::string logPath;

  // Reaps it if it has exited (without waiting); whether it is gone.
  bool poll() {
    if (reaped) return true;
    int st = 0;
    pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) {
      status = st;
      reaped = true;
    } else if (r < 0) {
      reaped = true;  // not our child any more: nothing left to wait for
    }
    return reaped;
  }

  std::optional<int> waitExit(std::chrono::milliseconds limit) {
    waitFor([&] { return poll(); }, limit);
    return reaped ? status : std::nullopt;
  }

  void killAndReap() {
    if (poll()) return;
    ::kill(pid, SIGKILL);
    // SIGKILL cannot be ignored; the bound only guards against a process stuck in the kernel.
    waitExit(10s);
  }
};

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    if (state_) state_->killAndReap();
    state_ = std::move(other.state_);
  }
  return *this;
}

Process::~Process() {
  if (state_) state_->killAndReap();
}

pid_t Process::pid() const { return state_ ? state_->pid : -1; }

bool Process::running() { return state_ && !state_->poll(); }

std::optional<int> Process::exitStatus() const {
  return state_ && state_->reaped ? state_->status : std::nullopt;
}

bool Process::signal(int sig) {
  if (!state_ || state_->poll()) return false;
  return ::kill(state_->pid, sig) == 0;
}

std::optional<int> Process::waitExit(std::chrono::milliseconds limit) {
  if (!state_) return std::nullopt;
  return state_->waitExit(limit);
}

std::optional<int> Process::stop(std::chrono::milliseconds grace) {
  if (!state_) return std::nullopt;
  if (!state_->poll()) {
    ::kill(state_->pid, SIGTERM);
    if (!state_->waitExit(grace)) state_->killAndReap();
  }
  return state_->status;
}

void Process::kill() {
  if (state_) state_->killAndReap();
}

std::string Process::output() const { return state_ ? readWholeFile(state_->logPath) : ""; }

const std::string& Process::logPath() const {
  static const std::string kNone;
  return state_ ? state_->logPath : kNone;
}

bool Process::waitForOutput(const std::string& text, std::chrono::milliseconds limit) {
  bool found = false;
  waitFor(
      [&] {
        found = output().find(text) != std::string::npos;
        return found || !running();
      },
      limit);
  return found || output().find(text) != std::string::npos;
}

// ---- Topology ----

Result<std::unique_ptr<Topology>> Topology::create(const TopologyOptions& options) {
  if (options.backends > kMaxBackends) {
    return Error("Topology: at most " + std::to_string(kMaxBackends) + " backends, asked for " +
                 std::to_string(options.backends));
  }
  removeStaleNamespaces();
  static std::atomic<unsigned> sequence{0};
  std::unique_ptr<Topology> t(new Topology());
  t->options_ = options;
  t->prefix_ = "cpt" + std::to_string(::getpid()) + "-" + std::to_string(sequence++) + "-";
  std::string pattern = "/tmp/" + t->prefix_ + "XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    return Error("Topology: mkdtemp " + pattern + ": " + std::strerror(errno));
  }
  t->scratch_ = pattern;
  if (auto built = t->build(); !built.ok()) {
    return built.error().withContext("Topology " + t->prefix_);  // `t` tears down what it built
  }
  return t;
}

Topology::~Topology() {
  for (const auto& weak : spawned_) {
    if (auto state = weak.lock()) state->killAndReap();
  }
  for (auto it = namespaces_.rbegin(); it != namespaces_.rend(); ++it) {
    if (it->second >= 0) ::close(it->second);
    if (!deleteNamedNamespace(it->first)) {
      std::fprintf(stderr, "Topology: could not delete namespace %s: %s\n", it->first.c_str(),
                   std::strerror(errno));
    }
  }
  if (!scratch_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(scratch_, ignored);
  }
}

std::vector<std::string> Topology::namespaces() const {
  std::vector<std::string> out;
  for (const auto& [name, fd] : namespaces_) out.push_back(name);
  return out;
}

std::string Topology::clientAddress(Family family) {
  return family == Family::kIPv4 ? "10.100.1.2" : "fd00:100:1::2";
}

std::string Topology::nodeAddress(Family family) {
  return family == Family::kIPv4 ? "10.100.1.1" : "fd00:100:1::1";
}

std::string Topology::nodeBackendAddress(Family family) {
  return family == Family::kIPv4 ? "10.100.2.1" : "fd00:100:2::1";
}

std::string Topology::backendAddress(size_t i, Family family) {
  // The IPv6 host part is the same digits as the IPv4 one, read as hex: ::10, ::11, ...
  return (family == Family::kIPv4 ? "10.100.2." : "fd00:100:2::") + std::to_string(10 + i);
}

std::string Topology::serviceCidr(Family family) {
  return family == Family::kIPv4 ? "10.96.0.0/16" : "fd00:96::/112";
}

Result<void> Topology::addNamespace(const std::string& name) {
  if (auto r = ip({"netns", "add", name}); !r.ok()) return r;
  std::string path = std::string(kNetnsDir) + "/" + name;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  namespaces_.emplace_back(name, fd);  // recorded even without an fd, so that it is deleted
  if (fd < 0) return Error("open " + path + ": " + std::strerror(errno));
  // No duplicate address detection: an address is usable the moment it is added (a tentative
  // IPv6 address cannot be bound, and a tentative link-local one delays neighbour discovery).
  for (const char* key : {"net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"}) {
    if (options_.ipv6) {
      if (auto r = writeSysctl(name, key, "0"); !r.ok()) return r;
    }
  }
  return {};
}

Result<void> Topology::build() {
  client_ = prefix_ + "client";
  node_ = prefix_ + "node";
  if (auto r = addNamespace(client_); !r.ok()) return r;
  if (auto r = addNamespace(node_); !r.ok()) return r;
  for (size_t i = 0; i < options_.backends; ++i) {
    backends_.push_back(prefix_ + "b" + std::to_string(i));
    if (auto r = addNamespace(backends_.back()); !r.ok()) return r;
  }

  // Links, created directly in their namespaces.
  if (auto r = ip({"link", "add", "eth0", "netns", client_, "type", "veth", "peer", "name", "cli0",
                   "netns", node_});
      !r.ok()) {
    return r;
  }
  for (size_t i = 0; i < backends_.size(); ++i) {
    if (auto r = ip({"link", "add", "eth0", "netns", backends_[i], "type", "veth", "peer", "name",
                     "be" + std::to_string(i), "netns", node_});
        !r.ok()) {
      return r;
    }
  }

  // Each namespace's own configuration, one `ip -batch` each.
  auto v4 = Family::kIPv4;
  auto v6 = Family::kIPv6;
  std::vector<std::pair<std::string, std::vector<std::string>>> batches;
  {
    std::vector<std::string> c = {"link set lo up", "link set eth0 up",
                                  "addr add " + clientAddress(v4) + "/24 dev eth0",
                                  "route add default via " + nodeAddress(v4),
                                  "route add " + serviceCidr(v4) + " via " + nodeAddress(v4)};
    if (options_.ipv6) {
      c.push_back("addr add " + clientAddress(v6) + "/64 dev eth0 nodad");
      c.push_back("route add default via " + nodeAddress(v6));
      c.push_back("route add " + serviceCidr(v6) + " via " + nodeAddress(v6));
    }
    batches.emplace_back(client_, std::move(c));
  }
  {
    std::vector<std::string> n = {"link set lo up",
                                  "link set cli0 up",
                                  "link add br0 type bridge",
                                  "link set br0 up",
                                  "addr add " + nodeAddress(v4) + "/24 dev cli0",
                                  "addr add " + nodeBackendAddress(v4) + "/24 dev br0"};
    // Hairpin mode on every bridge port, as the kubelet sets it (--hairpin-mode=hairpin-veth):
    // with br_netfilter, a pod's packet to its own Service is DNATed back to the port it came
    // in on, which a bridge refuses without it.
    for (size_t i = 0; i < backends_.size(); ++i) {
      n.push_back("link set be" + std::to_string(i) + " master br0");
      n.push_back("link set be" + std::to_string(i) + " type bridge_slave hairpin on");
      n.push_back("link set be" + std::to_string(i) + " up");
    }
    // As on a real node: the node itself reaches ClusterIPs through a route for the range.
    n.push_back("route add " + serviceCidr(v4) + " dev br0");
    if (options_.ipv6) {
      n.push_back("addr add " + nodeAddress(v6) + "/64 dev cli0 nodad");
      n.push_back("addr add " + nodeBackendAddress(v6) + "/64 dev br0 nodad");
      n.push_back("route add " + serviceCidr(v6) + " dev br0");
    }
    batches.emplace_back(node_, std::move(n));
  }
  for (size_t i = 0; i < backends_.size(); ++i) {
    std::vector<std::string> b = {"link set lo up", "link set eth0 up",
                                  "addr add " + backendAddress(i, v4) + "/24 dev eth0",
                                  "route add default via " + nodeBackendAddress(v4)};
    if (options_.ipv6) {
      b.push_back("addr add " + backendAddress(i, v6) + "/64 dev eth0 nodad");
      b.push_back("route add default via " + nodeBackendAddress(v6));
    }
    batches.emplace_back(backends_[i], std::move(b));
  }
  for (const auto& [ns, lines] : batches) {
    std::string file = scratch_ + "/" + ns + ".ip-batch";
    {
      std::ofstream out(file, std::ios::trunc);
      for (const std::string& line : lines) out << line << "\n";
      if (!out.good()) return Error("write " + file);
    }
    if (auto r = ip({"-batch", file}, ns); !r.ok()) {
      return r.error().withContext("configuring " + ns + " (" + file + ")");
    }
  }

  if (auto r = writeSysctl(node_, "net.ipv4.ip_forward", "1"); !r.ok()) return r;
  if (options_.ipv6) {
    if (auto r = writeSysctl(node_, "net.ipv6.conf.all.forwarding", "1"); !r.ok()) return r;
  }
  return {};
}

Result<void> Topology::ip(const std::vector<std::string>& args, const std::string& ns) const {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult r = run(ns, argv);
  if (!r.ok()) {
    return Error(joinArgs(argv) + (ns.empty() ? "" : " (in " + ns + ")") + ": " + r.describe() +
                 ": " + r.output);
  }
  return {};
}

Result<void> Topology::writeSysctl(const std::string& ns, const std::string& key,
                                   const std::string& value) const {
  // /proc/sys/net is the network namespace of the thread that opens it.
  std::string path = "/proc/sys/" + key;
  for (char& c : path) {
    if (c == '.') c = '/';
  }
  bool ok = within(ns, [&] {
    std::ofstream out(path);
    out << value << "\n";
    out.flush();
    return out.good();
  });
  if (!ok) return Error("sysctl " + key + "=" + value + " in " + ns + ": cannot write " + path);
  return {};
}

int Topology::namespaceFd(const std::string& ns) const {
  if (ns.empty()) return -1;
  for (const auto& [name, fd] : namespaces_) {
    if (name == ns) return fd >= 0 ? fd : -2;
  }
  return -2;
}

void Topology::enterOrAbort(int fd, const std::string& ns) {
  if (fd == -1) return;  // the caller's namespace
  if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
    std::fprintf(stderr, "Topology: cannot enter network namespace \"%s\": %s\n", ns.c_str(),
                 fd < 0 ? "not a namespace of this topology" : std::strerror(errno));
    std::abort();
  }
}

CommandResult runCommand(const std::vector<std::string>& argv, int fd,
                         std::chrono::milliseconds limit) {
  CommandResult result;
  std::string program = argv.empty() ? "" : findProgram(argv[0]);
  if (program.empty()) {
    result.output = "program not found: " + (argv.empty() ? "" : argv[0]);
    return result;
  }
  std::vector<char*> cargv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0) {
    result.output = std::string("pipe: ") + std::strerror(errno);
    return result;
  }
  int devNull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t parent = ::getpid();
  pid_t pid = devNull >= 0 ? ::fork() : -1;
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    if (fd >= 0 && ::setns(fd, CLONE_NEWNET) != 0) ::_exit(126);
    if (::dup2(devNull, 0) < 0 || ::dup2(pipeFds[1], 1) < 0 || ::dup2(pipeFds[1], 2) < 0) {
      ::_exit(127);
    }
    ::execv(program.c_str(), cargv.data());
    ::_exit(127);
  }
  ::close(pipeFds[1]);
  if (devNull >= 0) ::close(devNull);
  if (pid < 0) {
    ::close(pipeFds[0]);
    result.output = std::string("fork: ") + std::strerror(errno);
    return result;
  }

  auto deadline = Clock::now() + limit;
  char buf[65536];
  // Bounded: each pass either reads, reaches EOF, or waits for the rest of the time limit.
  for (size_t pass = 0; pass < 1'000'000; ++pass) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      result.timedOut = true;
      break;
    }
    pollfd p{pipeFds[0], POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      result.timedOut = n == 0;
      break;
    }
    ssize_t got = ::read(pipeFds[0], buf, sizeof(buf));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // EOF: every writer (the child and what it started) is done
    if (result.output.size() < kMaxOutput) result.output.append(buf, static_cast<size_t>(got));
  }
  ::close(pipeFds[0]);
  if (result.timedOut) ::kill(pid, SIGKILL);
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  std::optional<int> status = waitExit(pid, std::max(left, std::chrono::milliseconds(1000)));
  if (!status) {
    ::kill(pid, SIGKILL);
    status = waitExit(pid, 10s);
    result.timedOut = true;
  }
  result.status = status.value_or(-1);
  return result;
}

CommandResult Topology::run(const std::string& ns, const std::vector<std::string>& argv,
                            std::chrono::milliseconds limit) const {
  int fd = namespaceFd(ns);
  if (fd == -2) {
    CommandResult result;
    result.output = "not a namespace of this topology: " + ns;
    return result;
  }
  return runCommand(argv, fd, limit);
}

CommandResult Topology::shell(const std::string& ns, const std::string& script,
                              std::chrono::milliseconds limit) const {
  return run(ns, {"/bin/sh", "-c", script}, limit);
}

Result<Process> Topology::spawn(const std::string& ns, const std::vector<std::string>& argv,
                                const std::string& logName) {
  int fd = namespaceFd(ns);
  if (fd == -2) return Error("spawn: not a namespace of this topology: " + ns);
  if (argv.empty() || findProgram(argv[0]).empty()) {
    return Error("spawn: program not found: " + (argv.empty() ? "" : argv[0]));
  }
  auto state = std::make_shared<Process::State>();
  state->logPath = scratch_ + "/" + logName;
  state->pid = support::spawn(argv, state->logPath, state->logPath, fd);
  if (state->pid <= 0) {
    return Error("spawn " + joinArgs(argv) + " in " + ns + ": " + std::strerror(errno));
  }
  // Forget handles whose processes are gone, so a long test does not accumulate them.
  std::erase_if(spawned_, [](const std::weak_ptr<Process::State>& w) { return w.expired(); });
  spawned_.push_back(state);
  return Process(std::move(state));
}

void Topology::removeStaleNamespaces() {
  DIR* dir = ::opendir(kNetnsDir);
  if (dir == nullptr) return;
  static const std::regex kOurs("^cpt([0-9]+)-[0-9]+-.*");
  std::vector<std::string> stale;
  // Bounded by the directory's size; a machine with more namespaces than this has other trouble.
  for (size_t i = 0; i < 100'000; ++i) {
    dirent* e = ::readdir(dir);
    if (e == nullptr) break;
    std::cmatch m;
    if (!std::regex_match(e->d_name, m, kOurs)) continue;
    long pid = std::strtol(m[1].str().c_str(), nullptr, 10);
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) stale.push_back(e->d_name);
  }
  ::closedir(dir);
  for (const std::string& name : stale) {
    if (deleteNamedNamespace(name)) {
      std::fprintf(stderr, "Topology: deleted namespace %s left by a process that is gone\n",
                   name.c_str());
    }
  }
}

}  // namespace capstan::support
