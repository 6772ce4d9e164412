// Topology: a small network of real hosts on one machine, made of network namespaces, for the L4
// tests that run a dataplane against the kernel. Created and torn down by each test (or case):
//
//   client ns                node ns                          backend ns b0, b1, ...
//   eth0 10.100.1.2/24 ---- cli0 10.100.1.1/24
//        fd00:100:1::2/64        fd00:100:1::1/64
//                           br0  10.100.2.1/24 --- be<i> ---- eth0 10.100.2.(10+i)/24
//                                fd00:100:2::1/64                  fd00:100:2::(10+i)/64
//
// The client and the backends route everything (and the client the service ranges
// 10.96.0.0/16 and fd00:96::/112 explicitly) through the node, which forwards (ip_forward and
// IPv6 forwarding on) and has a route for the service ranges itself, so that it can reach a
// ClusterIP as a real node does. Every namespace has `lo` up.
//
// Names: namespaces are "cpt<pid>-<n>-client", "-node", "-b<i>": unique per process and
// Topology. Interfaces are created directly inside their namespaces (never in the caller's),
// so their short names (eth0, cli0, br0, be<i>: all within IFNAMSIZ) cannot collide with
// anyone's. Namespaces left by a test process that died (SIGKILL, a crash) are deleted by the
// next Topology created on the machine.
//
// Who calls it: tests/integration (the harness test and the L4 flow table). Not thread-safe:
// use one Topology from one thread (within() runs its function on a helper thread and waits).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "model/result.h"

namespace capstan::support {

enum class Family { kIPv4, kIPv6 };

// What a command run to completion left.
struct CommandResult {
  int status = -1;        // wait status; -1 if it could not be started
  bool timedOut = false;  // killed at its time limit
  std::string output;     // stdout and stderr, interleaved as written

  bool ok() const;               // exited by itself with status 0
  int exitCode() const;          // the exit code, or -1 if it did not exit normally
  std::string describe() const;  // "exit 1", "killed by signal 9", "timed out", "not started"
};

// Runs `argv` (argv[0] a path or a name on $PATH) to completion, or kills it at `limit`: fork,
// setns into `netnsFd` if it is an open network namespace (-1: stay in the caller's), exec.
// stdin is /dev/null; stdout and stderr are captured together, up to 16 MiB.
CommandResult runCommand(const std::vector<std::string>& argv, int netnsFd = -1,
                         std::chrono::milliseconds limit = std::chrono::seconds(10));

// A long-running child process started by Topology::spawn. Killed (SIGKILL) and reaped when the
// last handle goes or the Topology that started it is destroyed, whichever comes first.
// Movable, not copyable.
class Process {
 public:
  Process() = default;
  Process(Process&&) noexcept = default;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  bool valid() const { return state_ != nullptr; }
  pid_t pid() const;
  // Whether it still runs; if it has exited, it is reaped here and its status kept.
  bool running();
  // The wait status of a process that has exited and been reaped.
  std::optional<int> exitStatus() const;
  bool signal(int sig);
  // Waits at most `limit` for it to exit; its wait status, or nullopt if it still runs.
  std::optional<int> waitExit(std::chrono::milliseconds limit);
  // SIGTERM, then SIGKILL if it still runs after `grace`; the wait status (nullopt if it had
  // already been reaped without a status, e.g. by the Topology).
  std::optional<int> stop(std::chrono::milliseconds grace = std::chrono::seconds(5));
  // SIGKILL and reap.
  void kill();
  // What it has written to stdout and stderr so far (one file, both streams).
  std::string output() const;
  const std::string& logPath() const;
  // Waits at most `limit` for `text` to appear in its output; false if it did not, or if the
  // process exited first.
  bool waitForOutput(const std::string& text, std::chrono::milliseconds limit);

  struct State;  // shared with the Topology's registry

 private:
  friend class Topology;
  explicit Process(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

struct TopologyOptions {
  size_t backends = 3;  // at most 50
  bool ipv6 = true;     // also give every host its IPv6 address (dual-stack)
};

class Topology {
 public:
  // Builds the whole network; an error names the step that failed (and everything built so far
  // is removed again).
  static Result<std::unique_ptr<Topology>> create(const TopologyOptions& options = {});

  // Kills every process spawned in it, deletes every namespace (and with them every link) it
  // created, and its scratch directory.
  ~Topology();
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;

  // Namespace names.
  const std::string& client() const { return client_; }
  const std::string& node() const { return node_; }
  const std::string& backend(size_t i) const { return backends_.at(i); }
  size_t backendCount() const { return backends_.size(); }
  // Every namespace it created, client first.
  std::vector<std::string> namespaces() const;
  // What every namespace name of this Topology starts with ("cpt<pid>-<n>-").
  const std::string& prefix() const { return prefix_; }
  bool ipv6() const { return options_.ipv6; }

  // Addresses, as text without a prefix length.
  static std::string clientAddress(Family family);
  // The node on the client link: where the client sends NodePort and health check traffic.
  static std::string nodeAddress(Family family);
  // The node on the backend bridge (the backends' gateway).
  static std::string nodeBackendAddress(Family family);
  static std::string backendAddress(size_t i, Family family);
  // The service (ClusterIP) ranges routed from the client and the node to the node.
  static std::string serviceCidr(Family family);

  // A directory of its own for logs and files (removed with it).
  const std::string& scratchDir() const { return scratch_; }

  // Runs `argv` (argv[0] a path or a name on $PATH) inside namespace `ns` (empty: the caller's)
  // to completion, or kills it at `limit`: fork, setns, exec. stdin is /dev/null; output is
  // capped at 16 MiB.
  CommandResult run(const std::string& ns, const std::vector<std::string>& argv,
                    std::chrono::milliseconds limit = std::chrono::seconds(10)) const;
  // `sh -c script` inside `ns` (for pipes: "iptables-save | grep KUBE-").
  CommandResult shell(const std::string& ns, const std::string& script,
                      std::chrono::milliseconds limit = std::chrono::seconds(10)) const;

  // Runs `fn` on a helper thread that has entered namespace `ns` (empty: the caller's), waits
  // for it and returns what
  // it returned: sockets it opens belong to `ns` (and keep working from any thread afterwards).
  // The network namespace is per thread, so nothing is forked and `fn` may return any value.
  // Entering a namespace this Topology holds open cannot fail short of a broken machine: if it
  // does, that is reported and the process aborts (the next Topology cleans up after it).
  template <typename F>
  auto within(const std::string& ns, F&& fn) const -> decltype(fn()) {
    using R = decltype(fn());
    int fd = namespaceFd(ns);
    if constexpr (std::is_void_v<R>) {
      std::thread t([&] {
        enterOrAbort(fd, ns);
        fn();
      });
      t.join();
    } else {
      std::optional<R> result;
      std::thread t([&] {
        enterOrAbort(fd, ns);
        result.emplace(fn());
      });
      t.join();
      return std::move(*result);
    }
  }

  // Starts `argv` inside `ns` in the background, its stdout and stderr to
  // scratchDir()/<logName>. The handle kills it when it goes; so does this Topology's
  // destructor. Call it from a thread that outlives the process (PR_SET_PDEATHSIG).
  Result<Process> spawn(const std::string& ns, const std::vector<std::string>& argv,
                        const std::string& logName);

  // Deletes namespaces "cpt<pid>-..." whose process no longer runs. create() calls it.
  static void removeStaleNamespaces();

 private:
  Topology() = default;
  Result<void> build();
  Result<void> addNamespace(const std::string& name);
  Result<void> ip(const std::vector<std::string>& args, const std::string& ns = "") const;
  Result<void> writeSysctl(const std::string& ns, const std::string& key,
                           const std::string& value) const;
  int namespaceFd(const std::string& ns) const;
  static void enterOrAbort(int fd, const std::string& ns);

  TopologyOptions options_;
  std::string prefix_;
  std::string client_, node_;
  std::vector<std::string> backends_;
  std::vector<std::pair<std::string, int>> namespaces_;  // name, open fd; in creation order
  std::string scratch_;
  std::vector<std::weak_ptr<Process::State>> spawned_;
};

}  // namespace capstan::support
