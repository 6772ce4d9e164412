#include "l7/tls/certificate_set.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <map>
#include <optional>
#include <utility>

namespace capstan::l7::tls {
namespace {

char lowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// The name as select() compares it: lower-cased (RFC 4343: DNS names compare case-insensitively),
// without one trailing dot (the root label: "a.example.com." is "a.example.com"), written into
// `buffer`. Empty when the name is empty or too long for the buffer.
std::string_view canonicalName(std::string_view name,
                               std::span<char, kMaxServerNameLength> buffer) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.size() > buffer.size()) return {};
  for (size_t i = 0; i < name.size(); ++i) buffer[i] = lowerAscii(name[i]);
  return {buffer.data(), name.size()};
}

// PEM_read_bio_*'s answer when the input holds no further PEM block of the kind asked for.
bool atEndOfPem() {
  const unsigned long code = ERR_peek_last_error();
  return ERR_GET_LIB(code) == ERR_LIB_PEM && ERR_GET_REASON(code) == PEM_R_NO_START_LINE;
}

// A passphrase callback that refuses: without it OpenSSL would prompt on the terminal for an
// encrypted tls.key. kubernetes.io/tls Secrets hold unencrypted keys.
int refusePassphrase(char*, int, int, void*) { return -1; }

std::string asn1TimeText(const ASN1_TIME* time) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(time, &tm) != 1) return "an unreadable time";
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

}  // namespace

class CertificateSet::Builder {
 public:
  Builder(CertificateSet& set, Built& built, std::chrono::system_clock::time_point now)
      : set_(set), built_(built), now_(std::chrono::system_clock::to_time_t(now)) {}

  Status init() {
    // A scratch context to try each certificate the way a handshake installs it
    // (SSL_use_cert_and_key in ServerContext): a key type or size the security level refuses
    // ("ee key too small") fails here, once, instead of on every handshake.
    scratch_.reset(SSL_CTX_new(TLS_server_method()));
    if (scratch_ == nullptr) return Error("SSL_CTX_new: " + takeOpensslError());
    return okStatus();
  }

  // Loads the default certificate; on failure the whole build fails.
  Status addDefault(const CertificateSource& source) {
    std::optional<uint32_t> index = load(source);
    if (!index) {
      Error error(built_.errors.back());
      built_.errors.pop_back();
      return error;
    }
    set_.defaultIndex_ = *index;
    set_.fallbackIndex_ = *index;
    return okStatus();
  }

  void add(const CertificateSource& source) {
    std::optional<uint32_t> index = load(source);
    if (!index) return;
    const std::string prefix = "Secret " + source.name + ": ";
    if (source.hosts.empty()) {
      if (!haveCatchAll_) {
        haveCatchAll_ = true;
        set_.fallbackIndex_ = *index;
      } else {
        built_.warnings.push_back(prefix + "hosts: empty (a catch-all), but Secret " +
                                  set_.certificates_[set_.fallbackIndex_]->name() +
                                  " is the catch-all already");
      }
      return;
    }
    const Certificate& certificate = *set_.certificates_[*index];
    for (size_t i = 0; i < source.hosts.size(); ++i) {
      addHost(prefix + "hosts[" + std::to_string(i) + "] \"" + source.hosts[i] + "\": ",
              source.hosts[i], certificate, *index);
    }
  }

 private:
  void addHost(const std::string& where, std::string_view host, const Certificate& certificate,
               uint32_t index) {
    char buffer[kMaxServerNameLength];
    const bool wildcard = host.starts_with("*.");
    std::string_view name = canonicalName(wildcard ? host.substr(2) : host, buffer);
    if (name.empty() || name.find('*') != std::string_view::npos) {
      built_.warnings.push_back(where + "not a host name or a \"*.\" wildcard; ignored");
      return;
    }
    NameIndex& index_ = wildcard ? set_.wildcard_ : set_.exact_;
    auto [it, inserted] = index_.try_emplace(std::string(name), index);
    if (!inserted) {
      if (it->second != index) {
        built_.warnings.push_back(where + "served by Secret " +
                                  set_.certificates_[it->second]->name() + " already");
      }
      return;
    }
    // X509_check_host matches the certificate's names against the host as RFC 6125 does; a
    // wildcard host is covered by the same wildcard in the certificate.
    if (X509_check_host(certificate.leaf(), host.data(), host.size(), 0, nullptr) != 1) {
      ERR_clear_error();
      built_.warnings.push_back(where + "tls.crt does not cover this host");
    }
  }

  // The index of the parsed source in certificates_ (the same Secret contents are parsed once),
  // or nullopt after adding its error to built_.errors.
  std::optional<uint32_t> load(const CertificateSource& source) {
    const std::pair<std::string_view, std::string_view> key(source.certificatePem,
                                                            source.privateKeyPem);
    if (auto it = loaded_.find(key); it != loaded_.end()) return it->second;
    Result<std::unique_ptr<Certificate>> parsed = parse(source);
    if (!parsed.ok()) {
      built_.errors.push_back(parsed.error().withContext("Secret " + source.name).message());
      loaded_.emplace(key, std::nullopt);
      return std::nullopt;
    }
    checkValidity(source, *parsed.value());
    const auto index = static_cast<uint32_t>(set_.certificates_.size());
    set_.certificates_.push_back(std::move(parsed.value()));
    loaded_.emplace(key, index);
    return index;
  }

  Result<std::unique_ptr<Certificate>> parse(const CertificateSource& source) {
    auto certificate = std::make_unique<Certificate>();
    certificate->name_ = source.name;
    ERR_clear_error();

    // tls.crt: the leaf first, then the intermediates (RFC 8446 4.4.2: the sender's certificate
    // comes first, each following one certifies the one before).
    BioPtr bio = memoryBio(source.certificatePem);
    certificate->chain_.reset(sk_X509_new_null());
    if (bio == nullptr || certificate->chain_ == nullptr) {
      return Error("tls.crt: " + takeOpensslError("out of memory"));
    }
    for (size_t n = 0;; ++n) {
      X509Ptr x509(PEM_read_bio_X509(bio.get(), nullptr, refusePassphrase, nullptr));
      if (x509 == nullptr) {
        if (!atEndOfPem()) {
          return Error("tls.crt: certificate " + std::to_string(n) + ": " + takeOpensslError());
        }
        ERR_clear_error();
        if (n == 0) return Error("tls.crt: no certificate");
        break;
      }
      if (n == 0) {
        certificate->leaf_ = std::move(x509);
      } else if (sk_X509_push(certificate->chain_.get(), x509.get()) > 0) {
        x509.release();  // the stack owns it now
      } else {
        return Error("tls.crt: " + takeOpensslError("out of memory"));
      }
    }

    // OpenSSL 3's decoders say "unsupported" both for a key they cannot read and for no key at
    // all; a PEM private key block of any kind (RFC 7468 10, 11; "RSA PRIVATE KEY"...) tells them
    // apart.
    if (source.privateKeyPem.find("PRIVATE KEY-----") == std::string::npos) {
      return Error("tls.key: no private key");
    }
    bio = memoryBio(source.privateKeyPem);
    if (bio == nullptr) return Error("tls.key: " + takeOpensslError("out of memory"));
    certificate->privateKey_.reset(
        PEM_read_bio_PrivateKey(bio.get(), nullptr, refusePassphrase, nullptr));
    if (certificate->privateKey_ == nullptr) {
      return Error("tls.key: cannot read the private key: " + takeOpensslError());
    }
    if (X509_check_private_key(certificate->leaf(), certificate->privateKey()) != 1) {
      ERR_clear_error();
      return Error("tls.key: does not match tls.crt");
    }
    if (SSL_CTX_use_cert_and_key(scratch_.get(), certificate->leaf(), certificate->privateKey(),
                                 certificate->chain(), 1) != 1) {
      return Error("tls.crt: not usable for TLS: " + takeOpensslError());
    }
    return certificate;
  }

  void checkValidity(const CertificateSource& source, const Certificate& certificate) {
    const ASN1_TIME* notAfter = X509_get0_notAfter(certificate.leaf());
    const ASN1_TIME* notBefore = X509_get0_notBefore(certificate.leaf());
    if (X509_cmp_time(notAfter, &now_) < 0) {
      built_.warnings.push_back("Secret " + source.name + ": tls.crt: expired on " +
                                asn1TimeText(notAfter));
    } else if (X509_cmp_time(notBefore, &now_) > 0) {
      built_.warnings.push_back("Secret " + source.name + ": tls.crt: not valid before " +
                                asn1TimeText(notBefore));
    }
  }

  CertificateSet& set_;
  Built& built_;
  std::time_t now_;
  SslCtxPtr scratch_;
  bool haveCatchAll_ = false;
  std::map<std::pair<std::string_view, std::string_view>, std::optional<uint32_t>> loaded_;
};

Result<CertificateSet::Built> CertificateSet::build(std::span<const CertificateSource> sources,
                                                    const CertificateSource& defaultCertificate,
                                                    std::chrono::system_clock::time_point now) {
  std::shared_ptr<CertificateSet> set(new CertificateSet());
  Built built;
  Builder builder(*set, built, now);
  if (Status s = builder.init(); !s.ok()) return s.error();
  if (Status s = builder.addDefault(defaultCertificate); !s.ok()) {
    return s.error().withContext("default certificate");
  }
  for (const CertificateSource& source : sources) builder.add(source);
  built.set = std::move(set);
  return built;
}

const Certificate& CertificateSet::select(std::string_view serverName) const {
  char buffer[kMaxServerNameLength];
  const std::string_view name = canonicalName(serverName, buffer);
  if (!name.empty()) {
    if (auto it = exact_.find(name); it != exact_.end()) return *certificates_[it->second];
    // A wildcard covers exactly one label: look up what follows the first one.
    const size_t dot = name.find('.');
    if (dot != std::string_view::npos && dot > 0) {
      if (auto it = wildcard_.find(name.substr(dot + 1)); it != wildcard_.end()) {
        return *certificates_[it->second];
      }
    }
  }
  return *certificates_[fallbackIndex_];
}

}  // namespace capstan::l7::tls
