// The DPDK shell (dataplane/dpdk/shell.h) on net_ring: Mpps per worker lcore including the driver
// (ring RX and TX bursts, mbuf handling, prefetch, PacketCore, the loop's RCU and counter work).
//
// The data port is a net_ring ethdev over two rte_rings. Each round, the main lcore fills the RX
// ring with N frames (IPv4 TCP, 54 bytes, one mbuf each), starts the loop with exit-when-idle and
// waits; the loop forwards them into the TX ring. Figures are packets over the loop's busy time
// (WorkerCounters::busyNs: rounds that received something), so the refill, the launch and the
// idle polls at the end are not counted; the main lcore sleeps while the worker runs.
//
//  - new flows: N SYNs of N flows never seen (Maglev choice, insert, NAT), each round new ones;
//  - established: the last round's N packets again, each finding its flow (lookup, NAT).
// Figures are medians over the rounds: the machine may be shared, and a preempted worker counts
// the lost time as busy.
//
// 100 VIPs x 100 endpoints as in bench/dataplane/packet_core_bench.cc. Anchors measured elsewhere
// for the same job on one core: Katran (XDP) 5.2 Mpps, IPVS 1.2 Mpps (XDP paper, CoNEXT 2018),
// DPVS 2.9 Mpps UDP with one worker. Needs root (the EAL) and two CPUs.
//
//   shell_bench [packets per round, default 262144] [rounds of each kind, default 3]
#include <dlfcn.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench/dataplane/bench_vips.h"
#include "dataplane/dpdk/eal.h"
#include "dataplane/dpdk/port.h"
#include "dataplane/dpdk/shell.h"
#include "tests/dataplane/packet_builder.h"
#include "tests/dataplane/state_builder.h"

namespace capstan::dataplane {
namespace {

using bench::kEndpointsPerVip;
using bench::kVips;

std::shared_ptr<const VipTable> vipTable() { return bench::buildBenchVipTable(); }

// N SYNs of distinct flows: clients 198.x.y.z from `firstClient` on, ports 1024.., VIPs round
// robin.
std::vector<test::Frame> synFrames(uint32_t count, uint32_t firstClient) {
  std::vector<test::Frame> frames;
  frames.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t client = firstClient + i / 50000, port = 1024 + i % 50000;
    const std::string src = "198." + std::to_string(client / 65536 % 256) + "." +
                            std::to_string(client / 256 % 256) + "." + std::to_string(client % 256);
    const std::string dst = "203.0.113." + std::to_string(i % kVips);
    frames.push_back(
        test::PacketBuilder().ipv4(src, dst).tcp(static_cast<uint16_t>(port), 80, kTcpSyn).build());
  }
  return frames;
}

// rte_eth_from_rings() lives in the net_ring driver, which the EAL loads as a plugin: look it up
// there rather than link a second copy of the driver.
using FromRings = int (*)(const char*, rte_ring* const[], unsigned, rte_ring* const[], unsigned,
                          unsigned);

FromRings fromRings() {
  void* handle = dlopen("librte_net_ring.so.23", RTLD_NOW | RTLD_NOLOAD);
  if (handle == nullptr) handle = dlopen("librte_net_ring.so.23", RTLD_NOW);
  if (handle == nullptr) return nullptr;
  return reinterpret_cast<FromRings>(dlsym(handle, "rte_eth_from_rings"));
}

// Puts frames[i] into the i-th of `mbufs`, queued on `ring`.
bool fill(rte_ring* ring, std::vector<rte_mbuf*>& mbufs, const std::vector<test::Frame>& frames) {
  for (size_t i = 0; i < frames.size(); ++i) {
    rte_mbuf* m = mbufs[i];
    rte_pktmbuf_reset(m);
    char* data = rte_pktmbuf_append(m, static_cast<uint16_t>(frames[i].size()));
    if (data == nullptr) return false;
    std::memcpy(data, frames[i].data(), frames[i].size());
  }
  return rte_ring_enqueue_bulk(ring, reinterpret_cast<void* const*>(mbufs.data()),
                               static_cast<unsigned>(mbufs.size()), nullptr) == mbufs.size();
}

int run(uint32_t packets, int rounds) {
  const std::string args =
      "-l 0,1 --no-huge -m 1024 --no-pci --no-shconf --no-telemetry "
      "--file-prefix capstan-bench-" +
      std::to_string(getpid()) + " --log-level lib.eal:warning";
  if (Status s = dpdk::Eal::init(args); !s) {
    std::fprintf(stderr, "%s\n", s.error().message().c_str());
    return 1;
  }
  const FromRings from = fromRings();
  if (from == nullptr) {
    std::fprintf(stderr, "rte_eth_from_rings not found: %s\n", dlerror());
    return 1;
  }
  const unsigned ringSize = rte_align32pow2(packets + 1);
  rte_ring* rx =
      rte_ring_create("bench_rx", ringSize, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  rte_ring* tx =
      rte_ring_create("bench_tx", ringSize, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  rte_mempool* pool = rte_pktmbuf_pool_create("bench_frames", packets + 1024, 256, 0,
                                              RTE_PKTMBUF_HEADROOM + 128, SOCKET_ID_ANY);
  if (rx == nullptr || tx == nullptr || pool == nullptr) {
    std::fprintf(stderr, "rings or pool: %s\n", rte_strerror(rte_errno));
    return 1;
  }
  const int portId = from("bench", &rx, 1, &tx, 1, SOCKET_ID_ANY);
  char name[RTE_ETH_NAME_MAX_LEN];
  if (portId < 0 || rte_eth_dev_get_name_by_port(static_cast<uint16_t>(portId), name) != 0) {
    std::fprintf(stderr, "rte_eth_from_rings: %s\n", rte_strerror(rte_errno));
    return 1;
  }
  // The ring driver takes frames from the rings: the port's own pool only backs its RX setup.
  auto port = dpdk::Port::open({.device = name, .mbufs = 1023, .mbufCache = 32});
  if (!port) {
    std::fprintf(stderr, "%s\n", port.error().message().c_str());
    return 1;
  }

  dpdk::ShellConfig config;
  config.core.flows.capacity = rte_align32pow2(packets * static_cast<uint32_t>(rounds));
  config.core.natAddressV4 = test::ip("192.0.2.1");
  config.core.natPortFirst = 1024;
  config.core.natPortLast = 65535;
  config.exitWhenIdlePolls = 1000;
  auto shell = dpdk::Shell::create(**port, nullptr, config);
  if (!shell) {
    std::fprintf(stderr, "%s\n", shell.error().message().c_str());
    return 1;
  }
  if (Status s = (*shell)->publish(vipTable()); !s) {
    std::fprintf(stderr, "%s\n", s.error().message().c_str());
    return 1;
  }

  std::vector<test::Frame> frames;
  std::vector<rte_mbuf*> mbufs(packets);
  if (rte_pktmbuf_alloc_bulk(pool, mbufs.data(), packets) != 0) {
    std::fprintf(stderr, "mbufs: pool too small\n");
    return 1;
  }
  dpdk::WorkerCounters before = (*shell)->counters().total();
  // One round: fill, run until idle, collect the forwarded frames for the next round.
  auto round = [&](double& mpps) -> bool {
    if (!fill(rx, mbufs, frames)) return false;
    if (Status s = (*shell)->start(); !s) return false;
    if (!(*shell)->waitForExit(std::chrono::seconds(60))) return false;
    const dpdk::WorkerCounters after = (*shell)->counters().total();
    const uint64_t forwarded = after.txForwarded - before.txForwarded;
    const uint64_t busy = after.busyNs - before.busyNs;
    before = after;
    if (forwarded != packets) {
      std::fprintf(stderr, "forwarded %llu of %u (drops %llu)\n",
                   static_cast<unsigned long long>(forwarded), packets,
                   static_cast<unsigned long long>(after.core.dropped));
      return false;
    }
    const unsigned got =
        rte_ring_dequeue_bulk(tx, reinterpret_cast<void**>(mbufs.data()), packets, nullptr);
    if (got != packets) return false;
    mpps = 1e3 * packets / static_cast<double>(busy);
    return true;
  };

  std::printf(
      "DPDK shell on net_ring, 1 worker lcore, %u packets per round, %u VIPs x %u "
      "endpoints, 54-byte IPv4 TCP frames\n",
      packets, kVips, kEndpointsPerVip);
  auto report = [&](const char* what, std::vector<double>& mpps) {
    std::sort(mpps.begin(), mpps.end());
    const double median = mpps[mpps.size() / 2];
    std::printf("  %-18s %6.2f Mpps %7.1f ns/packet (median of %zu rounds, best %.2f Mpps)\n", what,
                median, 1e3 / median, mpps.size(), mpps.back());
  };
  std::vector<double> newFlows, established;
  for (int r = 0; r < rounds; ++r) {
    frames = synFrames(packets, static_cast<uint32_t>(r) * (packets / 50000 + 1));
    double mpps = 0;
    if (!round(mpps)) {
      std::fprintf(stderr, "new-flow round %d failed\n", r);
      return 1;
    }
    newFlows.push_back(mpps);
  }
  for (int r = 0; r < rounds; ++r) {
    double mpps = 0;
    if (!round(mpps)) {
      std::fprintf(stderr, "established round %d failed\n", r);
      return 1;
    }
    established.push_back(mpps);
  }
  report("new flows (SYNs):", newFlows);
  report("established flows:", established);
  std::printf(
      "  anchors (elsewhere, one core): Katran XDP 5.2 Mpps, IPVS 1.2 Mpps, DPVS 2.9 Mpps "
      "UDP\n");
  (*shell)->stop();
  shell->reset();
  (*port)->close();
  rte_pktmbuf_free_bulk(mbufs.data(), packets);
  rmdir(dpdk::Eal::runtimeDir().c_str());  // empty with --no-shconf
  return 0;
}

}  // namespace
}  // namespace capstan::dataplane

int main(int argc, char** argv) {
  const uint32_t packets = argc > 1 ? static_cast<uint32_t>(std::stoul(argv[1])) : 262144;
  const int rounds = argc > 2 ? std::max(1, std::stoi(argv[2])) : 3;
  return capstan::dataplane::run(packets, rounds);
}
