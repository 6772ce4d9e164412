// The real `capstan` binary, started as a child process with --proxy-mode=none: its status and
// metrics servers, its reaction to manifest changes (inotify, the ConfigMap ..data swap, broken
// files), SIGHUP and SIGTERM; and the one-shot --dry-run and flag errors.
//
// Every wait is bounded in time and in iterations; a child still running when a test ends is
// killed in TearDown, and the kernel kills it if this process dies first (PR_SET_PDEATHSIG).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "control/document_reader.h"
#include "control/manifest/manifest_source.h"
#include "l7/tls/self_signed_certificate.h"
#include "tests/support/child_process.h"
#include "tests/support/http_load.h"
#include "tests/support/http_peers.h"
#include "tests/support/loopback_http.h"
#include "tests/support/netns.h"
#include "tests/support/prometheus_text.h"

namespace capstan::control {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kCapstan = CAPSTAN_BINARY_DIR "/control/capstan";
constexpr auto kWaitLimit = 10s;  // for anything the daemon should do "soon"

using capstan::support::freePorts;
using capstan::support::httpGet;
using capstan::support::HttpReply;
using capstan::support::metricValue;
using capstan::support::spawn;
using capstan::support::waitExit;
using capstan::support::waitFor;

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string serviceYaml(const std::string& name, const std::string& clusterIP) {
  return "apiVersion: v1\nkind: Service\nmetadata:\n  name: " + name +
         "\n  namespace: default\nspec:\n  clusterIP: " + clusterIP +
         "\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n";
}

std::string sliceYaml(const std::string& name, const std::string& service,
                      const std::vector<std::string>& ips) {
  std::string out =
      "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: " + name +
      "\n  namespace: default\n  labels:\n    kubernetes.io/service-name: " + service +
      "\naddressType: IPv4\nendpoints:\n";
  for (const std::string& ip : ips) {
    out += "- addresses: [\"" + ip + "\"]\n  conditions: {ready: true}\n  nodeName: node-a\n";
  }
  return out + "ports:\n- name: http\n  port: 8080\n  protocol: TCP\n";
}

// In a sanitizer build the daemon is instrumented too: a report in its output is a failure even
// when the exit status happens to be the one expected (ASan exits with 1, as --dry-run does for
// invalid input).
void expectNoSanitizerReport(const std::string& output, const std::string& what) {
  for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"}) {
    EXPECT_EQ(output.find(marker), std::string::npos) << what << ":\n" << output;
  }
}

// Manifests of the ingress cases: Service "web" (port 80 -> `port`), its EndpointSlice with
// `ips`, and Ingress "site" routing web.example.com (and `extraHosts`) to it, with an optional
// `annotations`.
std::string webServiceYaml(const std::string& port) {
  return "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: default\nspec:\n"
         "  clusterIP: 10.96.0.20\n  ports:\n  - name: http\n    port: 80\n    targetPort: " +
         port + "\n";
}
std::string webSliceYaml(const std::string& port, const std::vector<std::string>& ips) {
  std::string out =
      "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-1\n"
      "  namespace: default\n  labels:\n    kubernetes.io/service-name: web\n"
      "addressType: IPv4\nendpoints:\n";
  for (const std::string& ip : ips) {
    out += "- addresses: [\"" + ip + "\"]\n  conditions: {ready: true}\n";
  }
  return out + "ports:\n- name: http\n  port: " + port + "\n  protocol: TCP\n";
}
std::string siteIngressYaml(const std::vector<std::string>& extraHosts = {},
                            const std::map<std::string, std::string>& annotations = {}) {
  std::string out =
      "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: site\n"
      "  namespace: default\n";
  if (!annotations.empty()) out += "  annotations:\n";
  for (const auto& [key, value] : annotations) out += "    " + key + ": \"" + value + "\"\n";
  out += "spec:\n  ingressClassName: capstan\n  rules:\n";
  std::vector<std::string> hosts = {"web.example.com"};
  hosts.insert(hosts.end(), extraHosts.begin(), extraHosts.end());
  for (const std::string& host : hosts) {
    out += "  - host: " + host +
           "\n    http:\n      paths:\n      - path: /\n"
           "        pathType: Prefix\n        backend:\n          service:\n"
           "            name: web\n            port: {number: 80}\n";
  }
  return out;
}

class DaemonSmokeTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::access(kCapstan, X_OK), 0) << kCapstan << " is not built";
    char pattern[] = "/tmp/capstan-daemon-test-XXXXXX";
    char* made = ::mkdtemp(pattern);
    ASSERT_NE(made, nullptr);
    root_ = made;
    ASSERT_EQ(::mkdir(path("manifests").c_str(), 0755), 0);
  }

  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    if (fs::exists(path("daemon.err"))) {
      expectNoSanitizerReport(readFile(path("daemon.err")), "the daemon's log");
    }
    if (HasFailure() && fs::exists(path("daemon.err"))) {
      std::string log = readFile(path("daemon.err"));
      if (log.size() > 20000) log = "...\n" + log.substr(log.size() - 20000);
      std::printf("--- capstan's log ---\n%s--- end of log ---\n", log.c_str());
    }
    std::error_code ignored;
    if (!root_.empty()) fs::remove_all(root_, ignored);
  }

  std::string path(const std::string& rel) const { return root_ + "/" + rel; }

  // The standalone L7 load balancer on a free port (set in `ingressPort`) with web's Service, a
  // slice naming 127.0.0.2 and Ingress "site" (the manifests below), upstreams on `port`.
  void startIngress(const std::string& port, uint16_t& ingressPort,
                    const std::vector<std::string>& extraArgs = {}) {
    ASSERT_NO_FATAL_FAILURE(write("manifests/web.yaml", webServiceYaml(port)));
    ASSERT_NO_FATAL_FAILURE(write("manifests/web-slice.yaml", webSliceYaml(port, {"127.0.0.2"})));
    ASSERT_NO_FATAL_FAILURE(write("manifests/ingress.yaml", siteIngressYaml()));
    ingressPort = freePorts(1).at(0);
    std::vector<std::string> args = {"--ingress",
                                     "--ingress-http-address",
                                     "127.0.0.1:" + std::to_string(ingressPort),
                                     "--ingress-https-address",
                                     "",
                                     "--ingress-workers",
                                     "2"};
    args.insert(args.end(), extraArgs.begin(), extraArgs.end());
    ASSERT_NO_FATAL_FAILURE(startDaemon(args));
  }

  void write(const std::string& rel, const std::string& content) const {
    std::string full = path(rel);
    fs::create_directories(fs::path(full).parent_path());
    std::string tmp =
        fs::path(full).parent_path().string() + "/.tmp-" + fs::path(full).filename().string();
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << content;
      ASSERT_TRUE(out.good()) << tmp;
    }
    ASSERT_EQ(::rename(tmp.c_str(), full.c_str()), 0) << full;
  }

  struct Run {
    std::optional<int> status;  // nullopt: timed out (and killed)
    std::string out, err;
  };
  // Runs capstan to completion (at most 10 s).
  Run runCapstan(std::vector<std::string> args) {
    args.insert(args.begin(), kCapstan);
    pid_t pid = spawn(args, path("run.out"), path("run.err"));
    EXPECT_GT(pid, 0);
    Run run;
    if (pid <= 0) return run;
    run.status = waitExit(pid, kWaitLimit);
    if (!run.status) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    run.out = readFile(path("run.out"));
    run.err = readFile(path("run.err"));
    expectNoSanitizerReport(run.err, "capstan's stderr");
    return run;
  }

  // Starts the daemon on fresh ports and waits for /healthz to answer 200. A port picked free can
  // be taken by another process before the daemon binds it: then it is tried again on others.
  void startDaemon(const std::vector<std::string>& extraArgs = {}) {
    for (int attempt = 1;; ++attempt) {
      auto ports = freePorts(2);
      ASSERT_EQ(ports.size(), 2u);
      healthPort_ = ports[0];
      metricsPort_ = ports[1];
      std::vector<std::string> args = {kCapstan,
                                       "--proxy-mode=none",
                                       "--manifests",
                                       path("manifests"),
                                       "--hostname-override",
                                       "node-a",
                                       "--healthz-bind-address",
                                       "127.0.0.1:" + std::to_string(healthPort_),
                                       "--metrics-bind-address",
                                       "127.0.0.1:" + std::to_string(metricsPort_),
                                       "--min-sync-period",
                                       "100ms"};
      args.insert(args.end(), extraArgs.begin(), extraArgs.end());
      pid_ = spawn(args, path("daemon.out"), path("daemon.err"));
      ASSERT_GT(pid_, 0);
      bool up = waitFor([&] {
        auto r = httpGet(healthPort_, "/healthz");
        return (r && r->status == 200) || !running();
      });
      if (!running() && attempt < 3 &&
          readFile(path("daemon.err")).find("cannot listen") != std::string::npos) {
        continue;
      }
      ASSERT_TRUE(running()) << "capstan exited during start-up, status "
                             << exitStatus_.value_or(-1);
      ASSERT_TRUE(up) << "/healthz did not answer 200 within " << kWaitLimit.count() << " s";
      return;
    }
  }

  // Whether the daemon is still running; if it has exited, it is reaped here and its status kept.
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exitStatus_ = status;
      pid_ = -1;
    }
    return r == 0;
  }

  // SIGTERM, then the exit status within 5 s.
  void stopDaemonExpectingSuccess() {
    ASSERT_GT(pid_, 0);
    ASSERT_EQ(::kill(pid_, SIGTERM), 0);
    auto status = waitExit(pid_, 5000ms);
    ASSERT_TRUE(status.has_value()) << "capstan did not exit within 5 s of SIGTERM";
    pid_ = -1;
    EXPECT_TRUE(WIFEXITED(*status)) << "status " << *status;
    EXPECT_EQ(WEXITSTATUS(*status), 0);
    EXPECT_NE(readFile(path("daemon.err")).find("capstan stopped"), std::string::npos);
  }

  std::string metrics() const {
    auto r = httpGet(metricsPort_, "/metrics");
    return r && r->status == 200 ? r->body : std::string();
  }
  double metric(const std::string& name) const { return metricValue(metrics(), name).value_or(-1); }

  // Waits until the daemon has stopped looking at the files (no reload for 300 ms), so that what
  // a test changes next is seen through a watch, not by a look that was due anyway.
  void settle() {
    double last = -1;
    auto quietSince = Clock::now();
    ASSERT_TRUE(waitFor([&] {
      double now = metric("capstan_manifest_reloads_total");
      if (now != last) {
        last = now;
        quietSince = Clock::now();
      }
      return now >= 1 && Clock::now() - quietSince >= 300ms;
    }));
  }

  std::string root_;
  pid_t pid_ = -1;
  std::optional<int> exitStatus_;  // of a daemon that exited by itself
  uint16_t healthPort_ = 0;
  uint16_t metricsPort_ = 0;
};

const std::regex kGoTime(R"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})? \+0000 UTC)");

// The body kube-proxy answers /healthz and /livez with: {"lastUpdated": "...", "currentTime":
// "...", "nodeEligible": true} (livez without nodeEligible).
void expectHealthBody(const HttpReply& reply, bool withNodeEligible) {
  EXPECT_NE(reply.headers.find("Content-Type: application/json"), std::string::npos)
      << reply.headers;
  std::optional<Value> doc;
  Status st = readJsonDocuments(reply.body, [&](Value v, size_t) -> Status {
    doc = std::move(v);
    return okStatus();
  });
  ASSERT_TRUE(st.ok()) << st.error().message() << ": " << reply.body;
  ASSERT_TRUE(doc && doc->isObject()) << reply.body;
  EXPECT_EQ(doc->asObject().size(), withNodeEligible ? 3u : 2u) << reply.body;
  for (const char* key : {"lastUpdated", "currentTime"}) {
    const Value* v = doc->find(key);
    ASSERT_NE(v, nullptr) << key << " missing: " << reply.body;
    ASSERT_TRUE(v->isString()) << key << ": " << reply.body;
    EXPECT_TRUE(std::regex_match(v->asString(), kGoTime)) << key << ": " << v->asString();
  }
  if (withNodeEligible) {
    const Value* eligible = doc->find("nodeEligible");
    ASSERT_NE(eligible, nullptr) << reply.body;
    ASSERT_EQ(eligible->type(), Value::Type::kBool) << reply.body;
    EXPECT_TRUE(eligible->asBool());
  } else {
    EXPECT_EQ(doc->find("nodeEligible"), nullptr) << reply.body;
  }
}

TEST_F(DaemonSmokeTest, ServesHealthAndMetricsAndProgramsAnAddedEndpoint) {
  write("manifests/web.yaml", serviceYaml("web", "10.96.0.10") + "---\n" +
                                  sliceYaml("web-1", "web", {"10.244.1.1", "10.244.1.2"}));
  ASSERT_NO_FATAL_FAILURE(startDaemon());

  auto healthz = httpGet(healthPort_, "/healthz");
  ASSERT_TRUE(healthz);
  EXPECT_EQ(healthz->status, 200);
  expectHealthBody(*healthz, true);
  auto livez = httpGet(healthPort_, "/livez");
  ASSERT_TRUE(livez);
  EXPECT_EQ(livez->status, 200);
  expectHealthBody(*livez, false);
  auto notFound = httpGet(healthPort_, "/nothing-here");
  ASSERT_TRUE(notFound);
  EXPECT_EQ(notFound->status, 404);

  // The first sync programs the two endpoints.
  ASSERT_TRUE(waitFor([&] {
    std::string m = metrics();
    return metricValue(m, "kubeproxy_sync_proxy_rules_duration_seconds_count").value_or(0) >= 1 &&
           metricValue(m, "capstan_endpoints") == 2.0;
  })) << metrics().substr(0, 3000);
  std::string before = metrics();
  auto syncs = metricValue(before, "kubeproxy_sync_proxy_rules_duration_seconds_count");
  auto endpointChanges = metricValue(before, "kubeproxy_sync_proxy_rules_endpoint_changes_total");
  auto programmed = metricValue(before, "kubeproxy_network_programming_duration_seconds_count");
  ASSERT_TRUE(syncs && endpointChanges && programmed) << before.substr(0, 3000);
  EXPECT_EQ(metricValue(before, "capstan_service_ports"), 1.0);
  EXPECT_EQ(metricValue(before, "capstan_manifest_invalid_objects"), 0.0);
  // Idle, it does not look at the files again and again (its own reads are no change).
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(metric("capstan_manifest_reloads_total"),
            metricValue(before, "capstan_manifest_reloads_total").value_or(-2));
  EXPECT_EQ(metric("kubeproxy_sync_proxy_rules_duration_seconds_count"), *syncs);
  auto proxyMode = httpGet(metricsPort_, "/proxyMode");
  ASSERT_TRUE(proxyMode);
  EXPECT_EQ(proxyMode->body, "none");

  // One endpoint more: a sync, an endpoint change, and a programming latency sample.
  write("manifests/web.yaml",
        serviceYaml("web", "10.96.0.10") + "---\n" +
            sliceYaml("web-1", "web", {"10.244.1.1", "10.244.1.2", "10.244.1.3"}));
  bool moved = waitFor([&] {
    std::string m = metrics();
    return metricValue(m, "kubeproxy_sync_proxy_rules_duration_seconds_count") > *syncs &&
           metricValue(m, "kubeproxy_sync_proxy_rules_endpoint_changes_total") > *endpointChanges &&
           metricValue(m, "capstan_endpoints") == 3.0;
  });
  std::string after = metrics();
  ASSERT_TRUE(moved) << after.substr(0, 3000);
  EXPECT_GT(metricValue(after, "kubeproxy_network_programming_duration_seconds_count"),
            *programmed);
  EXPECT_EQ(metricValue(after, "kubeproxy_sync_proxy_rules_endpoint_changes_pending"), 0.0);
  EXPECT_EQ(httpGet(healthPort_, "/healthz").value_or(HttpReply{}).status, 200);

  stopDaemonExpectingSuccess();
}

TEST_F(DaemonSmokeTest, PicksUpAConfigMapDataSwap) {
  // A second --manifests directory laid out as the kubelet mounts a ConfigMap.
  const std::string v1 = "..2026_11_24_10_00_00.000";
  const std::string v2 = "..2026_11_24_10_05_00.000";
  write("cm/" + v1 + "/services.yaml",
        serviceYaml("a", "10.96.0.21") + "---\n" + sliceYaml("a-1", "a", {"10.244.2.1"}));
  ASSERT_EQ(::symlink(v1.c_str(), path("cm/..data").c_str()), 0);
  ASSERT_EQ(::symlink("..data/services.yaml", path("cm/services.yaml").c_str()), 0);
  write("manifests/web.yaml", serviceYaml("web", "10.96.0.10"));

  ASSERT_NO_FATAL_FAILURE(startDaemon({"--manifests", path("cm")}));
  ASSERT_TRUE(waitFor([&] { return metric("capstan_service_ports") == 2.0; }))
      << metrics().substr(0, 3000);
  ASSERT_NO_FATAL_FAILURE(settle());
  double serviceChanges = metric("kubeproxy_sync_proxy_rules_service_changes_total");
  double syncs = metric("kubeproxy_sync_proxy_rules_duration_seconds_count");

  write("cm/" + v2 + "/services.yaml", serviceYaml("a", "10.96.0.21") + "---\n" +
                                           serviceYaml("b", "10.96.0.22") + "---\n" +
                                           sliceYaml("a-1", "a", {"10.244.2.1", "10.244.2.2"}));
  ASSERT_EQ(::symlink(v2.c_str(), path("cm/..data_tmp").c_str()), 0);
  ASSERT_EQ(::rename(path("cm/..data_tmp").c_str(), path("cm/..data").c_str()), 0);
  fs::remove_all(path("cm/" + v1));

  bool seen = waitFor([&] {
    std::string m = metrics();
    return metricValue(m, "capstan_service_ports") == 3.0 &&
           metricValue(m, "capstan_endpoints") == 2.0 &&
           metricValue(m, "kubeproxy_sync_proxy_rules_service_changes_total") > serviceChanges &&
           metricValue(m, "kubeproxy_sync_proxy_rules_duration_seconds_count") > syncs;
  });
  ASSERT_TRUE(seen) << metrics().substr(0, 3000);

  // And the next swap too (the watch on the new data directory is in place).
  const std::string v3 = "..2026_11_24_10_10_00.000";
  write("cm/" + v3 + "/services.yaml", serviceYaml("a", "10.96.0.21"));
  ASSERT_EQ(::symlink(v3.c_str(), path("cm/..data_tmp").c_str()), 0);
  ASSERT_EQ(::rename(path("cm/..data_tmp").c_str(), path("cm/..data").c_str()), 0);
  fs::remove_all(path("cm/" + v2));
  ASSERT_TRUE(waitFor([&] {
    std::string m = metrics();
    return metricValue(m, "capstan_service_ports") == 2.0 &&
           metricValue(m, "capstan_endpoints") == 0.0;
  })) << metrics().substr(0, 3000);

  stopDaemonExpectingSuccess();
}

TEST_F(DaemonSmokeTest, KeepsRunningAndServingWithBrokenManifests) {
  write("manifests/web.yaml", serviceYaml("web", "10.96.0.10") + "---\n" +
                                  sliceYaml("web-1", "web", {"10.244.1.1", "10.244.1.2"}));
  ASSERT_NO_FATAL_FAILURE(startDaemon());
  ASSERT_TRUE(waitFor([&] { return metric("capstan_endpoints") == 2.0; }))
      << metrics().substr(0, 3000);
  double reloads = metric("capstan_manifest_reloads_total");

  // A syntax error in a new file, an invalid Service in another, and garbage in a third.
  write("manifests/broken.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n spec: [\n");
  write("manifests/invalid.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\nspec:\n"
        "  clusterIP: 10.96.0.99\n  ports:\n  - port: 70000\n");
  write("manifests/binary.json", std::string("\x00\x01\x02\xff", 4));
  ASSERT_TRUE(waitFor([&] { return metric("capstan_manifest_invalid_objects") >= 3.0; }))
      << metrics().substr(0, 3000);
  EXPECT_GT(metric("capstan_manifest_reloads_total"), reloads);
  ASSERT_TRUE(running());
  EXPECT_EQ(httpGet(healthPort_, "/healthz").value_or(HttpReply{}).status, 200);
  EXPECT_EQ(metric("capstan_endpoints"), 2.0);
  EXPECT_EQ(metric("capstan_service_ports"), 1.0);

  // The good file broken mid-edit: what was programmed from it stays.
  write("manifests/web.yaml", serviceYaml("web", "10.96.0.10") + "---\nkind: [unclosed\n");
  ASSERT_TRUE(waitFor([&] { return metric("capstan_manifest_invalid_objects") >= 4.0; }))
      << metrics().substr(0, 3000);
  EXPECT_EQ(metric("capstan_endpoints"), 2.0);
  ASSERT_TRUE(running());
  EXPECT_EQ(httpGet(healthPort_, "/healthz").value_or(HttpReply{}).status, 200);

  // Fixed: the errors are gone and the new content is programmed.
  for (const char* f : {"broken.yaml", "invalid.yaml", "binary.json"}) {
    ASSERT_EQ(::unlink(path(std::string("manifests/") + f).c_str()), 0);
  }
  write("manifests/web.yaml",
        serviceYaml("web", "10.96.0.10") + "---\n" + sliceYaml("web-1", "web", {"10.244.1.1"}));
  ASSERT_TRUE(waitFor([&] {
    std::string m = metrics();
    return metricValue(m, "capstan_manifest_invalid_objects") == 0.0 &&
           metricValue(m, "capstan_endpoints") == 1.0;
  })) << metrics().substr(0, 3000);

  std::string log = readFile(path("daemon.err"));
  EXPECT_NE(log.find(path("manifests/broken.yaml") + ": line 5"), std::string::npos) << log;
  EXPECT_NE(log.find("Service default/bad: spec.ports[0].port"), std::string::npos) << log;
  stopDaemonExpectingSuccess();
}

TEST_F(DaemonSmokeTest, SeesAFileWrittenWhileTheFirstLoadIsStillReading) {
  // 4 MB of Services: the first load takes a while (the status servers answer meanwhile).
  std::string bulk;
  size_t count = 0;
  while (bulk.size() < 4'000'000) {
    size_t i = count++;
    bulk += "---\n" + serviceYaml("bulk-" + std::to_string(i), "10.97." + std::to_string(i >> 8) +
                                                                   "." + std::to_string(i & 255));
  }
  write("manifests/bulk.yaml", bulk);
  ASSERT_NO_FATAL_FAILURE(startDaemon());
  // Most of the time the first load is still running here; either way, a file written now must
  // be seen soon after it, not at the periodic rescan 30 s later.
  bool loading = metric("capstan_manifest_reloads_total") == 0.0;
  write("manifests/late.yaml", serviceYaml("late", "10.96.0.30"));
  ASSERT_TRUE(waitFor([&] { return metric("capstan_manifest_reloads_total") >= 1.0; }, 60s))
      << "the first load took more than 60 s";
  ASSERT_TRUE(waitFor([&] { return metric("capstan_service_ports") == count + 1.0; }))
      << "first load still running when late.yaml was written: " << loading << "\n"
      << metrics().substr(0, 3000);
  stopDaemonExpectingSuccess();
}

TEST_F(DaemonSmokeTest, FollowsTheManifestsDirectoryAwayAndBack) {
  write("manifests/web.yaml", serviceYaml("web", "10.96.0.10") + "---\n" +
                                  sliceYaml("web-1", "web", {"10.244.1.1", "10.244.1.2"}));
  ASSERT_NO_FATAL_FAILURE(startDaemon());
  ASSERT_TRUE(waitFor([&] { return metric("capstan_endpoints") == 2.0; }))
      << metrics().substr(0, 3000);

  // The directory goes (an unmounted volume): an error, and what it held stays programmed.
  ASSERT_EQ(::rename(path("manifests").c_str(), path("manifests.old").c_str()), 0);
  ASSERT_TRUE(waitFor([&] { return metric("capstan_manifest_invalid_objects") == 1.0; }))
      << metrics().substr(0, 3000);
  EXPECT_EQ(metric("capstan_endpoints"), 2.0);
  EXPECT_EQ(httpGet(healthPort_, "/healthz").value_or(HttpReply{}).status, 200);

  // It comes back with other content: seen without waiting for the periodic rescan (30 s).
  ASSERT_EQ(::mkdir(path("manifests").c_str(), 0755), 0);
  write("manifests/api.yaml",
        serviceYaml("api", "10.96.0.20") + "---\n" + sliceYaml("api-1", "api", {"10.244.3.1"}));
  ASSERT_TRUE(waitFor([&] {
    std::string m = metrics();
    return metricValue(m, "capstan_manifest_invalid_objects") == 0.0 &&
           metricValue(m, "capstan_endpoints") == 1.0 &&
           metricValue(m, "capstan_service_ports") == 1.0;
  })) << metrics().substr(0, 3000);
  // And followed from then on.
  write("manifests/api.yaml", serviceYaml("api", "10.96.0.20") + "---\n" +
                                  sliceYaml("api-1", "api", {"10.244.3.1", "10.244.3.2"}));
  ASSERT_TRUE(waitFor([&] { return metric("capstan_endpoints") == 2.0; }))
      << metrics().substr(0, 3000);
  stopDaemonExpectingSuccess();
}

TEST_F(DaemonSmokeTest, FollowsASymlinkedManifestsDirectoryWhenItIsRepointed) {
  // --manifests current, current -> releases/v1, then re-pointed to releases/v2 (`ln -sfn`).
  write("releases/v1/web.yaml",
        serviceYaml("web", "10.96.0.10") + "---\n" + sliceYaml("web-1", "web", {"10.244.1.1"}));
  write("releases/v2/web.yaml", serviceYaml("web", "10.96.0.10") + "---\n" +
                                    sliceYaml("web-1", "web", {"10.244.1.1", "10.244.1.2"}));
  ASSERT_EQ(::symlink("releases/v1", path("current").c_str()), 0);
  ASSERT_NO_FATAL_FAILURE(startDaemon({"--manifests", path("current")}));
  ASSERT_TRUE(waitFor([&] { return metric("capstan_endpoints") == 1.0; }))
      << metrics().substr(0, 3000);
  ASSERT_NO_FATAL_FAILURE(settle());

  ASSERT_EQ(::symlink("releases/v2", path("current.tmp").c_str()), 0);
  ASSERT_EQ(::rename(path("current.tmp").c_str(), path("current").c_str()), 0);
  ASSERT_TRUE(waitFor([&] { return metric("capstan_endpoints") == 2.0; }))
      << metrics().substr(0, 3000);
  // And the directory it names now is the one followed.
  write("releases/v2/web.yaml",
        serviceYaml("web", "10.96.0.10") + "---\n" + sliceYaml("web-1", "web", {"10.244.1.3"}));
  ASSERT_TRUE(waitFor([&] { return metric("capstan_endpoints") == 1.0; }))
      << metrics().substr(0, 3000);
  stopDaemonExpectingSuccess();
}

TEST_F(DaemonSmokeTest, SighupReReadsTheConfigFile) {
  write("config.yaml",
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
        "syncPeriod: 30s\n");
  write("manifests/web.yaml",
        serviceYaml("web", "10.96.0.10") + "---\n" + sliceYaml("web-1", "web", {"10.244.1.1"}));
  ASSERT_NO_FATAL_FAILURE(startDaemon({"--config", path("config.yaml")}));
  ASSERT_TRUE(waitFor(
      [&] { return metric("kubeproxy_sync_full_proxy_rules_duration_seconds_count") >= 1; }));
  double fullSyncs = metric("kubeproxy_sync_full_proxy_rules_duration_seconds_count");

  // A shorter sync period: periodic full syncs start within seconds (30 s before).
  write("config.yaml",
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
        "syncPeriod: 1s\n");
  ASSERT_EQ(::kill(pid_, SIGHUP), 0);
  ASSERT_TRUE(waitFor([&] {
    return readFile(path("daemon.err")).find("SIGHUP: re-read the configuration") !=
           std::string::npos;
  })) << readFile(path("daemon.err"));
  ASSERT_TRUE(waitFor([&] {
    return metric("kubeproxy_sync_full_proxy_rules_duration_seconds_count") >= fullSyncs + 2;
  })) << metrics().substr(0, 3000);
  ASSERT_TRUE(running());
  EXPECT_EQ(httpGet(healthPort_, "/healthz").value_or(HttpReply{}).status, 200);

  // A broken file on SIGHUP: logged, and the running configuration stays.
  write("config.yaml", "syncPeriod: [\n");
  ASSERT_EQ(::kill(pid_, SIGHUP), 0);
  ASSERT_TRUE(waitFor([&] {
    return readFile(path("daemon.err")).find("configuration not reloaded") != std::string::npos;
  })) << readFile(path("daemon.err"));
  ASSERT_TRUE(running());

  // Still following the manifests.
  write("manifests/web.yaml", serviceYaml("web", "10.96.0.10") + "---\n" +
                                  sliceYaml("web-1", "web", {"10.244.1.1", "10.244.1.2"}));
  ASSERT_TRUE(waitFor([&] { return metric("capstan_endpoints") == 2.0; }))
      << metrics().substr(0, 3000);
  stopDaemonExpectingSuccess();
}

TEST_F(DaemonSmokeTest, SigintStopsItToo) {
  ASSERT_NO_FATAL_FAILURE(startDaemon());
  ASSERT_EQ(::kill(pid_, SIGINT), 0);
  auto status = waitExit(pid_, 5000ms);
  ASSERT_TRUE(status.has_value());
  pid_ = -1;
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
}

TEST_F(DaemonSmokeTest, DryRunPrintsEveryServiceOfTheQuickstart) {
  const std::string quickstart = CAPSTAN_SOURCE_DIR "/examples/quickstart";
  Run run = runCapstan({"--proxy-mode=none", "--dry-run", "--manifests", quickstart,
                        "--hostname-override", "node-a"});
  ASSERT_TRUE(run.status.has_value()) << "timed out";
  EXPECT_TRUE(WIFEXITED(*run.status) && WEXITSTATUS(*run.status) == 0) << *run.status << "\n"
                                                                       << run.err;
  EXPECT_EQ(run.err.find("error"), std::string::npos) << run.err;

  // Every Service the example defines, as the manifest source reads them.
  ManifestOptions options;
  options.paths = {quickstart};
  ManifestSource source(options);
  source.reload(0);
  size_t services = 0;
  for (const auto& [key, object] : source.objects()) {
    if (key.kind != ObjectKind::kService) continue;
    ++services;
    EXPECT_NE(run.out.find("service " + key.name.toString()), std::string::npos)
        << key.toString() << " not in:\n"
        << run.out;
  }
  EXPECT_GE(services, 3u);
  EXPECT_NE(run.out.find("ingress demo/shop"), std::string::npos) << run.out;
}

TEST_F(DaemonSmokeTest, DryRunRejectsAnInvalidServiceNamingFileLineObjectAndField) {
  write("manifests/good.yaml", serviceYaml("good", "10.96.0.11"));
  write("manifests/bad.yaml",
        "apiVersion: v1\n"           // 1
        "kind: Service\n"            // 2
        "metadata:\n"                // 3
        "  name: bad\n"              // 4
        "  namespace: shop\n"        // 5
        "spec:\n"                    // 6
        "  clusterIP: 10.96.0.12\n"  // 7
        "  ports:\n"                 // 8
        "  - name: http\n"           // 9
        "    port: 80\n"             // 10
        "  - name: admin\n"          // 11
        "    port: 70000\n");        // 12
  Run run = runCapstan({"--proxy-mode=none", "--dry-run", "--manifests", path("manifests")});
  ASSERT_TRUE(run.status.has_value()) << "timed out";
  EXPECT_TRUE(WIFEXITED(*run.status) && WEXITSTATUS(*run.status) == 1) << *run.status << "\n"
                                                                       << run.err;
  EXPECT_NE(run.err.find(path("manifests/bad.yaml") +
                         ":12: Service shop/bad: spec.ports[1].port: must be between 1 and 65535"),
            std::string::npos)
      << run.err;
  EXPECT_NE(run.err.find("70000"), std::string::npos) << run.err;
  EXPECT_EQ(run.out.find("service "), std::string::npos) << "nothing is programmed:\n" << run.out;
}

TEST_F(DaemonSmokeTest, BadFlagsExitNonZeroWithAMessage) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"--no-such-flag", "--manifests", path("manifests")}, "--no-such-flag"},
      {{"--manifests", path("manifests"), "--min-sync-period", "soon"}, "--min-sync-period"},
      {{"--manifests", path("manifests"), "--proxy-mode", "teleport"}, "--proxy-mode"},
      {{"--manifests", path("manifests"), "--healthz-bind-address", "localhost"},
       "--healthz-bind-address"},
      {{"--proxy-mode=none"}, "--manifests"},
  };
  for (const Case& c : cases) {
    Run run = runCapstan(c.args);
    std::string what = testing::PrintToString(c.args);
    ASSERT_TRUE(run.status.has_value()) << what << ": timed out";
    EXPECT_TRUE(WIFEXITED(*run.status)) << what;
    EXPECT_NE(WEXITSTATUS(*run.status), 0) << what;
    EXPECT_NE(run.err.find(c.message), std::string::npos) << what << ": " << run.err;
  }
  // A port already taken: the daemon says which flag and exits.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  Run taken = runCapstan({"--proxy-mode=none", "--manifests", path("manifests"),
                          "--metrics-bind-address", "", "--healthz-bind-address",
                          "127.0.0.1:" + std::to_string(ntohs(addr.sin_port))});
  ::close(fd);
  ASSERT_TRUE(taken.status.has_value()) << "timed out";
  EXPECT_TRUE(WIFEXITED(*taken.status) && WEXITSTATUS(*taken.status) != 0) << *taken.status;
  EXPECT_NE(taken.err.find("--healthz-bind-address"), std::string::npos) << taken.err;
}

// --ingress with --proxy-mode=none: the standalone L7 load balancer. Routes come from an Ingress
// in the manifests; an endpoint change is applied without a restart, and a client connection
// kept alive across it keeps working and reaches the new endpoint. Requests are in the access
// log and the per-route metrics; SIGTERM lets a request in flight finish before the exit.
TEST_F(DaemonSmokeTest, IngressServesManifestRoutesAndFollowsEndpointsWithoutDroppingConnections) {
  support::HttpUpstream a("a", "127.0.0.2");
  support::HttpUpstream b("b", "127.0.0.3", a.port());
  const std::string port = std::to_string(a.port());
  uint16_t ingressPort = 0;
  ASSERT_NO_FATAL_FAILURE(
      startIngress(port, ingressPort, {"--ingress-access-log", path("access.log")}));
  auto upstreamOf = [](const std::optional<support::HttpClient::Response>& r) {
    return r ? r->body().substr(0, r->body().find('\n')) : std::string("(none)");
  };
  const std::string request = support::getRequest("web.example.com", "/x");
  ASSERT_TRUE(waitFor([&] {
    return upstreamOf(support::HttpClient(ingressPort).request(request)) == "upstream: a";
  }));
  support::HttpClient kept(ingressPort);
  ASSERT_EQ(upstreamOf(kept.request(request)), "upstream: a");
  EXPECT_EQ(support::HttpClient(ingressPort)
                .request(support::getRequest("other.example.com", "/"))
                ->result_int(),
            404);

  write("manifests/web-slice.yaml", webSliceYaml(port, {"127.0.0.3"}));
  ASSERT_TRUE(waitFor([&] {
    return upstreamOf(support::HttpClient(ingressPort).request(request)) == "upstream: b";
  }));
  EXPECT_EQ(upstreamOf(kept.request(request)), "upstream: b");

  auto metrics = httpGet(metricsPort_, "/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_GE(metricValue(metrics->body, "capstan_ingress_requests_total").value_or(0), 4);
  EXPECT_GE(metricValue(metrics->body, "capstan_ingress_route_table_builds_total").value_or(0), 2);
  EXPECT_EQ(metricValue(metrics->body, "capstan_ingress_routes").value_or(-1), 1);
  const std::string route = R"({ingress="default/site",host="web.example.com",path="/"})";
  EXPECT_GE(metricValue(metrics->body, "capstan_ingress_route_requests_total" + route).value_or(0),
            3)
      << metrics->body;
  ASSERT_TRUE(waitFor([&] {
    return readFile(path("access.log")).find("\"route\":\"default/site\"") != std::string::npos;
  })) << readFile(path("access.log"));

  // SIGTERM with a request in flight: it completes (Connection: close), then capstan exits.
  support::HttpClient slow(ingressPort);
  ASSERT_TRUE(slow.send(support::getRequest("web.example.com", "/sleep/500")));
  ASSERT_TRUE(waitFor([&] {
    return metric("capstan_ingress_route_requests_in_flight" + route) == 1 || !running();
  })) << "the request is in flight";
  ASSERT_EQ(::kill(pid_, SIGTERM), 0);
  auto response = slow.read();
  ASSERT_TRUE(response) << "the request in flight completes during the drain";
  EXPECT_EQ(upstreamOf(response), "upstream: b");
  EXPECT_FALSE(response->keep_alive());
  auto status = waitExit(pid_, 5000ms);
  ASSERT_TRUE(status.has_value()) << "capstan did not exit after the drain";
  pid_ = -1;
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  EXPECT_NE(readFile(path("daemon.err")).find("ingress drained"), std::string::npos);
}

// Manifests changing under load: endpoints added and removed (the removed ones still serve, as a
// terminating pod does), hosts added, the load-balancing policy switched, and a broken file
// written once (the last good state must stay) while clients keep sending: not one request fails.
TEST_F(DaemonSmokeTest, IngressManifestChangesUnderLoadFailNoRequest) {
  support::HttpUpstream a("a", "127.0.0.2");
  support::HttpUpstream b("b", "127.0.0.3", a.port());
  support::HttpUpstream c("c", "127.0.0.4", a.port());
  const std::string port = std::to_string(a.port());
  uint16_t ingressPort = 0;
  ASSERT_NO_FATAL_FAILURE(startIngress(port, ingressPort));
  ASSERT_TRUE(waitFor([&] {
    auto r = support::HttpClient(ingressPort).request(support::getRequest("web.example.com", "/"));
    return r && r->result_int() == 200;
  }));

  support::LoadClients load(ingressPort, "web.example.com", 3);
  ASSERT_TRUE(load.waitForMore(100));
  const std::vector<std::vector<std::string>> endpointSets = {
      {"127.0.0.2", "127.0.0.3"}, {"127.0.0.3"}, {"127.0.0.3", "127.0.0.4"}, {"127.0.0.4"}};
  const std::vector<std::string> policies = {"round-robin", "", "hash-client-ip", "least-request"};
  const auto builds = [&] {
    auto metrics = httpGet(metricsPort_, "/metrics");
    return metrics
               ? metricValue(metrics->body, "capstan_ingress_route_table_builds_total").value_or(0)
               : 0;
  };
  for (size_t i = 0; i < endpointSets.size(); ++i) {
    const double before = builds();
    write("manifests/web-slice.yaml", webSliceYaml(port, endpointSets[i]));
    write("manifests/ingress.yaml", siteIngressYaml({"extra-" + std::to_string(i) + ".example.com"},
                                                    {{"capstan.io/load-balance", policies[i]}}));
    ASSERT_TRUE(waitFor([&] { return builds() > before; })) << "change " << i;
    ASSERT_TRUE(load.waitForMore(100)) << "change " << i;
  }
  // A broken manifest: reported, and the routes of the last good state stay.
  write("manifests/ingress.yaml", "apiVersion: networking.k8s.io/v1\nkind: Ingress\nspec: [\n");
  ASSERT_TRUE(load.waitForMore(100));
  // Only c, the last good endpoint set, answers now.
  const uint64_t aBefore = load.answeredBy("upstream: a");
  const uint64_t bBefore = load.answeredBy("upstream: b");
  ASSERT_TRUE(load.waitForMore(200));
  load.stop();
  EXPECT_EQ(load.failed(), 0u) << ::testing::PrintToString(load.failures());
  EXPECT_EQ(load.answeredBy("upstream: a"), aBefore);
  EXPECT_EQ(load.answeredBy("upstream: b"), bBefore);
  EXPECT_GT(load.answeredBy("upstream: c"), 200u);
  EXPECT_GT(load.answeredBy("upstream: a"), 0u);
  EXPECT_GT(load.answeredBy("upstream: b"), 0u);
}

// Active health checks asked for by annotation: an endpoint that stops answering leaves the
// route table before any request finds out (no connect failure), and comes back when it answers.
TEST_F(DaemonSmokeTest, IngressHealthChecksTakeADeadEndpointOutAndBringItBack) {
  support::HttpUpstream a("a", "127.0.0.2");
  auto b = std::make_unique<support::HttpUpstream>("b", "127.0.0.3", a.port());
  const std::string port = std::to_string(a.port());
  uint16_t ingressPort = 0;
  ASSERT_NO_FATAL_FAILURE(startIngress(port, ingressPort));
  write("manifests/web-slice.yaml", webSliceYaml(port, {"127.0.0.2", "127.0.0.3"}));
  write("manifests/ingress.yaml", siteIngressYaml({}, {{"capstan.io/health-check-path", "/ok"},
                                                       {"capstan.io/health-check-interval", "50ms"},
                                                       {"capstan.io/health-check-unhealthy-"
                                                        "threshold",
                                                        "1"},
                                                       {"capstan.io/health-check-healthy-"
                                                        "threshold",
                                                        "1"}}));
  auto metric = [&](const std::string& name) {
    auto metrics = httpGet(metricsPort_, "/metrics");
    return metrics ? metricValue(metrics->body, name).value_or(-1) : -1;
  };
  ASSERT_TRUE(waitFor([&] { return metric("capstan_ingress_health_check_targets") == 2; }));
  ASSERT_TRUE(waitFor([&] { return b->requests() > 0; }));

  b.reset();
  ASSERT_TRUE(waitFor([&] { return metric("capstan_ingress_endpoints_down") == 1; }));
  // The table without b reaches the workers right after the rebuild that counted it.
  ASSERT_TRUE(waitFor([&] { return metric("capstan_ingress_health_rebuilds_total") >= 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const double failuresBefore = metric("capstan_ingress_upstream_connect_failures_total");
  support::HttpClient client(ingressPort);
  for (int i = 0; i < 40; ++i) {
    auto r = client.request(support::getRequest("web.example.com", "/"));
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->result_int(), 200) << i;
    EXPECT_TRUE(r->body().starts_with("upstream: a")) << r->body();
  }
  EXPECT_EQ(metric("capstan_ingress_upstream_connect_failures_total"), failuresBefore);

  support::HttpUpstream back("b", "127.0.0.3", a.port());
  ASSERT_TRUE(waitFor([&] { return metric("capstan_ingress_endpoints_down") == 0; }));
  ASSERT_TRUE(waitFor([&] {
    auto r = client.request(support::getRequest("web.example.com", "/"));
    return r && r->body().starts_with("upstream: b");
  }));
}

// --ingress-default-certificate: a TLS client whose server name no Ingress covers gets the named
// Secret's certificate; without the Secret, the self-signed one (and the change needs no restart).
TEST_F(DaemonSmokeTest, IngressDefaultCertificateComesFromTheNamedSecret) {
  auto pem = l7::tls::generateSelfSignedCertificate("fallback.example.com");
  ASSERT_TRUE(pem.ok()) << pem.error().message();
  auto indent = [](const std::string& text) {
    std::string out;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) out += "    " + line + "\n";
    return out;
  };
  write("manifests/fallback.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: fallback\n  namespace: default\n"
        "type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n" +
            indent(pem->certificatePem) + "  tls.key: |\n" + indent(pem->privateKeyPem));
  write("manifests/web.yaml", webServiceYaml("8080"));
  const uint16_t httpsPort = freePorts(1).at(0);
  ASSERT_NO_FATAL_FAILURE(
      startDaemon({"--ingress", "--ingress-http-address", "", "--ingress-https-address",
                   "127.0.0.1:" + std::to_string(httpsPort), "--ingress-default-certificate",
                   "default/fallback"}));
  // The subject of the certificate the ingress serves for a name no Ingress covers.
  auto subject = [&] {
    const std::string host = "unknown.example.com";
    auto r =
        support::runCommand({"curl", "-sk", "-v", "-o", "/dev/null", "--max-time", "3", "--resolve",
                             host + ":" + std::to_string(httpsPort) + ":127.0.0.1",
                             "https://" + host + ":" + std::to_string(httpsPort) + "/"});
    const size_t at = r.output.find("subject: ");
    return at == std::string::npos ? std::string()
                                   : r.output.substr(at, r.output.find('\n', at) - at);
  };
  ASSERT_TRUE(waitFor([&] {
    return subject().find("CN=fallback.example.com") != std::string::npos;
  })) << subject();
  ASSERT_EQ(::unlink(path("manifests/fallback.yaml").c_str()), 0);
  ASSERT_TRUE(waitFor([&] {
    return subject().find(std::string(l7::tls::kDefaultCertificateName)) != std::string::npos;
  })) << subject();
}

}  // namespace
}  // namespace capstan::control
