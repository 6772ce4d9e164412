#include "dataplane/dpdk/shell.h"

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_rcu_qsbr.h>

#include <algorithm>
#include <cstring>
#include <thread>
#include <type_traits>

#include "dataplane/dpdk/eal.h"

namespace capstan::dataplane::dpdk {

static_assert(std::is_trivially_copyable_v<WorkerCounters>);
static_assert(sizeof(WorkerCounters) % sizeof(uint64_t) == 0);

WorkerCounters& WorkerCounters::operator+=(const WorkerCounters& other) {
  // Every field is a uint64_t count: add them word by word. tableGeneration is not a count: keep
  // the highest.
  const uint64_t generation = std::max(tableGeneration, other.tableGeneration);
  std::array<uint64_t, sizeof(WorkerCounters) / sizeof(uint64_t)> a, b;
  std::memcpy(a.data(), this, sizeof(*this));
  std::memcpy(b.data(), &other, sizeof(other));
  for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
  std::memcpy(static_cast<void*>(this), a.data(), sizeof(*this));
  tableGeneration = generation;
  return *this;
}

WorkerCounters ShellCounters::total() const {
  WorkerCounters sum;
  for (const WorkerCounters& w : workers) sum += w;
  return sum;
}

Shell::Shell(Port& data, Port* exception, const ShellConfig& config)
    : data_(data), exception_(exception), config_(config) {}

Result<std::unique_ptr<Shell>> Shell::create(Port& data, Port* exception,
                                             const ShellConfig& config) {
  if (!Eal::initialized()) return Error("DPDK shell: the EAL is not initialised");
  std::vector<unsigned> lcores = config.lcores.empty() ? Eal::workerLcores() : config.lcores;
  if (lcores.empty()) {
    return Error("DPDK shell: no worker lcore (give the EAL two lcores or more, e.g. -l 0,1)");
  }
  for (unsigned lcore : lcores) {
    if (lcore >= RTE_MAX_LCORE || !rte_lcore_is_enabled(lcore) || lcore == rte_get_main_lcore()) {
      return Error("DPDK shell: lcore " + std::to_string(lcore) +
                   " is not a worker lcore of the EAL (see -l/--lcores in --dpdk-eal-args)");
    }
  }
  const uint32_t workers = static_cast<uint32_t>(lcores.size());
  if (data.queues() < workers) {
    return Error("DPDK shell: data port " + data.name() + " has " + std::to_string(data.queues()) +
                 " queues for " + std::to_string(workers) + " worker lcores");
  }
  if (exception != nullptr && exception->queues() < workers) {
    return Error("DPDK shell: exception port " + exception->name() + " has " +
                 std::to_string(exception->queues()) + " queues for " + std::to_string(workers) +
                 " worker lcores");
  }
  const PacketCoreConfig& core = config.core;
  if (core.natPortLast < core.natPortFirst) {
    return Error("DPDK shell: empty NAT source port range");
  }
  const uint32_t ports = uint32_t{core.natPortLast} - core.natPortFirst + 1;
  if (ports < workers) {
    return Error("DPDK shell: " + std::to_string(ports) + " NAT source ports for " +
                 std::to_string(workers) + " worker lcores");
  }

  std::unique_ptr<Shell> shell(new Shell(data, exception, config));
  const size_t qsbrBytes = rte_rcu_qsbr_get_memsize(workers);
  shell->qsbr_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc("capstan_qsbr", qsbrBytes, 0));
  if (shell->qsbr_ == nullptr) {
    return Error("DPDK shell: RCU state: " + std::string(rte_strerror(rte_errno)));
  }
  if (rte_rcu_qsbr_init(shell->qsbr_, workers) != 0) {
    return Error("DPDK shell: rte_rcu_qsbr_init: " + std::string(rte_strerror(rte_errno)));
  }
  const uint32_t slice = ports / workers;
  for (uint32_t i = 0; i < workers; ++i) {
    auto w = std::make_unique<Worker>();
    w->shell = shell.get();
    w->index = i;
    w->lcore = lcores[i];
    PacketCoreConfig c = core;
    c.natPortFirst = static_cast<uint16_t>(core.natPortFirst + i * slice);
    c.natPortLast =
        static_cast<uint16_t>(i + 1 == workers ? core.natPortLast : c.natPortFirst + slice - 1);
    // Each lcore's flow index gets its own seed.
    c.flows.seed = core.flows.seed ^ (0x9e3779b97f4a7c15u * (i + 1));
    w->core = std::make_unique<PacketCore>(c);
    if (rte_rcu_qsbr_thread_register(shell->qsbr_, i) != 0) {
      return Error("DPDK shell: rte_rcu_qsbr_thread_register: " +
                   std::string(rte_strerror(rte_errno)));
    }
    shell->workers_.push_back(std::move(w));
  }
  const uint64_t hz = rte_get_tsc_hz();
  if (hz == 0) return Error("DPDK shell: unknown TSC frequency");
  shell->nsPerTscQ32_ =
      static_cast<uint64_t>((static_cast<unsigned __int128>(kNanosPerSecond) << 32) / hz);
  shell->tscBase_ = rte_rdtsc();
  return shell;
}

Shell::~Shell() {
  stop();
  // The loops have ended: their PacketCores hold their last table references, released here.
  workers_.clear();
  rte_free(qsbr_);
}

Status Shell::publish(std::shared_ptr<const VipTable> table) {
  std::lock_guard lock(publishMutex_);
  auto holder = std::make_unique<std::shared_ptr<const VipTable>>(std::move(table));
  published_.store(holder.get(), std::memory_order_release);
  version_.fetch_add(1, std::memory_order_release);
  // A grace period: every loop online when it starts passes a quiescent state after reading the
  // new version, so none still reads the previous holder. Offline loops (not started, or ended)
  // are not waited for.
  const uint64_t token = rte_rcu_qsbr_start(qsbr_);
  const auto deadline = std::chrono::steady_clock::now() + config_.publishTimeout;
  bool passed = false;
  for (uint64_t round = 0;; ++round) {
    if (rte_rcu_qsbr_check(qsbr_, token, false) == 1) {
      passed = true;
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    if (round > 1000) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  if (current_) retired_.push_back(std::move(current_));
  current_ = std::move(holder);
  if (!passed) {
    return Error("DPDK shell: a worker lcore did not pass a quiescent state within " +
                 std::to_string(config_.publishTimeout.count()) +
                 " ms; the new VIP table is published, the previous one is kept until it does");
  }
  // Every holder retired before this grace period is unreachable now; the tables they held are
  // released here unless a PacketCore still holds them (it lets go at its next table switch, and
  // by then this thread holds the newest table, so no lcore drops a last reference but at stop).
  retired_.clear();
  return okStatus();
}

Status Shell::start() {
  if (launched_) return Error("DPDK shell: already started");
  stop_.store(false, std::memory_order_relaxed);
  for (const auto& w : workers_) {
    if (rte_eal_get_lcore_state(w->lcore) != WAIT) {
      return Error("DPDK shell: lcore " + std::to_string(w->lcore) + " is busy");
    }
  }
  for (const auto& w : workers_) {
    w->inLoop.store(true, std::memory_order_release);
    if (int rc = rte_eal_remote_launch(&Shell::workerMain, w.get(), w->lcore); rc != 0) {
      w->inLoop.store(false, std::memory_order_release);
      stop();
      return Error("DPDK shell: rte_eal_remote_launch on lcore " + std::to_string(w->lcore) + ": " +
                   rte_strerror(-rc));
    }
    launched_ = true;
  }
  return okStatus();
}

void Shell::stop() {
  stop_.store(true, std::memory_order_relaxed);
  if (!launched_) return;
  for (const auto& w : workers_) rte_eal_wait_lcore(w->lcore);
  launched_ = false;
}

bool Shell::waitForExit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const bool any = std::any_of(workers_.begin(), workers_.end(), [](const auto& w) {
      return w->inLoop.load(std::memory_order_acquire);
    });
    if (!any) break;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  stop();
  return true;
}

bool Shell::running() const {
  return std::any_of(workers_.begin(), workers_.end(),
                     [](const auto& w) { return w->inLoop.load(std::memory_order_acquire); });
}

ShellCounters Shell::counters() const {
  ShellCounters out;
  for (const auto& w : workers_) {
    std::array<uint64_t, kCounterWords> words;
    for (size_t i = 0; i < kCounterWords; ++i) {
      words[i] = w->published[i].load(std::memory_order_relaxed);
    }
    WorkerCounters c;
    std::memcpy(static_cast<void*>(&c), words.data(), sizeof(c));
    out.lcores.push_back(w->lcore);
    out.workers.push_back(c);
  }
  return out;
}

int Shell::workerMain(void* arg) {
  Worker& w = *static_cast<Worker*>(arg);
  w.shell->run(w);
  return 0;
}

void Shell::pickUpTable(Worker& w) {
  const uint64_t version = version_.load(std::memory_order_acquire);
  if (version == w.seenVersion) return;
  w.seenVersion = version;
  const std::shared_ptr<const VipTable>* holder = published_.load(std::memory_order_acquire);
  if (holder == nullptr || holder->get() == w.core->vipTable()) return;
  // Cold: copies a shared_ptr (an atomic increment) and moves the per-VIP counters over.
  w.core->setVipTable(*holder);
  ++w.counters.tableSwitches;
}

void Shell::publishCounters(Worker& w) {
  WorkerCounters& c = w.counters;
  c.core = w.core->counters();
  c.flows = w.core->flows().counters();
  c.flowsInUse = w.core->flows().size();
  c.tableGeneration = w.core->vipTable()->generation();
  c.busyNs = ticksToNs(w.busyTicks);
  std::array<uint64_t, kCounterWords> words;
  std::memcpy(words.data(), &c, sizeof(c));
  // One writer per word: plain relaxed stores, no read-modify-write.
  for (size_t i = 0; i < kCounterWords; ++i) {
    w.published[i].store(words[i], std::memory_order_relaxed);
  }
}

void Shell::handleBurst(Worker& w, rte_mbuf** mbufs, uint16_t count, uint64_t nowNs) {
  std::array<std::span<uint8_t>, kBurst> frames;
  std::array<rte_mbuf*, kBurst> taken;  // the mbufs behind frames[]
  std::array<Verdict, kBurst> verdicts;
  std::array<rte_mbuf*, kBurst> forward, kernel, drop;
  uint16_t n = 0, nForward = 0, nKernel = 0, nDrop = 0;
  for (uint16_t i = 0; i < count; ++i) rte_prefetch0(rte_pktmbuf_mtod(mbufs[i], void*));
  for (uint16_t i = 0; i < count; ++i) {
    rte_mbuf* m = mbufs[i];
    w.counters.rxBytes += rte_pktmbuf_pkt_len(m);
    if (m->nb_segs != 1) {  // no scatter is configured: not expected, not parsed
      ++w.counters.multiSegment;
      drop[nDrop++] = m;
      continue;
    }
    frames[n] = {rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_data_len(m)};
    taken[n++] = m;
  }
  w.counters.rxPackets += count;
  w.core->processBurst(std::span(frames.data(), n), nowNs, std::span(verdicts.data(), n));
  for (uint16_t i = 0; i < n; ++i) {
    switch (verdicts[i].action) {
      case Action::kForward:
        if (config_.nextHopMac) {
          uint8_t* eth = frames[i].data();
          std::memcpy(eth, config_.nextHopMac->data(), 6);
          std::memcpy(eth + 6, data_.mac().data(), 6);
        }
        forward[nForward++] = taken[i];
        break;
      case Action::kToKernel:
        if (exception_ != nullptr) {
          kernel[nKernel++] = taken[i];
        } else {
          ++w.counters.noKernelPort;
          drop[nDrop++] = taken[i];
        }
        break;
      case Action::kDrop:
        drop[nDrop++] = taken[i];
        break;
    }
  }
  if (nForward > 0) {
    const uint16_t sent = data_.txBurst(static_cast<uint16_t>(w.index), forward.data(), nForward);
    w.counters.txForwarded += sent;
    if (sent < nForward) {
      w.counters.txFull += nForward - sent;
      rte_pktmbuf_free_bulk(forward.data() + sent, nForward - sent);
    }
  }
  if (nKernel > 0) {
    const uint16_t sent =
        exception_->txBurst(static_cast<uint16_t>(w.index), kernel.data(), nKernel);
    w.counters.txToKernel += sent;
    if (sent < nKernel) {
      w.counters.txFull += nKernel - sent;
      rte_pktmbuf_free_bulk(kernel.data() + sent, nKernel - sent);
    }
  }
  if (nDrop > 0) rte_pktmbuf_free_bulk(drop.data(), nDrop);
}

void Shell::run(Worker& w) {
  const uint16_t queue = static_cast<uint16_t>(w.index);
  rte_rcu_qsbr_thread_online(qsbr_, w.index);
  pickUpTable(w);
  std::array<rte_mbuf*, kBurst> mbufs;
  uint32_t idleRun = 0;
  bool sawInput = false;
  constexpr uint64_t kPublishEvery = 4096;  // rounds between counter refreshes while busy
  // Bounded by stop_ (checked every round) and, with exitWhenIdlePolls, by the input running dry.
  while (!stop_.load(std::memory_order_relaxed)) {
    ++w.counters.polls;
    const uint64_t roundStart = rte_rdtsc();
    const uint64_t now = ticksToNs(roundStart - tscBase_);
    const uint16_t received = data_.rxBurst(queue, mbufs.data(), kBurst);
    if (received > 0) handleBurst(w, mbufs.data(), received, now);
    uint16_t fromKernel = 0;
    if (exception_ != nullptr) {
      fromKernel = exception_->rxBurst(queue, mbufs.data(), kBurst);
      if (fromKernel > 0) {
        const uint16_t sent = data_.txBurst(queue, mbufs.data(), fromKernel);
        w.counters.fromKernel += sent;
        if (sent < fromKernel) {
          w.counters.txFull += fromKernel - sent;
          rte_pktmbuf_free_bulk(mbufs.data() + sent, fromKernel - sent);
        }
      }
    }
    if (received == 0 && fromKernel == 0) {
      ++w.counters.idlePolls;
      w.core->flows().expire(now, config_.expireBudget);
      if (idleRun++ == 0) publishCounters(w);
      if (config_.exitWhenIdlePolls != 0 && sawInput && idleRun >= config_.exitWhenIdlePolls) {
        break;
      }
    } else {
      idleRun = 0;
      sawInput = true;
      w.busyTicks += rte_rdtsc() - roundStart;
    }
    pickUpTable(w);
    rte_rcu_qsbr_quiescent(qsbr_, w.index);
    if (w.counters.polls % kPublishEvery == 0) publishCounters(w);
  }
  publishCounters(w);
  rte_rcu_qsbr_thread_offline(qsbr_, w.index);
  w.inLoop.store(false, std::memory_order_release);
}

}  // namespace capstan::dataplane::dpdk
