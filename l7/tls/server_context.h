// ServerContext: one ingress worker's TLS server configuration — the SSL_CTX every connection of
// that worker is made from. One per worker thread, so that workers share nothing but the
// immutable CertificateSet they are handed and the TicketKeys.
//
// Who calls it: the daemon makes one per worker at start-up (create), on the control thread; the
// control thread later publish()es each new CertificateSet to every worker's context; the worker
// wraps each accepted socket in a boost::asio::ssl::stream over asioContext() and, after the
// handshake, reads handshakeInfo() for its logs and counters.
//
// What a handshake gets:
// - TLS 1.2 or 1.3 (RFC 8446; RFC 8996 deprecates 1.0 and 1.1: they are refused), the Mozilla
//   "intermediate" TLS 1.2 ciphers (ECDHE with AES-GCM or ChaCha20-Poly1305), OpenSSL's TLS 1.3
//   suites, groups X25519, P-256, P-384. No renegotiation, no compression, no 0-RTT.
// - The certificate that CertificateSet::select() picks for its SNI name (RFC 6066 3), from the
//   set published when the handshake reaches certificate selection. It is installed on the
//   connection (SSL_use_cert_and_key) from OpenSSL's certificate callback (SSL_CTX_set_cert_cb),
//   which runs once the whole ClientHello is parsed and is skipped for a resumed session, so a
//   resumption costs no lookup. The connection holds its own references to the certificate, so a
//   publish() during or after the handshake never touches it.
// - ALPN (RFC 7301): the first of ServerOptions::alpnProtocols, in that preference order, that the
//   client offers. A client offering none of them, or no ALPN at all, gets no protocol and the
//   handshake goes on (as nginx does; the request path then speaks HTTP/1.1).
// - Session tickets under the shared TicketKeys (no server-side session cache: it would be per
//   worker), so a session resumes on every worker and after a certificate change.
#pragma once

#include <openssl/ssl.h>

#include <atomic>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "l7/tls/certificate_set.h"
#include "l7/tls/ticket_keys.h"
#include "model/result.h"

namespace capstan::l7::tls {

// Mozilla's "intermediate" configuration (v5.7) for TLS 1.2, without the DHE suites (they would
// need DH parameters; every client that has them has ECDHE). TLS 1.3 suites are OpenSSL's.
inline constexpr std::string_view kIntermediateCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

struct ServerOptions {
  // ALPN protocol IDs in the server's order of preference (RFC 7301 3.1: 1 to 255 bytes each).
  // Add "h2" in front once the request path speaks HTTP/2. Empty: no ALPN.
  std::vector<std::string> alpnProtocols = {"http/1.1"};
  std::string cipherList = std::string(kIntermediateCiphers);  // TLS 1.2 (SSL_CTX_set_cipher_list)
  std::string groups = "X25519:P-256:P-384";                   // SSL_CTX_set1_groups_list
  // The session (ticket) lifetime the server advertises (RFC 8446 4.6.1 ticket_lifetime; RFC
  // 5077 3.3 ticket_lifetime_hint) and accepts. Keys live one to two rotation periods.
  std::chrono::seconds sessionLifetime = kTicketKeyRotationPeriod;
};

// What a completed handshake negotiated. The views point into the connection's SSL and are valid
// while it lives.
struct HandshakeInfo {
  std::string_view alpn;        // the negotiated protocol ("http/1.1"); empty: none
  std::string_view serverName;  // the SNI name the client sent; empty: none
  bool resumed = false;         // a session ticket resumed the session (no full handshake)
  int version = 0;              // TLS1_2_VERSION or TLS1_3_VERSION
};

class ServerContext {
 public:
  // Fails on options OpenSSL refuses (a cipher list or group list it cannot parse, an ALPN
  // protocol that is empty or longer than 255 bytes). `certificates` and `ticketKeys` must not be
  // null.
  static Result<std::unique_ptr<ServerContext>> create(
      const ServerOptions& options, std::shared_ptr<const CertificateSet> certificates,
      std::shared_ptr<const TicketKeys> ticketKeys);

  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;
  // Every connection made from this context must be gone first: the callbacks point here.
  ~ServerContext();

  // Makes `certificates` the set that handshakes reaching certificate selection from now on use;
  // connections that already have their certificate keep it. Safe to call from any thread while
  // the worker handshakes. Not null.
  void publish(std::shared_ptr<const CertificateSet> certificates);
  std::shared_ptr<const CertificateSet> certificates() const;

  // The SSL_CTX to make connections from (SSL_new). Owned here.
  SSL_CTX* nativeHandle() { return asio_.native_handle(); }
  // The same SSL_CTX as Boost.Asio's context (it adopted the handle: boost::asio::ssl::context's
  // constructor from a native_handle_type takes ownership), for
  //   boost::asio::ssl::stream<boost::asio::ip::tcp::socket> stream(std::move(socket),
  //                                                                 context.asioContext());
  // Asio's setters (set_verify_callback, use_certificate...) must not be used on it: the
  // certificate comes from the published CertificateSet.
  boost::asio::ssl::context& asioContext() { return asio_; }

  // What the handshake on `ssl` negotiated; call once SSL_is_init_finished(ssl) (after
  // async_handshake completes, on stream.native_handle()).
  static HandshakeInfo handshakeInfo(const SSL* ssl);

 private:
  ServerContext(SSL_CTX* adopted, std::shared_ptr<const CertificateSet> certificates,
                std::shared_ptr<const TicketKeys> ticketKeys, std::string alpnWire);

  static int onCertificate(SSL* ssl, void* arg);
  static int onServerName(SSL* ssl, int* alert, void* arg);
  static int onAlpn(SSL* ssl, const unsigned char** out, unsigned char* outLength,
                    const unsigned char* in, unsigned int inLength, void* arg);
  static int onTicket(SSL* ssl, unsigned char* keyName, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                      EVP_MAC_CTX* mac, int encrypt);

  boost::asio::ssl::context asio_;
  std::atomic<std::shared_ptr<const CertificateSet>> certificates_;
  std::shared_ptr<const TicketKeys> ticketKeys_;
  std::string alpnWire_;  // RFC 7301 3.1 ProtocolNameList: length-prefixed names, preference order
};

}  // namespace capstan::l7::tls
