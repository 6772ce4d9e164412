// Test certificates made with OpenSSL at run time (a root CA, an intermediate, leaves with the
// names and keys a test asks for; no private key is checked in), and a TLS client that handshakes
// with a server SSL_CTX over an in-memory BIO pair. Shared by tests/l7/tls and bench/l7/tls; no
// GoogleTest here.
#pragma once

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "l7/tls/certificate_set.h"
#include "l7/tls/openssl_ptr.h"

namespace capstan::l7::tls::testing {

enum class KeyKind { kEcP256, kRsa2048, kRsa512 };

// Test set-up only: a failure here is a broken test machine, not a finding.
inline void require(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string(what) + ": " + takeOpensslError());
}

inline EvpPkeyPtr makeKey(KeyKind kind) {
  EVP_PKEY* key = kind == KeyKind::kEcP256    ? EVP_EC_gen("P-256")
                  : kind == KeyKind::kRsa2048 ? EVP_RSA_gen(2048)
                                              : EVP_RSA_gen(512);
  require(key != nullptr, "key generation");
  return EvpPkeyPtr(key);
}

inline std::string pemOf(X509* x509) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  require(PEM_write_bio_X509(bio.get(), x509) == 1, "PEM_write_bio_X509");
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

inline std::string pemOf(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  require(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
          "PEM_write_bio_PrivateKey");
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

// What a test certificate says about itself.
struct CertificateSpec {
  std::string commonName;
  std::vector<std::string> dnsNames;  // subjectAltName DNS entries
  bool isCa = false;
  long validFromSeconds = -3600;  // relative to now
  long validToSeconds = 30L * 24 * 3600;
};

// A certificate for `subjectKey`, signed by `issuerKey` as `issuer` (null: self-signed).
inline X509Ptr makeCertificate(const CertificateSpec& spec, EVP_PKEY* subjectKey, X509* issuer,
                               EVP_PKEY* issuerKey) {
  static long serial = 1000;
  X509Ptr x509(X509_new());
  require(x509 != nullptr, "X509_new");
  X509* x = x509.get();
  X509_set_version(x, X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(x), ++serial);
  X509_gmtime_adj(X509_getm_notBefore(x), spec.validFromSeconds);
  X509_gmtime_adj(X509_getm_notAfter(x), spec.validToSeconds);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(spec.commonName.c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(issuer != nullptr ? issuer : x));
  X509_set_pubkey(x, subjectKey);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer : x, x, nullptr, nullptr, 0);
  std::string san;
  for (const std::string& name : spec.dnsNames) san += (san.empty() ? "DNS:" : ",DNS:") + name;
  std::vector<std::pair<int, std::string>> extensions = {
      {NID_basic_constraints, spec.isCa ? "critical,CA:TRUE" : "critical,CA:FALSE"},
      {NID_subject_key_identifier, "hash"}};
  if (!san.empty()) extensions.emplace_back(NID_subject_alt_name, san);
  if (spec.isCa) extensions.emplace_back(NID_key_usage, "critical,keyCertSign,cRLSign");
  for (const auto& [nid, value] : extensions) {
    X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    require(extension != nullptr && X509_add_ext(x, extension, -1) == 1, "extension");
    X509_EXTENSION_free(extension);
  }
  require(X509_sign(x, issuerKey != nullptr ? issuerKey : subjectKey, EVP_sha256()) != 0,
          "X509_sign");
  return x509;
}

// A root CA and an intermediate under it; leaves are issued by the intermediate, and their
// tls.crt carries the intermediate, so a client trusting only the root verifies them.
class TestPki {
 public:
  TestPki()
      : rootKey_(makeKey(KeyKind::kEcP256)),
        root_(makeCertificate({.commonName = "Capstan Test Root", .isCa = true}, rootKey_.get(),
                              nullptr, nullptr)),
        intermediateKey_(makeKey(KeyKind::kEcP256)),
        intermediate_(makeCertificate({.commonName = "Capstan Test Intermediate", .isCa = true},
                                      intermediateKey_.get(), root_.get(), rootKey_.get())) {}

  X509* root() const { return root_.get(); }

  // A Secret's contents: tls.crt (leaf + intermediate) and tls.key.
  CertificateSource issue(std::string name, std::vector<std::string> hosts, CertificateSpec spec,
                          KeyKind kind = KeyKind::kEcP256) const {
    EvpPkeyPtr key = makeKey(kind);
    if (spec.dnsNames.empty()) {
      for (const std::string& host : hosts) spec.dnsNames.push_back(host);
    }
    X509Ptr leaf = makeCertificate(spec, key.get(), intermediate_.get(), intermediateKey_.get());
    return {std::move(name), std::move(hosts), pemOf(leaf.get()) + pemOf(intermediate_.get()),
            pemOf(key.get())};
  }
  // The same, with the common name of the leaf `name` (tests identify certificates by it).
  CertificateSource issue(const std::string& name, std::vector<std::string> hosts,
                          KeyKind kind = KeyKind::kEcP256) const {
    return issue(name, std::move(hosts), CertificateSpec{.commonName = name}, kind);
  }

 private:
  EvpPkeyPtr rootKey_;
  X509Ptr root_;
  EvpPkeyPtr intermediateKey_;
  X509Ptr intermediate_;
};

inline std::string commonNameOf(X509* x509) {
  if (x509 == nullptr) return "";
  char text[256] = "";
  X509_NAME_get_text_by_NID(X509_get_subject_name(x509), NID_commonName, text, sizeof(text));
  return text;
}

// What a client asks for.
struct ClientOptions {
  std::string serverName;         // SNI; empty: none sent
  std::vector<std::string> alpn;  // offered protocols; empty: no ALPN extension
  int minVersion = TLS1_VERSION;  // what the client allows
  int maxVersion = TLS1_3_VERSION;
  SSL_SESSION* session = nullptr;  // to resume
  X509* trustedRoot = nullptr;     // verify the chain and the host name against it; null: no check
};

// One client connection to a server SSL_CTX, handshaken over an in-memory BIO pair.
struct Handshake {
  SslPtr client;
  SslPtr server;
  bool ok = false;
  std::string error;  // why it failed: the OpenSSL reasons seen on either side

  // The peer certificate the client got; its common name.
  std::string peerCommonName() const {
    X509Ptr peer(SSL_get1_peer_certificate(client.get()));
    return commonNameOf(peer.get());
  }
  // The session to resume with, after reading the TLS 1.3 NewSessionTicket messages (RFC 8446
  // 4.6.1: they follow the handshake). Closes the client side with close_notify, as a client
  // does: OpenSSL marks the session of a connection freed without it not resumable. Caller frees
  // the session (SSL_SESSION_free).
  SSL_SESSION* takeSession() {
    char byte;
    SSL_read(client.get(), &byte, 1);  // processes the tickets, then wants more: no data sent
    SSL_shutdown(client.get());
    ERR_clear_error();
    return SSL_get1_session(client.get());
  }
};

// A client SSL_CTX for ClientOptions; one per distinct options is enough.
inline SslCtxPtr makeClientContext(const ClientOptions& options) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  require(ctx != nullptr, "SSL_CTX_new");
  // Lower the client's own security level so that it can offer TLS 1.0/1.1 (OpenSSL 3 refuses
  // them at level 1 and up): the test is that the server refuses.
  SSL_CTX_set_security_level(ctx.get(), 0);
  if (options.minVersion < TLS1_2_VERSION)
    SSL_CTX_set_cipher_list(ctx.get(), "DEFAULT:@SECLEVEL=0");
  SSL_CTX_set_min_proto_version(ctx.get(), options.minVersion);
  SSL_CTX_set_max_proto_version(ctx.get(), options.maxVersion);
  // No client cache: freeing a context flushes its cache, which marks the sessions not resumable;
  // the tests hold sessions themselves (Handshake::takeSession).
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  if (options.trustedRoot != nullptr) {
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), options.trustedRoot);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  }
  return ctx;
}

inline Handshake handshake(SSL_CTX* serverContext, SSL_CTX* clientContext,
                           const ClientOptions& options) {
  Handshake h;
  h.client.reset(SSL_new(clientContext));
  h.server.reset(SSL_new(serverContext));
  require(h.client != nullptr && h.server != nullptr, "SSL_new");
  SSL* c = h.client.get();
  SSL* s = h.server.get();
  if (!options.serverName.empty()) {
    SSL_set_tlsext_host_name(c, options.serverName.c_str());
    if (options.trustedRoot != nullptr) SSL_set1_host(c, options.serverName.c_str());
  }
  if (!options.alpn.empty()) {
    std::string wire;
    for (const std::string& p : options.alpn) wire += static_cast<char>(p.size()) + p;
    SSL_set_alpn_protos(c, reinterpret_cast<const unsigned char*>(wire.data()),
                        static_cast<unsigned int>(wire.size()));
  }
  if (options.session != nullptr) SSL_set_session(c, options.session);
  BIO* clientBio = nullptr;
  BIO* serverBio = nullptr;
  require(BIO_new_bio_pair(&clientBio, 0, &serverBio, 0) == 1, "BIO_new_bio_pair");
  SSL_set_bio(c, clientBio, clientBio);
  SSL_set_bio(s, serverBio, serverBio);
  SSL_set_connect_state(c);
  SSL_set_accept_state(s);
  ERR_clear_error();
  for (int round = 0; round < 16; ++round) {
    const int rc = SSL_do_handshake(c);
    const int ec = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(c, rc);
    const int rs = SSL_do_handshake(s);
    const int es = rs == 1 ? SSL_ERROR_NONE : SSL_get_error(s, rs);
    if (rc == 1 && rs == 1) {
      h.ok = true;
      return h;
    }
    const auto stuck = [](int e) { return e != SSL_ERROR_WANT_READ && e != SSL_ERROR_NONE; };
    if (stuck(ec) || stuck(es)) break;
  }
  h.error = takeOpensslError("no progress");
  return h;
}

}  // namespace capstan::l7::tls::testing
