// The iptables mode applied for real: IptablesProxier with the exec runner (iptables-restore)
// in a network namespace of its own, for 1,000 / 10,000 / 30,000 Services of 10 endpoints each
// (bench/iptables/bench_cluster.h), on each iptables backend, beside kube-proxy's two ways of
// applying the same change, measured in the same run on the same kernel:
//
//   Capstan first full sync        IptablesProxier::sync(state, full): iptables-save of nat, one
//                                  restore per family, the jumps from the built-in chains;
//   Capstan partial sync           sync(state', {the changed Service's ports}) after one endpoint
//                                  flipped readiness: the canary check and one restore of the
//                                  changed chains and top-level rules (the state flips back and
//                                  forth, median of --reps);
// and, each payload made by the same generator and timed as the iptables-restore --noflush call
// alone (kube-proxy's own rule generation left out, so its figures are lower bounds):
//   Capstan partial, restore alone Capstan's partial payload;
//   kube-proxy <1.28               every sync restores the whole ruleset in one call onto the one
//                                  in place;
//   kube-proxy 1.28+               every sync restores all top-level chains (one KUBE-SERVICES
//                                  rule per service port) and the changed Service's chains.
// Ratios: Capstan's partial restore over each anchor's, time and bytes.
//
// When the proxier's full sync fails (the exec runner gives a tool 60 s: iptables-restore
// --noflush is superlinear in the number of chains, see the report of the run), the ruleset is
// loaded without --noflush instead so the restore-only rows are still measured on a full table.
//
// Each (backend, size) runs in a forked child that unshare(CLONE_NEWNET)s: the rules go with the
// namespace when the child exits, whatever happens. Every tool run has a time limit (the exec
// runner's 60 s, --prime-timeout-s for the load without --noflush), every loop a repetition
// count and a time budget, and the parent kills a child past --timeout-s.
//
//   iptables_proxier_bench [--services 1000,10000,30000] [--backends nft,legacy] [--reps 11]
//                          [--prime-timeout-s 600] [--timeout-s 1800]
//
// Needs root. Exit status 0 when every measurement ran (goals missed or not), 1 otherwise.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/iptables/bench_cluster.h"
#include "iptables/iptables_proxier.h"
#include "iptables/iptables_runner.h"
#include "iptables/process.h"
#include "iptables/rules.h"

namespace capstan::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kEndpoints = 10;
constexpr size_t kGoalServices = 10'000;
constexpr double kGoalFullS = 2.0;
constexpr double kGoalPartialS = 0.050;
constexpr size_t kMaxReps = 101;
// Per phase of a child: once past it, a phase stops after the repetition under way.
constexpr double kPhaseBudgetS = 120;
constexpr int kMaxAnchorFullReps = 5;  // each restores the whole ruleset

// What one child measured; sent to the parent through a pipe as bytes (same binary, same
// layout), hence plain arrays. A phase that failed has its message in its error field; `ok`
// says whether the restore-only phases ran at all.
struct Figures {
  int ok = 0;
  char error[512] = {};
  // Capstan, through IptablesProxier.
  char fullError[512] = {};
  double fullS = 0;
  size_t fullBytes = 0, fullRules = 0;
  double partialS = 0, partialMaxS = 0;
  size_t partialBytes = 0, partialRules = 0;
  int partialReps = 0;
  int partialWasFull = 0;
  // When the full sync failed: the whole ruleset loaded without --noflush instead.
  double primeS = 0;
  // Restore-only: each payload fed to iptables-restore --noflush, generation left out.
  double capstanRestoreS = 0;
  size_t capstanRestoreBytes = 0, capstanRestoreRules = 0;
  int capstanRestoreReps = 0;
  char kpFullError[512] = {};
  double kpFullS = 0;
  size_t kpFullBytes = 0, kpFullRules = 0;
  int kpFullReps = 0;
  double kp128S = 0;
  size_t kp128Bytes = 0, kp128Rules = 0;
  int kp128Reps = 0;
  char kp128Error[512] = {};
};

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <size_t N>
void setText(char (&field)[N], const std::string& message) {
  std::snprintf(field, N, "%s", message.c_str());
}

void fail(Figures& f, const std::string& message) {
  setText(f.error, message);
  f.ok = 0;
}

// The options IptablesProxier computes in a fresh namespace (no node address but loopback,
// NodePorts on every local address), for the restore-only payloads.
iptables::RuleOptions anchorOptions() {
  iptables::RuleOptions o;
  o.family = IpFamily::kV4;
  o.clusterCIDR = *Cidr::parse("10.128.0.0/9");
  std::ifstream liberal("/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal");
  std::string value;
  o.conntrackTcpLiberal = (liberal >> value) && value == "1";
  return o;
}

// Feeds `payload` to iptables-restore --noflush `reps` times at most (fewer once past the phase
// budget, or after a failure), alternating between the two states: `payloads[s]` takes the
// kernel from state 1 - s to state s, and `current` tracks which one the kernel holds.
// On failure `failedS` is how long the failed call took.
Status restoreReps(iptables::IptablesRunner& runner, const iptables::Payload (&payloads)[2],
                   int reps, int& current, std::vector<double>& times, double& failedS) {
  auto phase = Clock::now();
  for (int i = 0; i < reps && (i == 0 || since(phase) < kPhaseBudgetS); ++i) {
    auto t0 = Clock::now();
    Status st = runner.restore(IpFamily::kV4, payloads[1 - current].text);
    if (!st.ok()) {
      failedS = since(t0);
      return st;
    }
    times.push_back(since(t0));
    current = 1 - current;
  }
  return okStatus();
}

// Runs in the child, inside its own network namespace.
void measure(const std::string& backend, const BenchCluster& cluster, int reps, int primeTimeoutS,
             Figures& f) {
  if (!iptables::makeExecRunner(backend)->available(IpFamily::kV4)) {
    return fail(f, "iptables-restore for backend \"" + backend + "\" is not available");
  }
  const std::shared_ptr<const ProxyState> states[2] = {cluster.state(), cluster.withRevision(1)};
  const std::vector<ServicePortName> changed = cluster.changedPorts();

  // Capstan: the first full sync, then partial syncs flipping the endpoint back and forth.
  iptables::IptablesConfig config{.clusterCIDRs = {*Cidr::parse("10.128.0.0/9")}};
  iptables::IptablesProxier proxier(config, iptables::makeExecRunner(backend));
  ChangeSet full;
  full.full = true;
  auto t0 = Clock::now();
  SyncResult r = proxier.sync(*states[0], full);
  f.fullS = since(t0);
  int current = 0;  // the state in the kernel
  std::vector<double> times;
  if (!r.ok()) {
    setText(f.fullError, r.error().message());
  } else {
    f.fullBytes = r->bytesWritten;
    f.fullRules = r->rulesWritten;
    auto phase = Clock::now();
    for (int i = 0; i < reps && (i == 0 || since(phase) < kPhaseBudgetS); ++i) {
      ChangeSet changes;
      changes.changed = changed;
      t0 = Clock::now();
      r = proxier.sync(*states[1 - current], changes);
      times.push_back(since(t0));
      if (!r.ok()) return fail(f, "partial sync: " + r.error().message());
      current = 1 - current;
      f.partialWasFull |= r->full ? 1 : 0;
      f.partialBytes = std::max(f.partialBytes, r->bytesWritten);
      f.partialRules = std::max(f.partialRules, r->rulesWritten);
    }
    f.partialS = median(times);
    f.partialMaxS = *std::max_element(times.begin(), times.end());
    f.partialReps = static_cast<int>(times.size());
  }

  // The restore-only payloads, from the same generator: the whole ruleset of each state,
  // Capstan's partial payload and kube-proxy 1.28's from each state to the other.
  const iptables::RuleOptions o = anchorOptions();
  iptables::AppliedRules applied[2];
  iptables::Payload fullOf[2], kp128To[2], capstanTo[2];
  for (int s = 0; s < 2; ++s) fullOf[s] = iptables::fullPayload(*states[s], o, {}, applied[s]);
  for (int s = 0; s < 2; ++s) {
    iptables::AppliedUpdates updates;
    capstanTo[s] = iptables::partialPayload(*states[s], o, changed, applied[1 - s], updates);
    std::set<std::string> now = chainsOf(applied[s], changed);
    std::set<std::string> removed;
    for (const std::string& chain : chainsOf(applied[1 - s], changed)) {
      if (!now.count(chain)) removed.insert(chain);
    }
    kp128To[s] = kubeProxyPartialPayload(fullOf[s].text, now, removed);
  }

  if (!r.ok()) {
    // No ruleset in place: load it without --noflush (which replaces the tables wholesale, fine
    // in this namespace of ours, and is much faster with the nft backend), then go on.
    iptables::CommandLimits limits;
    limits.timeout = std::chrono::seconds(primeTimeoutS);
    t0 = Clock::now();
    auto run = iptables::runCommand({"iptables-" + backend + "-restore", "-w", "5"},
                                    fullOf[current].text, limits);
    f.primeS = since(t0);
    if (!run.ok())
      return fail(f, "loading the ruleset without --noflush: " + run.error().message());
    if (!run->succeeded()) {
      return fail(f, "loading the ruleset without --noflush: " + iptables::describeExit(*run) +
                         ": " + run->stderrText.substr(0, 300));
    }
  }
  auto runner = iptables::makeExecRunner(backend);
  if (!r.ok()) {
    // The jumps from the built-in chains, as the proxier adds them: with the nft backend they
    // make every later transaction on the table dearer (the kernel validates what the hooks
    // reach), so the restore-only rows must not go without them.
    for (const iptables::JumpRule& jump : iptables::jumpRules(o)) {
      std::string_view table = jump.table;
      Status st = runner->ensureRule(IpFamily::kV4,
                                     table == "nat"      ? iptables::Table::kNat
                                     : table == "mangle" ? iptables::Table::kMangle
                                                         : iptables::Table::kFilter,
                                     jump.from, jump.args);
      if (!st.ok()) return fail(f, "adding the jumps: " + st.error().message());
    }
  }

  double failedS = 0;
  times.clear();
  if (Status st = restoreReps(*runner, capstanTo, reps, current, times, failedS); !st.ok()) {
    return fail(f, "Capstan partial restore: " + st.error().message());
  }
  f.capstanRestoreS = median(times);
  f.capstanRestoreReps = static_cast<int>(times.size());
  f.capstanRestoreBytes = std::max(capstanTo[0].text.size(), capstanTo[1].text.size());
  f.capstanRestoreRules = std::max(capstanTo[0].rules, capstanTo[1].rules);

  // A failure here (the tool's time limit) leaves the kernel as it was: go on without it.
  times.clear();
  if (Status st =
          restoreReps(*runner, fullOf, std::min(reps, kMaxAnchorFullReps), current, times, failedS);
      !st.ok()) {
    setText(f.kpFullError, st.error().message());
  }
  f.kpFullS = times.empty() ? failedS : median(times);
  f.kpFullReps = static_cast<int>(times.size());
  f.kpFullBytes = fullOf[0].text.size();
  f.kpFullRules = fullOf[0].rules;

  times.clear();
  if (Status st = restoreReps(*runner, kp128To, reps, current, times, failedS); !st.ok()) {
    setText(f.kp128Error, st.error().message());
  }
  f.kp128S = times.empty() ? failedS : median(times);
  f.kp128Reps = static_cast<int>(times.size());
  f.kp128Bytes = std::max(kp128To[0].text.size(), kp128To[1].text.size());
  f.kp128Rules = std::max(kp128To[0].rules, kp128To[1].rules);
  f.ok = 1;
}

// Forks a child in a new network namespace to measure; waits at most `timeoutS`.
Figures measureInChild(const std::string& backend, const BenchCluster& cluster, int reps,
                       int primeTimeoutS, int timeoutS) {
  Figures f;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    fail(f, std::string("pipe: ") + std::strerror(errno));
    return f;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = ::fork();
  if (pid < 0) {
    fail(f, std::string("fork: ") + std::strerror(errno));
    ::close(fds[0]);
    ::close(fds[1]);
    return f;
  }
  if (pid == 0) {
    ::close(fds[0]);
    ::setpgid(0, 0);  // so a timeout kills the tools it runs too
    Figures out;
    if (::unshare(CLONE_NEWNET) != 0) {
      fail(out, std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno) +
                    " (needs root: CAP_SYS_ADMIN)");
    } else {
      measure(backend, cluster, reps, primeTimeoutS, out);
    }
    ssize_t n = ::write(fds[1], &out, sizeof(out));
    ::_exit(n == static_cast<ssize_t>(sizeof(out)) ? 0 : 1);
  }
  ::close(fds[1]);
  ::setpgid(pid, pid);  // the child does it too; whichever runs first
  int status = 0;
  auto t0 = Clock::now();
  bool done = false;
  for (;;) {  // bounded by the timeout
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      done = true;
      break;
    }
    if (w < 0 && errno != EINTR) break;
    if (since(t0) > timeoutS) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!done) {
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    fail(f, "timed out after " + std::to_string(timeoutS) + " s; killed");
    ::close(fds[0]);
    return f;
  }
  ssize_t n = ::read(fds[0], &f, sizeof(f));
  ::close(fds[0]);
  if (n != static_cast<ssize_t>(sizeof(f))) {
    f = Figures{};
    fail(f, "the child died without a result (status " + std::to_string(status) + ")");
  }
  return f;
}

std::vector<std::string> split(std::string_view text) {
  std::vector<std::string> out;
  for (size_t i = 0; i <= text.size() && out.size() < 64;) {
    size_t comma = std::min(text.find(',', i), text.size());
    if (comma > i) out.emplace_back(text.substr(i, comma - i));
    i = comma + 1;
  }
  return out;
}

[[noreturn]] void usage(const std::string& problem) {
  std::fprintf(stderr,
               "iptables_proxier_bench: %s\nusage: iptables_proxier_bench [--services "
               "1000,10000,30000] [--backends nft,legacy] [--reps 11] [--prime-timeout-s 600] "
               "[--timeout-s 1800]\n",
               problem.c_str());
  std::exit(2);
}

int positive(std::string_view flag, const std::string& text, long max) {
  char* end = nullptr;
  long v = std::strtol(text.c_str(), &end, 10);
  if (end == text.c_str() || *end != '\0' || v < 1 || v > max) {
    usage(std::string(flag) + ": expected an integer in [1, " + std::to_string(max) + "], got \"" +
          text + "\"");
  }
  return static_cast<int>(v);
}

std::string bytesText(size_t bytes) {
  char buf[32];
  if (bytes >= 1'000'000) {
    std::snprintf(buf, sizeof(buf), "%.1f MB", static_cast<double>(bytes) / 1e6);
  } else if (bytes >= 1'000) {
    std::snprintf(buf, sizeof(buf), "%.1f kB", static_cast<double>(bytes) / 1e3);
  } else {
    std::snprintf(buf, sizeof(buf), "%zu B", bytes);
  }
  return buf;
}

struct Row {
  std::string backend;
  size_t services = 0, ports = 0, endpoints = 0;
  Figures f;
};

void printRow(const Row& row) {
  const Figures& f = row.f;
  // Ratios: Capstan's partial restore over the anchor's, both the restore call alone.
  auto line = [&](const char* approach, double s, int n, size_t bytes, size_t rules,
                  const char* error, bool anchor) {
    std::printf("%-7s %8zu  %-38s ", row.backend.c_str(), row.services, approach);
    if (error != nullptr && error[0] != '\0' && n == 0) {
      std::printf("FAILED after %.1f s: %.160s\n", s, error);
      return;
    }
    char ratios[64] = "";
    if (anchor && s > 0) {
      std::snprintf(ratios, sizeof(ratios), "%11.4f %12.6f", f.capstanRestoreS / s,
                    static_cast<double>(f.capstanRestoreBytes) / static_cast<double>(bytes));
    }
    std::printf("%10.1f ms %3d %9s %9zu %s\n", s * 1e3, n, bytesText(bytes).c_str(), rules, ratios);
  };
  line("Capstan first full sync (proxier)", f.fullS, f.fullError[0] ? 0 : 1, f.fullBytes,
       f.fullRules, f.fullError, false);
  if (!f.fullError[0]) {
    line(f.partialWasFull ? "Capstan partial sync (WAS FULL)" : "Capstan partial sync (proxier)",
         f.partialS, f.partialReps, f.partialBytes, f.partialRules, nullptr, false);
  }
  if (!f.ok) {
    std::printf("%-7s %8zu  FAILED: %s\n", row.backend.c_str(), row.services, f.error);
    return;
  }
  if (f.primeS > 0) {
    std::printf("%-7s %8zu  %-38s %10.1f ms   1 %9s\n", row.backend.c_str(), row.services,
                "(ruleset loaded without --noflush)", f.primeS * 1e3,
                bytesText(f.kpFullBytes).c_str());
  }
  line("Capstan partial, restore alone", f.capstanRestoreS, f.capstanRestoreReps,
       f.capstanRestoreBytes, f.capstanRestoreRules, nullptr, false);
  line("kube-proxy <1.28: full restore", f.kpFullS, f.kpFullReps, f.kpFullBytes, f.kpFullRules,
       f.kpFullError, true);
  line("kube-proxy 1.28+: top-level + changed", f.kp128S, f.kp128Reps, f.kp128Bytes, f.kp128Rules,
       f.kp128Error, true);
}

}  // namespace
}  // namespace capstan::bench

int main(int argc, char** argv) {
  using namespace capstan::bench;
  std::vector<std::string> services = {"1000", "10000", "30000"};
  std::vector<std::string> backends = {"nft", "legacy"};
  int reps = 11, primeTimeoutS = 600, timeoutS = 1800;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(std::string(arg) + ": needs a value");
      return argv[++i];
    };
    if (arg == "--services") {
      services = split(value());
    } else if (arg == "--backends") {
      backends = split(value());
    } else if (arg == "--reps") {
      reps = positive(arg, value(), static_cast<long>(kMaxReps));
    } else if (arg == "--prime-timeout-s") {
      primeTimeoutS = positive(arg, value(), 24 * 3600);
    } else if (arg == "--timeout-s") {
      timeoutS = positive(arg, value(), 24 * 3600);
    } else if (arg == "--help" || arg == "-h") {
      usage("applies the iptables mode's rules for real and prints times, bytes and ratios");
    } else {
      usage("unknown argument \"" + std::string(arg) + "\"");
    }
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr,
                 "iptables_proxier_bench: needs root (a network namespace, iptables-restore)\n");
    return 2;
  }

  std::vector<Row> rows;
  bool failed = false;
  for (const std::string& s : services) {
    const size_t n = static_cast<size_t>(positive("--services", s, 1'000'000));
    auto t0 = Clock::now();
    const BenchCluster cluster(n, kEndpoints);
    std::printf(
        "%zu Services x %zu endpoints: %zu service ports, %zu endpoints (built in %.1f s)\n", n,
        kEndpoints, cluster.servicePortCount(), cluster.endpointCount(), since(t0));
    for (const std::string& backend : backends) {
      Row row{backend, n, cluster.servicePortCount(), cluster.endpointCount(), {}};
      t0 = Clock::now();
      row.f = measureInChild(backend, cluster, reps, primeTimeoutS, timeoutS);
      failed |= !row.f.ok;
      std::printf("  %-6s %s in %.1f s\n", backend.c_str(), row.f.ok ? "done" : "FAILED",
                  since(t0));
      std::fflush(stdout);
      rows.push_back(row);
    }
  }

  std::printf(
      "\nMedian of n repetitions (Capstan's full sync: once). \"restore alone\" rows time the "
      "iptables-restore --noflush call\nof a payload made by the same generator (no rule "
      "generation, no canary check), the kube-proxy anchors included:\nthose are lower bounds "
      "for kube-proxy. Ratios: Capstan partial restore / anchor restore, time and bytes.\n\n");
  std::printf("%-7s %8s  %-38s %13s %3s %9s %9s %11s %12s\n", "backend", "services", "approach",
              "time", "n", "bytes", "rules", "time ratio", "bytes ratio");
  for (const Row& row : rows) printRow(row);

  std::printf(
      "\nGoals at %zu Services x %zu endpoints: full sync < %.0f s, one-endpoint change "
      "< %.0f ms\n",
      kGoalServices, kEndpoints, kGoalFullS, kGoalPartialS * 1e3);
  bool any = false;
  for (const Row& row : rows) {
    if (row.services != kGoalServices) continue;
    any = true;
    const Figures& f = row.f;
    if (f.fullError[0]) {
      std::printf("  %-7s full sync FAIL (failed after %.1f s)", row.backend.c_str(), f.fullS);
    } else {
      std::printf("  %-7s full sync %.3f s %s", row.backend.c_str(), f.fullS,
                  f.fullS < kGoalFullS ? "PASS" : "FAIL");
    }
    if (f.partialReps > 0) {
      std::printf("; one-endpoint change %.1f ms (max %.1f) %s\n", f.partialS * 1e3,
                  f.partialMaxS * 1e3,
                  f.partialS < kGoalPartialS && !f.partialWasFull ? "PASS" : "FAIL");
    } else if (f.capstanRestoreReps > 0) {
      std::printf("; one-endpoint change (restore alone: no proxier sync) %.1f ms %s\n",
                  f.capstanRestoreS * 1e3, f.capstanRestoreS < kGoalPartialS ? "PASS" : "FAIL");
    } else {
      std::printf("; one-endpoint change not measured\n");
    }
  }
  if (!any) std::printf("  (not measured: run with --services including %zu)\n", kGoalServices);
  return failed ? 1 : 0;
}
