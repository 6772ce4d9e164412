// What the ingress tells about the requests it serves, and how it stops: the access log, the
// per-route and per-upstream statistics (and their /metrics text), and the graceful drain — all on
// loopback, with real clients through a real IngressServer to real upstreams.
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "control/ingress_controller.h"
#include "l7/ingress_server.h"
#include "tests/l7/ingress_state_builder.h"
#include "tests/l7/json_line.h"
#include "tests/support/child_process.h"
#include "tests/support/http_peers.h"
#include "tests/support/prometheus_text.h"

namespace capstan::l7 {
namespace {

using support::getRequest;
using support::HttpClient;
using support::HttpUpstream;
using support::waitFor;
using test::IngressStateBuilder;
using test::jsonField;
using test::parseJsonLine;
using test::path;
using test::serviceBackend;
using test::TestService;
using namespace std::chrono_literals;

std::vector<std::string> fileLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// "web" (two endpoints, 127.0.0.2-3) at web.example.com/, "api" (127.0.0.5) at
// api.example.com/, both in Ingress default/site.
class IngressObservabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    web_.push_back(std::make_unique<HttpUpstream>("web-1", "127.0.0.2"));
    port_ = web_[0]->port();
    web_.push_back(std::make_unique<HttpUpstream>("web-2", "127.0.0.3", port_));
    api_ = std::make_unique<HttpUpstream>("api-1", "127.0.0.5", port_);
    char path[] = "/tmp/capstan-ingress-log-XXXXXX";
    const int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    ::close(fd);
    logPath_ = path;
  }
  void TearDown() override {
    server_.reset();
    ::unlink(logPath_.c_str());
  }

  std::shared_ptr<const RouteTable> table(bool withApi = true) {
    TestService web{.name = "web", .ports = {{.port = 80, .targetPort = port_}}};
    for (auto& w : web_) web.endpoints.push_back({w->address()});
    TestService api{.name = "api",
                    .ports = {{.port = 80, .targetPort = port_}},
                    .endpoints = {{api_->address()}}};
    Ingress ingress{.name = {"default", "site"}};
    ingress.rules = {{.host = "web.example.com",
                      .paths = {path(PathType::kPrefix, "/", serviceBackend("web", 80))}}};
    if (withApi) {
      ingress.rules.push_back({.host = "api.example.com",
                               .paths = {path(PathType::kPrefix, "/", serviceBackend("api", 80))}});
    }
    return RouteTable::build(
        *IngressStateBuilder().service(web).service(api).ingress(ingress).build());
  }

  void start(IngressOptions options = {}) {
    options.httpAddress =
        boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0);
    if (options.workers == 0) options.workers = 2;
    auto server = IngressServer::start(options, table());
    ASSERT_TRUE(server.ok()) << server.error().message();
    server_ = std::move(server).value();
    ingressPort_ = server_->httpEndpoint().port();
  }

  void start(unsigned workers) {
    IngressOptions options;
    options.workers = workers;
    start(options);
  }

  void startWithLog(AccessLogFormat format) {
    auto writer = AccessLogWriter::open(logPath_);
    ASSERT_TRUE(writer.ok()) << writer.error().message();
    IngressOptions options;
    options.accessLog = *writer;
    options.accessLogFormat = format;
    start(options);
  }

  // The log's lines, once there are `n` of them (the workers hand lines over every 100 ms).
  std::vector<std::string> logLines(size_t n) {
    std::vector<std::string> lines;
    waitFor([&] {
      lines = fileLines(logPath_);
      return lines.size() >= n;
    });
    return lines;
  }

  std::string endpointOf(const HttpUpstream& u) const {
    return u.address() + ":" + std::to_string(port_);
  }

  std::vector<std::unique_ptr<HttpUpstream>> web_;
  std::unique_ptr<HttpUpstream> api_;
  uint16_t port_ = 0;
  std::string logPath_;
  std::unique_ptr<IngressServer> server_;
  uint16_t ingressPort_ = 0;
};

TEST_F(IngressObservabilityTest, JsonAccessLogHasOneLinePerRequestWithItsFields) {
  startWithLog(AccessLogFormat::kJson);
  struct Case {
    std::string request;
    std::string method, target, host, status, route, upstream, requestId, userAgent;
  };
  const std::string apiEndpoint = endpointOf(*api_);
  const std::vector<Case> cases = {
      {getRequest("api.example.com", "/v1/users?id=7",
                  "User-Agent: test-agent/1.0\r\nX-Request-Id: client-id-1\r\n"),
       "GET", "/v1/users?id=7", "api.example.com", "200", "default/site", apiEndpoint,
       "client-id-1", "test-agent/1.0"},
      {getRequest("api.example.com", "/status/503"), "GET", "/status/503", "api.example.com", "503",
       "default/site", apiEndpoint, "(generated)", ""},
      {getRequest("nowhere.example.com", "/x"), "GET", "/x", "nowhere.example.com", "404", "(null)",
       "(null)", "", ""},
      {"POST /echo HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 5\r\n\r\nhello", "POST",
       "/echo", "api.example.com", "200", "default/site", apiEndpoint, "(generated)", ""},
      // Bytes a log must not pass through raw: quotes, backslashes, obs-text, a tab, and an
      // attempt at forging JSON fields.
      {getRequest("api.example.com", "/v1/a\"b\\c",
                  "User-Agent: evil\"\\\t\xff\xfe\",\"status\":999,\"x\":\"\r\n"),
       "GET", "/v1/a\"b\\c", "api.example.com", "200", "default/site", apiEndpoint, "(generated)",
       "evil\"\\\t\xc3\xbf\xc3\xbe\",\"status\":999,\"x\":\""},
  };
  HttpClient client(ingressPort_);
  std::vector<uint64_t> received;
  for (const Case& c : cases) {
    auto response = client.request(c.request);
    ASSERT_TRUE(response) << c.request;
    EXPECT_EQ(std::to_string(response->result_int()), c.status) << c.request;
  }
  const std::vector<std::string> lines = logLines(cases.size());
  ASSERT_EQ(lines.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(lines[i]);
    control::Value doc = parseJsonLine(lines[i]);
    EXPECT_EQ(jsonField(doc, "client"), "127.0.0.1");
    EXPECT_EQ(jsonField(doc, "method"), c.method);
    EXPECT_EQ(jsonField(doc, "target"), c.target);
    EXPECT_EQ(jsonField(doc, "protocol"), "HTTP/1.1");
    EXPECT_EQ(jsonField(doc, "status"), c.status);
    EXPECT_EQ(jsonField(doc, "host"), c.host);
    EXPECT_EQ(jsonField(doc, "route"), c.route);
    EXPECT_EQ(jsonField(doc, "upstream"), c.upstream);
    EXPECT_EQ(jsonField(doc, "user_agent"), c.userAgent);
    if (c.requestId == "(generated)") {
      EXPECT_EQ(jsonField(doc, "request_id").size(), 32u);
    } else {
      EXPECT_EQ(jsonField(doc, "request_id"), c.requestId);
    }
    EXPECT_GT(std::stoull(jsonField(doc, "bytes_sent")), 0u);
    const control::Value* time = doc.find("request_time");
    ASSERT_NE(time, nullptr);
    EXPECT_TRUE(time->type() == control::Value::Type::kFloat ||
                time->type() == control::Value::Type::kInt);
    const control::Value* upstreamTime = doc.find("upstream_time");
    ASSERT_NE(upstreamTime, nullptr);
    EXPECT_EQ(upstreamTime->type() == control::Value::Type::kNull, c.upstream == "(null)");
    EXPECT_EQ(jsonField(doc, "time").size(), 24u);  // 2025-01-02T03:04:05.678Z
  }
}

TEST_F(IngressObservabilityTest, CommonAccessLogEscapesWhatTheClientSent) {
  startWithLog(AccessLogFormat::kCommon);
  HttpClient client(ingressPort_);
  auto ok = client.request(getRequest("web.example.com", "/plain", "User-Agent: curl/8.0\r\n"));
  ASSERT_TRUE(ok);
  auto hostile = client.request(
      getRequest("web.example.com", "/q", "User-Agent: a\"b\\c\t\xff\r\nReferer: r\"\r\n"));
  ASSERT_TRUE(hostile);
  const auto lines = logLines(2);
  ASSERT_EQ(lines.size(), 2u);
  // 127.0.0.1 - - [02/Jan/2025:03:04:05 +0000] "GET /plain HTTP/1.1" 200 N "-" "curl/8.0" ...
  EXPECT_TRUE(lines[0].starts_with("127.0.0.1 - - [")) << lines[0];
  EXPECT_NE(lines[0].find(" +0000] \"GET /plain HTTP/1.1\" 200 "), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find(" \"-\" \"curl/8.0\" host=\"web.example.com\" route=\"default/site\" "
                          "upstream=\"127.0.0."),
            std::string::npos)
      << lines[0];
  EXPECT_NE(lines[1].find("\"GET /q HTTP/1.1\" 200 "), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find(" \"r\\\"\" \"a\\\"b\\\\c\\x09\\xff\" "), std::string::npos) << lines[1];
  for (const std::string& line : lines) {
    for (unsigned char c : line) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << line;
  }
}

TEST_F(IngressObservabilityTest, StatsPerRouteAndUpstreamCountAKnownSetOfRequests) {
  start(2u);
  for (int i = 0; i < 6; ++i) {
    HttpClient client(ingressPort_);  // new connections: spread over both workers
    ASSERT_EQ(client.request(getRequest("web.example.com", "/w"))->result_int(), 200);
    ASSERT_EQ(client.request(getRequest("api.example.com", "/v1/a"))->result_int(), 200);
  }
  HttpClient client(ingressPort_);
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(client.request(getRequest("api.example.com", "/status/500"))->result_int(), 500);
  }
  ASSERT_EQ(client.request(getRequest("api.example.com", "/status/404"))->result_int(), 404);
  ASSERT_EQ(client.request(getRequest("nowhere.example.com", "/"))->result_int(), 404);

  // Requests end (and are counted) after their last byte went out: wait for the last one.
  IngressStats stats;
  ASSERT_TRUE(waitFor([&] {
    stats = server_->stats();
    return stats.routes.size() == 2 && stats.routes[0].traffic.requests == 9;
  }));
  ASSERT_EQ(stats.routes.size(), 2u);  // sorted by labels: api first
  const RouteSample& api = stats.routes[0];
  const RouteSample& web = stats.routes[1];
  EXPECT_EQ(api.ingress, "default/site");
  EXPECT_EQ(api.host, "api.example.com");
  EXPECT_EQ(api.path, "/");
  EXPECT_EQ(web.host, "web.example.com");
  EXPECT_EQ(web.path, "/");
  EXPECT_EQ(api.traffic.requests, 9u);
  EXPECT_EQ(api.traffic.responses[1], 6u);
  EXPECT_EQ(api.traffic.responses[3], 1u);
  EXPECT_EQ(api.traffic.responses[4], 2u);
  EXPECT_EQ(web.traffic.requests, 6u);
  EXPECT_EQ(web.traffic.responses[1], 6u);
  for (const RouteSample* r : {&api, &web}) {
    uint64_t histogram = 0;
    for (uint64_t b : r->traffic.buckets) histogram += b;
    EXPECT_EQ(histogram, r->traffic.requests) << r->host;
    EXPECT_GT(r->traffic.durationNs, 0u);
    EXPECT_GT(r->traffic.bytesIn, r->traffic.requests * 30) << "every head is over 30 bytes";
    EXPECT_GT(r->traffic.bytesOut, r->traffic.requests * 100) << "every answer is over 100 bytes";
    EXPECT_EQ(r->inFlight, 0u);
  }

  ASSERT_EQ(stats.upstreams.size(), 3u);  // api's endpoint, then web's two
  const UpstreamSample& apiUp = stats.upstreams[0];
  EXPECT_EQ(apiUp.service, "default/api");
  EXPECT_EQ(apiUp.port, "http");
  EXPECT_EQ(apiUp.endpoint, endpointOf(*api_));
  EXPECT_EQ(apiUp.traffic.requests, 9u);
  EXPECT_EQ(apiUp.traffic.responses[4], 2u);
  EXPECT_GE(apiUp.open, 1u) << "pooled keep-alive connections";
  EXPECT_EQ(stats.upstreams[1].traffic.requests + stats.upstreams[2].traffic.requests, 6u);
  EXPECT_EQ(stats.upstreams[1].endpoint, endpointOf(*web_[0]));
  EXPECT_EQ(stats.upstreams[2].endpoint, endpointOf(*web_[1]));

  // The same through /metrics' text.
  const std::string text =
      prometheus::TextSerializer().Serialize(control::ingressStatsFamilies(stats));
  const std::string apiLabels = R"(ingress="default/site",host="api.example.com",path="/")";
  auto value = [&](const std::string& sample) {
    return support::metricValue(text, sample).value_or(-1);
  };
  EXPECT_EQ(value("capstan_ingress_route_requests_total{" + apiLabels + "}"), 9) << text;
  EXPECT_EQ(value("capstan_ingress_route_responses_total{" + apiLabels + ",code=\"5xx\"}"), 2);
  EXPECT_EQ(value("capstan_ingress_route_request_duration_seconds_count{" + apiLabels + "}"), 9);
  EXPECT_EQ(
      value("capstan_ingress_route_request_duration_seconds_bucket{" + apiLabels + ",le=\"+Inf\"}"),
      9);
  EXPECT_EQ(value("capstan_ingress_route_requests_in_flight{" + apiLabels + "}"), 0);
  const std::string upLabels =
      "service=\"default/api\",port=\"http\",endpoint=\"" + endpointOf(*api_) + "\"";
  EXPECT_EQ(value("capstan_ingress_upstream_requests_total{" + upLabels + "}"), 9) << text;
  EXPECT_EQ(value("capstan_ingress_upstream_response_duration_seconds_count{" + upLabels + "}"), 9);
  EXPECT_GE(value("capstan_ingress_upstream_connections{" + upLabels + "}"), 1);
}

TEST_F(IngressObservabilityTest, StatsOfARemovedRouteAreGoneAfterTheSwap) {
  start(1u);
  HttpClient client(ingressPort_);
  ASSERT_EQ(client.request(getRequest("web.example.com", "/"))->result_int(), 200);
  ASSERT_EQ(client.request(getRequest("api.example.com", "/v1"))->result_int(), 200);
  ASSERT_TRUE(waitFor([&] { return server_->stats().routes.size() == 2; }));

  server_->publish(table(/*withApi=*/false));
  ASSERT_TRUE(waitFor([&] { return server_->counters().tableSwaps == 1; }));
  IngressStats stats = server_->stats();
  ASSERT_EQ(stats.routes.size(), 1u);
  EXPECT_EQ(stats.routes[0].host, "web.example.com");
  EXPECT_EQ(stats.routes[0].traffic.requests, 1u) << "a route that stays keeps its counts";
  for (const UpstreamSample& u : stats.upstreams) {
    EXPECT_NE(u.service, "default/api") << "the endpoint's stats went with its route";
  }
  ASSERT_EQ(client.request(getRequest("web.example.com", "/"))->result_int(), 200);
  EXPECT_TRUE(waitFor([&] { return server_->stats().routes[0].traffic.requests == 2; }));
}

TEST_F(IngressObservabilityTest, DrainLetsARequestInFlightFinishRefusesNewOnesAndClosesIdleOnes) {
  start(2u);
  HttpClient idle(ingressPort_);
  ASSERT_EQ(idle.request(getRequest("web.example.com", "/"))->result_int(), 200);
  HttpClient slow(ingressPort_);
  ASSERT_TRUE(slow.send(getRequest("api.example.com", "/sleep/800")));
  ASSERT_TRUE(waitFor([&] {
    IngressStats stats = server_->stats();
    return !stats.upstreams.empty() && stats.upstreams[0].service == "default/api" &&
           stats.routes[0].inFlight == 1 && stats.upstreams[0].open == 1;
  })) << "the slow request is in flight, its upstream connected";

  const auto start = std::chrono::steady_clock::now();
  auto drained = std::async(std::launch::async, [&] { return server_->drain(5s); });
  EXPECT_TRUE(idle.closedByPeer()) << "an idle keep-alive connection is closed at once";
  EXPECT_LT(std::chrono::steady_clock::now() - start, 700ms);
  EXPECT_TRUE(waitFor([&] { return !HttpClient(ingressPort_, 200ms).connected(); }))
      << "new connections are refused";

  auto response = slow.read();
  ASSERT_TRUE(response) << "the request in flight completes";
  EXPECT_EQ(response->result_int(), 200);
  EXPECT_NE(response->body().find("upstream: api-1"), std::string::npos);
  EXPECT_FALSE(response->keep_alive()) << "Connection: close during the drain";
  EXPECT_TRUE(drained.get()) << "everything ended before the timeout";
  EXPECT_EQ(server_->counters().connectionsActive, 0u);
}

TEST_F(IngressObservabilityTest, DrainTimeoutCutsARequestThatOutlastsIt) {
  start(1u);
  HttpClient slow(ingressPort_, 10s);
  ASSERT_TRUE(slow.send(getRequest("api.example.com", "/sleep/3000")));
  ASSERT_TRUE(waitFor([&] { return server_->counters().requests == 1; }));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(server_->drain(300ms));
  EXPECT_FALSE(slow.read()) << "no response: the request was cut";
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2500ms);
  EXPECT_EQ(server_->counters().connectionsActive, 0u);
}

}  // namespace
}  // namespace capstan::l7
