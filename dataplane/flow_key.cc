#include "dataplane/flow_key.h"

#include "dataplane/bytes.h"
#include "model/hash.h"

namespace capstan::dataplane {

IpAddress FlowKey::toAddress(const std::array<uint8_t, 16>& bytes) const {
  if (family == IpFamily::kV6) return IpAddress::v6(bytes);
  return IpAddress::v4(load32be(bytes.data()));
}

namespace {

// Fixed seeds (the ASCII of "CapFlow5" and "CapClnIP"): frozen, like the hashes themselves.
constexpr uint64_t kFlowSeed = 0x436170466c6f7735u;
constexpr uint64_t kClientSeed = 0x436170436c6e4950u;

uint64_t addressHash(const std::array<uint8_t, 16>& bytes, uint64_t h) {
  h = mixHash64(h ^ load64le(bytes.data()));
  return mixHash64(h ^ load64le(bytes.data() + 8));
}

}  // namespace

uint64_t maglevFlowHash(const FlowKey& key) {
  uint64_t h = addressHash(key.src, kFlowSeed);
  h = addressHash(key.dst, h);
  const uint64_t rest =
      uint64_t{key.srcPort} | uint64_t{key.dstPort} << 16 | uint64_t{key.protocol} << 32;
  return mixHash64(h ^ rest);
}

uint64_t maglevClientHash(const FlowKey& key) { return addressHash(key.src, kClientSeed); }

uint64_t flowTableHash(const FlowKey& key, uint64_t seed) {
  // Five independent multiplies (they run in parallel) and one finaliser: a few nanoseconds, which
  // matters on a path taken by every packet.
  const uint8_t* p = reinterpret_cast<const uint8_t*>(&key);
  uint64_t acc = seed;
  acc += (load64le(p) ^ 0x9e3779b97f4a7c15u) * 0xbf58476d1ce4e5b9u;
  acc += (load64le(p + 8) ^ 0xc2b2ae3d27d4eb4fu) * 0x94d049bb133111ebu;
  acc += (load64le(p + 16) ^ 0x165667b19e3779f9u) * 0xff51afd7ed558ccdu;
  acc += (load64le(p + 24) ^ 0x27d4eb2f165667c5u) * 0xc4ceb9fe1a85ec53u;
  acc += (load64le(p + 32) ^ 0x85ebca77c2b2ae63u) * 0x9fb21c651e98df25u;
  return mixHash64(acc);
}

}  // namespace capstan::dataplane
