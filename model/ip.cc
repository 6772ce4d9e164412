#include "model/ip.h"

#include <arpa/inet.h>

#include <cstring>

namespace capstan {

std::string_view toString(IpFamily family) { return family == IpFamily::kV4 ? "IPv4" : "IPv6"; }

namespace {

// Dotted quad, each part 0-255 in decimal without leading zeros.
std::optional<uint32_t> parseV4(std::string_view text) {
  uint32_t value = 0;
  int parts = 0;
  size_t i = 0;
  while (parts < 4) {
    if (i >= text.size() || text[i] < '0' || text[i] > '9') return std::nullopt;
    size_t start = i;
    uint32_t part = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      part = part * 10 + static_cast<uint32_t>(text[i] - '0');
      if (part > 255) return std::nullopt;
      ++i;
    }
    if (i - start > 1 && text[start] == '0') return std::nullopt;  // leading zero
    value = (value << 8) | part;
    ++parts;
    if (parts < 4) {
      if (i >= text.size() || text[i] != '.') return std::nullopt;
      ++i;
    }
  }
  if (i != text.size()) return std::nullopt;
  return value;
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.find(':') == std::string_view::npos) {
    auto v4 = parseV4(text);
    if (!v4) return std::nullopt;
    return IpAddress::v4(*v4);
  }
  // IPv6: inet_pton handles every RFC 4291 form (including an embedded dotted quad). Zones
  // ("fe80::1%eth0") are not IP addresses in Kubernetes and are rejected here too.
  if (text.size() > INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN + 1];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  std::array<uint8_t, 16> bytes{};
  if (inet_pton(AF_INET6, buf, bytes.data()) != 1) return std::nullopt;
  return IpAddress::v6(bytes);
}

IpAddress IpAddress::v4(uint32_t hostOrder) {
  IpAddress ip;
  ip.family_ = IpFamily::kV4;
  ip.bytes_[0] = static_cast<uint8_t>(hostOrder >> 24);
  ip.bytes_[1] = static_cast<uint8_t>(hostOrder >> 16);
  ip.bytes_[2] = static_cast<uint8_t>(hostOrder >> 8);
  ip.bytes_[3] = static_cast<uint8_t>(hostOrder);
  return ip;
}

IpAddress IpAddress::v6(const std::array<uint8_t, 16>& bytes) {
  IpAddress ip;
  ip.family_ = IpFamily::kV6;
  ip.bytes_ = bytes;
  return ip;
}

uint32_t IpAddress::v4Value() const {
  return (uint32_t{bytes_[0]} << 24) | (uint32_t{bytes_[1]} << 16) | (uint32_t{bytes_[2]} << 8) |
         uint32_t{bytes_[3]};
}

bool IpAddress::isUnspecified() const {
  for (size_t i = 0; i < byteLength(); ++i) {
    if (bytes_[i] != 0) return false;
  }
  return true;
}

bool IpAddress::isLoopback() const {
  if (isV4()) return bytes_[0] == 127;
  for (size_t i = 0; i < 15; ++i) {
    if (bytes_[i] != 0) return false;
  }
  return bytes_[15] == 1;
}

std::string IpAddress::toString() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(isV4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof(buf));
  return buf;
}

std::string joinHostPort(const IpAddress& ip, uint16_t port) {
  std::string out;
  if (ip.isV6()) {
    out = "[" + ip.toString() + "]:";
  } else {
    out = ip.toString() + ":";
  }
  out += std::to_string(port);
  return out;
}

Cidr::Cidr(IpAddress address, uint8_t prefixLength) : prefixLength_(prefixLength) {
  auto bytes = address.bytes();
  size_t bits = address.byteLength() * 8;
  if (prefixLength_ > bits) prefixLength_ = static_cast<uint8_t>(bits);
  for (size_t i = 0; i < address.byteLength(); ++i) {
    size_t firstBit = i * 8;
    if (firstBit >= prefixLength_) {
      bytes[i] = 0;
    } else if (firstBit + 8 > prefixLength_) {
      bytes[i] &= static_cast<uint8_t>(0xff << (8 - (prefixLength_ - firstBit)));
    }
  }
  address_ = address.isV4()
                 ? IpAddress::v4((uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) |
                                 (uint32_t{bytes[2]} << 8) | bytes[3])
                 : IpAddress::v6(bytes);
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto ip = IpAddress::parse(text.substr(0, slash));
  if (!ip) return std::nullopt;
  std::string_view lenText = text.substr(slash + 1);
  if (lenText.empty() || lenText.size() > 3) return std::nullopt;
  if (lenText.size() > 1 && lenText[0] == '0') return std::nullopt;
  unsigned len = 0;
  for (char c : lenText) {
    if (c < '0' || c > '9') return std::nullopt;
    len = len * 10 + static_cast<unsigned>(c - '0');
  }
  if (len > ip->byteLength() * 8) return std::nullopt;
  return Cidr(*ip, static_cast<uint8_t>(len));
}

bool Cidr::contains(const IpAddress& ip) const {
  if (ip.family() != address_.family()) return false;
  return Cidr(ip, prefixLength_).address_ == address_;
}

std::string Cidr::toString() const {
  return address_.toString() + "/" + std::to_string(prefixLength_);
}

}  // namespace capstan
