// ServiceHealthServer: which Services get a port and what they count (pure), then the server over
// real loopback sockets.
#include "control/service_health_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "tests/support/child_process.h"
#include "tests/support/loopback_http.h"
#include "tests/support/proxy_state.h"

namespace capstan::control {
namespace {

using support::freePorts;
using support::httpGet;
using support::httpRequest;

IpAddress ip(const std::string& text) { return IpAddress::parse(text).value_or(IpAddress()); }

struct Ep {
  std::string ip;
  std::string node = "node-a";  // this node
  bool ready = true;
  bool terminating = false;
};

struct Svc {
  std::string name;
  uint16_t healthCheckNodePort = 0;
  std::vector<std::string> clusterIPs = {"10.96.0.10"};
  ServiceType type = ServiceType::kLoadBalancer;
  TrafficPolicy externalPolicy = TrafficPolicy::kLocal;
  std::vector<Ep> endpoints;
  int ports = 1;  // how many ports (the same endpoints behind each, on port 8080 + i)
};

ServicePortList portsOf(const Svc& d) {
  auto svc = std::make_shared<Service>();
  svc->name = {"web", d.name};
  svc->type = d.type;
  for (const auto& c : d.clusterIPs) svc->clusterIPs.push_back(ip(c));
  svc->externalTrafficPolicy = d.externalPolicy;
  svc->healthCheckNodePort = d.healthCheckNodePort;
  std::vector<std::shared_ptr<const EndpointSlice>> slices;
  for (int i = 0; i < d.ports; ++i) {
    ServicePortSpec spec;
    spec.name = "p" + std::to_string(i);
    spec.port = static_cast<uint16_t>(80 + i);
    spec.targetPort = int32_t{8080 + i};
    spec.nodePort = static_cast<uint16_t>(30080 + i);
    svc->ports.push_back(spec);
  }
  for (AddressType type : {AddressType::kIPv4, AddressType::kIPv6}) {
    auto slice = std::make_shared<EndpointSlice>();
    slice->name = {"web", d.name + (type == AddressType::kIPv4 ? "-4" : "-6")};
    slice->serviceName = d.name;
    slice->addressType = type;
    for (const Ep& e : d.endpoints) {
      if (ip(e.ip).isV4() != (type == AddressType::kIPv4)) continue;
      EndpointSliceEndpoint ep;
      ep.addresses = {ip(e.ip)};
      ep.conditions = {e.ready, e.ready || e.terminating, e.terminating};
      ep.nodeName = e.node;
      slice->endpoints.push_back(ep);
    }
    for (int i = 0; i < d.ports; ++i) {
      slice->ports.push_back(
          {"p" + std::to_string(i), Protocol::kTCP, static_cast<uint16_t>(8080 + i), ""});
    }
    slices.push_back(slice);
  }
  return makeServicePorts(svc, slices, NodeInfo{.name = "node-a"});
}

std::shared_ptr<ProxyState> stateOf(const std::vector<Svc>& services) {
  return support::stateOf(services, portsOf);
}

HealthCheckService hc(const std::string& name, uint16_t port, size_t v4, size_t v6 = 0) {
  return {{"web", name}, port, {v4, v6}};
}

TEST(HealthCheckServices, OnlyLoadBalancersWithLocalPolicy) {
  Svc lb{"lb",          31000, {"10.96.0.10"}, ServiceType::kLoadBalancer, TrafficPolicy::kLocal,
         {{"10.0.0.1"}}};
  Svc cluster = lb;
  cluster.name = "cluster-policy";
  cluster.externalPolicy = TrafficPolicy::kCluster;
  Svc nodePort = lb;
  nodePort.name = "nodeport";
  nodePort.type = ServiceType::kNodePort;
  Svc noPort = lb;
  noPort.name = "no-port";
  noPort.healthCheckNodePort = 0;
  Svc headless = lb;
  headless.name = "headless";
  headless.clusterIPs.clear();
  EXPECT_EQ(healthCheckServices(*stateOf({lb, cluster, nodePort, noPort, headless})),
            std::vector<HealthCheckService>{hc("lb", 31000, 1)});
}

TEST(HealthCheckServices, CountsDistinctLocalReadyAddressesPerFamily) {
  Svc svc{"web", 31000, {"10.96.0.10", "fd00::10"}};
  svc.ports = 2;  // the same pods behind both ports: counted once
  svc.endpoints = {
      {"10.0.0.1"},                         // local, ready
      {"10.0.0.2"},                         // local, ready
      {"10.0.0.3", "node-b"},               // elsewhere
      {"10.0.0.4", "node-a", false},        // local, not ready
      {"10.0.0.5", "node-a", false, true},  // local, terminating (still serving)
      {"fd00::1"},                          // local, ready, IPv6
  };
  EXPECT_EQ(healthCheckServices(*stateOf({svc})),
            std::vector<HealthCheckService>{hc("web", 31000, 2, 1)});

  // Only terminating endpoints here: 0, although the Local selection falls back to them (the
  // load balancer must drain this node).
  Svc draining{"draining", 31001, {"10.96.0.11"}};
  draining.endpoints = {{"10.0.0.5", "node-a", false, true}, {"10.0.0.6", "node-b"}};
  auto state = stateOf({draining});
  ASSERT_FALSE(state->servicePorts()[0]->selectionFor(IpFamily::kV4).local.empty());
  EXPECT_EQ(healthCheckServices(*state), std::vector<HealthCheckService>{hc("draining", 31001, 0)});

  // A single-stack IPv4 Service counts no IPv6 endpoint.
  Svc v4only{"v4only",
             31002,
             {"10.96.0.12"},
             ServiceType::kLoadBalancer,
             TrafficPolicy::kLocal,
             {{"10.0.0.1"}, {"fd00::1"}}};
  EXPECT_EQ(healthCheckServices(*stateOf({v4only})),
            std::vector<HealthCheckService>{hc("v4only", 31002, 1, 0)});
}

TEST(HealthCheckServices, SortedByPortFirstByNameKeepsAShared) {
  Svc a{"a", 31005, {"10.96.0.1"}};
  Svc b{"b", 31001, {"10.96.0.2"}};
  Svc c{"c", 31005, {"10.96.0.3"}};
  EXPECT_EQ(
      healthCheckServices(*stateOf({c, b, a})),
      (std::vector<HealthCheckService>{hc("b", 31001, 0), hc("a", 31005, 0), hc("c", 31005, 0)}));
}

// The cost per sync at 30,000 ports (15,000 two-port Services, 100 of them with a health check
// port): printed for the record, bounded loosely (an O(ports) walk, not a quadratic one).
TEST(HealthCheckServices, ThirtyThousandPorts) {
  ServicePortList ports;
  for (int i = 0; i < 15000; ++i) {
    Svc s{"svc-" + std::to_string(100000 + i), 0, {IpAddress::v4(0x0a600000u + i).toString()}};
    s.ports = 2;
    s.endpoints = {{IpAddress::v4(0x0a000000u + 2 * i).toString()},
                   {IpAddress::v4(0x0a000001u + 2 * i).toString(), "node-b"}};
    if (i % 150 == 0) {
      s.healthCheckNodePort = static_cast<uint16_t>(31000 + i / 150);
    } else {
      s.type = ServiceType::kClusterIP;
    }
    auto p = portsOf(s);
    ports.insert(ports.end(), p.begin(), p.end());
  }
  std::sort(ports.begin(), ports.end(),
            [](const auto& a, const auto& b) { return a->name < b->name; });
  ProxyState state(1, NodeInfo{.name = "node-a"}, std::move(ports), IngressState{});
  ASSERT_EQ(state.servicePorts().size(), 30000u);
  constexpr int kRounds = 50;
  std::vector<HealthCheckService> out;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kRounds; ++i) out = healthCheckServices(state);
  double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
      kRounds;
  ASSERT_EQ(out.size(), 100u);
  EXPECT_EQ(out[0], hc("svc-100000", 31000, 1));
  std::printf("healthCheckServices, 30000 ports, 100 health-checked Services: %.1f us\n", us);
  EXPECT_LT(us, 50000.0);

  // And a whole sync() of the server with nothing to open (no health-checked Service left).
  ServiceHealthServer server("127.0.0.1", [] { return true; });
  ServicePortList clusterOnly;
  for (const auto& p : state.servicePorts()) {
    if (p->service->type != ServiceType::kLoadBalancer) clusterOnly.push_back(p);
  }
  ProxyState quiet(2, NodeInfo{.name = "node-a"}, std::move(clusterOnly), IngressState{});
  start = std::chrono::steady_clock::now();
  for (int i = 0; i < kRounds; ++i) server.sync(quiet);
  std::printf(
      "ServiceHealthServer::sync, %zu ports, nothing to listen on: %.1f us\n",
      quiet.servicePorts().size(),
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
          kRounds);
  EXPECT_TRUE(server.ports().empty());
}

std::string header(const support::HttpReply& r, const std::string& name) {
  std::string key = "\r\n" + name + ": ";
  size_t at = r.headers.find(key);
  if (at == std::string::npos) return "<none>";
  size_t end = r.headers.find("\r\n", at + key.size());
  return r.headers.substr(at + key.size(), end == std::string::npos ? end : end - at - key.size());
}

class ServiceHealthServerTest : public testing::Test {
 protected:
  void SetUp() override {
    ports_ = freePorts(3);
    ASSERT_EQ(ports_.size(), 3u);
  }
  std::vector<uint16_t> ports_;
  std::atomic<bool> healthy_{true};
  ServiceHealthServer server_{"127.0.0.1", [this] { return healthy_.load(); }};
};

TEST_F(ServiceHealthServerTest, AnswersWithTheLocalEndpointCount) {
  Svc web{"web",
          ports_[0],
          {"10.96.0.10"},
          ServiceType::kLoadBalancer,
          TrafficPolicy::kLocal,
          {{"10.0.0.1"}, {"10.0.0.2"}, {"10.0.0.3", "node-b"}}};
  Svc empty{"empty",
            ports_[1],
            {"10.96.0.11"},
            ServiceType::kLoadBalancer,
            TrafficPolicy::kLocal,
            {{"10.0.0.3", "node-b"}}};
  server_.sync(*stateOf({web, empty}));
  auto ports = server_.ports();
  ASSERT_EQ(ports.size(), 2u);
  for (const auto& p : ports) EXPECT_TRUE(p.listening) << p.error;

  for (const char* path : {"/", "/healthz", "/anything/at/all?x=1"}) {
    auto r = httpGet(ports_[0], path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 200) << path;
    EXPECT_EQ(r->body,
              "{\"service\":{\"namespace\":\"web\",\"name\":\"web\"},\"localEndpoints\":2,"
              "\"serviceProxyHealthy\":true}");
    EXPECT_EQ(header(*r, "Content-Type"), "application/json");
    EXPECT_EQ(header(*r, "X-Content-Type-Options"), "nosniff");
    EXPECT_EQ(header(*r, "X-Load-Balancing-Endpoint-Weight"), "2");
  }
  auto none = httpGet(ports_[1], "/");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 503);
  EXPECT_EQ(none->body,
            "{\"service\":{\"namespace\":\"web\",\"name\":\"empty\"},\"localEndpoints\":0,"
            "\"serviceProxyHealthy\":true}");
  EXPECT_EQ(header(*none, "X-Load-Balancing-Endpoint-Weight"), "0");

  auto head = httpRequest(ports_[0], "HEAD", "/");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->body, "");
  auto post = httpRequest(ports_[0], "POST", "/");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
}

TEST_F(ServiceHealthServerTest, UnhealthyProxyAnswers503) {
  Svc web{
      "web",         ports_[0], {"10.96.0.10"}, ServiceType::kLoadBalancer, TrafficPolicy::kLocal,
      {{"10.0.0.1"}}};
  server_.sync(*stateOf({web}));
  healthy_ = false;
  auto r = httpGet(ports_[0], "/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(r->body.find("\"localEndpoints\":1,\"serviceProxyHealthy\":false"), std::string::npos)
      << r->body;
  EXPECT_EQ(header(*r, "X-Load-Balancing-Endpoint-Weight"), "1");
  healthy_ = true;
  EXPECT_EQ(httpGet(ports_[0], "/")->status, 200);
}

TEST_F(ServiceHealthServerTest, CountsFollowSyncsAndRemovedServicesCloseTheirPort) {
  Svc web{
      "web",         ports_[0], {"10.96.0.10"}, ServiceType::kLoadBalancer, TrafficPolicy::kLocal,
      {{"10.0.0.1"}}};
  Svc other{
      "other",       ports_[1], {"10.96.0.11"}, ServiceType::kLoadBalancer, TrafficPolicy::kLocal,
      {{"10.0.0.9"}}};
  server_.sync(*stateOf({web, other}));
  ASSERT_EQ(httpGet(ports_[0], "/")->status, 200);

  // The last local endpoint goes: 503 on the same port.
  web.endpoints = {{"10.0.0.1", "node-b"}};
  server_.sync(*stateOf({web, other}));
  auto r = httpGet(ports_[0], "/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(header(*r, "X-Load-Balancing-Endpoint-Weight"), "0");

  // A keep-alive connection is open to `web` when it is removed.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(ports_[0]);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(fd, get.data(), get.size(), MSG_NOSIGNAL), static_cast<ssize_t>(get.size()));
  char buf[4096];
  ASSERT_GT(::recv(fd, buf, sizeof(buf), 0), 0);

  // Removed (now a Cluster-policy Service): the port closes, the other stays.
  web.externalPolicy = TrafficPolicy::kCluster;
  server_.sync(*stateOf({web, other}));
  ASSERT_EQ(server_.ports().size(), 1u);
  EXPECT_EQ(server_.ports()[0].service.service.name, "other");
  EXPECT_FALSE(httpGet(ports_[0], "/")) << "the port should be closed";
  EXPECT_EQ(httpGet(ports_[1], "/")->status, 200);
  // The open connection gets no answer and is closed at its next request.
  ::send(fd, get.data(), get.size(), MSG_NOSIGNAL);
  EXPECT_EQ(::recv(fd, buf, sizeof(buf), 0), 0);
  ::close(fd);

  // Back again, with another Service on the port than before.
  Svc again = web;
  again.name = "again";
  again.externalPolicy = TrafficPolicy::kLocal;
  again.endpoints = {{"10.0.0.1"}, {"10.0.0.2"}, {"10.0.0.3"}};
  server_.sync(*stateOf({again, other}));
  auto back = httpGet(ports_[0], "/");
  ASSERT_TRUE(back);
  EXPECT_EQ(back->status, 200);
  EXPECT_NE(back->body.find("\"name\":\"again\""), std::string::npos) << back->body;
  EXPECT_EQ(header(*back, "X-Load-Balancing-Endpoint-Weight"), "3");
}

TEST_F(ServiceHealthServerTest, PortInUseIsReportedAndRetried) {
  // Something else listens on the first port.
  int blocker = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(blocker, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(ports_[0]);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(blocker, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(blocker, 1), 0);

  Svc web{
      "web",         ports_[0], {"10.96.0.10"}, ServiceType::kLoadBalancer, TrafficPolicy::kLocal,
      {{"10.0.0.1"}}};
  Svc other{
      "other",       ports_[1], {"10.96.0.11"}, ServiceType::kLoadBalancer, TrafficPolicy::kLocal,
      {{"10.0.0.9"}}};
  server_.sync(*stateOf({web, other}));
  auto ports = server_.ports();
  ASSERT_EQ(ports.size(), 2u);
  const auto& blocked = ports[0].service.port == ports_[0] ? ports[0] : ports[1];
  const auto& fine = ports[0].service.port == ports_[0] ? ports[1] : ports[0];
  EXPECT_FALSE(blocked.listening);
  EXPECT_NE(blocked.error.find("cannot listen on 127.0.0.1:" + std::to_string(ports_[0])),
            std::string::npos)
      << blocked.error;
  EXPECT_NE(blocked.error.find("in use"), std::string::npos) << blocked.error;
  EXPECT_TRUE(fine.listening);
  EXPECT_EQ(httpGet(ports_[1], "/")->status, 200);

  // Still in use at the next sync: still reported, nothing else disturbed.
  server_.sync(*stateOf({web, other}));
  for (const auto& p : server_.ports()) EXPECT_EQ(p.listening, p.service.port != ports_[0]);

  ::close(blocker);
  server_.sync(*stateOf({web, other}));
  for (const auto& p : server_.ports()) EXPECT_TRUE(p.listening) << p.error;
  auto r = httpGet(ports_[0], "/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("\"name\":\"web\""), std::string::npos);
}

TEST_F(ServiceHealthServerTest, StopClosesEverything) {
  Svc web{
      "web",         ports_[0], {"10.96.0.10"}, ServiceType::kLoadBalancer, TrafficPolicy::kLocal,
      {{"10.0.0.1"}}};
  server_.sync(*stateOf({web}));
  ASSERT_TRUE(httpGet(ports_[0], "/"));
  server_.stop();
  EXPECT_FALSE(httpGet(ports_[0], "/"));
  EXPECT_TRUE(server_.ports().empty());
  server_.sync(*stateOf({web}));  // a no-op now
  EXPECT_FALSE(httpGet(ports_[0], "/"));
  server_.stop();  // idempotent
}

// A GET over IPv6 loopback; the status code, or 0 if there was no HTTP answer.
int getOverIPv6(uint16_t port, std::string* body) {
  int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_port = htons(port);
  addr.sin6_addr = in6addr_loopback;
  std::string raw;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string get = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    ::send(fd, get.data(), get.size(), MSG_NOSIGNAL);
    char buf[4096];
    for (int i = 0; i < 64; ++i) {
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      raw.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  if (!raw.starts_with("HTTP/1.1 ")) return 0;
  *body = raw.substr(raw.find("\r\n\r\n") + 4);
  return std::atoi(raw.c_str() + 9);
}

// Bound to every address, a dual-stack Service answers each family with its own count, as
// kube-proxy's per-family listeners do.
TEST(ServiceHealthServer, EveryAddressAnswersPerFamily) {
  auto ports = freePorts(1);
  ASSERT_EQ(ports.size(), 1u);
  ServiceHealthServer server("", [] { return true; });
  Svc dual{"dual", ports[0], {"10.96.0.10", "fd00::10"}};
  dual.endpoints = {{"10.0.0.1"}, {"10.0.0.2"}};  // no local IPv6 endpoint
  server.sync(*stateOf({dual}));
  ASSERT_EQ(server.ports().size(), 1u);
  ASSERT_TRUE(server.ports()[0].listening) << server.ports()[0].error;
  auto v4 = httpGet(ports[0], "/");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->status, 200);
  EXPECT_EQ(header(*v4, "X-Load-Balancing-Endpoint-Weight"), "2");
  std::string body;
  int status = getOverIPv6(ports[0], &body);
  if (status == 0) GTEST_SKIP() << "no IPv6 loopback here";
  EXPECT_EQ(status, 503);
  EXPECT_NE(body.find("\"localEndpoints\":0"), std::string::npos) << body;
}

}  // namespace
}  // namespace capstan::control
