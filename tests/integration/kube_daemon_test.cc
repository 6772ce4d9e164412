// The real `capstan --proxy-mode=none` fed by the Kubernetes API stand-in over loopback: not
// ready before the first full list, programs it, follows changes, keeps its view while the API
// server is away (and says how old it is on /healthz), catches up when it is back.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/child_process.h"
#include "tests/support/kube_api_server.h"
#include "tests/support/loopback_http.h"
#include "tests/support/prometheus_text.h"

namespace capstan::control {
namespace {

using namespace std::chrono_literals;
using support::httpGet;
using support::KubeApiServer;
using support::metricValue;
using support::waitFor;

constexpr const char* kCapstan = CAPSTAN_BINARY_DIR "/control/capstan";

const char kService[] =
    R"({"kind":"Service","apiVersion":"v1","metadata":{"name":"web","namespace":"shop"},"spec":{"ports":[{"name":"http","protocol":"TCP","port":80,"targetPort":8080}],"clusterIP":"10.96.10.10","clusterIPs":["10.96.10.10"],"type":"ClusterIP","ipFamilies":["IPv4"]}})";
const char kNode[] =
    R"({"kind":"Node","apiVersion":"v1","metadata":{"name":"node-a"},"spec":{},"status":{"addresses":[{"type":"InternalIP","address":"192.168.0.10"}]}})";

std::string slice(const std::vector<std::string>& ips) {
  std::string endpoints;
  for (const auto& ip : ips) {
    if (!endpoints.empty()) endpoints += ',';
    endpoints +=
        R"({"addresses":[")" + ip +
        R"("],"conditions":{"ready":true,"serving":true,"terminating":false},"nodeName":"node-a"})";
  }
  return R"({"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"web-1","namespace":"shop","labels":{"kubernetes.io/service-name":"web"}},"addressType":"IPv4","endpoints":[)" +
         endpoints + R"(],"ports":[{"name":"http","protocol":"TCP","port":8080}]})";
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class KubeDaemonTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::access(kCapstan, X_OK), 0) << kCapstan << " is not built";
    char pattern[] = "/tmp/capstan-kube-daemon-XXXXXX";
    dir_ = ::mkdtemp(pattern);
  }
  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (HasFailure()) std::printf("--- capstan's log ---\n%s\n", readFile(dir_ + "/err").c_str());
    std::filesystem::remove_all(dir_);
  }
  void start(const std::string& master, const std::vector<std::string>& extra = {}) {
    auto ports = support::freePorts(2);
    healthPort_ = ports[0];
    metricsPort_ = ports[1];
    std::vector<std::string> args = {
        kCapstan, "--proxy-mode=none", "--master", master, "--hostname-override",
        "node-a", "--min-sync-period", "100ms",    "-v=2"};
    for (auto [flag, port] : {std::pair{"--healthz-bind-address", healthPort_},
                              std::pair{"--metrics-bind-address", metricsPort_}}) {
      args.push_back(flag);
      args.push_back("127.0.0.1:" + std::to_string(port));
    }
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = support::spawn(args, dir_ + "/out", dir_ + "/err");
    ASSERT_GT(pid_, 0);
  }
  int healthz(std::string* body = nullptr) {
    auto r = httpGet(healthPort_, "/healthz");
    if (body && r) *body = r->body;
    return r ? r->status : 0;
  }
  double metric(const std::string& name) {
    auto r = httpGet(metricsPort_, "/metrics");
    return r ? metricValue(r->body, name).value_or(-1) : -1;
  }

  std::string dir_;
  pid_t pid_ = -1;
  uint16_t healthPort_ = 0, metricsPort_ = 0;
};

TEST_F(KubeDaemonTest, ReadyAfterTheFirstListKeepsItsViewWhileTheApiIsAway) {
  KubeApiServer server;
  server.upsert(kService);
  server.upsert(slice({"10.244.1.1"}));
  server.upsert(kNode);
  server.setDown(true);  // the daemon starts before the API server answers
  ASSERT_NO_FATAL_FAILURE(start(server.url()));
  ASSERT_TRUE(waitFor([&] { return healthz() != 0; }));
  std::string body;
  EXPECT_EQ(healthz(&body), 503) << body;  // no view yet: not ready
  EXPECT_NE(body.find("\"kubeApiSynced\": false"), std::string::npos) << body;
  EXPECT_EQ(httpGet(healthPort_, "/livez").value_or(support::HttpReply{}).status, 200);
  EXPECT_EQ(metric("kubeproxy_sync_proxy_rules_duration_seconds_count"), 0);

  server.setDown(false);
  ASSERT_TRUE(waitFor([&] { return healthz() == 200; }, 20s));
  ASSERT_TRUE(waitFor([&] { return metric("capstan_endpoints") == 1; }));
  EXPECT_EQ(metric("capstan_service_ports"), 1);

  server.upsert(slice({"10.244.1.1", "10.244.1.2"}));
  ASSERT_TRUE(waitFor([&] { return metric("capstan_endpoints") == 2; }));

  // Away for 30 s (the issue's outage): the dataplane keeps what it has all along, and /healthz
  // says since when the view is not fresh. Checked every 5 s.
  server.setDown(true);
  const double syncsBefore = metric("kubeproxy_sync_proxy_rules_duration_seconds_count");
  for (int second = 5; second <= 30; second += 5) {
    std::this_thread::sleep_for(5s);
    EXPECT_EQ(healthz(&body), 200) << second << " s: " << body;
    EXPECT_NE(body.find("\"kubeApiSynced\": true"), std::string::npos) << body;
    auto age = body.find("\"kubeApiLastContactAgeSeconds\": ");
    ASSERT_NE(age, std::string::npos) << body;
    EXPECT_GE(std::stod(body.substr(age + 32)), second - 1.0) << body;
    EXPECT_EQ(metric("capstan_endpoints"), 2) << second << " s";
  }
  // Periodic syncs may run meanwhile, but from the same view: nothing changed.
  EXPECT_GE(metric("kubeproxy_sync_proxy_rules_duration_seconds_count"), syncsBefore);

  // Back, with a change made meanwhile. The reflectors' backoff (client-go's: doubling up to
  // 30 s, plus up to as much jitter) may wait almost a minute before the next try.
  server.upsert(slice({"10.244.1.1", "10.244.1.2", "10.244.1.3"}));
  server.setDown(false);
  ASSERT_TRUE(waitFor([&] { return metric("capstan_endpoints") == 3; }, 65s));

  ASSERT_EQ(::kill(pid_, SIGTERM), 0);
  auto status = support::waitExit(pid_, 5000ms);
  ASSERT_TRUE(status) << "capstan did not stop within 5 s of SIGTERM";
  pid_ = -1;
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
}

TEST_F(KubeDaemonTest, WritesTheIngressStatusOnce) {
  KubeApiServer server;
  server.upsert(kService);
  server.upsert(slice({"10.244.1.1"}));
  server.upsert(kNode);
  server.upsert(
      R"({"kind":"IngressClass","apiVersion":"networking.k8s.io/v1","metadata":{"name":"capstan"},"spec":{"controller":"capstan.io/ingress-controller"}})");
  server.upsert(
      R"({"kind":"Ingress","apiVersion":"networking.k8s.io/v1","metadata":{"name":"web","namespace":"shop"},"spec":{"ingressClassName":"capstan","defaultBackend":{"service":{"name":"web","port":{"number":80}}}}})");
  auto port = support::freePorts(1)[0];
  ASSERT_NO_FATAL_FAILURE(
      start(server.url(), {"--ingress", "--ingress-workers", "1", "--ingress-http-address",
                           "127.0.0.1:" + std::to_string(port), "--ingress-https-address", "",
                           "--ingress-status-address", "192.0.2.1"}));
  auto written = [&] {
    auto json = server.object("Ingress", "shop", "web");
    return json &&
           json->find(R"("loadBalancer":{"ingress":[{"ip":"192.0.2.1"}]})") != std::string::npos;
  };
  ASSERT_TRUE(waitFor(written, 20s));
  ASSERT_TRUE(waitFor([&] { return healthz() == 200; }, 20s));
  std::this_thread::sleep_for(500ms);  // the patch's own watch event has come back by now
  EXPECT_EQ(server.patches(), 1u);
  auto records = server.requests();
  EXPECT_EQ(std::count_if(records.begin(), records.end(),
                          [](const auto& r) {
                            return r.method == "PATCH" &&
                                   r.target ==
                                       "/apis/networking.k8s.io/v1/namespaces/shop/ingresses/web/"
                                       "status";
                          }),
            1);
}

}  // namespace
}  // namespace capstan::control
