#include "dataplane/flow_table.h"

#include <algorithm>
#include <bit>
#include <cassert>

#include "dataplane/packet.h"

namespace capstan::dataplane {

FlowTable::FlowTable(const FlowTableConfig& config)
    : timeouts_(config.timeouts), seed_(config.seed) {
  assert(config.capacity > 0 && config.capacity <= (1u << 29));
  flows_ = HugePageArray<Flow>(config.capacity);
  free_.reserve(config.capacity);
  // Popped from the back: flows are handed out from index 0 up, in memory order.
  for (uint32_t i = config.capacity; i-- > 0;) free_.push_back(i);
  // Two keys per flow, at most a quarter of the slots used: short probe sequences.
  const uint64_t slots = std::bit_ceil(std::max<uint64_t>(16, uint64_t{config.capacity} * 4));
  index_ = HugePageArray<Slot>(slots);
  mask_ = slots - 1;
}

void FlowTable::prefetchFlow(uint64_t hash) const {
  const uint32_t tag = static_cast<uint32_t>(hash);
  for (uint64_t i = hash & mask_;; i = (i + 1) & mask_) {
    const Slot s = index_[i];
    if (s.ref == kEmpty) return;
    if (s.hash == tag) {
      const char* flow = reinterpret_cast<const char*>(&flows_[s.ref >> 1]);
      __builtin_prefetch(flow);
      __builtin_prefetch(flow + 64);
      return;
    }
  }
}

FlowTable::Match FlowTable::find(const FlowKey& key, uint64_t h, uint64_t nowNs) {
  const uint32_t tag = static_cast<uint32_t>(h);
  // The index is never full, so an empty slot ends every probe sequence.
  for (uint64_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot s = index_[i];
    if (s.ref == kEmpty) return {};
    if (s.hash != tag) continue;
    Flow& flow = flows_[s.ref >> 1];
    const FlowDirection direction = (s.ref & 1) ? FlowDirection::kReply : FlowDirection::kOriginal;
    if ((direction == FlowDirection::kReply ? flow.reply : flow.original) != key) continue;
    if (expired(flow, nowNs)) {
      ++counters_.expired;
      release(s.ref >> 1);
      return {};
    }
    return {&flow, direction};
  }
}

Flow& FlowTable::insert(const FlowKey& original, const FlowKey& reply, TcpState state,
                        uint64_t nowNs) {
  const uint32_t i = allocate(nowNs);
  Flow& flow = flows_[i];
  flow = Flow{};
  flow.original = original;
  flow.reply = reply;
  flow.lastSeenNs = nowNs;
  flow.tcpState = state;
  flow.referenced = true;
  flow.inUse = true;
  indexInsert(original, i << 1);
  indexInsert(reply, i << 1 | 1);
  ++counters_.inserted;
  return flow;
}

void FlowTable::erase(Flow& flow) {
  assert(flow.inUse);
  ++counters_.erased;
  release(static_cast<uint32_t>(&flow - flows_.data()));
}

void FlowTable::touch(Flow& flow, FlowDirection direction, uint8_t tcpFlags, uint64_t nowNs) {
  flow.lastSeenNs = nowNs;
  flow.referenced = true;
  if (flow.tcpState == TcpState::kNone) return;
  if (tcpFlags & kTcpRst) {
    flow.tcpState = TcpState::kClosed;
  } else if (tcpFlags & kTcpFin) {
    if (flow.tcpState != TcpState::kClosed) flow.tcpState = TcpState::kClosing;
  } else if (flow.tcpState == TcpState::kSynSent) {
    if (direction == FlowDirection::kReply &&
        (tcpFlags & (kTcpSyn | kTcpAck)) == (kTcpSyn | kTcpAck)) {
      flow.tcpState = TcpState::kSynReceived;
    }
  } else if (flow.tcpState == TcpState::kSynReceived) {
    if (direction == FlowDirection::kOriginal && (tcpFlags & kTcpAck) && !(tcpFlags & kTcpSyn)) {
      flow.tcpState = TcpState::kEstablished;
    }
  }
}

uint64_t FlowTable::timeout(const Flow& flow) const {
  switch (flow.tcpState) {
    case TcpState::kNone:
      return timeouts_.udpNs;
    case TcpState::kSynSent:
    case TcpState::kSynReceived:
      return timeouts_.tcpSynNs;
    case TcpState::kEstablished:
      return timeouts_.tcpEstablishedNs;
    case TcpState::kClosing:
      return timeouts_.tcpClosingNs;
    case TcpState::kClosed:
      return timeouts_.tcpClosedNs;
  }
  return timeouts_.tcpClosedNs;
}

uint32_t FlowTable::expire(uint64_t nowNs, uint32_t budget) {
  uint32_t removed = 0;
  const uint32_t n = static_cast<uint32_t>(flows_.size());
  for (uint32_t step = 0; step < budget && step < n; ++step) {
    const uint32_t i = sweep_;
    sweep_ = sweep_ + 1 == n ? 0 : sweep_ + 1;
    if (flows_[i].inUse && expired(flows_[i], nowNs)) {
      ++counters_.expired;
      release(i);
      ++removed;
    }
  }
  return removed;
}

uint32_t FlowTable::allocate(uint64_t nowNs) {
  if (free_.empty()) {
    // Full: every flow is in use. Run the CLOCK hand until it frees one.
    const uint32_t n = static_cast<uint32_t>(flows_.size());
    for (uint32_t spared = 0;;) {
      const uint32_t i = hand_;
      hand_ = hand_ + 1 == n ? 0 : hand_ + 1;
      Flow& flow = flows_[i];
      if (expired(flow, nowNs)) {
        ++counters_.expired;
      } else if (flow.referenced && spared < kClockSpareLimit) {
        flow.referenced = false;
        ++spared;
        continue;
      } else {
        ++counters_.evicted;
      }
      release(i);
      break;
    }
  }
  const uint32_t i = free_.back();
  free_.pop_back();
  return i;
}

void FlowTable::release(uint32_t index) {
  Flow& flow = flows_[index];
  indexRemove(flow.original, index << 1);
  indexRemove(flow.reply, index << 1 | 1);
  flow.inUse = false;
  free_.push_back(index);
}

void FlowTable::indexInsert(const FlowKey& key, uint32_t ref) {
  const uint64_t h = flowTableHash(key, seed_);
  uint64_t i = h & mask_;
  while (index_[i].ref != kEmpty) i = (i + 1) & mask_;
  index_[i] = Slot{static_cast<uint32_t>(h), ref};
}

void FlowTable::indexRemove(const FlowKey& key, uint32_t ref) {
  const uint64_t h = flowTableHash(key, seed_);
  uint64_t i = h & mask_;
  while (index_[i].ref != ref) {
    assert(index_[i].ref != kEmpty);
    i = (i + 1) & mask_;
  }
  // Backward-shift deletion (Knuth 6.4, Algorithm R): pull later entries of the run back into the
  // hole unless that would move them before their home slot.
  for (uint64_t j = i;;) {
    j = (j + 1) & mask_;
    if (index_[j].ref == kEmpty) break;
    const uint64_t home = index_[j].hash & mask_;
    const bool homeInHoleToJ = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (!homeInHoleToJ) {
      index_[i] = index_[j];
      i = j;
    }
  }
  index_[i] = Slot{};
}

}  // namespace capstan::dataplane
