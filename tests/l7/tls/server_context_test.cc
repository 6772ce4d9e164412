#include "l7/tls/server_context.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "l7/tls/self_signed_certificate.h"
#include "tests/l7/tls/tls_test_support.h"

namespace capstan::l7::tls {
namespace {

using ::testing::HasSubstr;
using namespace capstan::l7::tls::testing;

struct SessionFree {
  void operator()(SSL_SESSION* s) const { SSL_SESSION_free(s); }
};
using SessionPtr = std::unique_ptr<SSL_SESSION, SessionFree>;

class ServerContextTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new TestPki();
    exact_ = pki_->issue("default/a-tls", {"a.example.com"});
    renewed_ = pki_->issue("default/a-tls-renewed", {"a.example.com"});
    wildcard_ = pki_->issue("default/wildcard-tls", {"*.example.com"}, KeyKind::kRsa2048);
    catchAll_ = pki_->issue("default/catch-all-tls", {});
    Result<PemCertificate> generated = generateSelfSignedCertificate();
    ASSERT_TRUE(generated.ok()) << generated.error().message();
    defaultSource_ = {
        "capstan/default-certificate", {}, generated->certificatePem, generated->privateKeyPem};
  }
  static void TearDownTestSuite() { delete pki_; }

  static std::shared_ptr<const CertificateSet> certificates(
      const std::vector<CertificateSource>& sources) {
    Result<CertificateSet::Built> built =
        CertificateSet::build(sources, defaultSource_, std::chrono::system_clock::now());
    EXPECT_TRUE(built.ok()) << built.error().message();
    EXPECT_TRUE(built->errors.empty());
    return built->set;
  }
  static std::shared_ptr<const CertificateSet> allCertificates() {
    return certificates({exact_, wildcard_, catchAll_});
  }

  static std::shared_ptr<TicketKeys> newTicketKeys() {
    Result<std::shared_ptr<TicketKeys>> keys = TicketKeys::create();
    EXPECT_TRUE(keys.ok());
    return keys.value();
  }

  static std::unique_ptr<ServerContext> serverContext(std::shared_ptr<const CertificateSet> set,
                                                      std::shared_ptr<TicketKeys> keys = nullptr,
                                                      const ServerOptions& options = {}) {
    Result<std::unique_ptr<ServerContext>> context = ServerContext::create(
        options, std::move(set), keys != nullptr ? std::move(keys) : newTicketKeys());
    EXPECT_TRUE(context.ok()) << context.error().message();
    return std::move(context.value());
  }

  static Handshake connect(ServerContext& server, const ClientOptions& options) {
    SslCtxPtr client = makeClientContext(options);
    return handshake(server.nativeHandle(), client.get(), options);
  }

  static inline TestPki* pki_ = nullptr;
  static inline CertificateSource exact_, renewed_, wildcard_, catchAll_, defaultSource_;
};

// The tests that hold for TLS 1.2 and TLS 1.3 alike.
class ServerContextVersionTest : public ServerContextTest,
                                 public ::testing::WithParamInterface<int> {
 protected:
  ClientOptions client(std::string serverName) const {
    return {
        .serverName = std::move(serverName), .minVersion = GetParam(), .maxVersion = GetParam()};
  }
};

INSTANTIATE_TEST_SUITE_P(Tls, ServerContextVersionTest,
                         ::testing::Values(TLS1_2_VERSION, TLS1_3_VERSION),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param == TLS1_2_VERSION ? "Tls12" : "Tls13";
                         });

TEST_P(ServerContextVersionTest, SniExactHostGetsItsCertificateWithItsChain) {
  auto server = serverContext(allCertificates());
  ClientOptions options = client("a.example.com");
  options.trustedRoot = pki_->root();  // the client trusts the root only: needs the intermediate
  Handshake h = connect(*server, options);
  ASSERT_TRUE(h.ok) << h.error;
  EXPECT_EQ(h.peerCommonName(), "default/a-tls");
  EXPECT_EQ(SSL_get_verify_result(h.client.get()), X509_V_OK);
  HandshakeInfo info = ServerContext::handshakeInfo(h.server.get());
  EXPECT_EQ(info.serverName, "a.example.com");
  EXPECT_EQ(info.version, GetParam());
  EXPECT_FALSE(info.resumed);
}

TEST_P(ServerContextVersionTest, WildcardCoversOneLabelOnly) {
  auto server = serverContext(allCertificates());
  ClientOptions options = client("b.example.com");
  options.trustedRoot = pki_->root();
  Handshake h = connect(*server, options);
  ASSERT_TRUE(h.ok) << h.error;
  EXPECT_EQ(h.peerCommonName(), "default/wildcard-tls");  // an RSA certificate
  EXPECT_EQ(SSL_get_verify_result(h.client.get()), X509_V_OK);

  h = connect(*server, client("b.a.example.com"));
  ASSERT_TRUE(h.ok) << h.error;
  EXPECT_EQ(h.peerCommonName(), "default/catch-all-tls");
}

TEST_P(ServerContextVersionTest, NoSniGetsTheCatchAllThenTheDefault) {
  auto server = serverContext(allCertificates());
  Handshake h = connect(*server, client(""));
  ASSERT_TRUE(h.ok) << h.error;
  EXPECT_EQ(h.peerCommonName(), "default/catch-all-tls");
  EXPECT_EQ(ServerContext::handshakeInfo(h.server.get()).serverName, "");

  server = serverContext(certificates({exact_, wildcard_}));
  h = connect(*server, client(""));
  ASSERT_TRUE(h.ok) << h.error;
  EXPECT_EQ(h.peerCommonName(), "Capstan Default Certificate");
  h = connect(*server, client("unknown.test"));
  ASSERT_TRUE(h.ok) << h.error;
  EXPECT_EQ(h.peerCommonName(), "Capstan Default Certificate");
}

TEST_P(ServerContextVersionTest, AlpnPicksHttp11AndGoesOnWithoutAMatch) {
  auto server = serverContext(allCertificates());
  ClientOptions options = client("a.example.com");
  options.alpn = {"h2", "http/1.1"};
  Handshake h = connect(*server, options);
  ASSERT_TRUE(h.ok) << h.error;
  EXPECT_EQ(ServerContext::handshakeInfo(h.server.get()).alpn, "http/1.1");
  const unsigned char* selected = nullptr;
  unsigned int length = 0;
  SSL_get0_alpn_selected(h.client.get(), &selected, &length);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(selected), length), "http/1.1");

  options.alpn = {"h2", "spdy/3.1"};  // nothing the server speaks: no ALPN, no failure
  h = connect(*server, options);
  ASSERT_TRUE(h.ok) << h.error;
  EXPECT_EQ(ServerContext::handshakeInfo(h.server.get()).alpn, "");

  options.alpn = {};  // no ALPN extension at all
  h = connect(*server, options);
  ASSERT_TRUE(h.ok) << h.error;
  EXPECT_EQ(ServerContext::handshakeInfo(h.server.get()).alpn, "");
}

TEST_P(ServerContextVersionTest, AlpnFollowsTheServersPreference) {
  auto server = serverContext(allCertificates(), nullptr, {.alpnProtocols = {"h2", "http/1.1"}});
  ClientOptions options = client("a.example.com");
  options.alpn = {"http/1.1", "h2"};
  Handshake h = connect(*server, options);
  ASSERT_TRUE(h.ok) << h.error;
  EXPECT_EQ(ServerContext::handshakeInfo(h.server.get()).alpn, "h2");
}

TEST_P(ServerContextVersionTest, TicketFromOneContextResumesOnAnotherSharingTheKeys) {
  std::shared_ptr<TicketKeys> keys = newTicketKeys();
  auto workerA = serverContext(allCertificates(), keys);
  auto workerB = serverContext(allCertificates(), keys);
  auto stranger = serverContext(allCertificates());  // keys of its own

  Handshake first = connect(*workerA, client("a.example.com"));
  ASSERT_TRUE(first.ok) << first.error;
  SessionPtr session(first.takeSession());
  ASSERT_NE(session, nullptr);
  ASSERT_EQ(SSL_SESSION_is_resumable(session.get()), 1);

  ClientOptions resume = client("a.example.com");
  resume.session = session.get();
  Handshake second = connect(*workerB, resume);
  ASSERT_TRUE(second.ok) << second.error;
  EXPECT_TRUE(ServerContext::handshakeInfo(second.server.get()).resumed);
  EXPECT_EQ(SSL_session_reused(second.client.get()), 1);
  EXPECT_EQ(ServerContext::handshakeInfo(second.server.get()).serverName, "a.example.com");

  Handshake elsewhere = connect(*stranger, resume);
  ASSERT_TRUE(elsewhere.ok) << elsewhere.error;  // a full handshake instead
  EXPECT_FALSE(ServerContext::handshakeInfo(elsewhere.server.get()).resumed);
  EXPECT_EQ(elsewhere.peerCommonName(), "default/a-tls");
}

TEST_P(ServerContextVersionTest, SessionResumesAfterACertificateChangeAndOneKeyRotation) {
  std::shared_ptr<TicketKeys> keys = newTicketKeys();
  auto server = serverContext(allCertificates(), keys);
  // Three sessions sealed under the first key. One per resumption: a TLS 1.3 client uses a
  // ticket once (RFC 8446 C.4), and OpenSSL's marks the session not resumable after use.
  std::vector<SessionPtr> sessions;
  for (int i = 0; i < 3; ++i) {
    Handshake full = connect(*server, client("a.example.com"));
    ASSERT_TRUE(full.ok) << full.error;
    sessions.emplace_back(full.takeSession());
    ASSERT_NE(sessions.back(), nullptr);
  }
  auto resume = [&](SSL_SESSION* session) {
    ClientOptions options = client("a.example.com");
    options.session = session;
    return connect(*server, options);
  };

  server->publish(certificates({renewed_, wildcard_}));
  Handshake afterPublish = resume(sessions[0].get());
  ASSERT_TRUE(afterPublish.ok) << afterPublish.error;
  EXPECT_TRUE(ServerContext::handshakeInfo(afterPublish.server.get()).resumed);

  ASSERT_TRUE(keys->rotate().ok());  // the tickets' key is the previous one now: still accepted
  EXPECT_EQ(keys->generation(), 2u);
  Handshake afterRotation = resume(sessions[1].get());
  ASSERT_TRUE(afterRotation.ok) << afterRotation.error;
  EXPECT_TRUE(ServerContext::handshakeInfo(afterRotation.server.get()).resumed);

  ASSERT_TRUE(keys->rotate().ok());  // and now it is gone: a full handshake with the new set
  Handshake afterTwo = resume(sessions[2].get());
  ASSERT_TRUE(afterTwo.ok) << afterTwo.error;
  EXPECT_FALSE(ServerContext::handshakeInfo(afterTwo.server.get()).resumed);
  EXPECT_EQ(afterTwo.peerCommonName(), "default/a-tls-renewed");
}

TEST_F(ServerContextTest, RefusesTls11AndEarlier) {
  auto server = serverContext(allCertificates());
  // Said outright: the TLS 1.2-only cipher list would refuse these clients too, for another reason.
  EXPECT_EQ(SSL_CTX_get_min_proto_version(server->nativeHandle()), TLS1_2_VERSION);
  for (int version : {TLS1_VERSION, TLS1_1_VERSION}) {
    Handshake h = connect(*server, {.serverName = "a.example.com", .maxVersion = version});
    EXPECT_FALSE(h.ok) << version;
    EXPECT_THAT(h.error, HasSubstr("protocol")) << version;
  }
  // The same client, allowed TLS 1.2, gets through: the version was the reason.
  Handshake h = connect(*server, {.serverName = "a.example.com", .maxVersion = TLS1_2_VERSION});
  EXPECT_TRUE(h.ok) << h.error;
}

TEST_F(ServerContextTest, PublishChangesNewHandshakesAndLeavesOpenConnectionsAlone) {
  auto server = serverContext(allCertificates());
  const ClientOptions options{.serverName = "a.example.com"};
  Handshake before = connect(*server, options);
  ASSERT_TRUE(before.ok) << before.error;
  EXPECT_EQ(before.peerCommonName(), "default/a-tls");

  server->publish(certificates({renewed_}));
  server->publish(certificates({renewed_}));  // the first new set is freed: `before` must not care
  Handshake after = connect(*server, options);
  ASSERT_TRUE(after.ok) << after.error;
  EXPECT_EQ(after.peerCommonName(), "default/a-tls-renewed");

  EXPECT_EQ(commonNameOf(SSL_get_certificate(before.server.get())), "default/a-tls");
  ASSERT_EQ(SSL_write(before.client.get(), "ping", 4), 4);
  char buffer[4];
  ASSERT_EQ(SSL_read(before.server.get(), buffer, 4), 4);
  EXPECT_EQ(std::string(buffer, 4), "ping");
}

TEST_F(ServerContextTest, PublishWhileAnotherThreadHandshakes) {
  std::vector<CertificateSource> setA = {exact_, catchAll_};
  std::vector<CertificateSource> setB = {renewed_, wildcard_};
  auto server = serverContext(certificates(setA));
  std::atomic<bool> stop = false;
  std::atomic<int> handshakes = 0, failures = 0, sawA = 0, sawB = 0;
  std::thread worker([&] {
    const ClientOptions options{.serverName = "a.example.com"};
    SslCtxPtr client = makeClientContext(options);
    while (!stop.load()) {
      Handshake h = handshake(server->nativeHandle(), client.get(), options);
      const std::string name = h.ok ? h.peerCommonName() : "";
      if (name == "default/a-tls") {
        ++sawA;
      } else if (name == "default/a-tls-renewed") {
        ++sawB;
      } else {
        ++failures;
      }
      ++handshakes;
    }
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (int i = 0; i < 40 && std::chrono::steady_clock::now() < deadline; ++i) {
    // A new set every time, so that the previous one is freed while handshakes may use it.
    server->publish(certificates(i % 2 == 0 ? setB : setA));
    const int seen = handshakes.load();
    while (handshakes.load() < seen + 2 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
  }
  stop = true;
  worker.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(sawA.load(), 0);
  EXPECT_GT(sawB.load(), 0);
}

TEST_F(ServerContextTest, RejectsBadOptions) {
  auto set = allCertificates();
  auto keys = newTicketKeys();
  auto fail = [&](const ServerOptions& options) {
    Result<std::unique_ptr<ServerContext>> context = ServerContext::create(options, set, keys);
    return context.ok() ? std::string("ok") : context.error().message();
  };
  EXPECT_EQ(fail({.alpnProtocols = {"http/1.1", ""}}),
            "alpnProtocols[1]: must have 1 to 255 bytes");
  EXPECT_EQ(fail({.alpnProtocols = {std::string(256, 'x')}}),
            "alpnProtocols[0]: must have 1 to 255 bytes");
  EXPECT_THAT(fail({.cipherList = "NO-SUCH-CIPHER"}), HasSubstr("cipherList: "));
  EXPECT_THAT(fail({.groups = "no-such-group"}), HasSubstr("groups: "));
  EXPECT_EQ(fail({.alpnProtocols = {}}), "ok");
  Result<std::unique_ptr<ServerContext>> noSet = ServerContext::create({}, nullptr, keys);
  ASSERT_FALSE(noSet.ok());
  EXPECT_EQ(noSet.error().message(), "certificates: must not be null");
}

}  // namespace
}  // namespace capstan::l7::tls
