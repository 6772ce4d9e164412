#include "l7/tls/server_context.h"

#include <openssl/err.h>

#include <cstring>
#include <utility>

#include "l7/tls/openssl_ptr.h"

namespace capstan::l7::tls {
namespace {

// The SSL_CTX ex_data slot holding the ServerContext, for the one callback OpenSSL gives no
// argument (the ticket key callback). Not the "app data" slot 0: boost::asio::ssl::context keeps
// its verify callback there and deletes whatever it finds on destruction.
int serverContextIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// The same session ID context on every worker's SSL_CTX: OpenSSL resumes a session only in a
// context whose ID matches the one it was made in.
constexpr unsigned char kSessionIdContext[] = "capstan";

}  // namespace

ServerContext::ServerContext(SSL_CTX* adopted, std::shared_ptr<const CertificateSet> certificates,
                             std::shared_ptr<const TicketKeys> ticketKeys, std::string alpnWire)
    : asio_(adopted),
      certificates_(std::move(certificates)),
      ticketKeys_(std::move(ticketKeys)),
      alpnWire_(std::move(alpnWire)) {}

ServerContext::~ServerContext() = default;

Result<std::unique_ptr<ServerContext>> ServerContext::create(
    const ServerOptions& options, std::shared_ptr<const CertificateSet> certificates,
    std::shared_ptr<const TicketKeys> ticketKeys) {
  if (certificates == nullptr) return Error("certificates: must not be null");
  if (ticketKeys == nullptr) return Error("ticketKeys: must not be null");
  std::string alpnWire;
  for (size_t i = 0; i < options.alpnProtocols.size(); ++i) {
    const std::string& protocol = options.alpnProtocols[i];
    // RFC 7301 3.1: opaque ProtocolName<1..2^8-1>.
    if (protocol.empty() || protocol.size() > 255) {
      return Error("alpnProtocols[" + std::to_string(i) + "]: must have 1 to 255 bytes");
    }
    alpnWire.push_back(static_cast<char>(protocol.size()));
    alpnWire.append(protocol);
  }

  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (ctx == nullptr) return Error("SSL_CTX_new: " + takeOpensslError());
  SSL_CTX* c = ctx.get();
  // RFC 8996: TLS 1.0 and 1.1 are deprecated.
  if (SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) != 1) {
    return Error("minimum version: " + takeOpensslError());
  }
  // Client-initiated renegotiation (TLS 1.2) costs the server a full handshake for free: refused.
  // Compression is off for CRIME's sake (OpenSSL 3's default; said here, not assumed).
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  if (SSL_CTX_set_cipher_list(c, options.cipherList.c_str()) != 1) {
    return Error("cipherList: " + takeOpensslError());
  }
  if (SSL_CTX_set1_groups_list(c, options.groups.c_str()) != 1) {
    return Error("groups: " + takeOpensslError());
  }
  // Tickets only: a server-side cache would live in one worker and resume nothing on the others.
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  if (SSL_CTX_set_session_id_context(c, kSessionIdContext, sizeof(kSessionIdContext) - 1) != 1) {
    return Error("session id context: " + takeOpensslError());
  }
  SSL_CTX_set_timeout(c, static_cast<long>(options.sessionLifetime.count()));
  // Idle keep-alive connections give their buffers back (34 KB each otherwise).
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);

  std::unique_ptr<ServerContext> self(new ServerContext(
      ctx.release(), std::move(certificates), std::move(ticketKeys), std::move(alpnWire)));
  c = self->nativeHandle();
  if (SSL_CTX_set_ex_data(c, serverContextIndex(), self.get()) != 1) {
    return Error("SSL_CTX_set_ex_data: " + takeOpensslError());
  }
  SSL_CTX_set_cert_cb(c, onCertificate, self.get());
  SSL_CTX_set_tlsext_servername_callback(c, onServerName);
  SSL_CTX_set_tlsext_servername_arg(c, self.get());
  if (!self->alpnWire_.empty()) SSL_CTX_set_alpn_select_cb(c, onAlpn, self.get());
  if (SSL_CTX_set_tlsext_ticket_key_evp_cb(c, onTicket) != 1) {
    return Error("session tickets: " + takeOpensslError());
  }
  return self;
}

void ServerContext::publish(std::shared_ptr<const CertificateSet> certificates) {
  certificates_.store(std::move(certificates), std::memory_order_release);
}

std::shared_ptr<const CertificateSet> ServerContext::certificates() const {
  return certificates_.load(std::memory_order_acquire);
}

HandshakeInfo ServerContext::handshakeInfo(const SSL* ssl) {
  HandshakeInfo info;
  const unsigned char* alpn = nullptr;
  unsigned int alpnLength = 0;
  SSL_get0_alpn_selected(ssl, &alpn, &alpnLength);
  if (alpn != nullptr) info.alpn = {reinterpret_cast<const char*>(alpn), alpnLength};
  if (const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) info.serverName = name;
  info.resumed = SSL_session_reused(ssl) == 1;
  info.version = SSL_version(ssl);
  return info;
}

// OpenSSL's certificate callback: called once the ClientHello is parsed (SNI included) and before
// the server picks its signature algorithm and certificate; not called when a ticket resumed the
// session (no certificate is sent then). Returns 1 to continue, 0 to fail the handshake.
int ServerContext::onCertificate(SSL* ssl, void* arg) {
  const auto* self = static_cast<const ServerContext*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  // The set stays alive until this returns; the connection then holds its own references to
  // the certificate, key and chain (SSL_use_cert_and_key takes them with *_up_ref).
  const std::shared_ptr<const CertificateSet> set =
      self->certificates_.load(std::memory_order_acquire);
  const Certificate& certificate = set->select(name != nullptr ? name : std::string_view());
  return SSL_use_cert_and_key(ssl, certificate.leaf(), certificate.privateKey(),
                              certificate.chain(), 1);
}

// RFC 6066 3: a server that uses the server_name acknowledges it in its ServerHello. Every name is
// used (for certificate selection, and for the route lookup after the handshake), so it is always
// acknowledged; in TLS 1.2 that also stores the name in the session, which a resumption checks.
int ServerContext::onServerName(SSL*, int*, void*) { return SSL_TLSEXT_ERR_OK; }

// RFC 7301 3.2: the server picks one protocol the client offered; server preference order.
int ServerContext::onAlpn(SSL*, const unsigned char** out, unsigned char* outLength,
                          const unsigned char* in, unsigned int inLength, void* arg) {
  const std::string& ours = static_cast<const ServerContext*>(arg)->alpnWire_;
  for (size_t i = 0; i < ours.size(); i += 1 + static_cast<unsigned char>(ours[i])) {
    const auto length = static_cast<unsigned char>(ours[i]);
    const auto* protocol = reinterpret_cast<const unsigned char*>(ours.data() + i + 1);
    for (unsigned int j = 0; j < inLength && j + 1 + in[j] <= inLength; j += 1 + in[j]) {
      if (in[j] == length && std::memcmp(in + j + 1, protocol, length) == 0) {
        *out = protocol;
        *outLength = length;
        return SSL_TLSEXT_ERR_OK;
      }
    }
  }
  // No overlap: RFC 7301 3.2 allows a no_application_protocol alert; answering without ALPN lets
  // the client fall back to HTTP/1.1, as nginx does.
  return SSL_TLSEXT_ERR_NOACK;
}

int ServerContext::onTicket(SSL* ssl, unsigned char* keyName, unsigned char* iv,
                            EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int encrypt) {
  const auto* self = static_cast<const ServerContext*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), serverContextIndex()));
  if (self == nullptr) return -1;
  return self->ticketKeys_->onTicket(keyName, iv, cipher, mac, encrypt != 0);
}

}  // namespace capstan::l7::tls
