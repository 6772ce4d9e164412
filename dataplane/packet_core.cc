#include "dataplane/packet_core.h"

#include <algorithm>
#include <cassert>

#include "dataplane/nat.h"
#include "model/hash.h"

namespace capstan::dataplane {

PacketCore::PacketCore(const PacketCoreConfig& config)
    : flows_(config.flows),
      natAddressV4_(config.natAddressV4),
      natAddressV6_(config.natAddressV6),
      natPortFirst_(config.natPortFirst),
      natPortCount_(uint32_t{config.natPortLast} - config.natPortFirst + 1),
      natPortProbes_(config.natPortProbes),
      portSeed_(mixHash64(config.flows.seed)) {
  assert(config.natPortFirst <= config.natPortLast);
  assert(!natAddressV4_ || natAddressV4_->isV4());
  assert(!natAddressV6_ || natAddressV6_->isV6());
  // An empty table until the control thread publishes one: every packet goes to the kernel.
  VipTableConfig none;
  table_ = VipTable::build(ProxyState(0, NodeInfo{}, {}, IngressState{}), none).table;
}

void PacketCore::setVipTable(std::shared_ptr<const VipTable> table) {
  std::vector<VipCounters> counters(table->size());
  for (uint32_t i = 0; i < table_->size(); ++i) {
    const Vip& old = table_->vip(i);
    FlowKey key;
    key.family = old.family;
    key.dst = old.address;
    key.protocol = old.protocol;
    key.dstPort = old.port;
    const uint32_t j = table->find(key);
    if (j != VipTable::kNoVip) counters[j] = vipCounters_[i];
  }
  vipCounters_ = std::move(counters);
  table_ = std::move(table);
}

Verdict PacketCore::process(std::span<uint8_t> frame, uint64_t nowNs) {
  ParsedPacket p;
  const DropReason reason = parsePacket(frame, p);
  const uint64_t hash = reason == DropReason::kNone && tracked(p) ? flows_.hash(p.key) : 0;
  return processParsed(frame, p, reason, hash, nowNs);
}

void PacketCore::processBurst(std::span<const std::span<uint8_t>> frames, uint64_t nowNs,
                              std::span<Verdict> verdicts) {
  assert(verdicts.size() >= frames.size());
  for (size_t first = 0; first < frames.size(); first += kMaxBurst) {
    const size_t n = std::min(kMaxBurst, frames.size() - first);
    // Three passes: parse and hash, then fetch the index slots, then the flows, so that the
    // misses of one packet overlap those of the others.
    for (size_t i = 0; i < n; ++i) {
      ParsedPacket& p = burstParsed_[i];
      burstResults_[i] = parsePacket(frames[first + i], p);
      const bool lookup = burstResults_[i] == DropReason::kNone && tracked(p);
      burstHashes_[i] = lookup ? flows_.hash(p.key) : 0;
      if (lookup) flows_.prefetchIndex(burstHashes_[i]);
    }
    for (size_t i = 0; i < n; ++i) {
      if (burstResults_[i] == DropReason::kNone && tracked(burstParsed_[i])) {
        flows_.prefetchFlow(burstHashes_[i]);
      }
    }
    for (size_t i = 0; i < n; ++i) {
      verdicts[first + i] = processParsed(frames[first + i], burstParsed_[i], burstResults_[i],
                                          burstHashes_[i], nowNs);
    }
  }
}

Verdict PacketCore::processParsed(std::span<uint8_t> frame, const ParsedPacket& p,
                                  DropReason parseResult, uint64_t hash, uint64_t nowNs) {
  if (parseResult != DropReason::kNone) return drop(parseResult);
  if (p.l3 == L3Kind::kNotIp) return toKernel();
  if (p.isFragment) {
    ++counters_.fragmentsToKernel;
    return toKernel();
  }
  if (p.isIcmpError) return icmpError(frame, p, nowNs);
  if (!tracked(p)) return toKernel();

  const FlowTable::Match m = flows_.find(p.key, hash, nowNs);
  if (m.flow == nullptr) return newFlow(frame, p, nowNs);
  Flow& flow = *m.flow;
  if (flow.generation != table_->generation() && !revalidate(flow)) {
    ++counters_.flowsRescheduled;
    flows_.erase(flow);
    // A client's packet finds a new endpoint; a reply from an endpoint that left is not ours.
    if (m.direction == FlowDirection::kOriginal) return newFlow(frame, p, nowNs);
    return toKernel();
  }
  // A new SYN on the 5-tuple of a closing connection is a new connection (port reuse, as
  // conntrack treats it): it gets an endpoint of its own.
  if (m.direction == FlowDirection::kOriginal && (p.tcpFlags & (kTcpSyn | kTcpAck)) == kTcpSyn &&
      p.key.protocol == kIpProtoTcp &&
      (flow.tcpState == TcpState::kClosing || flow.tcpState == TcpState::kClosed)) {
    flows_.erase(flow);
    return newFlow(frame, p, nowNs);
  }
  flows_.touch(flow, m.direction, p.tcpFlags, nowNs);
  VipCounters& vc = vipCounters_[flow.vipIndex];
  ++vc.packets;
  vc.bytes += frame.size();
  // Each key's rewrite target is the other key reversed: original -> (N:np -> E:ep), reply ->
  // (VIP:vp -> C:cp).
  rewriteFlow(
      frame, p,
      m.direction == FlowDirection::kOriginal ? flow.reply.reversed() : flow.original.reversed());
  return forward();
}

Verdict PacketCore::newFlow(std::span<uint8_t> frame, const ParsedPacket& p, uint64_t nowNs) {
  const uint32_t vipIndex = table_->find(p.key);
  if (vipIndex == VipTable::kNoVip) return toKernel();
  const Vip& vip = table_->vip(vipIndex);
  VipCounters& vc = vipCounters_[vipIndex];
  ++vc.packets;
  vc.bytes += frame.size();
  if (!VipTable::sourceAllowed(vip, p.key)) {
    ++vc.drops;
    return drop(DropReason::kSourceNotAllowed);
  }
  const Backend* backend = VipTable::chooseBackend(vip, p.key);
  if (backend == nullptr) {
    ++vc.drops;
    return drop(DropReason::kNoEndpoints);
  }
  const IpAddress* nat = natAddress(p.key.family);
  if (nat == nullptr) {
    ++vc.drops;
    return drop(DropReason::kNoNatAddress);
  }

  // The reply key E:ep -> N:np must be unused: probe ports from a hash of the flow, so flows
  // spread over the range and a retransmitted first packet after a drop tries the same ports.
  FlowKey reply;
  reply.family = p.key.family;
  reply.protocol = p.key.protocol;
  reply.src = backend->address;
  reply.srcPort = backend->port;
  reply.dst = nat->bytes();
  uint32_t offset = static_cast<uint32_t>(flowTableHash(p.key, portSeed_) % natPortCount_);
  bool found = false;
  for (uint32_t probe = 0; probe < natPortProbes_ && probe < natPortCount_; ++probe) {
    reply.dstPort = static_cast<uint16_t>(natPortFirst_ + offset);
    if (flows_.find(reply, nowNs).flow == nullptr) {
      found = true;
      break;
    }
    offset = offset + 1 == natPortCount_ ? 0 : offset + 1;
  }
  if (!found) {
    ++vc.drops;
    return drop(DropReason::kNoSourcePort);
  }

  TcpState state = TcpState::kNone;
  if (p.key.protocol == kIpProtoTcp) {
    // A flow first seen mid-stream (its node failed, or ECMP moved it here) is taken up as
    // established: Maglev gives it the endpoint any node would have.
    state =
        (p.tcpFlags & (kTcpSyn | kTcpAck)) == kTcpSyn ? TcpState::kSynSent : TcpState::kEstablished;
  }
  Flow& flow = flows_.insert(p.key, reply, state, nowNs);
  flow.vipIndex = vipIndex;
  flow.generation = table_->generation();
  flows_.touch(flow, FlowDirection::kOriginal, p.tcpFlags, nowNs);
  ++vc.newFlows;
  ++counters_.newFlows;
  rewriteFlow(frame, p, reply.reversed());
  return forward();
}

bool PacketCore::revalidate(Flow& flow) {
  const uint32_t vipIndex = table_->find(flow.original);
  if (vipIndex == VipTable::kNoVip) return false;
  const Backend backend{flow.reply.src, flow.reply.srcPort};
  if (!VipTable::backendPresent(table_->vip(vipIndex), backend)) return false;
  flow.vipIndex = vipIndex;
  flow.generation = table_->generation();
  return true;
}

Verdict PacketCore::icmpError(std::span<uint8_t> frame, const ParsedPacket& p, uint64_t nowNs) {
  IcmpInnerPacket inner;
  if (!parseIcmpInner(frame, p, inner)) return toKernel();
  // The quote is a packet this node sent; the flow knows it by the key of the packets it receives,
  // i.e. the quote's key reversed. An error does not refresh the flow.
  const FlowTable::Match m = flows_.find(inner.key.reversed(), nowNs);
  if (m.flow == nullptr) return toKernel();
  const Flow& flow = *m.flow;
  // From the endpoint's side (about N:np -> E:ep): to the client, from the VIP, quoting
  // C:cp -> VIP:vp. From the client's side (about VIP:vp -> C:cp): to the endpoint, from N,
  // quoting E:ep -> N:np. The outer addresses are those the flow's own packets carry.
  if (m.direction == FlowDirection::kReply) {
    rewriteIcmpError(frame, p, inner, flow.original.reversed(), flow.original);
  } else {
    rewriteIcmpError(frame, p, inner, flow.reply.reversed(), flow.reply);
  }
  if (flow.generation == table_->generation()) {
    VipCounters& vc = vipCounters_[flow.vipIndex];
    ++vc.packets;
    vc.bytes += frame.size();
  }
  ++counters_.icmpErrorsTranslated;
  return forward();
}

}  // namespace capstan::dataplane
