// FlowKey: the 5-tuple of a packet (addresses, ports, IP protocol, family) as the parser yields it
// and as the flow table, the VIP table and the NAT use it; and the stable flow hashes that feed
// Maglev.
//
// The key is 40 bytes of plain data with no padding of indeterminate value, so equality is one
// memcmp and hashing reads it as five 64-bit words.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>

#include "model/ip.h"
#include "model/service.h"

namespace capstan::dataplane {

// IANA protocol numbers of the transports the core parses.
inline constexpr uint8_t kIpProtoIcmp = 1;
inline constexpr uint8_t kIpProtoTcp = 6;
inline constexpr uint8_t kIpProtoUdp = 17;
inline constexpr uint8_t kIpProtoIcmpv6 = 58;
inline constexpr uint8_t kIpProtoSctp = 132;

// The IP protocol number of a Service protocol.
constexpr uint8_t ipProtocol(Protocol protocol) {
  switch (protocol) {
    case Protocol::kTCP:
      return kIpProtoTcp;
    case Protocol::kUDP:
      return kIpProtoUdp;
    case Protocol::kSCTP:
      return kIpProtoSctp;
  }
  return 0;
}

struct alignas(8) FlowKey {
  // Network-order address bytes; an IPv4 address fills the first 4 and the rest stay zero (the
  // layout of IpAddress::bytes()).
  std::array<uint8_t, 16> src{};
  std::array<uint8_t, 16> dst{};
  uint16_t srcPort = 0;  // host order; 0 for transports without ports
  uint16_t dstPort = 0;
  uint8_t protocol = 0;  // IP protocol number
  IpFamily family = IpFamily::kV4;
  std::array<uint8_t, 2> pad{};  // always zero: keeps memcmp and hashing well defined

  IpAddress srcAddress() const { return toAddress(src); }
  IpAddress dstAddress() const { return toAddress(dst); }
  void setSrc(const IpAddress& ip) { src = ip.bytes(); }
  void setDst(const IpAddress& ip) { dst = ip.bytes(); }

  // The key of the same flow seen in the other direction.
  FlowKey reversed() const {
    FlowKey r = *this;
    r.src = dst;
    r.dst = src;
    r.srcPort = dstPort;
    r.dstPort = srcPort;
    return r;
  }

  bool operator==(const FlowKey& other) const {
    return std::memcmp(this, &other, sizeof(FlowKey)) == 0;
  }

 private:
  IpAddress toAddress(const std::array<uint8_t, 16>& bytes) const;
};
static_assert(sizeof(FlowKey) == 40);

// Stable hashes for Maglev (model/maglev.h). Every node must compute the same value for the same
// flow, so these are part of Capstan's wire behaviour and must never change: mixHash64
// (model/hash.h) chained over the key's fields read in a fixed byte order.
//
// The 5-tuple hash: addresses, ports and protocol.
uint64_t maglevFlowHash(const FlowKey& key);
// sessionAffinity: ClientIP: the source address only, so all of a client's flows agree.
uint64_t maglevClientHash(const FlowKey& key);

// A fast, seeded hash of the whole key for the flow table's index. Not stable across releases;
// the seed is per table so a remote sender cannot aim collisions at a known hash.
uint64_t flowTableHash(const FlowKey& key, uint64_t seed);

}  // namespace capstan::dataplane
