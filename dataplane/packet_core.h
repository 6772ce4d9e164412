// PacketCore: what one lcore does to one packet. Parse, find the flow (either direction) or the
// VIP, choose an endpoint by Maglev for a new flow, track it, full-NAT it in place with
// incremental checksums, and say what to do with the frame: forward it, hand it to the kernel, or
// drop it (with a reason).
//
// The DPDK shell owns one PacketCore per lcore and calls process() for every received frame with
// the lcore's clock; nothing is shared between cores, nothing is locked, and nothing is allocated
// per packet. Layer 2 (next-hop MACs, ARP, neighbour discovery) is the shell's: a forwarded frame
// has its L3/L4 rewritten and its Ethernet header untouched.
//
// Full-NAT: a client's packet C:cp -> VIP:vp leaves as N:np -> E:ep, where N is the node's
// dataplane address of the packet's family, np a source port from this lcore's range, and E:ep
// the endpoint. The endpoint's reply E:ep -> N:np is matched by the flow's reply key and leaves as
// VIP:vp -> C:cp. Each lcore must own a disjoint port range, and the NIC must steer replies to the
// lcore whose range holds their destination port (the shell sets that up).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "dataplane/drop_reason.h"
#include "dataplane/flow_table.h"
#include "dataplane/packet.h"
#include "dataplane/vip_table.h"

namespace capstan::dataplane {

struct PacketCoreConfig {
  FlowTableConfig flows;
  // The node's dataplane addresses, the source of NATed packets towards endpoints. A family
  // without one cannot be NATed: its new flows are dropped (kNoNatAddress).
  std::optional<IpAddress> natAddressV4;
  std::optional<IpAddress> natAddressV6;
  // This lcore's NAT source ports, inclusive. Must not overlap the NodePort range or the kernel's
  // ephemeral ports on the same addresses. A (endpoint, port) pair is used by one flow at a time,
  // so the range bounds the flows per endpoint, not the flows per lcore.
  uint16_t natPortFirst = 1024;
  uint16_t natPortLast = 29999;
  // How many ports to try for a new flow before giving up (kNoSourcePort).
  uint32_t natPortProbes = 32;
};

enum class Action : uint8_t {
  kForward,   // transmit the (rewritten) frame
  kToKernel,  // not for a VIP: the kernel's, through the exception port
  kDrop,      // see Verdict::reason
};

struct Verdict {
  Action action = Action::kDrop;
  DropReason reason = DropReason::kNone;
};

// Per VIP, in this lcore: packets and bytes in both directions, new flows, drops after the VIP was
// found (no endpoint, source not allowed, no NAT port).
struct VipCounters {
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t newFlows = 0;
  uint64_t drops = 0;
};

struct PacketCoreCounters {
  uint64_t forwarded = 0;
  uint64_t toKernel = 0;
  uint64_t dropped = 0;
  std::array<uint64_t, kDropReasonCount> drops{};  // by DropReason
  uint64_t newFlows = 0;
  // Flows whose endpoint left the service: moved to a new endpoint (or forgotten, for a reply).
  uint64_t flowsRescheduled = 0;
  uint64_t icmpErrorsTranslated = 0;
  // Fragments go to the kernel: their later pieces have no ports to find a flow by.
  uint64_t fragmentsToKernel = 0;
};

class PacketCore {
 public:
  explicit PacketCore(const PacketCoreConfig& config);

  // The VIP table to use from the next packet on. Cold path: the shell calls it between bursts
  // when the control thread publishes a new table. Per-VIP counters follow their VIP (by address,
  // protocol and port) into the new table; flows re-check their endpoint lazily, on their next
  // packet.
  void setVipTable(std::shared_ptr<const VipTable> table);
  const VipTable* vipTable() const { return table_.get(); }

  // Processes one frame, rewriting it in place when the verdict is kForward. `nowNs` is the
  // lcore's monotonic clock.
  Verdict process(std::span<uint8_t> frame, uint64_t nowNs);

  // Processes a burst: the same verdicts as process() on each frame in order (verdicts[i] is
  // frames[i]'s), but the flow lookups of up to kMaxBurst frames are hashed and prefetched
  // together so their cache and TLB misses overlap. What the shell calls per rx burst.
  static constexpr size_t kMaxBurst = 64;
  void processBurst(std::span<const std::span<uint8_t>> frames, uint64_t nowNs,
                    std::span<Verdict> verdicts);

  FlowTable& flows() { return flows_; }
  const PacketCoreCounters& counters() const { return counters_; }
  // Counters of vipTable()->vip(index).
  const VipCounters& vipCounters(uint32_t index) const { return vipCounters_[index]; }

 private:
  Verdict forward() {
    ++counters_.forwarded;
    return {Action::kForward, DropReason::kNone};
  }
  Verdict toKernel() {
    ++counters_.toKernel;
    return {Action::kToKernel, DropReason::kNone};
  }
  Verdict drop(DropReason reason) {
    ++counters_.dropped;
    ++counters_.drops[static_cast<size_t>(reason)];
    return {Action::kDrop, reason};
  }

  // Whether a parsed packet is looked up in the flow table (TCP or UDP, not a fragment).
  static bool tracked(const ParsedPacket& p) {
    return p.l3 != L3Kind::kNotIp && !p.isFragment && p.hasL4 &&
           (p.key.protocol == kIpProtoTcp || p.key.protocol == kIpProtoUdp);
  }
  // process() after parsing; `hash` is flows_.hash(p.key) for tracked packets.
  Verdict processParsed(std::span<uint8_t> frame, const ParsedPacket& p, DropReason parseResult,
                        uint64_t hash, uint64_t nowNs);
  Verdict newFlow(std::span<uint8_t> frame, const ParsedPacket& p, uint64_t nowNs);
  Verdict icmpError(std::span<uint8_t> frame, const ParsedPacket& p, uint64_t nowNs);
  // Brings a flow made under an older VipTable up to date: false when its VIP or its endpoint is
  // gone.
  bool revalidate(Flow& flow);
  const IpAddress* natAddress(IpFamily family) const {
    const std::optional<IpAddress>& a = family == IpFamily::kV4 ? natAddressV4_ : natAddressV6_;
    return a ? &*a : nullptr;
  }

  FlowTable flows_;
  std::optional<IpAddress> natAddressV4_, natAddressV6_;
  uint16_t natPortFirst_;
  uint32_t natPortCount_;
  uint32_t natPortProbes_;
  uint64_t portSeed_;
  std::shared_ptr<const VipTable> table_;
  std::vector<VipCounters> vipCounters_;
  PacketCoreCounters counters_;
  // processBurst()'s scratch, preallocated.
  std::array<ParsedPacket, kMaxBurst> burstParsed_;
  std::array<DropReason, kMaxBurst> burstResults_;
  std::array<uint64_t, kMaxBurst> burstHashes_;
};

}  // namespace capstan::dataplane
