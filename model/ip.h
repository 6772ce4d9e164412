// IP addresses and CIDR prefixes, IPv4 and IPv6, as value types.
//
// Parsing is strict in the way Kubernetes API validation is: IPv4 in dotted-quad form without
// leading zeros ("010.0.0.1" is rejected, as Go's netip rejects it), IPv6 in any RFC 4291 text
// form. Formatting is canonical (RFC 5952 for IPv6), so equal addresses print the same.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace capstan {

enum class IpFamily : uint8_t { kV4, kV6 };

std::string_view toString(IpFamily family);  // "IPv4" / "IPv6", as Kubernetes spells them

class IpAddress {
 public:
  IpAddress() = default;  // 0.0.0.0

  static std::optional<IpAddress> parse(std::string_view text);
  static IpAddress v4(uint32_t hostOrder);
  static IpAddress v6(const std::array<uint8_t, 16>& bytes);

  IpFamily family() const { return family_; }
  bool isV4() const { return family_ == IpFamily::kV4; }
  bool isV6() const { return family_ == IpFamily::kV6; }
  bool isUnspecified() const;
  bool isLoopback() const;

  // The address in host byte order (IPv4 only).
  uint32_t v4Value() const;
  // Network-order bytes: 4 significant for IPv4, 16 for IPv6.
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }
  size_t byteLength() const { return isV4() ? 4 : 16; }

  std::string toString() const;

  auto operator<=>(const IpAddress&) const = default;
  bool operator==(const IpAddress&) const = default;

 private:
  IpFamily family_ = IpFamily::kV4;
  std::array<uint8_t, 16> bytes_{};
};

// "10.0.0.1:80" or "[fd00::1]:80", the form kube-proxy uses to name an endpoint.
std::string joinHostPort(const IpAddress& ip, uint16_t port);

// A CIDR prefix such as 10.96.0.0/12. Host bits past the prefix are masked off, as Kubernetes
// does for loadBalancerSourceRanges ("10.0.0.1/8" means 10.0.0.0/8).
class Cidr {
 public:
  Cidr() = default;
  Cidr(IpAddress address, uint8_t prefixLength);  // masks host bits

  static std::optional<Cidr> parse(std::string_view text);

  const IpAddress& address() const { return address_; }
  uint8_t prefixLength() const { return prefixLength_; }
  IpFamily family() const { return address_.family(); }
  bool contains(const IpAddress& ip) const;
  std::string toString() const;

  auto operator<=>(const Cidr&) const = default;
  bool operator==(const Cidr&) const = default;

 private:
  IpAddress address_;
  uint8_t prefixLength_ = 0;
};

}  // namespace capstan
