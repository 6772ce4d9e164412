// The status server over real loopback sockets.
#include "control/status_server.h"

#include <gtest/gtest.h>

#include "tests/support/loopback_http.h"

namespace capstan::control {
namespace {

std::string roundTrip(uint16_t port, const std::string& request) {
  return capstan::support::loopbackExchange(port, request, 5);
}

// The raw reply, so tests see exactly what the server sent.
std::string get(uint16_t port, const std::string& path, const std::string& method = "GET") {
  return roundTrip(port, method + " " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
}

TEST(ParseHostPort, AcceptsKubeProxyForms) {
  auto a = parseHostPort("0.0.0.0:10256");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "0.0.0.0");
  EXPECT_EQ(a->port, 10256);
  auto b = parseHostPort("[::]:10249");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "::");
  auto c = parseHostPort(":80");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->host, "");
  for (const char* bad : {"", "10256", "localhost:80", "1.2.3.4:", "1.2.3.4:65536", "[::1]",
                          "[::1]80", "1.2.3.4:8x"}) {
    EXPECT_FALSE(parseHostPort(bad).ok()) << bad;
  }
}

class StatusServerTest : public testing::Test {
 protected:
  void SetUp() override {
    auto p = server.listen("127.0.0.1:0", {{"/healthz",
                                            [] {
                                              return HttpResponse{200, "application/json", "{}"};
                                            }},
                                           {"/fail", [] {
                                              return HttpResponse{503, "text/plain", "down"};
                                            }}});
    ASSERT_TRUE(p.ok()) << p.error().message();
    port = *p;
    server.start();
  }
  StatusServer server;
  uint16_t port = 0;
};

TEST_F(StatusServerTest, ServesRoutes) {
  std::string r = get(port, "/healthz");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("Content-Type: application/json"), std::string::npos) << r;
  EXPECT_NE(r.find("X-Content-Type-Options: nosniff"), std::string::npos) << r;
  EXPECT_EQ(r.substr(r.size() - 2), "{}");
  EXPECT_EQ(get(port, "/fail").rfind("HTTP/1.1 503", 0), 0u);
  EXPECT_EQ(get(port, "/healthz?verbose=1").rfind("HTTP/1.1 200", 0), 0u);
}

TEST_F(StatusServerTest, UnknownPathMethodAndHead) {
  EXPECT_EQ(get(port, "/nope").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(get(port, "/healthz", "POST").rfind("HTTP/1.1 405", 0), 0u);
  std::string head = get(port, "/healthz", "HEAD");
  EXPECT_EQ(head.rfind("HTTP/1.1 200", 0), 0u) << head;
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n");  // no body
}

TEST_F(StatusServerTest, KeepAliveServesSeveralRequests) {
  std::string r = roundTrip(port,
                            "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                            "GET /fail HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(r.find("HTTP/1.1 200"), std::string::npos) << r;
  EXPECT_NE(r.find("HTTP/1.1 503"), std::string::npos) << r;
}

TEST_F(StatusServerTest, OversizedOrGarbageRequestIsClosedAndServerLives) {
  std::string huge =
      "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n";
  std::string r = roundTrip(port, huge);
  EXPECT_EQ(r.find("HTTP/1.1 200"), std::string::npos);
  EXPECT_EQ(roundTrip(port, "\x01\x02garbage\r\n\r\n").find("200"), std::string::npos);
  EXPECT_EQ(get(port, "/healthz").rfind("HTTP/1.1 200", 0), 0u);
}

TEST(StatusServer, ReportsBindErrors) {
  StatusServer a;
  auto port = a.listen("127.0.0.1:0", {});
  ASSERT_TRUE(port.ok());
  StatusServer b;
  auto again = b.listen("127.0.0.1:" + std::to_string(*port), {});
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message().find("cannot listen on 127.0.0.1:"), std::string::npos);
}

}  // namespace
}  // namespace capstan::control
