#include "dataplane/nat.h"

#include <cstring>

#include "dataplane/bytes.h"
#include "dataplane/checksum.h"

namespace capstan::dataplane {

namespace {

// Where the addresses and the header checksum of an IP header are.
struct IpFields {
  uint32_t src, dst, length;
  bool hasChecksum;
};

IpFields ipFields(IpFamily family) {
  if (family == IpFamily::kV4) return {12, 16, 4, true};
  return {8, 24, 16, false};
}

// The checksum at `at`, updated by `delta`. `udp` applies RFC 768's rules for the value 0.
void updateChecksum(uint8_t* at, const ChecksumDelta& delta, bool udp, bool ipv4) {
  const uint16_t old = load16be(at);
  if (udp && ipv4 && old == 0) return;  // sent without a checksum: keep it so
  uint16_t updated = delta.apply(old);
  if (udp && updated == 0) updated = 0xffff;
  store16be(at, updated);
}

// Rewrites the addresses of the IP header at `l3` to those of `to`; adds the change to `delta` and
// fixes the IPv4 header checksum.
void rewriteAddresses(uint8_t* l3, IpFamily family, const FlowKey& to, ChecksumDelta& delta) {
  const IpFields f = ipFields(family);
  ChecksumDelta addresses;
  addresses.addBytes(l3 + f.src, to.src.data(), f.length);
  addresses.addBytes(l3 + f.dst, to.dst.data(), f.length);
  if (f.hasChecksum) store16be(l3 + 10, addresses.apply(load16be(l3 + 10)));
  std::memcpy(l3 + f.src, to.src.data(), f.length);
  std::memcpy(l3 + f.dst, to.dst.data(), f.length);
  delta.add(addresses);
}

}  // namespace

void rewriteFlow(std::span<uint8_t> frame, const ParsedPacket& p, const FlowKey& to) {
  uint8_t* base = frame.data();
  uint8_t* l4 = base + p.l4Offset;
  ChecksumDelta delta;
  rewriteAddresses(base + p.l3Offset, p.key.family, to, delta);
  delta.add16(p.key.srcPort, to.srcPort);
  delta.add16(p.key.dstPort, to.dstPort);
  store16be(l4, to.srcPort);
  store16be(l4 + 2, to.dstPort);
  const bool udp = p.key.protocol == kIpProtoUdp;
  updateChecksum(l4 + (udp ? 6 : 16), delta, udp, p.key.family == IpFamily::kV4);
}

void rewriteIcmpError(std::span<uint8_t> frame, const ParsedPacket& p, const IcmpInnerPacket& inner,
                      const FlowKey& outerTo, const FlowKey& innerTo) {
  uint8_t* base = frame.data();
  const bool v4 = p.key.family == IpFamily::kV4;
  // Everything the ICMP checksum covers that changes: the quote's addresses, ports and checksums,
  // and for ICMPv6 the outer addresses through the pseudo-header.
  ChecksumDelta icmp;

  // The quoted packet: its transport checksum first (it covers the quoted addresses through its
  // pseudo-header and the ports), then the ports, then the addresses and the quoted IPv4 checksum.
  uint8_t* innerL4 = base + inner.l4Offset;
  ChecksumDelta innerDelta;
  const IpFields f = ipFields(inner.key.family);
  uint8_t* innerL3 = base + inner.l3Offset;
  innerDelta.addBytes(innerL3 + f.src, innerTo.src.data(), f.length);
  innerDelta.addBytes(innerL3 + f.dst, innerTo.dst.data(), f.length);
  innerDelta.add16(inner.key.srcPort, innerTo.srcPort);
  innerDelta.add16(inner.key.dstPort, innerTo.dstPort);
  const bool udp = inner.key.protocol == kIpProtoUdp;
  const uint32_t checksumAt = inner.l4Offset + (udp ? 6 : 16);
  if (checksumAt + 2 <= p.l3End) {
    const uint16_t before = load16be(base + checksumAt);
    updateChecksum(base + checksumAt, innerDelta, udp, v4);
    icmp.add16(before, load16be(base + checksumAt));
  }
  icmp.add16(inner.key.srcPort, innerTo.srcPort);
  icmp.add16(inner.key.dstPort, innerTo.dstPort);
  store16be(innerL4, innerTo.srcPort);
  store16be(innerL4 + 2, innerTo.dstPort);
  const uint16_t innerIpChecksum = v4 ? load16be(innerL3 + 10) : 0;
  rewriteAddresses(innerL3, inner.key.family, innerTo, icmp);
  if (v4) icmp.add16(innerIpChecksum, load16be(innerL3 + 10));

  // The outer header. Its address change reaches the ICMPv6 checksum through the pseudo-header
  // (RFC 4443 2.3); ICMPv4's checksum covers the ICMP message only.
  ChecksumDelta outer;
  rewriteAddresses(base + p.l3Offset, p.key.family, outerTo, outer);
  if (!v4) icmp.add(outer);
  uint8_t* icmpChecksum = base + p.l4Offset + 2;
  store16be(icmpChecksum, icmp.apply(load16be(icmpChecksum)));
}

}  // namespace capstan::dataplane
