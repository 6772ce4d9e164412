// The ingress while things change or fail under it: upstreams dying before and in the middle of a
// response, endpoints removed while clients keep sending, and new route tables published in a
// tight loop under load. Real TCP on loopback: Boost.Beast clients and upstreams
// (tests/support/http_peers.h) around a real IngressServer.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "l7/ingress_server.h"
#include "tests/l7/ingress_state_builder.h"
#include "tests/support/http_load.h"
#include "tests/support/http_peers.h"
#include "tests/support/loopback_http.h"

namespace capstan::l7 {
namespace {

using support::getRequest;
using support::HttpClient;
using support::HttpUpstream;
using support::LoadClients;
using test::IngressStateBuilder;
using test::path;
using test::serviceBackend;
using test::TestService;
using namespace std::chrono_literals;

// Three "web" upstreams on 127.0.0.2-4 sharing one port; the Ingress routes web.example.com to the
// first `endpoints` of them, and, when `extraHost` is set, that host to web as well.
class IngressUnderLoadTest : public ::testing::Test {
 protected:
  void SetUp() override { web_ = support::upstreamsOnOnePort({"web-1", "web-2", "web-3"}); }

  std::shared_ptr<const RouteTable> table(size_t endpoints = 3, const std::string& extraHost = "",
                                          const std::string& policy = "") {
    const uint16_t port = web_[0]->port();
    TestService web{.name = "web", .ports = {{.port = 80, .targetPort = port}}};
    for (size_t i = 0; i < endpoints; ++i) {
      web.endpoints.push_back({"127.0.0." + std::to_string(2 + i)});
    }
    Ingress ingress{.name = {"default", "site"}};
    ingress.rules = {{.host = "web.example.com",
                      .paths = {path(PathType::kPrefix, "/", serviceBackend("web", 80))}}};
    if (!extraHost.empty()) {
      ingress.rules.push_back(
          {.host = extraHost, .paths = {path(PathType::kExact, "/x", serviceBackend("web", 80))}});
    }
    if (!policy.empty()) ingress.annotations[std::string(kLoadBalanceAnnotation)] = policy;
    return RouteTable::build(*IngressStateBuilder().service(web).ingress(ingress).build());
  }

  void start(IngressOptions options = {}) {
    options.httpAddress =
        boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0);
    options.workers = 2;
    auto server = IngressServer::start(options, table());
    ASSERT_TRUE(server.ok()) << server.error().message();
    server_ = std::move(server).value();
    port_ = server_->httpEndpoint().port();
  }

  // Publishes `t` and waits until both workers adopted it.
  void publishAndWait(std::shared_ptr<const RouteTable> t) {
    const uint64_t before = server_->counters().tableSwaps;
    server_->publish(std::move(t));
    for (int i = 0; i < 500 && server_->counters().tableSwaps < before + 2; ++i) {
      std::this_thread::sleep_for(2ms);
    }
    ASSERT_GE(server_->counters().tableSwaps, before + 2);
  }

  std::vector<std::unique_ptr<HttpUpstream>> web_;
  std::unique_ptr<IngressServer> server_;
  uint16_t port_ = 0;
};

// What a raw client sees of one request: the bytes that came back, and whether the server closed
// the connection (as opposed to leaving it hanging past `timeoutSeconds`).
struct RawOutcome {
  std::string bytes;
  bool closed = false;
};
RawOutcome rawRequest(uint16_t port, const std::string& request, int timeoutSeconds) {
  RawOutcome outcome;
  const int fd = support::connectLoopback(port, timeoutSeconds);
  if (fd < 0) return outcome;
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
      static_cast<ssize_t>(request.size())) {
    char buf[65536];
    for (int i = 0; i < 4096; ++i) {
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0 || (n < 0 && errno == ECONNRESET)) {
        outcome.closed = true;
        break;
      }
      if (n < 0) break;  // SO_RCVTIMEO: the server left the connection hanging
      outcome.bytes.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return outcome;
}

TEST_F(IngressUnderLoadTest, UpstreamDyingBeforeTheHeadIs502AndTheConnectionLivesOn) {
  start();
  HttpClient client(port_);
  auto died = client.request(getRequest("web.example.com", "/die-before-head"));
  ASSERT_TRUE(died);
  EXPECT_EQ(died->result_int(), 502) << died->body();
  // The client's connection is still good for the next request.
  auto next = client.request(getRequest("web.example.com", "/"));
  ASSERT_TRUE(next);
  EXPECT_EQ(next->result_int(), 200);
}

TEST_F(IngressUnderLoadTest, UpstreamDyingMidBodyClosesTheClientConnectionWithoutHanging) {
  IngressOptions options;
  // Far beyond the client's patience: a hang would show as the client timing out, not as a close.
  options.upstreamResponseTimeout = 60s;
  options.idleTimeout = 60s;
  start(options);
  const size_t promised = 200'000;
  RawOutcome outcome = rawRequest(
      port_, getRequest("web.example.com", "/die-mid-body/" + std::to_string(promised)), 5);
  EXPECT_TRUE(outcome.closed) << "the ingress left the client hanging after the upstream died";
  ASSERT_TRUE(outcome.bytes.starts_with("HTTP/1.1 200")) << outcome.bytes.substr(0, 200);
  const size_t headEnd = outcome.bytes.find("\r\n\r\n");
  ASSERT_NE(headEnd, std::string::npos);
  // The client got the head and a part of the body, never the whole promised length: it can tell
  // the response was cut.
  EXPECT_LT(outcome.bytes.size() - (headEnd + 4), promised);
  EXPECT_NE(outcome.bytes.find("Content-Length: " + std::to_string(promised)), std::string::npos);

  // The ingress itself goes on serving.
  HttpClient client(port_);
  auto next = client.request(getRequest("web.example.com", "/"));
  ASSERT_TRUE(next);
  EXPECT_EQ(next->result_int(), 200);
}

TEST_F(IngressUnderLoadTest, EndpointRemovedUnderLoadFailsNoRequest) {
  start();
  LoadClients load(port_, "web.example.com", 4);
  ASSERT_TRUE(load.waitForMore(300));
  EXPECT_GT(load.answeredBy("upstream: web-3"), 0u);

  // web-3 leaves the EndpointSlice (its pod is terminating but still serves what it has): no
  // request fails, and after the swap web-3 gets no new request.
  publishAndWait(table(2));
  ASSERT_TRUE(load.waitForMore(50));  // requests that started on the old table have finished
  const uint64_t web3After = load.answeredBy("upstream: web-3");
  ASSERT_TRUE(load.waitForMore(300));
  EXPECT_EQ(load.answeredBy("upstream: web-3"), web3After);

  // Then it dies: its pooled connections must not cost a request either.
  web_[2].reset();
  ASSERT_TRUE(load.waitForMore(300));
  load.stop();
  EXPECT_EQ(load.failed(), 0u) << ::testing::PrintToString(load.failures());
  EXPECT_GT(load.answeredBy("upstream: web-1"), 0u);
  EXPECT_GT(load.answeredBy("upstream: web-2"), 0u);
}

TEST_F(IngressUnderLoadTest, EndpointCrashingUnderLoadFailsAtMostTheRequestsInFlightOnIt) {
  IngressOptions options;
  options.health.consecutiveFailures = 1;
  start(options);
  const int clients = 4;
  LoadClients load(port_, "web.example.com", clients);
  ASSERT_TRUE(load.waitForMore(300));
  // web-3 crashes while still in the table (the EndpointSlice has not caught up yet).
  web_[2].reset();
  ASSERT_TRUE(load.waitForMore(300));
  publishAndWait(table(2));
  ASSERT_TRUE(load.waitForMore(300));
  load.stop();
  // Only requests already sent to web-3 when it died may fail: one per client at most. A new
  // connect to it fails over to another endpoint.
  EXPECT_LE(load.failed(), uint64_t{clients}) << ::testing::PrintToString(load.failures());
}

TEST_F(IngressUnderLoadTest, TablesPublishedInATightLoopUnderLoadFailNoRequest) {
  start();
  LoadClients load(port_, "web.example.com", 4);
  ASSERT_TRUE(load.waitForMore(200));
  // Routes, policies and endpoints change 200 times while the clients keep going.
  const std::vector<std::string> policies = {"", "round-robin", "least-request", "hash-client-ip"};
  for (int i = 0; i < 200; ++i) {
    server_->publish(table(2 + i % 2, "extra-" + std::to_string(i) + ".example.com",
                           policies[static_cast<size_t>(i) % policies.size()]));
    std::this_thread::sleep_for(1ms);
  }
  publishAndWait(table());
  ASSERT_TRUE(load.waitForMore(200));
  load.stop();
  EXPECT_EQ(load.failed(), 0u) << ::testing::PrintToString(load.failures());
  EXPECT_GE(server_->counters().tableSwaps, 2u + 2u);
  EXPECT_GT(load.succeeded(), 400u);
}

}  // namespace
}  // namespace capstan::l7
