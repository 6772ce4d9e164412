// The packet core (dataplane/packet_core.h) on synthetic traffic: 100 VIPs x 100 endpoints
// (Maglev M = 65537), one PacketCore as one lcore runs it, IPv4 TCP frames of 54 bytes.
//
//  - BM_EstablishedFlows/N: client packets of N established flows, in random flow order, so with
//    1M flows the flow table (about 140 MB) is out of cache as it would be.
//  - BM_EstablishedReplies/N: the endpoints' replies to the same flows (reverse NAT).
//  - BM_NewFlows/N: SYNs of flows never seen, into a table of capacity N being filled (a fresh
//    table for each N SYNs; the refill is not timed).
//  - BM_NewFlowsEvicting: SYNs into a full 64K-flow table: each one evicts a flow (SYN flood).
//
// Each packet is copied from a template into the receive buffer before processing (a NIC writes
// every packet; here the copy is of 54 bytes from a sequentially read array), and that copy is
// timed. The buffer then is hot in L1, which a NIC's DMA write would not leave it: real
// per-packet costs through DPDK are higher; bench/dataplane/ will measure them with net_ring.
//
// Goals (issue 4): established >= 10 Mpps per core (< 100 ns/packet), new flows >= 3 Mpps per
// core. Published anchors for the same job on one core: Katran (XDP) 5.2 Mpps, IPVS 1.2 Mpps
// (XDP paper, CoNEXT 2018), DPVS 2.9 Mpps UDP with one worker; not measured here.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "bench/dataplane/bench_vips.h"
#include "dataplane/bytes.h"
#include "dataplane/checksum.h"
#include "dataplane/packet_core.h"
#include "tests/dataplane/packet_builder.h"
#include "tests/dataplane/state_builder.h"

namespace capstan::dataplane {
namespace {

using bench::kVips;
constexpr uint32_t kClientPorts = 50000;
constexpr size_t kFrameLength = 54;  // Ethernet + IPv4 + TCP, no payload
constexpr size_t kSlot = 64;         // one cache line per template
constexpr int kBurst = 32;

const std::shared_ptr<const VipTable>& vipTable() {
  static const std::shared_ptr<const VipTable> table = bench::buildBenchVipTable();
  return table;
}

PacketCoreConfig coreConfig(uint32_t capacity) {
  PacketCoreConfig c;
  c.flows.capacity = capacity;
  c.natAddressV4 = test::ip("192.0.2.1");
  c.natPortFirst = 20000;
  c.natPortLast = 59999;
  return c;
}

std::unique_ptr<PacketCore> makeCore(uint32_t capacity) {
  auto core = std::make_unique<PacketCore>(coreConfig(capacity));
  core->setVipTable(vipTable());
  return core;
}

// Frame templates, kSlot bytes apart.
class Frames {
 public:
  explicit Frames(size_t count) : bytes_(count * kSlot), count_(count) {}
  uint8_t* at(size_t i) { return bytes_.data() + i * kSlot; }
  size_t size() const { return count_; }

 private:
  std::vector<uint8_t> bytes_;
  size_t count_;
};

void fixChecksums(uint8_t* frame) {
  uint8_t* ip = frame + 14;
  store16be(ip + 10, 0);
  store16be(ip + 10, internetChecksum({ip, 20}));
  uint8_t* tcp = ip + 20;
  store16be(tcp + 16, 0);
  store16be(tcp + 16, transportChecksum(IpFamily::kV4, ip + 12, ip + 16, kIpProtoTcp, {tcp, 20}));
}

// Client packets of flows 0..count-1 (flow f: client 100.64.x.y:port to VIP f % 100), in a
// random order given by `seed`. `salt` shifts the clients so each salt gives new flows.
Frames clientFrames(uint32_t count, uint8_t flags, uint32_t seed, uint32_t salt = 0) {
  const test::Frame packet =
      test::PacketBuilder().ipv4("100.64.0.0", "203.0.113.0").tcp(1, 80, flags).build();
  std::vector<uint32_t> order(count);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(seed));
  Frames frames(count);
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t f = order[i];
    uint8_t* p = frames.at(i);
    std::memcpy(p, packet.data(), kFrameLength);
    store32be(p + 26, (100u << 24 | 64u << 16) + salt * 4096 + f / kClientPorts);
    p[33] = static_cast<uint8_t>(f % kVips);
    store16be(p + 34, static_cast<uint16_t>(1024 + f % kClientPorts));
    fixChecksums(p);
  }
  return frames;
}

// The endpoint's reply to a translated packet: addresses and ports swapped.
void replyTo(const uint8_t* sent, uint8_t* out, uint8_t flags) {
  std::memcpy(out, sent, kFrameLength);
  std::memcpy(out + 26, sent + 30, 4);
  std::memcpy(out + 30, sent + 26, 4);
  std::memcpy(out + 34, sent + 36, 2);
  std::memcpy(out + 36, sent + 34, 2);
  out[47] = flags;
  fixChecksums(out);
}

// Feeds `frames` (cycling) through `core` for the benchmark's iterations, one processBurst() of
// kBurst frames per iteration. `onWrap` runs, untimed, each time the frames are exhausted.
template <typename OnWrap>
void run(benchmark::State& state, PacketCore*& core, Frames& frames, OnWrap onWrap) {
  // A receive ring of kBurst buffers, refilled from the templates each burst.
  alignas(64) uint8_t ring[kBurst][kSlot];
  std::array<std::span<uint8_t>, kBurst> burst;
  for (int b = 0; b < kBurst; ++b) burst[b] = {ring[b], kFrameLength};
  std::array<Verdict, kBurst> verdicts;
  size_t i = 0;
  uint64_t now = 1;
  uint64_t forwarded = 0;
  for (auto _ : state) {
    for (int b = 0; b < kBurst; ++b) {
      std::memcpy(ring[b], frames.at(i), kFrameLength);
      if (++i == frames.size()) i = 0;
    }
    core->processBurst(burst, now, verdicts);
    for (const Verdict& v : verdicts) forwarded += v.action == Action::kForward;
    if (i < kBurst) {  // the templates wrapped in this burst
      state.PauseTiming();
      onWrap();
      state.ResumeTiming();
    }
    ++now;
  }
  const double packets = static_cast<double>(state.iterations()) * kBurst;
  if (forwarded != static_cast<uint64_t>(packets))
    state.SkipWithError("a packet was not forwarded");
  state.SetItemsProcessed(static_cast<int64_t>(packets));
  state.counters["ns_per_packet"] =
      benchmark::Counter(packets * 1e-9, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["Mpps"] = benchmark::Counter(packets * 1e-6, benchmark::Counter::kIsRate);
}

// Establishes `count` flows in `core` (SYN, SYN-ACK, ACK) and returns the endpoints' reply
// templates for them.
Frames establish(PacketCore& core, uint32_t count) {
  Frames syns = clientFrames(count, kTcpSyn, 1);
  Frames acks = clientFrames(count, kTcpAck, 1);
  Frames replies(count);
  uint8_t buffer[kSlot];
  for (uint32_t i = 0; i < count; ++i) {
    std::memcpy(buffer, syns.at(i), kFrameLength);
    core.process({buffer, kFrameLength}, 0);
    replyTo(buffer, replies.at(i), kTcpSyn | kTcpAck);
    std::memcpy(buffer, replies.at(i), kFrameLength);
    core.process({buffer, kFrameLength}, 0);
    std::memcpy(buffer, acks.at(i), kFrameLength);
    core.process({buffer, kFrameLength}, 0);
    replies.at(i)[47] = kTcpAck;
    fixChecksums(replies.at(i));
  }
  return replies;
}

void BM_EstablishedFlows(benchmark::State& state) {
  const uint32_t flows = static_cast<uint32_t>(state.range(0));
  auto owner = makeCore(flows + flows / 4);
  PacketCore* core = owner.get();
  establish(*core, flows);
  Frames frames = clientFrames(flows, kTcpAck, 2);  // another random order
  const uint64_t newFlows = core->counters().newFlows;
  run(state, core, frames, [] {});
  if (core->counters().newFlows != newFlows) state.SkipWithError("an established flow was lost");
  state.SetLabel("goal >= 10 Mpps (< 100 ns); Katran XDP 5.2, IPVS 1.2 Mpps published");
}
BENCHMARK(BM_EstablishedFlows)->Arg(1000)->Arg(1 << 20);

void BM_EstablishedReplies(benchmark::State& state) {
  const uint32_t flows = static_cast<uint32_t>(state.range(0));
  auto owner = makeCore(flows + flows / 4);
  PacketCore* core = owner.get();
  Frames replies = establish(*core, flows);
  const uint64_t newFlows = core->counters().newFlows;
  run(state, core, replies, [] {});
  if (core->counters().newFlows != newFlows) state.SkipWithError("an established flow was lost");
  state.SetLabel("reverse NAT of the endpoints' packets");
}
BENCHMARK(BM_EstablishedReplies)->Arg(1000)->Arg(1 << 20);

void BM_NewFlows(benchmark::State& state) {
  const uint32_t capacity = static_cast<uint32_t>(state.range(0));
  auto owner = makeCore(capacity);
  PacketCore* core = owner.get();
  Frames syns = clientFrames(capacity, kTcpSyn, 3);
  run(state, core, syns, [&] {
    owner = makeCore(capacity);
    core = owner.get();
  });
  state.SetLabel("goal >= 3 Mpps; table filling up to its capacity");
}
BENCHMARK(BM_NewFlows)->Arg(1 << 20);

void BM_NewFlowsEvicting(benchmark::State& state) {
  auto owner = makeCore(1 << 16);
  PacketCore* core = owner.get();
  Frames syns = clientFrames(1 << 20, kTcpSyn, 4, 1);
  // Fill the table first: every timed SYN evicts.
  uint8_t buffer[kSlot];
  for (uint32_t i = 0; i < (1 << 16); ++i) {
    std::memcpy(buffer, syns.at(i), kFrameLength);
    core->process({buffer, kFrameLength}, 0);
  }
  run(state, core, syns, [] {});
  state.SetLabel("full 64K table, every SYN evicts one flow");
}
BENCHMARK(BM_NewFlowsEvicting);

}  // namespace
}  // namespace capstan::dataplane
