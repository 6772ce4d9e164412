// Shell: the DPDK side of the userspace L4 load balancer. One packet loop per worker lcore, each
// with its own PacketCore (flow table, NAT port range) and its own RX/TX queue pair on the data
// port and on the exception port:
//
//   data port RX  -> PacketCore::processBurst -> kForward: data port TX
//                                             -> kToKernel: exception port TX (the kernel's TAP)
//                                             -> kDrop: freed (counted by reason in the core)
//   exception port RX (the kernel's own traffic) -> data port TX, untouched
//
// The control thread (the thread that called Eal::init(), DPDK's main lcore) creates the Shell,
// publishes VipTables, starts and stops the loops and reads counters; none of that takes a lock
// the loops take. A new VipTable is published RCU-style with rte_rcu_qsbr: the loops pick it up
// between bursts and report a quiescent state after every burst; publish() returns once every
// running loop has moved on, and only then drops the control thread's reference to the previous
// table, so the last reference to an old table is released here, never on an lcore.
//
// Full-NAT with several lcores: each lcore NATs to its own slice of the source port range, and an
// endpoint's reply must reach the lcore that owns its destination port. That needs the NIC to
// steer by destination port (rte_flow rules per port range); until the shell installs them, run
// one worker lcore per port or expect replies on the wrong lcore to go to the kernel.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "dataplane/dpdk/port.h"
#include "dataplane/packet_core.h"
#include "dataplane/vip_table.h"
#include "model/result.h"

struct rte_rcu_qsbr;

namespace capstan::dataplane::dpdk {

struct ShellConfig {
  // Per worker: its PacketCore's configuration, with [natPortFirst, natPortLast] split evenly
  // between the workers.
  PacketCoreConfig core;
  // The worker lcores; empty: every worker lcore of the EAL.
  std::vector<unsigned> lcores;
  // --dpdk-exit-when-idle: a loop ends by itself after it has received something and then found
  // every queue empty this many times in a row (pcap-driven runs). 0: loops run until stop().
  uint32_t exitWhenIdlePolls = 0;
  // Forwarded frames leave with this destination MAC and the data port's MAC as source (a static
  // next hop). Unset: their Ethernet header is left as it came.
  std::optional<std::array<uint8_t, 6>> nextHopMac;
  // Flows examined for expiry after each empty poll (FlowTable::expire's budget).
  uint32_t expireBudget = 64;
  // How long publish() waits for the loops to pass a quiescent state.
  std::chrono::milliseconds publishTimeout{1000};
};

// One loop's counters. Plain 64-bit counts only (they are copied word by word).
struct WorkerCounters {
  uint64_t polls = 0;      // rounds of the loop
  uint64_t idlePolls = 0;  // rounds in which every queue was empty
  uint64_t busyNs = 0;     // time in rounds that received something (load = busy / elapsed)
  uint64_t rxPackets = 0;  // from the data port
  uint64_t rxBytes = 0;
  uint64_t txForwarded = 0;   // kForward frames the data port accepted
  uint64_t txToKernel = 0;    // kToKernel frames the exception port accepted
  uint64_t fromKernel = 0;    // frames from the exception port sent out of the data port
  uint64_t txFull = 0;        // frames a full TX queue refused (freed)
  uint64_t noKernelPort = 0;  // kToKernel frames with no exception port (freed)
  uint64_t multiSegment = 0;  // chained mbufs, not handled (freed)
  uint64_t tableSwitches = 0;
  uint64_t tableGeneration = 0;  // VipTable::generation() in use
  uint64_t flowsInUse = 0;
  PacketCoreCounters core;
  FlowTable::Counters flows;

  WorkerCounters& operator+=(const WorkerCounters& other);
};

struct ShellCounters {
  std::vector<unsigned> lcores;
  std::vector<WorkerCounters> workers;  // workers[i] ran on lcores[i]
  WorkerCounters total() const;
};

class Shell {
 public:
  // `data` and `exception` (null: kToKernel frames are dropped and counted) must outlive the
  // Shell and have a queue pair per worker lcore. Control thread, after Eal::init().
  static Result<std::unique_ptr<Shell>> create(Port& data, Port* exception,
                                               const ShellConfig& config);
  ~Shell();
  Shell(const Shell&) = delete;
  Shell& operator=(const Shell&) = delete;

  // Makes `table` the one every loop uses from its next burst on. Before start() it simply sets
  // the table the loops start with. Fails only when a loop does not pass a quiescent state within
  // publishTimeout: the new table is published all the same, and the previous one is freed at a
  // later publish().
  Status publish(std::shared_ptr<const VipTable> table);

  // Launches the loops on their lcores; fails when one is busy.
  Status start();
  // Asks the loops to end and waits for them (each returns within one round). Idempotent.
  void stop();
  // Waits until every loop has ended by itself (exitWhenIdlePolls) or `timeout` passed; true when
  // they all did (the Shell is then stopped).
  bool waitForExit(std::chrono::milliseconds timeout);
  bool running() const;

  // Live while running (refreshed by each loop every few thousand rounds and on every idle
  // stretch), exact once stopped.
  ShellCounters counters() const;
  size_t workers() const { return workers_.size(); }

 private:
  static constexpr uint16_t kBurst = 32;
  static constexpr size_t kCounterWords = sizeof(WorkerCounters) / sizeof(uint64_t);

  struct alignas(64) Worker {
    Shell* shell = nullptr;
    uint32_t index = 0;  // also the RCU thread id and the queue id
    unsigned lcore = 0;
    std::unique_ptr<PacketCore> core;
    uint64_t seenVersion = 0;
    uint64_t busyTicks = 0;
    WorkerCounters counters;  // the loop's own
    std::array<std::atomic<uint64_t>, kCounterWords> published{};
    std::atomic<bool> inLoop{false};
  };

  Shell(Port& data, Port* exception, const ShellConfig& config);
  static int workerMain(void* arg);
  void run(Worker& w);
  void handleBurst(Worker& w, rte_mbuf** mbufs, uint16_t count, uint64_t nowNs);
  void pickUpTable(Worker& w);
  void publishCounters(Worker& w);
  uint64_t ticksToNs(uint64_t ticks) const {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(ticks) * nsPerTscQ32_) >> 32);
  }

  Port& data_;
  Port* exception_;
  ShellConfig config_;
  std::vector<std::unique_ptr<Worker>> workers_;
  rte_rcu_qsbr* qsbr_ = nullptr;

  // The published table. A loop reads version_ each round and, when it changed, copies the
  // shared_ptr *published_ into its PacketCore; published_ is replaced (and the holder it pointed
  // to freed) by the control thread only after a grace period.
  std::mutex publishMutex_;  // control side only
  std::atomic<const std::shared_ptr<const VipTable>*> published_{nullptr};
  std::atomic<uint64_t> version_{0};
  std::unique_ptr<std::shared_ptr<const VipTable>> current_;
  std::vector<std::unique_ptr<std::shared_ptr<const VipTable>>> retired_;

  std::atomic<bool> stop_{false};
  bool launched_ = false;
  uint64_t tscBase_ = 0;
  uint64_t nsPerTscQ32_ = 0;  // nanoseconds per TSC tick, 32.32 fixed point
};

}  // namespace capstan::dataplane::dpdk
