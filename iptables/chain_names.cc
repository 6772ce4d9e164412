#include "iptables/chain_names.h"

#include <openssl/evp.h>

#include <array>

namespace capstan::iptables {

namespace {

// The first 16 characters of the RFC 4648 base32 encoding (no padding is reached: 16
// characters are the first 10 bytes) of sha256(text).
std::string hash16(const std::string& text) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest.data(), &length, EVP_sha256(), nullptr);
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  out.reserve(16);
  uint64_t buffer = 0;
  int bits = 0;
  for (int i = 0; i < 10; ++i) {
    buffer = (buffer << 8) | digest[static_cast<size_t>(i)];
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out.push_back(kAlphabet[(buffer >> bits) & 31]);
    }
  }
  return out;
}

}  // namespace

std::string_view lowerProtocol(Protocol protocol) {
  switch (protocol) {
    case Protocol::kTCP:
      return "tcp";
    case Protocol::kUDP:
      return "udp";
    case Protocol::kSCTP:
      return "sctp";
  }
  return "tcp";
}

std::string portProtoHash(const ServicePortName& port) {
  return hash16(port.toString() + std::string(lowerProtocol(port.protocol)));
}

std::string clusterPolicyChain(const ServicePortName& port) {
  return "KUBE-SVC-" + portProtoHash(port);
}
std::string localPolicyChain(const ServicePortName& port) {
  return "KUBE-SVL-" + portProtoHash(port);
}
std::string externalChain(const ServicePortName& port) { return "KUBE-EXT-" + portProtoHash(port); }
std::string firewallChain(const ServicePortName& port) { return "KUBE-FW-" + portProtoHash(port); }

std::string endpointChain(const ServicePortName& port, const Endpoint& endpoint) {
  return "KUBE-SEP-" +
         hash16(port.toString() + std::string(lowerProtocol(port.protocol)) + endpoint.toString());
}

bool isServiceChain(std::string_view chain) {
  for (std::string_view prefix : {"KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-"}) {
    if (chain.starts_with(prefix)) return true;
  }
  return false;
}

}  // namespace capstan::iptables
