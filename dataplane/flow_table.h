// FlowTable: connection tracking for one lcore. Each tracked connection is one Flow holding both
// of its keys: the original (client to VIP, as received) and the reply (endpoint to the node's
// NAT address, as the endpoint's packets arrive), so one lookup finds a packet's flow whichever
// way it travels.
//
// PacketCore owns one per lcore and is its only user: no locks, no atomics, and no allocation
// after construction (the flows, the index and the free list are sized once from `capacity`).
// Time is a plain nanosecond count passed in by the caller (the shell's TSC clock, or a test's
// fake), never read here.
//
// Layout: an array of `capacity` Flows and an open-addressing index (linear probing, at most a
// quarter full, backward-shift deletion so there are no tombstones) of 8-byte slots, each a
// 32-bit hash and a reference to one key of one flow. A lookup is one hash, usually one index
// cache line and one flow.
//
// Under pressure (no free flow left) the table takes one back with the CLOCK (second chance)
// algorithm, the usual O(1) approximation of "least recently seen": a hand sweeps the flows; an
// expired flow is reclaimed at once; a flow seen since the hand last passed is spared once; the
// first one not seen since is evicted. Evictions and expiries are counted.
#pragma once

#include <cstdint>
#include <vector>

#include "dataplane/flow_key.h"
#include "dataplane/huge_array.h"

namespace capstan::dataplane {

inline constexpr uint64_t kNanosPerSecond = 1'000'000'000;

// Idle timeouts by state. Defaults are IPVS's, which kube-proxy's IPVS mode leaves in place
// unless --ipvs-tcp-timeout, --ipvs-tcpfin-timeout or --ipvs-udp-timeout say otherwise.
struct FlowTimeouts {
  uint64_t tcpSynNs = 60 * kNanosPerSecond;           // handshake not complete (SYN_RECV)
  uint64_t tcpEstablishedNs = 900 * kNanosPerSecond;  // ESTABLISHED
  uint64_t tcpClosingNs = 120 * kNanosPerSecond;      // a FIN seen (FIN_WAIT)
  uint64_t tcpClosedNs = 10 * kNanosPerSecond;        // a RST seen (CLOSE)
  uint64_t udpNs = 300 * kNanosPerSecond;             // UDP, whatever was seen
};

struct FlowTableConfig {
  uint32_t capacity = 1 << 16;  // flows; at most 2^29
  FlowTimeouts timeouts;
  uint64_t seed = 0x9e3779b97f4a7c15u;  // index hash seed; give each table its own random one
};

// A simplified TCP state, enough to pick the timeout (conntrack's states, merged).
enum class TcpState : uint8_t {
  kNone,         // not TCP
  kSynSent,      // the client's SYN seen
  kSynReceived,  // the endpoint's SYN-ACK seen
  kEstablished,  // the client's ACK of the SYN-ACK seen, or a flow picked up mid-stream
  kClosing,      // a FIN seen in either direction
  kClosed,       // a RST seen in either direction
};

enum class FlowDirection : uint8_t { kOriginal, kReply };

// Cache-line aligned: the two lines of a flow are fetched (and prefetched) together.
struct alignas(64) Flow {
  FlowKey original;  // client -> VIP, as received
  FlowKey reply;     // endpoint -> NAT address, as the endpoint's packets arrive
  uint64_t lastSeenNs = 0;
  // The VipTable generation `vipIndex` refers to; PacketCore re-checks the flow's endpoint when
  // the table it works with has another.
  uint64_t generation = 0;
  uint32_t vipIndex = 0;
  TcpState tcpState = TcpState::kNone;
  bool referenced = false;  // CLOCK's bit: seen since the hand last passed
  bool inUse = false;
};

class FlowTable {
 public:
  struct Counters {
    uint64_t inserted = 0;
    uint64_t erased = 0;   // by erase(): closed or rescheduled by the caller
    uint64_t expired = 0;  // idle past their timeout (found on lookup, by the sweep, or reclaimed)
    uint64_t evicted = 0;  // taken back while still live because the table was full
  };

  struct Match {
    Flow* flow = nullptr;  // null: no live flow has this key
    FlowDirection direction = FlowDirection::kOriginal;
  };

  explicit FlowTable(const FlowTableConfig& config);
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  // The flow `key` belongs to, in either direction. A flow found expired is removed and not
  // returned, so a reply after the timeout starts nothing.
  Match find(const FlowKey& key, uint64_t nowNs) { return find(key, hash(key), nowNs); }
  // The same with the key's hash() computed beforehand (a burst hashes all its keys first).
  Match find(const FlowKey& key, uint64_t hash, uint64_t nowNs);

  // For bursts: hash every key, prefetchIndex() each, then prefetchFlow() each, then find() each;
  // the memory latency of the lookups then overlaps instead of adding up.
  uint64_t hash(const FlowKey& key) const { return flowTableHash(key, seed_); }
  void prefetchIndex(uint64_t hash) const { __builtin_prefetch(&index_[hash & mask_]); }
  // Prefetches the flow of the first index slot that may hold the key (when the slot is cached,
  // after prefetchIndex, this costs no stall).
  void prefetchFlow(uint64_t hash) const;

  // Adds a flow under both keys; neither may be in the table (find() them first). When the table
  // is full another flow is reclaimed (see above), so this always succeeds. The flow starts in
  // `state`, seen now.
  Flow& insert(const FlowKey& original, const FlowKey& reply, TcpState state, uint64_t nowNs);

  // Removes a flow found with find() or made by insert().
  void erase(Flow& flow);

  // Records a packet of `flow` seen in `direction` now: refreshes it and advances its TCP state
  // from the packet's flags (RFC 9293 3.5's handshake and teardown, as conntrack tracks them).
  void touch(Flow& flow, FlowDirection direction, uint8_t tcpFlags, uint64_t nowNs);

  uint64_t timeout(const Flow& flow) const;
  bool expired(const Flow& flow, uint64_t nowNs) const {
    return nowNs >= flow.lastSeenNs && nowNs - flow.lastSeenNs >= timeout(flow);
  }

  // Examines the next `budget` flows of a sweep that cycles through the table and removes the
  // expired ones; returns how many. The shell calls it between bursts so idle flows do not wait
  // for pressure to be reclaimed.
  uint32_t expire(uint64_t nowNs, uint32_t budget);

  size_t size() const { return flows_.size() - free_.size(); }
  size_t capacity() const { return flows_.size(); }
  const Counters& counters() const { return counters_; }
  const FlowTimeouts& timeouts() const { return timeouts_; }

 private:
  static constexpr uint32_t kEmpty = UINT32_MAX;
  // How many referenced flows the CLOCK hand may spare before it evicts regardless: bounds the
  // work of one insert into a full table.
  static constexpr uint32_t kClockSpareLimit = 64;

  struct Slot {
    uint32_t hash = 0;
    uint32_t ref = kEmpty;  // flow index << 1 | direction
  };

  uint32_t allocate(uint64_t nowNs);
  void indexInsert(const FlowKey& key, uint32_t ref);
  void indexRemove(const FlowKey& key, uint32_t ref);
  void release(uint32_t index);

  FlowTimeouts timeouts_;
  uint64_t seed_;
  HugePageArray<Flow> flows_;
  std::vector<uint32_t> free_;  // a stack of unused flow indices
  HugePageArray<Slot> index_;
  uint64_t mask_ = 0;
  uint32_t hand_ = 0;   // CLOCK hand
  uint32_t sweep_ = 0;  // expire()'s cursor
  Counters counters_;
};

}  // namespace capstan::dataplane
