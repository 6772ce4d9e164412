// PacketBuilder: frames for the dataplane tests and benchmarks, built layer by layer with correct
// lengths and checksums (PacketBuilder().eth().ipv4("10.0.0.5", "10.96.0.10").tcp(40000, 80)),
// plus helpers to truncate or corrupt them and to check every checksum of a frame from scratch.
//
// Checksums here are computed by plain RFC 1071 sums written independently of
// dataplane/checksum.cc, so tests of the incremental updates compare against a second
// implementation rather than against the code under test. No GoogleTest here: the benchmarks in
// bench/dataplane/ build their frames with it too (the checks are in packet_checks.h).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/packet.h"
#include "model/ip.h"

namespace capstan::dataplane {

namespace test {

using Frame = std::vector<uint8_t>;

// RFC 1071 from first principles: byte pairs, 32-bit sum, folded, complemented.
inline uint16_t referenceChecksum(const std::vector<uint8_t>& bytes) {
  uint32_t sum = 0;
  for (size_t i = 0; i < bytes.size(); i += 2) {
    const uint32_t hi = bytes[i];
    const uint32_t lo = i + 1 < bytes.size() ? bytes[i + 1] : 0;
    sum += (hi << 8) | lo;
  }
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

inline void put16(std::vector<uint8_t>& out, size_t at, uint16_t v) {
  out[at] = static_cast<uint8_t>(v >> 8);
  out[at + 1] = static_cast<uint8_t>(v);
}
inline uint16_t get16(const std::vector<uint8_t>& in, size_t at) {
  return static_cast<uint16_t>(in[at] << 8 | in[at + 1]);
}
inline void append16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}
inline void append32(std::vector<uint8_t>& out, uint32_t v) {
  append16(out, static_cast<uint16_t>(v >> 16));
  append16(out, static_cast<uint16_t>(v));
}

inline IpAddress ip(std::string_view text) {
  auto parsed = IpAddress::parse(text);
  if (!parsed) {  // a typo in a test's literal: a programmer error
    std::fprintf(stderr, "bad IP address literal: %.*s\n", static_cast<int>(text.size()),
                 text.data());
    std::abort();
  }
  return *parsed;
}

// The pseudo-header (RFC 793 / RFC 768 / RFC 8200 8.1) as bytes, for referenceChecksum.
inline std::vector<uint8_t> pseudoHeader(const IpAddress& src, const IpAddress& dst,
                                         uint8_t protocol, uint32_t length) {
  std::vector<uint8_t> out;
  out.insert(out.end(), src.bytes().begin(), src.bytes().begin() + src.byteLength());
  out.insert(out.end(), dst.bytes().begin(), dst.bytes().begin() + dst.byteLength());
  if (src.isV4()) {
    out.push_back(0);
    out.push_back(protocol);
    append16(out, static_cast<uint16_t>(length));
  } else {
    append32(out, length);
    out.insert(out.end(), {0, 0, 0, protocol});
  }
  return out;
}

class PacketBuilder {
 public:
  static constexpr std::array<uint8_t, 6> kSrcMac = {0x02, 0, 0, 0, 0, 0x01};
  static constexpr std::array<uint8_t, 6> kDstMac = {0x02, 0, 0, 0, 0, 0x02};

  // Every frame has an Ethernet header; eth() only makes the chain read like the frame.
  PacketBuilder& eth() { return *this; }
  PacketBuilder& vlan(uint16_t tci) {
    vlan_ = true;
    tci_ = tci;
    return *this;
  }
  PacketBuilder& etherType(uint16_t type) {  // a non-IP frame: bytes of payload() follow
    etherType_ = type;
    return *this;
  }
  PacketBuilder& ipv4(std::string_view src, std::string_view dst, uint8_t ttl = 64) {
    family_ = IpFamily::kV4;
    src_ = ip(src);
    dst_ = ip(dst);
    ttl_ = ttl;
    return *this;
  }
  PacketBuilder& ipv6(std::string_view src, std::string_view dst, uint8_t hopLimit = 64) {
    family_ = IpFamily::kV6;
    src_ = ip(src);
    dst_ = ip(dst);
    ttl_ = hopLimit;
    return *this;
  }
  // IPv4 options (padded with zero to a multiple of 4 bytes).
  PacketBuilder& ipv4Options(std::vector<uint8_t> options) {
    while (options.size() % 4 != 0) options.push_back(0);
    options_ = std::move(options);
    return *this;
  }
  // The IPv4 fragment field: `offset` in 8-byte units, and MF.
  PacketBuilder& ipv4Fragment(uint16_t offset, bool more) {
    fragment_ = static_cast<uint16_t>((offset & 0x1fff) | (more ? 0x2000 : 0));
    return *this;
  }
  // An IPv6 extension header of `type` (0, 43, 60: `length` bytes, a multiple of 8, >= 8).
  PacketBuilder& ipv6Extension(uint8_t type, size_t length = 8) {
    extensions_.push_back({type, std::vector<uint8_t>(length, 0)});
    return *this;
  }
  PacketBuilder& ipv6Fragment(uint16_t offset, bool more) {
    std::vector<uint8_t> h(8, 0);
    put16(h, 2, static_cast<uint16_t>(offset << 3 | (more ? 1 : 0)));
    extensions_.push_back({44, std::move(h)});
    return *this;
  }
  PacketBuilder& tcp(uint16_t srcPort, uint16_t dstPort, uint8_t flags = kTcpSyn,
                     uint32_t seq = 1000, uint32_t ack = 0) {
    l4_ = L4::kTcp;
    protocol_ = kIpProtoTcp;
    srcPort_ = srcPort;
    dstPort_ = dstPort;
    flags_ = flags;
    seq_ = seq;
    ack_ = ack;
    return *this;
  }
  // TCP options (padded with NOP... zero bytes to a multiple of 4).
  PacketBuilder& tcpOptions(std::vector<uint8_t> options) {
    while (options.size() % 4 != 0) options.push_back(0);
    tcpOptions_ = std::move(options);
    return *this;
  }
  PacketBuilder& udp(uint16_t srcPort, uint16_t dstPort) {
    l4_ = L4::kUdp;
    protocol_ = kIpProtoUdp;
    srcPort_ = srcPort;
    dstPort_ = dstPort;
    return *this;
  }
  // IPv4 only: send UDP without a checksum (field 0, RFC 768).
  PacketBuilder& udpNoChecksum() {
    udpNoChecksum_ = true;
    return *this;
  }
  PacketBuilder& icmpEcho(uint16_t id, uint16_t sequence, bool request = true) {
    l4_ = L4::kIcmp;
    protocol_ = family_ == IpFamily::kV4 ? kIpProtoIcmp : kIpProtoIcmpv6;
    icmpType_ = family_ == IpFamily::kV4 ? (request ? 8 : 0) : (request ? 128 : 129);
    icmpCode_ = 0;
    icmpRest_ = uint32_t{id} << 16 | sequence;
    return *this;
  }
  // An ICMP error quoting `quoted` (an IP packet, e.g. PacketBuilder()...buildIp()): for IPv4
  // type 3 code 4 is fragmentation needed with `rest` = next-hop MTU.
  PacketBuilder& icmpError(uint8_t type, uint8_t code, std::vector<uint8_t> quoted,
                           uint32_t rest = 0) {
    l4_ = L4::kIcmp;
    protocol_ = family_ == IpFamily::kV4 ? kIpProtoIcmp : kIpProtoIcmpv6;
    icmpType_ = type;
    icmpCode_ = code;
    icmpRest_ = rest;
    payload_ = std::move(quoted);
    return *this;
  }
  // Any other IP protocol, with payload() as its bytes.
  PacketBuilder& protocol(uint8_t number) {
    l4_ = L4::kRaw;
    protocol_ = number;
    return *this;
  }
  PacketBuilder& payload(std::vector<uint8_t> bytes) {
    payload_ = std::move(bytes);
    return *this;
  }
  PacketBuilder& payload(std::string_view text) {
    payload_.assign(text.begin(), text.end());
    return *this;
  }
  // Pads the frame with zeros to at least `length` bytes (Ethernet's 60-byte minimum).
  PacketBuilder& padTo(size_t length) {
    padTo_ = length;
    return *this;
  }

  // The IP packet (no Ethernet header).
  std::vector<uint8_t> buildIp() const {
    std::vector<uint8_t> l4 = transport();
    std::vector<uint8_t> out;
    if (family_ == IpFamily::kV4) {
      const size_t headerLength = 20 + options_.size();
      out.push_back(static_cast<uint8_t>(0x40 | headerLength / 4));
      out.push_back(0);
      append16(out, static_cast<uint16_t>(headerLength + l4.size()));
      append16(out, 0x1234);  // identification
      append16(out, fragment_);
      out.push_back(ttl_);
      out.push_back(protocol_);
      append16(out, 0);
      out.insert(out.end(), src_.bytes().begin(), src_.bytes().begin() + 4);
      out.insert(out.end(), dst_.bytes().begin(), dst_.bytes().begin() + 4);
      out.insert(out.end(), options_.begin(), options_.end());
      put16(out, 10, referenceChecksum(out));
    } else {
      std::vector<uint8_t> ext;
      uint8_t first = protocol_;
      for (size_t i = extensions_.size(); i-- > 0;) {
        std::vector<uint8_t> h = extensions_[i].bytes;
        h[0] = first;
        if (extensions_[i].type != 44) h[1] = static_cast<uint8_t>(h.size() / 8 - 1);
        ext.insert(ext.begin(), h.begin(), h.end());
        first = extensions_[i].type;
      }
      append32(out, 0x60000000);
      append16(out, static_cast<uint16_t>(ext.size() + l4.size()));
      out.push_back(first);
      out.push_back(ttl_);
      out.insert(out.end(), src_.bytes().begin(), src_.bytes().end());
      out.insert(out.end(), dst_.bytes().begin(), dst_.bytes().end());
      out.insert(out.end(), ext.begin(), ext.end());
    }
    out.insert(out.end(), l4.begin(), l4.end());
    return out;
  }

  Frame build() const {
    Frame out(PacketBuilder::kDstMac.begin(), PacketBuilder::kDstMac.end());
    out.insert(out.end(), kSrcMac.begin(), kSrcMac.end());
    const uint16_t type =
        etherType_ != 0 ? etherType_ : (family_ == IpFamily::kV4 ? kEtherTypeIpv4 : kEtherTypeIpv6);
    if (vlan_) {
      append16(out, kEtherTypeVlan);
      append16(out, tci_);
    }
    append16(out, type);
    if (etherType_ == 0) {
      std::vector<uint8_t> packet = buildIp();
      out.insert(out.end(), packet.begin(), packet.end());
    } else {
      out.insert(out.end(), payload_.begin(), payload_.end());
    }
    if (out.size() < padTo_) out.resize(padTo_, 0);
    return out;
  }

 private:
  enum class L4 : uint8_t { kNone, kTcp, kUdp, kIcmp, kRaw };
  struct Extension {
    uint8_t type;
    std::vector<uint8_t> bytes;
  };

  std::vector<uint8_t> transport() const {
    std::vector<uint8_t> h;
    size_t checksumAt = SIZE_MAX;
    switch (l4_) {
      case L4::kNone:
      case L4::kRaw:
        return payload_;
      case L4::kTcp:
        append16(h, srcPort_);
        append16(h, dstPort_);
        append32(h, seq_);
        append32(h, ack_);
        h.push_back(static_cast<uint8_t>((20 + tcpOptions_.size()) / 4 << 4));
        h.push_back(flags_);
        append16(h, 65535);  // window
        append16(h, 0);      // checksum
        append16(h, 0);      // urgent pointer
        h.insert(h.end(), tcpOptions_.begin(), tcpOptions_.end());
        checksumAt = 16;
        break;
      case L4::kUdp:
        append16(h, srcPort_);
        append16(h, dstPort_);
        append16(h, static_cast<uint16_t>(8 + payload_.size()));
        append16(h, 0);
        checksumAt = 6;
        break;
      case L4::kIcmp:
        h.push_back(icmpType_);
        h.push_back(icmpCode_);
        append16(h, 0);
        append32(h, icmpRest_);
        checksumAt = 2;
        break;
    }
    h.insert(h.end(), payload_.begin(), payload_.end());
    if (l4_ == L4::kUdp && udpNoChecksum_) return h;
    std::vector<uint8_t> summed;
    if (protocol_ != kIpProtoIcmp) {
      summed = pseudoHeader(src_, dst_, protocol_, static_cast<uint32_t>(h.size()));
      if (summed.size() % 2 != 0) summed.push_back(0);
    }
    summed.insert(summed.end(), h.begin(), h.end());
    uint16_t check = referenceChecksum(summed);
    if (l4_ == L4::kUdp && check == 0) check = 0xffff;  // RFC 768
    put16(h, checksumAt, check);
    return h;
  }

  bool vlan_ = false;
  uint16_t tci_ = 0;
  uint16_t etherType_ = 0;
  IpFamily family_ = IpFamily::kV4;
  IpAddress src_, dst_;
  uint8_t ttl_ = 64;
  uint16_t fragment_ = 0;
  std::vector<uint8_t> options_;
  std::vector<Extension> extensions_;
  L4 l4_ = L4::kNone;
  uint8_t protocol_ = 0;
  uint16_t srcPort_ = 0, dstPort_ = 0;
  uint8_t flags_ = 0;
  uint32_t seq_ = 0, ack_ = 0;
  std::vector<uint8_t> tcpOptions_;
  bool udpNoChecksum_ = false;
  uint8_t icmpType_ = 0, icmpCode_ = 0;
  uint32_t icmpRest_ = 0;
  std::vector<uint8_t> payload_;
  size_t padTo_ = 0;
};

// The first `length` bytes of `frame`, in a buffer of exactly that size so that AddressSanitizer
// reports any read past it.
inline Frame truncated(const Frame& frame, size_t length) {
  return Frame(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(length));
}

inline Frame withByte(Frame frame, size_t at, uint8_t value) {
  frame.at(at) = value;
  return frame;
}

// Recomputes the IPv4 header checksum at `l3Offset` (after a deliberate corruption of another
// header field, so that the parser reaches the check under test).
inline Frame withIpv4ChecksumFixed(Frame frame, size_t l3Offset = kEthernetHeaderLength) {
  // Clamped to the frame: corrupted IHLs may claim more than there is.
  const size_t headerLength =
      std::min<size_t>((frame.at(l3Offset) & 0x0f) * 4u, frame.size() - l3Offset);
  put16(frame, l3Offset + 10, 0);
  std::vector<uint8_t> header(frame.begin() + static_cast<std::ptrdiff_t>(l3Offset),
                              frame.begin() + static_cast<std::ptrdiff_t>(l3Offset + headerLength));
  put16(frame, l3Offset + 10, referenceChecksum(header));
  return frame;
}

}  // namespace test
}  // namespace capstan::dataplane
