// CertificateSet: the certificates the ingress serves, and which one answers a TLS server name.
//
// Who calls it: the control thread builds a set from the kubernetes.io/tls Secrets that the
// Ingresses' spec.tls name (one CertificateSource per spec.tls entry, in the route table's order)
// plus the default certificate, and publishes it to every worker's ServerContext
// (l7/tls/server_context.h). Every worker then calls select() on each full handshake, from its own
// thread, without locks: a set is immutable after build() and select() allocates nothing.
//
// Each distinct Secret is parsed once (tls.crt: the leaf first, then its chain; tls.key: the
// private key) and checked the way the handshake will use it (the key matches the certificate, the
// key type and size are ones OpenSSL's security level accepts). A Secret that fails is reported by
// name and field and left out; the others load. An expired certificate loads with a warning (a
// client may still accept it; serving nothing would not be better).
//
// select(serverName), as the Ingress spec and ingress-nginx choose a certificate:
//   1. an exact host of some source ("a.example.com"; case-insensitive, trailing dot ignored);
//   2. a wildcard host "*.example.com", which covers exactly one label ("a.example.com", not
//      "example.com" nor "b.a.example.com", as RFC 6125 6.4.3 matches a wildcard certificate);
//   3. the first source without hosts (a catch-all spec.tls entry);
//   4. the default certificate.
// When two sources name the same host, the first wins and the later one is reported.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "l7/tls/openssl_ptr.h"
#include "model/result.h"

namespace capstan::l7::tls {

// One spec.tls entry with its Secret's contents, as the control thread hands it over.
struct CertificateSource {
  std::string name;  // "namespace/secret", for messages
  // Exact "a.example.com" or wildcard "*.example.com" (one label). Empty: a catch-all entry.
  std::vector<std::string> hosts;
  std::string certificatePem;  // the Secret's tls.crt: the leaf, then the chain
  std::string privateKeyPem;   // the Secret's tls.key
};

// One parsed Secret: the leaf certificate, its chain (without the leaf) and the private key.
// Shared by every worker; OpenSSL's reference counts keep the pieces alive in a connection that
// still uses them after the set is gone.
class Certificate {
 public:
  const std::string& name() const { return name_; }
  X509* leaf() const { return leaf_.get(); }
  STACK_OF(X509) * chain() const { return chain_.get(); }
  EVP_PKEY* privateKey() const { return privateKey_.get(); }

 private:
  friend class CertificateSet;
  std::string name_;
  X509Ptr leaf_;
  X509StackPtr chain_;
  EvpPkeyPtr privateKey_;
};

class CertificateSet {
 public:
  struct Built;

  // Parses every source and the default certificate. Fails only when the default certificate does
  // not load (then there would be nothing to answer with); a source that does not load is listed
  // in Built::errors and left out. `now` decides what counts as expired.
  static Result<Built> build(std::span<const CertificateSource> sources,
                             const CertificateSource& defaultCertificate,
                             std::chrono::system_clock::time_point now);

  CertificateSet(const CertificateSet&) = delete;
  CertificateSet& operator=(const CertificateSet&) = delete;

  // The certificate for a TLS server name (RFC 6066 3: a DNS host name, no port); an empty name
  // (the client sent no SNI) gets the catch-all or the default. Never null; no allocation.
  const Certificate& select(std::string_view serverName) const;

  const Certificate& defaultCertificate() const { return *certificates_[defaultIndex_]; }
  // Distinct Secrets loaded, the default included.
  size_t certificateCount() const { return certificates_.size(); }
  // Host names served (exact and wildcard).
  size_t hostCount() const { return exact_.size() + wildcard_.size(); }

 private:
  class Builder;

  // Heterogeneous lookup (find(string_view) on string keys) without building a std::string.
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using NameIndex = std::unordered_map<std::string, uint32_t, NameHash, std::equal_to<>>;

  CertificateSet() = default;

  std::vector<std::unique_ptr<const Certificate>> certificates_;
  NameIndex exact_;             // canonical host -> index in certificates_
  NameIndex wildcard_;          // "example.com" for "*.example.com" -> index in certificates_
  uint32_t fallbackIndex_ = 0;  // the first catch-all, else the default
  uint32_t defaultIndex_ = 0;
};

struct CertificateSet::Built {
  std::shared_ptr<const CertificateSet> set;
  // One message per source that did not load, naming the Secret and field:
  // "Secret default/web-tls: tls.key: does not match tls.crt".
  std::vector<std::string> errors;
  // Sources that loaded with a problem (expired, a host the certificate does not cover, a host
  // served by an earlier source).
  std::vector<std::string> warnings;
};

// The longest host name select() looks up (RFC 1035 2.3.4 allows 253 characters in text form);
// longer names get the catch-all or the default.
inline constexpr size_t kMaxServerNameLength = 253;

}  // namespace capstan::l7::tls
