// The ingress request path end to end on loopback: real TCP clients (Boost.Beast) through a real
// IngressServer to real upstream servers (Boost.Beast) on 127.0.0.2-127.0.0.4, each case checking
// what the client receives and what the upstream saw.
#include "l7/ingress_server.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/l7/ingress_state_builder.h"
#include "tests/l7/tls/tls_test_support.h"
#include "tests/support/child_process.h"
#include "tests/support/http_peers.h"
#include "tests/support/loopback_http.h"

namespace capstan::l7 {
namespace {

using support::getRequest;
using support::HttpClient;
using support::HttpUpstream;
using support::waitFor;
using test::IngressStateBuilder;
using test::path;
using test::serviceBackend;
using test::TestService;
using namespace std::chrono_literals;

const boost::asio::ip::tcp::endpoint kLoopbackAnyPort(boost::asio::ip::make_address("127.0.0.1"),
                                                      0);

std::string bodyOf(const std::optional<HttpClient::Response>& response) {
  return response ? response->body() : "(no response)";
}

// Three "web" upstreams on 127.0.0.2-4 sharing one port, one "api" upstream on 127.0.0.5; the
// Ingress routes web.example.com to web, api.example.com/v1 to api, and "empty.example.com" to a
// Service without endpoints.
class IngressServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    web_ = support::upstreamsOnOnePort({"web-1", "web-2", "web-3", "api-1"});
    api_ = std::move(web_.back());
    web_.pop_back();
  }

  std::shared_ptr<const RouteTable> table(const std::string& webPolicy = "",
                                          size_t webEndpoints = 3) {
    const uint16_t port = web_[0]->port();
    TestService web{.name = "web", .ports = {{.port = 80, .targetPort = port}}};
    for (size_t i = 0; i < webEndpoints; ++i) web.endpoints.push_back({web_[i]->address()});
    TestService api{.name = "api",
                    .ports = {{.port = 80, .targetPort = port}},
                    .endpoints = {{api_->address()}}};
    TestService empty{.name = "empty", .ports = {{.port = 80, .targetPort = port}}};
    Ingress ingress{.name = {"default", "site"}};
    ingress.rules = {
        {.host = "web.example.com",
         .paths = {path(PathType::kPrefix, "/", serviceBackend("web", 80))}},
        {.host = "api.example.com",
         .paths = {path(PathType::kPrefix, "/v1", serviceBackend("api", 80))}},
        {.host = "empty.example.com",
         .paths = {path(PathType::kPrefix, "/", serviceBackend("empty", 80))}},
    };
    if (!webPolicy.empty()) ingress.annotations[std::string(kLoadBalanceAnnotation)] = webPolicy;
    return RouteTable::build(
        *IngressStateBuilder().service(web).service(api).service(empty).ingress(ingress).build());
  }

  void start(IngressOptions options = {},
             std::shared_ptr<const tls::CertificateSet> certificates = nullptr) {
    options.httpAddress = kLoopbackAnyPort;
    if (options.workers == 0) options.workers = 2;
    auto server = IngressServer::start(options, table(), certificates);
    ASSERT_TRUE(server.ok()) << server.error().message();
    server_ = std::move(server).value();
    port_ = server_->httpEndpoint().port();
  }

  std::vector<std::unique_ptr<HttpUpstream>> web_;
  std::unique_ptr<HttpUpstream> api_;
  std::unique_ptr<IngressServer> server_;
  uint16_t port_ = 0;
};

TEST_F(IngressServerTest, RoutesByHostAndPathAndAddsForwardingHeaders) {
  start();
  HttpClient client(port_);
  auto response = client.request(
      getRequest("api.example.com", "/v1/users?id=7", "X-Forwarded-For: 192.0.2.9\r\n"));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->result_int(), 200);
  const std::string body = response->body();
  EXPECT_NE(body.find("upstream: api-1\n"), std::string::npos) << body;
  EXPECT_NE(body.find("target: /v1/users?id=7\n"), std::string::npos) << body;
  EXPECT_NE(body.find("header: host: api.example.com\n"), std::string::npos) << body;
  EXPECT_NE(body.find("header: x-forwarded-for: 192.0.2.9, 127.0.0.1\n"), std::string::npos)
      << body;
  EXPECT_NE(body.find("header: x-forwarded-proto: http\n"), std::string::npos) << body;
  EXPECT_NE(body.find("header: x-forwarded-host: api.example.com\n"), std::string::npos) << body;
  EXPECT_NE(body.find("header: x-request-id: "), std::string::npos) << body;

  auto web = client.request(getRequest("web.example.com", "/anything"));
  EXPECT_NE(bodyOf(web).find("upstream: web-"), std::string::npos) << bodyOf(web);
}

TEST_F(IngressServerTest, AnswersOfTheIngressItself) {
  IngressOptions options;
  options.upstreamResponseTimeout = 300ms;
  start(options);
  HttpClient client(port_);
  EXPECT_EQ(client.request(getRequest("nowhere.example.com", "/"))->result_int(), 404);
  EXPECT_EQ(client.request(getRequest("api.example.com", "/v2"))->result_int(), 404);
  EXPECT_EQ(client.request(getRequest("empty.example.com", "/"))->result_int(), 503);
  // Still the same connection: the local answers kept it alive.
  EXPECT_EQ(client.request(getRequest("web.example.com", "/"))->result_int(), 200);
  auto timeout = HttpClient(port_).request(getRequest("web.example.com", "/sleep/1500"));
  ASSERT_TRUE(timeout);
  EXPECT_EQ(timeout->result_int(), 504);
  EXPECT_GE(server_->counters().upstreamResponseTimeouts, 1u);
  EXPECT_EQ(server_->counters().noRoute, 2u);
  EXPECT_EQ(server_->counters().noEndpoints, 1u);
}

TEST_F(IngressServerTest, UpstreamThatRefusesConnectionsGets502AndIsEjected) {
  IngressOptions options;
  options.health.consecutiveFailures = 1;
  start(options);
  // api's only endpoint goes away: nothing listens on its address any more.
  api_.reset();
  HttpClient client(port_);
  auto response = client.request(getRequest("api.example.com", "/v1"));
  ASSERT_TRUE(response);
  EXPECT_EQ(response->result_int(), 502);
  EXPECT_GE(server_->counters().upstreamConnectFailures, 1u);
  EXPECT_GE(server_->counters().ejections, 1u);

  // One of three web endpoints down: every request still succeeds (a failed connect moves to
  // another endpoint) and the dead one is ejected.
  web_[1].reset();
  for (int i = 0; i < 30; ++i) {
    auto r = client.request(getRequest("web.example.com", "/"));
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->result_int(), 200) << i;
    EXPECT_EQ(r->body().find("web-2"), std::string::npos);
  }
}

TEST_F(IngressServerTest, KeepAliveReusesUpstreamConnectionsAndPipelinedRequestsAnswerInOrder) {
  IngressOptions options;
  options.workers = 1;
  start(options);
  HttpClient client(port_);
  for (int i = 0; i < 20; ++i) {
    auto r = client.request(getRequest("api.example.com", "/v1/" + std::to_string(i)));
    ASSERT_TRUE(r) << i;
    EXPECT_NE(r->body().find("target: /v1/" + std::to_string(i) + "\n"), std::string::npos);
  }
  EXPECT_EQ(api_->connections(), 1u);
  EXPECT_EQ(server_->counters().upstreamReused, 19u);

  std::string pipelined;
  for (int i = 0; i < 5; ++i)
    pipelined += getRequest("api.example.com", "/v1/p" + std::to_string(i));
  ASSERT_TRUE(client.send(pipelined));
  for (int i = 0; i < 5; ++i) {
    auto r = client.read();
    ASSERT_TRUE(r) << i;
    EXPECT_NE(r->body().find("target: /v1/p" + std::to_string(i) + "\n"), std::string::npos)
        << r->body();
  }
}

TEST_F(IngressServerTest, UpstreamClosingAnIdleConnectionCostsNoRequest) {
  IngressOptions options;
  options.workers = 1;
  start(options);
  HttpClient client(port_);
  ASSERT_EQ(client.request(getRequest("api.example.com", "/v1"))->result_int(), 200);
  for (int i = 0; i < 5; ++i) {
    api_->closeConnections();  // as an upstream's keep-alive timeout would
    auto r = client.request(getRequest("api.example.com", "/v1"));
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->result_int(), 200) << i;
  }
}

TEST_F(IngressServerTest, RequestBodiesStreamBothFramings) {
  start();
  HttpClient client(port_);
  std::string big(1 << 20, 'b');
  auto r = client.request("POST /v1/echo HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: " +
                          std::to_string(big.size()) + "\r\n\r\n" + big);
  // api routes /v1 only; /v1/echo is not the upstream's /echo, so it describes the request.
  ASSERT_TRUE(r);
  EXPECT_NE(r->body().find("body-bytes: 1048576\n"), std::string::npos) << r->body();

  auto echoed = client.request(
      "POST /echo HTTP/1.1\r\nHost: web.example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n");
  ASSERT_TRUE(echoed);
  EXPECT_EQ(echoed->body(), "hello, world");

  // Expect: 100-continue: the ingress says 100 before the client sends the body.
  ASSERT_TRUE(
      client.send("PUT /echo HTTP/1.1\r\nHost: web.example.com\r\nContent-Length: 4\r\n"
                  "Expect: 100-continue\r\n\r\n"));
  auto interim = client.read();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->result_int(), 100);
  ASSERT_TRUE(client.send("data"));
  auto final = client.read();
  ASSERT_TRUE(final);
  EXPECT_EQ(final->body(), "data");
}

TEST_F(IngressServerTest, ResponseBodiesInEveryFraming) {
  start();
  HttpClient client(port_);
  auto chunked = client.request(getRequest("web.example.com", "/chunked"));
  ASSERT_TRUE(chunked);
  EXPECT_TRUE(chunked->chunked());
  EXPECT_NE(chunked->body().find("target: /chunked\n"), std::string::npos);
  auto big = client.request(getRequest("web.example.com", "/big/3000000"));
  ASSERT_TRUE(big);
  EXPECT_EQ(big->body(), std::string(3000000, 'x'));
  // Until-close from the upstream: chunked to a 1.1 client, which keeps its connection.
  auto untilClose = client.request(getRequest("web.example.com", "/until-close"));
  ASSERT_TRUE(untilClose);
  EXPECT_NE(untilClose->body().find("target: /until-close\n"), std::string::npos);
  EXPECT_EQ(client.request(getRequest("web.example.com", "/"))->result_int(), 200);
  // A 1.0 client gets a close-delimited body instead of chunks.
  std::string raw =
      support::loopbackExchange(port_, "GET /chunked HTTP/1.0\r\nHost: web.example.com\r\n\r\n");
  EXPECT_TRUE(raw.starts_with("HTTP/1.1 200")) << raw;
  EXPECT_EQ(raw.find("Transfer-Encoding"), std::string::npos) << raw;
  EXPECT_NE(raw.find("Connection: close"), std::string::npos) << raw;
  EXPECT_NE(raw.find("target: /chunked\n"), std::string::npos) << raw;
  auto head = client.request("HEAD /big/100 HTTP/1.1\r\nHost: web.example.com\r\n\r\n");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->body(), "");
  EXPECT_EQ(client.request(getRequest("web.example.com", "/"))->result_int(), 200);
}

// 8 MB is more than the loopback socket buffers hold: the ingress's writes to a client that
// does not read yet stop part-way, and go on from the right byte once it reads.
TEST_F(IngressServerTest, AClientThatReadsLateGetsTheWholeBody) {
  start();
  HttpClient client(port_);
  ASSERT_TRUE(client.send(getRequest("web.example.com", "/big/8000000")));
  std::this_thread::sleep_for(300ms);
  auto big = client.read();
  ASSERT_TRUE(big);
  EXPECT_EQ(big->body().size(), 8000000u);
  EXPECT_TRUE(big->body() == std::string(8000000, 'x'));
  EXPECT_EQ(client.request(getRequest("web.example.com", "/"))->result_int(), 200);
}

TEST_F(IngressServerTest, SmugglingAttemptsAreRefusedAndClosed) {
  start();
  for (std::string attack : {
           "POST / HTTP/1.1\r\nHost: web.example.com\r\nContent-Length: 4\r\n"
           "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
           "POST / HTTP/1.1\r\nHost: web.example.com\r\nContent-Length: 4\r\nContent-Length: 5\r\n"
           "\r\nabcde",
           "GET / HTTP/1.1\r\nHost: web.example.com\r\nX: a\r\n b\r\n\r\n",
       }) {
    HttpClient client(port_);
    auto r = client.request(attack);
    ASSERT_TRUE(r) << attack;
    EXPECT_EQ(r->result_int(), 400) << attack;
    EXPECT_TRUE(client.closedByPeer()) << attack;
  }
  EXPECT_EQ(web_[0]->requests() + web_[1]->requests() + web_[2]->requests(), 0u);
}

TEST_F(IngressServerTest, SlowHeadersAreCutOffAtTheHeaderTimeout) {
  IngressOptions options;
  options.headerTimeout = 300ms;
  start(options);
  HttpClient client(port_, 3s);
  ASSERT_TRUE(client.send("GET / HTTP/1.1\r\nHost: web.exa"));
  auto begin = std::chrono::steady_clock::now();
  EXPECT_TRUE(client.closedByPeer());
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 2500ms);
  EXPECT_TRUE(waitFor([&] { return server_->counters().headerTimeouts == 1; }));
}

TEST_F(IngressServerTest, WebSocketUpgradeIsTunnelled) {
  start();
  HttpClient client(port_);
  ASSERT_TRUE(
      client.send("GET /websocket HTTP/1.1\r\nHost: web.example.com\r\nConnection: Upgrade\r\n"
                  "Upgrade: websocket\r\n\r\n"));
  auto switched = client.read(true);
  ASSERT_TRUE(switched);
  EXPECT_EQ(switched->result_int(), 101);
  // Bytes both ways, untouched, through the tunnel.
  std::string raw = support::loopbackExchange(
      port_,
      "GET /websocket HTTP/1.1\r\nHost: web.example.com\r\nConnection: Upgrade\r\n"
      "Upgrade: websocket\r\n\r\nping-pong",
      1);
  EXPECT_TRUE(raw.starts_with("HTTP/1.1 101")) << raw;
  EXPECT_TRUE(raw.ends_with("\r\n\r\nping-pong")) << raw;
  EXPECT_EQ(server_->counters().upgrades, 2u);
}

TEST_F(IngressServerTest, NewTablesApplyWithoutDroppingConnections) {
  start();
  HttpClient client(port_);
  ASSERT_EQ(client.request(getRequest("web.example.com", "/"))->result_int(), 200);
  // Publish a table where web has only its first endpoint; the open connection keeps working and
  // every later request goes to web-1.
  server_->publish(table("", 1));
  ASSERT_TRUE(waitFor([&] { return server_->counters().tableSwaps == 2; }));
  for (int i = 0; i < 10; ++i) {
    auto r = client.request(getRequest("web.example.com", "/"));
    ASSERT_TRUE(r) << i;
    EXPECT_NE(r->body().find("upstream: web-1\n"), std::string::npos) << r->body();
  }
}

TEST_F(IngressServerTest, LoadSpreadsOverEveryEndpointAndHashPoliciesStick) {
  start();
  for (int i = 0; i < 60; ++i) {
    HttpClient client(port_);
    ASSERT_EQ(client.request(getRequest("web.example.com", "/"))->result_int(), 200);
  }
  for (const auto& upstream : web_) EXPECT_GE(upstream->requests(), 5u) << upstream->address();

  server_->publish(table("hash-header:X-User"));
  ASSERT_TRUE(waitFor([&] { return server_->counters().tableSwaps == 2; }));
  std::string first;
  for (int i = 0; i < 10; ++i) {
    HttpClient client(port_);  // new connections land on either worker
    auto r = client.request(getRequest("web.example.com", "/", "X-User: alice\r\n"));
    ASSERT_TRUE(r);
    std::string name = r->body().substr(0, r->body().find('\n'));
    if (i == 0) first = name;
    EXPECT_EQ(name, first);
  }
}

// One HTTPS exchange over a blocking OpenSSL client: the request (with Connection: close) and
// everything read until the server closes. Fills `peer` with the certificate's common name and
// `session` (if not null) with the session to resume; `resume` offers one.
struct TlsExchange {
  std::string response;
  std::string peer;
  bool resumed = false;
};
TlsExchange httpsExchange(uint16_t port, SSL_CTX* client, const std::string& serverName,
                          const std::string& request, SSL_SESSION* resume = nullptr,
                          SSL_SESSION** session = nullptr) {
  TlsExchange out;
  int fd = support::connectLoopback(port, 3);
  if (fd < 0) return out;
  tls::SslPtr ssl(SSL_new(client));
  SSL_set_fd(ssl.get(), fd);
  SSL_set_tlsext_host_name(ssl.get(), serverName.c_str());
  if (resume) SSL_set_session(ssl.get(), resume);
  if (SSL_connect(ssl.get()) == 1) {
    out.resumed = SSL_session_reused(ssl.get()) == 1;
    tls::X509Ptr peer(SSL_get1_peer_certificate(ssl.get()));
    out.peer = tls::testing::commonNameOf(peer.get());
    SSL_write(ssl.get(), request.data(), static_cast<int>(request.size()));
    char buf[16384];
    for (int i = 0; i < 1000; ++i) {
      int n = SSL_read(ssl.get(), buf, sizeof(buf));
      if (n <= 0) break;
      out.response.append(buf, static_cast<size_t>(n));
    }
    if (session) *session = SSL_get1_session(ssl.get());
    SSL_shutdown(ssl.get());
  }
  ::close(fd);
  return out;
}

TEST_F(IngressServerTest, HttpsChoosesTheCertificateBySniAndResumesSessions) {
  tls::testing::TestPki pki;
  std::vector<tls::CertificateSource> sources = {pki.issue("web-cert", {"web.example.com"}),
                                                 pki.issue("wild-cert", {"*.example.org"})};
  auto fallback = pki.issue("fallback-cert", {});
  auto built = tls::CertificateSet::build(sources, fallback, std::chrono::system_clock::now());
  ASSERT_TRUE(built.ok()) << built.error().message();
  IngressOptions options;
  options.httpsAddress = kLoopbackAnyPort;
  start(options, built->set);
  const uint16_t port = server_->httpsEndpoint().port();
  ASSERT_NE(port, 0);

  tls::testing::ClientOptions clientOptions{.trustedRoot = pki.root()};
  auto client = tls::testing::makeClientContext(clientOptions);
  const std::string request = getRequest("web.example.com", "/", "Connection: close\r\n");
  SSL_SESSION* session = nullptr;
  TlsExchange first =
      httpsExchange(port, client.get(), "web.example.com", request, nullptr, &session);
  EXPECT_EQ(first.peer, "web-cert");
  EXPECT_TRUE(first.response.starts_with("HTTP/1.1 200")) << first.response;
  EXPECT_NE(first.response.find("header: x-forwarded-proto: https\n"), std::string::npos)
      << first.response;
  EXPECT_EQ(httpsExchange(port, client.get(), "a.example.org", request).peer, "wild-cert");
  EXPECT_EQ(httpsExchange(port, client.get(), "unknown.example.net", request).peer,
            "fallback-cert");

  // A ticket from one connection resumes on the next, whichever worker takes it.
  ASSERT_NE(session, nullptr);
  TlsExchange again = httpsExchange(port, client.get(), "web.example.com", request, session);
  SSL_SESSION_free(session);
  EXPECT_TRUE(again.resumed);
  EXPECT_TRUE(again.response.starts_with("HTTP/1.1 200")) << again.response;

  // New certificates apply to new handshakes without a restart.
  std::vector<tls::CertificateSource> renewedSources = {
      pki.issue("renewed-cert", {"web.example.com"})};
  auto renewed =
      tls::CertificateSet::build(renewedSources, fallback, std::chrono::system_clock::now());
  ASSERT_TRUE(renewed.ok());
  server_->publishCertificates(renewed->set);
  EXPECT_EQ(httpsExchange(port, client.get(), "web.example.com", request).peer, "renewed-cert");
  auto counters = server_->counters();
  EXPECT_EQ(counters.tlsHandshakes, 5u);
  EXPECT_EQ(counters.tlsResumed, 1u);
}

}  // namespace
}  // namespace capstan::l7
