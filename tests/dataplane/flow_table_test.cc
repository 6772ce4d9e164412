// FlowTable (dataplane/flow_table.h): both keys of a flow find it, state and timeouts follow the
// packets seen (a fake clock: plain nanosecond counts), a full table evicts the least recently
// seen flow and counts it, and the index stays consistent under random operations.
#include "dataplane/flow_table.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "dataplane/packet.h"

namespace capstan::dataplane {
namespace {

constexpr uint64_t kSecond = kNanosPerSecond;

// Flow `n`: client 198.18.x.y:port -> VIP 203.0.113.10:80, replies from 10.244.0.1:8080 to the
// NAT address 192.0.2.1 on port 10000 + n.
FlowKey original(uint32_t n, uint8_t protocol = kIpProtoTcp) {
  FlowKey k;
  k.src = {198, 18, static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)};
  k.dst = {203, 0, 113, 10};
  k.srcPort = static_cast<uint16_t>(1024 + n % 50000);
  k.dstPort = 80;
  k.protocol = protocol;
  return k;
}
FlowKey reply(uint32_t n, uint8_t protocol = kIpProtoTcp) {
  FlowKey k;
  k.src = {10, 244, 0, 1};
  k.dst = {192, 0, 2, 1};
  k.srcPort = 8080;
  k.dstPort = static_cast<uint16_t>(10000 + n % 50000);
  k.protocol = protocol;
  return k;
}

FlowTableConfig config(uint32_t capacity) {
  FlowTableConfig c;
  c.capacity = capacity;
  return c;
}

TEST(FlowTableTest, BothKeysFindTheFlow) {
  FlowTable table(config(16));
  Flow& f = table.insert(original(1), reply(1), TcpState::kSynSent, 100);
  f.vipIndex = 7;
  EXPECT_EQ(table.size(), 1u);
  FlowTable::Match m = table.find(original(1), 200);
  ASSERT_EQ(m.flow, &f);
  EXPECT_EQ(m.direction, FlowDirection::kOriginal);
  m = table.find(reply(1), 200);
  ASSERT_EQ(m.flow, &f);
  EXPECT_EQ(m.direction, FlowDirection::kReply);
  EXPECT_EQ(m.flow->vipIndex, 7u);
  // Other keys, and the keys reversed, are not the flow's.
  EXPECT_EQ(table.find(original(2), 200).flow, nullptr);
  EXPECT_EQ(table.find(original(1).reversed(), 200).flow, nullptr);
  EXPECT_EQ(table.find(original(1, kIpProtoUdp), 200).flow, nullptr);

  table.erase(f);
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.find(original(1), 200).flow, nullptr);
  EXPECT_EQ(table.find(reply(1), 200).flow, nullptr);
  EXPECT_EQ(table.counters().inserted, 1u);
  EXPECT_EQ(table.counters().erased, 1u);
}

TEST(FlowTableTest, TcpStatesFollowTheHandshakeAndTeardown) {
  FlowTable table(config(16));
  Flow& f = table.insert(original(1), reply(1), TcpState::kSynSent, 0);
  table.touch(f, FlowDirection::kOriginal, kTcpSyn, 1);  // retransmitted SYN
  EXPECT_EQ(f.tcpState, TcpState::kSynSent);
  table.touch(f, FlowDirection::kReply, kTcpSyn | kTcpAck, 2);
  EXPECT_EQ(f.tcpState, TcpState::kSynReceived);
  table.touch(f, FlowDirection::kOriginal, kTcpAck, 3);
  EXPECT_EQ(f.tcpState, TcpState::kEstablished);
  table.touch(f, FlowDirection::kReply, kTcpAck | kTcpPsh, 4);
  EXPECT_EQ(f.tcpState, TcpState::kEstablished);
  table.touch(f, FlowDirection::kReply, kTcpFin | kTcpAck, 5);
  EXPECT_EQ(f.tcpState, TcpState::kClosing);
  table.touch(f, FlowDirection::kOriginal, kTcpAck, 6);
  EXPECT_EQ(f.tcpState, TcpState::kClosing);
  table.touch(f, FlowDirection::kOriginal, kTcpRst, 7);
  EXPECT_EQ(f.tcpState, TcpState::kClosed);
  table.touch(f, FlowDirection::kOriginal, kTcpFin, 8);
  EXPECT_EQ(f.tcpState, TcpState::kClosed);
  EXPECT_EQ(f.lastSeenNs, 8u);

  // A refused connection: RST in reply to the SYN.
  Flow& g = table.insert(original(2), reply(2), TcpState::kSynSent, 0);
  table.touch(g, FlowDirection::kReply, kTcpRst | kTcpAck, 1);
  EXPECT_EQ(g.tcpState, TcpState::kClosed);
}

TEST(FlowTableTest, EachStateExpiresAfterItsTimeout) {
  const FlowTimeouts t;
  struct Case {
    TcpState state;
    uint64_t timeout;
    uint8_t protocol;
  };
  const Case cases[] = {
      {TcpState::kSynSent, t.tcpSynNs, kIpProtoTcp},
      {TcpState::kSynReceived, t.tcpSynNs, kIpProtoTcp},
      {TcpState::kEstablished, t.tcpEstablishedNs, kIpProtoTcp},
      {TcpState::kClosing, t.tcpClosingNs, kIpProtoTcp},
      {TcpState::kClosed, t.tcpClosedNs, kIpProtoTcp},
      {TcpState::kNone, t.udpNs, kIpProtoUdp},
  };
  for (const Case& c : cases) {
    FlowTable table(config(16));
    const uint64_t start = 1000 * kSecond;
    table.insert(original(1, c.protocol), reply(1, c.protocol), c.state, start);
    EXPECT_NE(table.find(original(1, c.protocol), start + c.timeout - 1).flow, nullptr);
    EXPECT_NE(table.find(reply(1, c.protocol), start + c.timeout - 1).flow, nullptr);
    EXPECT_EQ(table.find(reply(1, c.protocol), start + c.timeout).flow, nullptr);
    EXPECT_EQ(table.find(original(1, c.protocol), start + c.timeout).flow, nullptr);
    EXPECT_EQ(table.size(), 0u);
    EXPECT_EQ(table.counters().expired, 1u);
  }
}

TEST(FlowTableTest, TrafficKeepsAFlowAlive) {
  FlowTable table(config(16));
  Flow& f = table.insert(original(1, kIpProtoUdp), reply(1, kIpProtoUdp), TcpState::kNone, 0);
  uint64_t now = 0;
  for (int i = 0; i < 10; ++i) {
    now += table.timeouts().udpNs - 1;
    FlowTable::Match m = table.find(i % 2 ? original(1, kIpProtoUdp) : reply(1, kIpProtoUdp), now);
    ASSERT_EQ(m.flow, &f) << i;
    table.touch(f, m.direction, 0, now);
  }
  // A clock read on another core may lag by a little: never an expiry.
  EXPECT_NE(table.find(original(1, kIpProtoUdp), now - 5).flow, nullptr);
}

TEST(FlowTableTest, SweepRemovesExpiredFlowsWithinItsBudget) {
  FlowTable table(config(64));
  for (uint32_t n = 0; n < 40; ++n) {
    table.insert(original(n), reply(n), n < 20 ? TcpState::kClosed : TcpState::kEstablished, 0);
  }
  const uint64_t later = table.timeouts().tcpClosedNs;
  EXPECT_EQ(table.expire(later, 10), 10u);  // flows 0..9
  EXPECT_EQ(table.size(), 30u);
  EXPECT_EQ(table.expire(later, 1000), 10u);  // the rest of the closed ones; bounded by capacity
  EXPECT_EQ(table.size(), 20u);
  EXPECT_EQ(table.counters().expired, 20u);
  EXPECT_NE(table.find(original(25), later).flow, nullptr);
}

TEST(FlowTableTest, AFullTableEvictsTheLeastRecentlySeenFlow) {
  FlowTable table(config(4));
  for (uint32_t n = 0; n < 4; ++n) table.insert(original(n), reply(n), TcpState::kEstablished, n);
  // Every flow is new (referenced): the hand spares all once and takes the first, flow 0.
  table.insert(original(4), reply(4), TcpState::kEstablished, 10);
  EXPECT_EQ(table.find(original(0), 10).flow, nullptr);
  EXPECT_EQ(table.counters().evicted, 1u);
  EXPECT_EQ(table.size(), 4u);
  // Flows 1 and 3 see traffic; 2 is idle: it goes next, not the busier ones.
  for (uint32_t n : {1u, 3u}) {
    FlowTable::Match m = table.find(original(n), 20);
    ASSERT_NE(m.flow, nullptr);
    table.touch(*m.flow, m.direction, kTcpAck, 20);
  }
  table.insert(original(5), reply(5), TcpState::kEstablished, 30);
  EXPECT_EQ(table.find(original(2), 30).flow, nullptr);
  for (uint32_t n : {1u, 3u, 4u, 5u}) EXPECT_NE(table.find(reply(n), 30).flow, nullptr) << n;
  EXPECT_EQ(table.counters().evicted, 2u);
}

TEST(FlowTableTest, AFullTableTakesAnExpiredFlowBeforeEvicting) {
  FlowTable table(config(4));
  table.insert(original(0), reply(0), TcpState::kEstablished, 0);
  table.insert(original(1), reply(1), TcpState::kClosed, 0);
  table.insert(original(2), reply(2), TcpState::kEstablished, 0);
  table.insert(original(3), reply(3), TcpState::kEstablished, 0);
  table.insert(original(4), reply(4), TcpState::kSynSent, table.timeouts().tcpClosedNs);
  EXPECT_EQ(table.counters().evicted, 0u);
  EXPECT_EQ(table.counters().expired, 1u);
  EXPECT_EQ(table.find(original(1), table.timeouts().tcpClosedNs).flow, nullptr);
  EXPECT_NE(table.find(original(0), table.timeouts().tcpClosedNs).flow, nullptr);
}

// Random inserts, erases and lookups against std::map: the index (linear probing with backward
// shift deletion) never loses or invents a key. A small table, so probe runs collide and wrap.
TEST(FlowTableTest, IndexMatchesAReferenceMapUnderRandomOperations) {
  FlowTable table(config(64));
  std::map<uint32_t, Flow*> live;
  std::mt19937 rng(9);
  for (int step = 0; step < 50000; ++step) {
    const uint32_t n = rng() % 200;
    const auto it = live.find(n);
    switch (rng() % 3) {
      case 0:
        if (it == live.end() && live.size() < 64) {
          live[n] = &table.insert(original(n), reply(n), TcpState::kEstablished, 0);
        }
        break;
      case 1:
        if (it != live.end()) {
          table.erase(*it->second);
          live.erase(it);
        }
        break;
      default: {
        const FlowTable::Match a = table.find(original(n), 0);
        const FlowTable::Match b = table.find(reply(n), 0);
        const Flow* expected = it == live.end() ? nullptr : it->second;
        ASSERT_EQ(a.flow, expected) << step;
        ASSERT_EQ(b.flow, expected) << step;
      }
    }
    ASSERT_EQ(table.size(), live.size());
  }
  EXPECT_EQ(table.counters().evicted, 0u);
}

TEST(FlowTableTest, ManyFlowsAreAllFound) {
  FlowTable table(config(1 << 15));
  for (uint32_t n = 0; n < (1 << 15); ++n) {
    FlowKey o = original(n), r = reply(n);
    o.srcPort = static_cast<uint16_t>(n);  // 32768 distinct clients x ports
    r.dstPort = static_cast<uint16_t>(n);
    r.src[3] = static_cast<uint8_t>(n >> 8);
    table.insert(o, r, TcpState::kEstablished, 0);
  }
  EXPECT_EQ(table.size(), 1u << 15);
  for (uint32_t n = 0; n < (1 << 15); ++n) {
    FlowKey o = original(n);
    o.srcPort = static_cast<uint16_t>(n);
    ASSERT_NE(table.find(o, 1).flow, nullptr) << n;
  }
  EXPECT_EQ(table.counters().evicted, 0u);
}

}  // namespace
}  // namespace capstan::dataplane
