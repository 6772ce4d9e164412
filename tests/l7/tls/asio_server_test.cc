// The integration the ingress server relies on: a boost::asio::ssl::stream over a real TCP socket
// on loopback, made from ServerContext::asioContext(), handshaking with an Asio TLS client.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <string>

#include "l7/tls/self_signed_certificate.h"
#include "l7/tls/server_context.h"
#include "tests/l7/tls/tls_test_support.h"

namespace capstan::l7::tls {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::ip::tcp;
using boost::system::error_code;
using namespace capstan::l7::tls::testing;

TEST(AsioServerTest, StreamOverLoopbackHandshakesWithSniAlpnAndCarriesData) {
  TestPki pki;
  Result<PemCertificate> generated = generateSelfSignedCertificate();
  ASSERT_TRUE(generated.ok());
  const CertificateSource sources[] = {pki.issue("default/a-tls", {"a.example.com"}),
                                       pki.issue("default/b-tls", {"b.example.com"})};
  Result<CertificateSet::Built> built = CertificateSet::build(
      sources, {"capstan/default", {}, generated->certificatePem, generated->privateKeyPem},
      std::chrono::system_clock::now());
  ASSERT_TRUE(built.ok()) << built.error().message();
  Result<std::shared_ptr<TicketKeys>> keys = TicketKeys::create();
  ASSERT_TRUE(keys.ok());
  Result<std::unique_ptr<ServerContext>> context =
      ServerContext::create({}, built->set, keys.value());
  ASSERT_TRUE(context.ok()) << context.error().message();

  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  // The server side, as an ingress worker does it.
  ssl::stream<tcp::socket> server(io, context.value()->asioContext());
  HandshakeInfo info;
  std::string serverGot(4, '\0');
  error_code serverError;
  acceptor.async_accept(server.next_layer(), [&](error_code ec) {
    if (ec) {
      serverError = ec;
      return;
    }
    server.async_handshake(ssl::stream_base::server, [&](error_code ec) {
      if (ec) {
        serverError = ec;
        return;
      }
      info = ServerContext::handshakeInfo(server.native_handle());
      asio::async_read(server, asio::buffer(serverGot), [&](error_code ec, size_t) {
        if (ec) {
          serverError = ec;
          return;
        }
        asio::async_write(server, asio::buffer(std::string_view("pong")),
                          [&](error_code ec, size_t) { serverError = ec; });
      });
    });
  });

  // An Asio client that verifies the chain against the test root and the host name.
  ssl::context clientContext(ssl::context::tls_client);
  clientContext.add_certificate_authority(asio::buffer(pemOf(pki.root())));
  clientContext.set_verify_mode(ssl::verify_peer);
  ssl::stream<tcp::socket> client(io, clientContext);
  client.set_verify_callback(ssl::host_name_verification("b.example.com"));
  ASSERT_EQ(SSL_set_tlsext_host_name(client.native_handle(), "b.example.com"), 1);
  const unsigned char alpn[] = "\x08http/1.1";
  ASSERT_EQ(SSL_set_alpn_protos(client.native_handle(), alpn, sizeof(alpn) - 1), 0);
  std::string clientGot(4, '\0');
  error_code clientError;
  client.next_layer().async_connect(acceptor.local_endpoint(), [&](error_code ec) {
    if (ec) {
      clientError = ec;
      return;
    }
    client.async_handshake(ssl::stream_base::client, [&](error_code ec) {
      if (ec) {
        clientError = ec;
        return;
      }
      asio::async_write(client, asio::buffer(std::string_view("ping")), [&](error_code ec, size_t) {
        if (ec) {
          clientError = ec;
          return;
        }
        asio::async_read(client, asio::buffer(clientGot),
                         [&](error_code ec, size_t) { clientError = ec; });
      });
    });
  });

  io.run_for(std::chrono::seconds(30));
  EXPECT_FALSE(serverError) << serverError.message();
  EXPECT_FALSE(clientError) << clientError.message();
  EXPECT_EQ(serverGot, "ping");
  EXPECT_EQ(clientGot, "pong");
  EXPECT_EQ(info.serverName, "b.example.com");
  EXPECT_EQ(info.alpn, "http/1.1");
  EXPECT_EQ(info.version, TLS1_3_VERSION);
  X509Ptr peer(SSL_get1_peer_certificate(client.native_handle()));
  EXPECT_EQ(commonNameOf(peer.get()), "default/b-tls");
}

}  // namespace
}  // namespace capstan::l7::tls
