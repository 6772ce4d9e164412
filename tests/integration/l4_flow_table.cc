#include "tests/integration/l4_flow_table.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <ostream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/child_process.h"
#include "tests/support/l4_client.h"
#include "tests/support/loopback_http.h"

namespace capstan::integration {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using support::Answer;
using support::Outcome;

constexpr const char* kCapstan = CAPSTAN_BINARY_DIR "/control/capstan";
// Start-up and sync are quick (well under a second); the bound is for a loaded machine and a
// sanitizer build.
constexpr auto kStartLimit = 15s;
constexpr auto kStopLimit = 5s;
constexpr auto kProbeInterval = 20ms;
constexpr size_t kBackends = 3;
constexpr size_t kLogTailBytes = 12000;

std::string backendName(size_t i) { return "b" + std::to_string(i); }

std::string familyName(Family f) { return f == Family::kIPv4 ? "IPv4" : "IPv6"; }

// In a sanitizer build the daemon is instrumented too: a report in its output is a failure.
std::optional<std::string> sanitizerReport(const std::string& output) {
  for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"}) {
    size_t at = output.find(marker);
    if (at != std::string::npos) return output.substr(at, 4000);
  }
  return std::nullopt;
}

std::string joinLines(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

}  // namespace

// ---- CapstanDaemon ----

CapstanDaemon::CapstanDaemon(Topology& topology, std::string mode,
                             std::vector<std::string> extraArgs)
    : topology_(topology), mode_(std::move(mode)), extraArgs_(std::move(extraArgs)) {}

CapstanDaemon::~CapstanDaemon() = default;  // the Process handle kills a daemon still running

Result<void> CapstanDaemon::start(const std::string& manifestDir) {
  if (process_.valid() && process_.running()) return Error("capstan is already running");
  if (::access(kCapstan, X_OK) != 0) return Error(std::string(kCapstan) + " is not built");
  manifestDir_ = manifestDir;
  // The node namespace is fresh: ports free there stay free (only this test uses it).
  std::vector<uint16_t> ports =
      topology_.within(topology_.node(), [] { return support::freePorts(2); });
  if (ports.size() != 2) return Error("no free ports in the node namespace");
  healthPort_ = ports[0];
  metricsPort_ = ports[1];
  std::vector<std::string> args = {kCapstan,
                                   "--proxy-mode=" + mode_,
                                   "--manifests",
                                   manifestDir,
                                   "--hostname-override",
                                   kThisNode,
                                   "--min-sync-period",
                                   "100ms",
                                   "--sync-period",
                                   "5s",
                                   "--healthz-bind-address",
                                   "127.0.0.1:" + std::to_string(healthPort_),
                                   "--metrics-bind-address",
                                   "127.0.0.1:" + std::to_string(metricsPort_),
                                   "--cluster-cidr",
                                   kClusterCIDRs};
  args.insert(args.end(), extraArgs_.begin(), extraArgs_.end());
  if (!env_.empty()) {
    args.insert(args.begin(), env_.begin(), env_.end());
    args.insert(args.begin(), "/usr/bin/env");
  }
  auto spawned = topology_.spawn(topology_.node(), args,
                                 "capstan-" + mode_ + "-" + std::to_string(++starts_) + ".log");
  if (!spawned.ok()) return spawned.error();
  process_ = std::move(*spawned);
  return waitUntilSynced();
}

Result<void> CapstanDaemon::waitUntilSynced() {
  int lastHealth = 0;
  std::string lastMetrics;
  bool synced = support::waitFor(
      [&] {
        if (!process_.running()) return true;
        auto [health, metrics] = topology_.within(topology_.node(), [&] {
          auto h = support::httpGet(healthPort_, "/healthz");
          auto m = support::httpGet(metricsPort_, "/metrics");
          return std::make_pair(h ? h->status : 0, m && m->status == 200 ? m->body : "");
        });
        lastHealth = health;
        lastMetrics = metrics;
        return health == 200 &&
               metricValue(metrics, "kubeproxy_sync_proxy_rules_duration_seconds_count")
                       .value_or(0) >= 1;
      },
      kStartLimit);
  if (!process_.running()) {
    int status = process_.exitStatus().value_or(-1);
    return Error("capstan --proxy-mode=" + mode_ + " exited during start-up (" +
                 (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                    : "wait status " + std::to_string(status)) +
                 "):\n" + logTail());
  }
  if (!synced) {
    return Error(
        "capstan --proxy-mode=" + mode_ + " did not complete a sync within " +
        std::to_string(kStartLimit.count()) + " s (/healthz " + std::to_string(lastHealth) +
        "; sync count " +
        std::to_string(metricValue(lastMetrics, "kubeproxy_sync_proxy_rules_duration_seconds_count")
                           .value_or(-1)) +
        ")");
  }
  return {};
}

Result<std::string> CapstanDaemon::metrics() {
  auto reply = topology_.within(topology_.node(),
                                [&] { return support::httpGet(metricsPort_, "/metrics"); });
  if (!reply) return Error("GET /metrics: no answer");
  if (reply->status != 200) return Error("GET /metrics: status " + std::to_string(reply->status));
  return reply->body;
}

Result<void> CapstanDaemon::stop() {
  if (!process_.valid()) return Error("capstan was not started");
  if (!process_.running()) {
    return Error("capstan had already exited (wait status " +
                 std::to_string(process_.exitStatus().value_or(-1)) + ")");
  }
  process_.signal(SIGTERM);
  std::optional<int> status = process_.waitExit(kStopLimit);
  if (!status) {
    process_.kill();
    return Error("capstan did not exit within 5 s of SIGTERM");
  }
  if (auto report = sanitizerReport(process_.output())) return Error("sanitizer: " + *report);
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return Error("capstan exited with wait status " + std::to_string(*status) + " on SIGTERM");
  }
  return {};
}

Result<void> CapstanDaemon::restart() {
  if (auto stopped = stop(); !stopped.ok()) return stopped.error().withContext("restart");
  if (auto started = start(manifestDir_); !started.ok()) {
    return started.error().withContext("restart");
  }
  return {};
}

Result<void> CapstanDaemon::cleanup() {
  if (process_.valid() && process_.running()) return Error("cleanup: capstan is still running");
  support::CommandResult r =
      topology_.run(topology_.node(), {kCapstan, "--proxy-mode=" + mode_, "--cleanup"}, 20s);
  if (auto report = sanitizerReport(r.output)) return Error("sanitizer: " + *report);
  if (!r.ok()) {
    return Error("capstan --proxy-mode=" + mode_ + " --cleanup: " + r.describe() + ": " + r.output);
  }
  return {};
}

std::string CapstanDaemon::leftovers() {
  if (mode_ == "iptables") {
    // What `iptables-save | grep KUBE-` shows, for both families.
    support::CommandResult r = topology_.shell(topology_.node(), "iptables-save && ip6tables-save");
    if (!r.ok()) return "iptables-save failed: " + r.describe() + ": " + r.output;
    std::vector<std::string> lines;
    std::istringstream in(r.output);
    std::string line;
    while (std::getline(in, line)) {
      if (line.find("KUBE-") != std::string::npos) lines.push_back(line);
    }
    return joinLines(lines);
  }
  return "CapstanDaemon::leftovers() has no probe for proxy mode \"" + mode_ +
         "\" yet: add one (what the mode programs into the node namespace)";
}

std::string CapstanDaemon::ruleDump() {
  std::vector<std::string> commands;
  if (mode_ == "iptables") {
    commands = {"iptables-save", "ip6tables-save"};
  } else if (mode_ == "ipvs") {
    commands = {"ipvsadm -Ln", "iptables-save", "ip6tables-save"};
  } else {
    commands = {"nft list ruleset"};
  }
  commands.insert(commands.end(),
                  {"conntrack -L", "conntrack -L -f ipv6", "ip addr", "ip route", "ip -6 route"});
  std::string out;
  for (const std::string& command : commands) {
    support::CommandResult r = topology_.shell(topology_.node(), command + " 2>&1");
    out += "--- " + command + " (node namespace, " + r.describe() + ") ---\n" + r.output;
  }
  out += "--- capstan's log (tail) ---\n" + logTail();
  return out;
}

std::string CapstanDaemon::logTail() const {
  std::string log = process_.output();
  if (log.size() > kLogTailBytes) log = "...\n" + log.substr(log.size() - kLogTailBytes);
  return log;
}

DataplaneFactory capstanDaemon(const std::string& mode, std::vector<std::string> extraArgs) {
  return [mode, extraArgs](Topology& topology) -> std::unique_ptr<L4Dataplane> {
    return std::make_unique<CapstanDaemon>(topology, mode, extraArgs);
  };
}

// ---- Services and their manifests ----

ServiceSpec Svc(std::string name, std::string clusterIP) {
  ServiceSpec s;
  s.name = std::move(name);
  s.clusterIP = std::move(clusterIP);
  return s;
}

ServiceSpec& ServiceSpec::endpoints(std::vector<size_t> local, std::vector<size_t> remote) {
  for (size_t i : local) endpointList.push_back({i, true});
  for (size_t i : remote) endpointList.push_back({i, false});
  return *this;
}

ServiceSpec& ServiceSpec::onNodePort(uint16_t p) {
  type = "NodePort";
  nodePort = p;
  return *this;
}

ServiceSpec& ServiceSpec::asLoadBalancer(uint16_t p, std::string ip) {
  type = "LoadBalancer";
  nodePort = p;
  loadBalancerIP = std::move(ip);
  return *this;
}

ServiceSpec& ServiceSpec::externalTrafficLocal(uint16_t p) {
  externalTrafficPolicyLocal = true;
  healthCheckNodePort = p;
  return *this;
}

ServiceSpec& ServiceSpec::later() {
  createdLater = true;
  return *this;
}

ServiceSpec& ServiceSpec::internalTrafficLocal() {
  internalTrafficPolicyLocal = true;
  return *this;
}

ServiceSpec& ServiceSpec::clientIPAffinity() {
  sessionAffinityClientIP = true;
  return *this;
}

ServiceSpec& ServiceSpec::udp() {
  protocol = Protocol::kUDP;
  return *this;
}

ServiceSpec& ServiceSpec::ipv6() {
  family = Family::kIPv6;
  return *this;
}

std::string manifestYaml(const ServiceSpec& s, const Topology& topology) {
  (void)topology;  // addresses are the Topology's fixed plan
  std::string protocol = s.protocol == Protocol::kTCP ? "TCP" : "UDP";
  std::string family = familyName(s.family);
  std::ostringstream y;
  y << "apiVersion: v1\nkind: Service\nmetadata:\n  name: " << s.name
    << "\n  namespace: default\nspec:\n  type: " << s.type << "\n  clusterIP: " << s.clusterIP
    << "\n  clusterIPs: [\"" << s.clusterIP << "\"]\n  ipFamilies: [" << family
    << "]\n  ipFamilyPolicy: SingleStack\n  ports:\n  - name: p\n    protocol: " << protocol
    << "\n    port: " << s.port << "\n    targetPort: " << kEchoPort << "\n";
  if (s.nodePort != 0) y << "    nodePort: " << s.nodePort << "\n";
  if (s.sessionAffinityClientIP) y << "  sessionAffinity: ClientIP\n";
  if (s.internalTrafficPolicyLocal) y << "  internalTrafficPolicy: Local\n";
  if (s.type != "ClusterIP") {
    y << "  externalTrafficPolicy: " << (s.externalTrafficPolicyLocal ? "Local" : "Cluster")
      << "\n";
  }
  if (s.healthCheckNodePort != 0) y << "  healthCheckNodePort: " << s.healthCheckNodePort << "\n";
  if (!s.loadBalancerIP.empty()) {
    y << "status:\n  loadBalancer:\n    ingress:\n    - ip: " << s.loadBalancerIP << "\n";
  }
  y << "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: " << s.name
    << "-1\n  namespace: default\n  labels:\n    kubernetes.io/service-name: " << s.name
    << "\naddressType: " << family << "\nendpoints:" << (s.endpointList.empty() ? " []\n" : "\n");
  for (const EndpointSpec& e : s.endpointList) {
    y << "- addresses: [\"" << Topology::backendAddress(e.backend, s.family)
      << "\"]\n  conditions: {ready: true, serving: true, terminating: false}\n  nodeName: "
      << (e.local ? kThisNode : kOtherNode) << "\n";
  }
  y << "ports:\n- name: p\n  protocol: " << protocol << "\n  port: " << kEchoPort << "\n";
  return y.str();
}

// ---- Expectations and steps ----

Expect Expect::reachesOnly(std::vector<size_t> backends) {
  Expect e;
  e.kind = Kind::kReachesOnly;
  e.backends = std::move(backends);
  return e;
}

Expect Expect::reachesEach(std::vector<size_t> backends) {
  Expect e = reachesOnly(std::move(backends));
  e.kind = Kind::kReachesEach;
  return e;
}

Expect Expect::sticksToOne(std::vector<size_t> backends) {
  Expect e = reachesOnly(std::move(backends));
  e.kind = Kind::kSticksToOne;
  return e;
}

Expect Expect::refusedWithin(std::chrono::milliseconds within) {
  Expect e;
  e.kind = Kind::kRefusedWithin;
  e.within = within;
  return e;
}

Expect Expect::notServed() {
  Expect e;
  e.kind = Kind::kNotServed;
  return e;
}

Expect& Expect::butNotTheStuckOne() {
  excludeStuck = true;
  return *this;
}

std::string Expect::describe() const {
  std::string set;
  for (size_t b : backends) {
    set += (set.empty() ? "" : ",") + (b == kStuckBackend ? "the stuck one" : backendName(b));
  }
  if (excludeStuck) set += " but not the stuck one";
  switch (kind) {
    case Kind::kReachesOnly:
      return "every ask answered, only by {" + set + "}";
    case Kind::kReachesEach:
      return "every ask answered by {" + set + "}, and each of them answers";
    case Kind::kSticksToOne:
      return "every ask answered by the same one of {" + set + "}";
    case Kind::kRefusedWithin:
      return "every ask refused in less than " + std::to_string(within.count()) + " ms";
    case Kind::kNotServed:
      return "no ask answered (refused or dropped)";
  }
  return "?";
}

namespace {

const char* viaName(Via via) {
  switch (via) {
    case Via::kClusterIP:
      return "ClusterIP";
    case Via::kNodePort:
      return "NodePort";
    case Via::kLoadBalancerIP:
      return "load balancer IP";
  }
  return "?";
}

Step makeStep(Step::Kind kind, std::string service = "") {
  Step s;
  s.kind = kind;
  s.service = std::move(service);
  return s;
}

}  // namespace

std::string Step::describe() const {
  std::string origin = from == From::kClient ? "the client"
                       : from == From::kNode ? "the node"
                                             : "backend b0";
  switch (kind) {
    case Kind::kAsk:
      return std::to_string(count) + " asks of " + service + " via its " + viaName(via) + " from " +
             origin +
             (sourcePort ? " (one flow, source port " + std::to_string(sourcePort) + ")" : "") +
             (settle.count() ? ", " + std::to_string(settle.count()) + " ms after the change"
                             : "") +
             ": " + expect.describe();
    case Kind::kHold:
      return "hold a TCP connection to " + service + " from " + origin;
    case Kind::kTalk:
      return "talk on the held connection: the same backend echoes";
    case Kind::kHealthCheck:
      return "GET / on " + service +
             "'s healthCheckNodePort from the client: " + std::to_string(httpStatus) +
             ", localEndpoints " + std::to_string(localEndpoints);
    case Kind::kRemoveEndpoint:
      return "remove " + (backend == kStuckBackend ? "the stuck backend" : backendName(backend)) +
             " from " + service + "'s EndpointSlice";
    case Kind::kAddEndpoint:
      return "add " + backendName(backend) + " to " + service + "'s EndpointSlice";
    case Kind::kRestart:
      return "restart the dataplane";
    case Kind::kCleanup:
      return "stop the dataplane and clean up: nothing of the mode is left";
  }
  return "?";
}

Step ask(From from, std::string service, Via via, size_t count, Expect expect) {
  Step s = makeStep(Step::Kind::kAsk, std::move(service));
  s.from = from;
  s.via = via;
  s.count = count;
  s.expect = std::move(expect);
  return s;
}

Step askUdp(std::string service, size_t count, uint16_t sourcePort, Expect expect) {
  Step s = ask(From::kClient, std::move(service), Via::kClusterIP, count, std::move(expect));
  s.sourcePort = sourcePort;
  return s;
}

Step hold(std::string service) { return makeStep(Step::Kind::kHold, std::move(service)); }

Step talk() { return makeStep(Step::Kind::kTalk); }

Step healthCheck(std::string service, int httpStatus, int localEndpoints) {
  Step s = makeStep(Step::Kind::kHealthCheck, std::move(service));
  s.httpStatus = httpStatus;
  s.localEndpoints = localEndpoints;
  return s;
}

Step removeEndpoint(std::string service, size_t backend) {
  Step s = makeStep(Step::Kind::kRemoveEndpoint, std::move(service));
  s.backend = backend;
  return s;
}

Step addEndpoint(std::string service, size_t backend) {
  Step s = makeStep(Step::Kind::kAddEndpoint, std::move(service));
  s.backend = backend;
  return s;
}

Step restart() { return makeStep(Step::Kind::kRestart); }

Step cleanupLeavesNothing() { return makeStep(Step::Kind::kCleanup); }

Step settleWithin(Step step, std::chrono::milliseconds settle) {
  step.settle = settle;
  return step;
}

Step withTimeout(Step step, std::chrono::milliseconds timeout) {
  step.timeout = timeout;
  return step;
}

void PrintTo(const FlowCase& flowCase, std::ostream* os) { *os << flowCase.name; }

std::string flowCaseName(const testing::TestParamInfo<FlowCase>& info) { return info.param.name; }

// ---- The table ----

const std::vector<FlowCase>& l4FlowCases() {
  using E = Expect;
  const auto kClient = From::kClient;
  const auto kNode = From::kNode;
  const auto kBackend0 = From::kBackend0;
  const auto kClusterIP = Via::kClusterIP;
  const auto kNodePort = Via::kNodePort;
  const auto kLoadBalancerIP =
      Via::kLoadBalancerIP;  // 10.100.3.x: the client routes it to the node

  static const std::vector<FlowCase> cases = {
      {"ClusterIPFromClient",
       {Svc("web", "10.96.0.10").endpoints({0, 1, 2})},
       {ask(kClient, "web", kClusterIP, 10, E::reachesOnly({0, 1, 2}))}},

      {"ClusterIPFromTheNodeItself",
       {Svc("web", "10.96.0.10").endpoints({0, 1, 2})},
       {ask(kNode, "web", kClusterIP, 10, E::reachesOnly({0, 1, 2}))}},

      {"NodePortFromClient",
       {Svc("web", "10.96.0.11").onNodePort(30080).endpoints({0, 1, 2})},
       {ask(kClient, "web", kNodePort, 10, E::reachesOnly({0, 1, 2}))}},

      {"EveryBackendReceivesNewConnections",
       {Svc("web", "10.96.0.10").endpoints({0, 1, 2})},
       {ask(kClient, "web", kClusterIP, 60, E::reachesEach({0, 1, 2}))}},

      {"SessionAffinityClientIPSticks",
       {Svc("web", "10.96.0.12").clientIPAffinity().endpoints({0, 1, 2})},
       {ask(kClient, "web", kClusterIP, 20, E::sticksToOne({0, 1, 2}))}},

      // externalTrafficPolicy: Local applies to external traffic (NodePort, load balancer IP)
      // only; the ClusterIP still reaches every endpoint. A healthCheckNodePort exists only for
      // type LoadBalancer (Service API: "only effects when Type is set to LoadBalancer and
      // ExternalTrafficPolicy is set to Local"); it is served on the node's addresses.
      {"ExternalTrafficPolicyLocalNodePortOnlyToLocalEndpoints",
       {Svc("web", "10.96.0.13").onNodePort(30081).externalTrafficLocal(0).endpoints({0}, {1, 2})},
       {ask(kClient, "web", kNodePort, 30, E::reachesOnly({0})),
        ask(kClient, "web", kClusterIP, 60, E::reachesEach({0, 1, 2}))}},

      {"ExternalTrafficPolicyLocalLoadBalancerOnlyToLocalEndpoints",
       {Svc("web", "10.96.0.14")
            .asLoadBalancer(30082, "10.100.3.100")
            .externalTrafficLocal(32002)
            .endpoints({0, 1}, {2})},
       {healthCheck("web", 200, 2),
        ask(kClient, "web", kLoadBalancerIP, 30, E::reachesEach({0, 1})),
        ask(kClient, "web", kNodePort, 30, E::reachesEach({0, 1})),
        ask(kClient, "web", kClusterIP, 60, E::reachesEach({0, 1, 2}))}},

      {"ExternalTrafficPolicyLocalWithoutLocalEndpoints",
       {Svc("web", "10.96.0.15")
            .asLoadBalancer(30083, "10.100.3.101")
            .externalTrafficLocal(32003)
            .endpoints({}, {0, 1, 2})},
       {healthCheck("web", 503, 0),
        withTimeout(ask(kClient, "web", kLoadBalancerIP, 2, E::notServed()), 500ms),
        withTimeout(ask(kClient, "web", kNodePort, 2, E::notServed()), 500ms)}},

      // A pod reaching its own Service lands on itself: the reply must come back through the
      // node (kube-proxy masquerades an endpoint's traffic to itself), or the pod would see its
      // own address answer a connection it made to the ClusterIP.
      {"HairpinBackendReachesItselfThroughItsService",
       {Svc("web", "10.96.0.16").endpoints({0})},
       {ask(kBackend0, "web", kClusterIP, 5, E::reachesOnly({0}))}},

      {"BackendReachesEveryEndpointIncludingItself",
       {Svc("web", "10.96.0.17").endpoints({0, 1, 2})},
       {ask(kBackend0, "web", kClusterIP, 60, E::reachesEach({0, 1, 2}))}},

      // internalTrafficPolicy: Local keeps ClusterIP traffic on this node's endpoints, whoever
      // sends it; with no local endpoint it is dropped (not rejected: other nodes may have some).
      {"InternalTrafficPolicyLocalOnlyToLocalEndpoints",
       {Svc("web", "10.96.0.18").internalTrafficLocal().endpoints({0}, {1, 2}),
        Svc("remote", "10.96.0.19").internalTrafficLocal().endpoints({}, {1, 2})},
       {ask(kBackend0, "web", kClusterIP, 20, E::reachesOnly({0})),
        ask(kNode, "web", kClusterIP, 20, E::reachesOnly({0})),
        withTimeout(ask(kBackend0, "remote", kClusterIP, 2, E::notServed()), 500ms)}},

      {"NoEndpointsRejectsAtOnce",
       {Svc("empty", "10.96.0.20")},
       {withTimeout(ask(kClient, "empty", kClusterIP, 3, E::refusedWithin(1s)), 3s),
        withTimeout(ask(kNode, "empty", kClusterIP, 3, E::refusedWithin(1s)), 3s)}},

      {"RemovedEndpointStopsReceivingNewConnectionsWithin2s",
       {Svc("web", "10.96.0.10").endpoints({0, 1, 2})},
       {ask(kClient, "web", kClusterIP, 60, E::reachesEach({0, 1, 2})), removeEndpoint("web", 2),
        settleWithin(ask(kClient, "web", kClusterIP, 30, E::reachesEach({0, 1})), 2s)}},

      {"UdpFlowSwitchesBackendWhenItsEndpointGoes",
       {Svc("dns", "10.96.0.53").udp().endpoints({0, 1})},
       {askUdp("dns", 5, 40053, E::sticksToOne({0, 1})), removeEndpoint("dns", kStuckBackend),
        settleWithin(askUdp("dns", 5, 40053, E::reachesOnly({0, 1}).butNotTheStuckOne()), 2s)}},

      // A UDP flow rejected while the service had no endpoint reaches the endpoint that
      // appears, at once. (With the REJECT in the filter table the rejected datagrams leave no
      // confirmed conntrack entry, so this holds even without the cleanup; the next case needs
      // it.)
      {"UdpFlowReachesAnEndpointThatAppears",
       {Svc("dns", "10.96.0.54").udp()},
       {withTimeout(askUdp("dns", 2, 40054, E::notServed()), 500ms), addEndpoint("dns", 1),
        settleWithin(askUdp("dns", 5, 40054, E::reachesOnly({1})), 2s)}},

      // The same flow started before the Service existed: the node forwarded it un-NATed
      // towards the service range, and conntrack confirmed that. Only deleting the entry when
      // the service becomes active lets the flow reach it (fails with the cleanup off: checked).
      {"UdpFlowReachesAServiceCreatedAfterItStarted",
       {Svc("dns", "10.96.0.55").udp().later()},
       {withTimeout(askUdp("dns", 2, 40055, E::notServed()), 500ms), addEndpoint("dns", 2),
        settleWithin(askUdp("dns", 5, 40055, E::reachesOnly({2})), 2s)}},

      {"EstablishedConnectionSurvivesARestart",
       {Svc("web", "10.96.0.10").endpoints({0, 1, 2})},
       {hold("web"), talk(), restart(), talk(),
        ask(kClient, "web", kClusterIP, 10, E::reachesOnly({0, 1, 2}))}},

      {"CleanupLeavesNothing",
       {Svc("web", "10.96.0.11").onNodePort(30084).endpoints({0, 1, 2}),
        Svc("sticky", "10.96.0.12").clientIPAffinity().endpoints({0}, {1}),
        Svc("empty", "10.96.0.20")},
       {ask(kClient, "web", kNodePort, 5, E::reachesOnly({0, 1, 2})), cleanupLeavesNothing()}},

      // Dual-stack: the same ClusterIP case over IPv6.
      {"ClusterIPv6FromClient",
       {Svc("web6", "fd00:96::10").ipv6().endpoints({0, 1, 2})},
       {ask(kClient, "web6", kClusterIP, 10, E::reachesOnly({0, 1, 2}))}},
  };
  return cases;
}

// ---- The runner ----

namespace {

class CaseRun {
 public:
  CaseRun(const FlowCase& flowCase, const DataplaneFactory& factory)
      : case_(flowCase), factory_(factory), services_(flowCase.services) {}

  void run() {
    auto start = Clock::now();
    bool ok = setUp();
    size_t passed = 0;
    for (size_t i = 0; ok && i < case_.steps.size(); ++i) {
      ok = play(i, case_.steps[i]);
      if (ok) ++passed;
    }
    if (!ok && dataplane_) {
      std::printf("--- %s dataplane after the failure: ---\n%s\n--- end of dump ---\n",
                  dataplane_->mode().c_str(), dataplane_->ruleDump().c_str());
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    std::printf("flow case %s: %zu of %zu steps passed in %lld ms\n", case_.name.c_str(), passed,
                case_.steps.size(), static_cast<long long>(ms.count()));
  }

 private:
  bool fail(const std::string& message) {
    ADD_FAILURE() << case_.name << ": " << message;
    return false;
  }

  bool setUp() {
    auto topology = Topology::create({kBackends, true});
    if (!topology.ok()) return fail(topology.error().message());
    topology_ = std::move(*topology);
    for (size_t i = 0; i < kBackends; ++i) {
      auto echo = support::startEchoServer(
          *topology_, topology_->backend(i), backendName(i),
          {Topology::backendAddress(i, Family::kIPv4) + ":" + std::to_string(kEchoPort),
           "[" + Topology::backendAddress(i, Family::kIPv6) + "]:" + std::to_string(kEchoPort)});
      if (!echo.ok()) return fail(echo.error().message());
      echoes_.push_back(std::move(*echo));
    }
    manifestDir_ = topology_->scratchDir() + "/manifests";
    std::error_code ec;
    std::filesystem::create_directories(manifestDir_, ec);
    if (ec) return fail("mkdir " + manifestDir_ + ": " + ec.message());
    for (const ServiceSpec& s : services_) {
      if (!s.createdLater && !writeManifest(s)) return false;
    }
    dataplane_ = factory_(*topology_);
    if (auto started = dataplane_->start(manifestDir_); !started.ok()) {
      return fail("the dataplane did not start: " + started.error().message());
    }
    return true;
  }

  bool writeManifest(const ServiceSpec& s) {
    // Renamed into place, so the dataplane never reads half a file.
    std::string path = manifestDir_ + "/" + s.name + ".yaml";
    std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << manifestYaml(s, *topology_);
      if (!out.good()) return fail("cannot write " + tmp);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("cannot rename " + tmp);
    return true;
  }

  ServiceSpec* service(const std::string& name) {
    for (ServiceSpec& s : services_) {
      if (s.name == name) return &s;
    }
    return nullptr;
  }

  bool play(size_t index, const Step& step) {
    std::string where = "step " + std::to_string(index + 1) + " (" + step.describe() + ")";
    ServiceSpec* svc = step.service.empty() ? nullptr : service(step.service);
    if (!step.service.empty() && svc == nullptr) {
      return fail(where + ": the case has no service " + step.service);
    }
    switch (step.kind) {
      case Step::Kind::kAsk:
        return playAsk(where, step, *svc);
      case Step::Kind::kHold: {
        auto [address, port] = target(*svc, Via::kClusterIP);
        held_ = topology_->within(namespaceOf(step.from),
                                  [&] { return support::tcpHold(address, port, step.timeout); });
        if (!held_.greeting().ok()) return fail(where + ": " + held_.greeting().describe());
        return true;
      }
      case Step::Kind::kTalk: {
        Answer a = held_.talk("still there? " + std::to_string(++talks_), step.timeout);
        if (!a.ok() || a.name != held_.greeting().name) {
          return fail(where + ": held connection to " + held_.greeting().name + ": " +
                      a.describe());
        }
        return true;
      }
      case Step::Kind::kHealthCheck:
        return playHealthCheck(where, step, *svc);
      case Step::Kind::kRemoveEndpoint: {
        size_t backend =
            step.backend == kStuckBackend ? stuck_.value_or(kStuckBackend) : step.backend;
        if (backend == kStuckBackend) return fail(where + ": no earlier step stuck to a backend");
        auto& list = svc->endpointList;
        auto it = std::find_if(list.begin(), list.end(),
                               [&](const EndpointSpec& e) { return e.backend == backend; });
        if (it == list.end()) return fail(where + ": " + backendName(backend) + " not an endpoint");
        list.erase(it);
        if (!writeManifest(*svc)) return false;
        lastChange_ = Clock::now();
        return true;
      }
      case Step::Kind::kAddEndpoint: {
        svc->endpointList.push_back(EndpointSpec{step.backend, true});
        svc->createdLater = false;
        if (!writeManifest(*svc)) return false;
        lastChange_ = Clock::now();
        return true;
      }
      case Step::Kind::kRestart:
        if (auto r = dataplane_->restart(); !r.ok())
          return fail(where + ": " + r.error().message());
        return true;
      case Step::Kind::kCleanup: {
        if (auto r = dataplane_->stop(); !r.ok())
          return fail(where + ": stop: " + r.error().message());
        std::string before = dataplane_->leftovers();
        if (before.empty()) {
          return fail(where + ": nothing of " + dataplane_->mode() +
                      " found before the cleanup: the leftovers probe sees nothing, so it proves "
                      "nothing");
        }
        if (auto r = dataplane_->cleanup(); !r.ok())
          return fail(where + ": " + r.error().message());
        std::string after = dataplane_->leftovers();
        if (!after.empty()) return fail(where + ": left after the cleanup:\n" + after);
        return true;
      }
    }
    return fail(where + ": unknown step");
  }

  const std::string& namespaceOf(From from) const {
    switch (from) {
      case From::kClient:
        return topology_->client();
      case From::kNode:
        return topology_->node();
      case From::kBackend0:
        return topology_->backend(0);
    }
    return topology_->client();
  }

  std::pair<std::string, uint16_t> target(const ServiceSpec& s, Via via) const {
    switch (via) {
      case Via::kClusterIP:
        return {s.clusterIP, s.port};
      case Via::kNodePort:
        return {Topology::nodeAddress(s.family), s.nodePort};
      case Via::kLoadBalancerIP:
        return {s.loadBalancerIP, s.port};
    }
    return {"", 0};
  }

  Answer askOnce(const Step& step, const ServiceSpec& s) {
    auto [address, port] = target(s, step.via);
    return topology_->within(namespaceOf(step.from), [&] {
      return s.protocol == Protocol::kTCP
                 ? support::tcpAsk(address, port, step.timeout)
                 : support::udpAsk(address, port, step.timeout, step.sourcePort);
    });
  }

  std::set<std::string> allowedNames(const Expect& e) const {
    std::set<std::string> names;
    for (size_t b : e.backends) {
      if (b == kStuckBackend) {
        if (stuck_) names.insert(backendName(*stuck_));
      } else {
        names.insert(backendName(b));
      }
    }
    if (e.excludeStuck && stuck_) names.erase(backendName(*stuck_));
    return names;
  }

  // Whether one answer is acceptable on its own (for the probes made while a change settles).
  bool acceptable(const Expect& e, const Answer& a) const {
    switch (e.kind) {
      case Expect::Kind::kReachesOnly:
      case Expect::Kind::kReachesEach:
      case Expect::Kind::kSticksToOne:
        return a.ok() && allowedNames(e).contains(a.name);
      case Expect::Kind::kRefusedWithin:
        return a.outcome == Outcome::kRefused && a.elapsed < e.within;
      case Expect::Kind::kNotServed:
        return !a.ok();
    }
    return false;
  }

  static std::string summary(const std::vector<Answer>& answers) {
    std::map<std::string, size_t> counts;
    std::vector<std::string> details;
    for (const Answer& a : answers) {
      ++counts[a.ok() ? a.name : support::toString(a.outcome)];
      if (!a.ok() && details.size() < 3) details.push_back(a.describe());
    }
    std::string out;
    for (const auto& [what, n] : counts) {
      out += (out.empty() ? "" : ", ") + what + ": " + std::to_string(n);
    }
    for (const std::string& d : details) out += "; " + d;
    return out;
  }

  bool playAsk(const std::string& where, const Step& step, const ServiceSpec& s) {
    std::string settled;
    if (step.settle.count() > 0) {
      // Probe until `settle` after the change, noting the last answer the expectation rejects;
      // then every ask must meet it.
      auto until = lastChange_ + step.settle;
      std::optional<Clock::duration> lastRejected;
      size_t probes = 0;
      for (; Clock::now() < until && probes < 10'000; ++probes) {
        auto at = Clock::now();
        if (!acceptable(step.expect, askOnce(step, s))) lastRejected = at - lastChange_;
        std::this_thread::sleep_for(kProbeInterval);
      }
      settled = lastRejected
                    ? " (the last old answer came " +
                          std::to_string(
                              std::chrono::duration_cast<std::chrono::milliseconds>(*lastRejected)
                                  .count()) +
                          " ms after the change)"
                    : " (no old answer after the change)";
      std::printf("%s: %s%s\n", case_.name.c_str(), where.c_str(), settled.c_str());
    }
    std::vector<Answer> answers;
    for (size_t i = 0; i < step.count; ++i) answers.push_back(askOnce(step, s));
    const Expect& e = step.expect;
    std::set<std::string> allowed = allowedNames(e);
    bool ok = std::all_of(answers.begin(), answers.end(),
                          [&](const Answer& a) { return acceptable(e, a); });
    if (ok && e.kind == Expect::Kind::kReachesEach) {
      for (const std::string& name : allowed) {
        ok = ok && std::any_of(answers.begin(), answers.end(),
                               [&](const Answer& a) { return a.name == name; });
      }
    }
    if (ok && e.kind == Expect::Kind::kSticksToOne) {
      ok = std::all_of(answers.begin(), answers.end(),
                       [&](const Answer& a) { return a.name == answers.front().name; });
      if (ok && !answers.empty()) {
        stuck_ = static_cast<size_t>(std::stoul(answers.front().name.substr(1)));
      }
    }
    if (!ok) return fail(where + ": got " + summary(answers) + settled);
    return true;
  }

  bool playHealthCheck(const std::string& where, const Step& step, const ServiceSpec& s) {
    std::string address = Topology::nodeAddress(s.family);
    auto reply = topology_->within(topology_->client(), [&] {
      return support::httpAsk(address, s.healthCheckNodePort, "/", step.timeout);
    });
    if (!reply.ok()) return fail(where + ": " + reply.error().message());
    std::regex count("\"localEndpoints\"\\s*:\\s*" + std::to_string(step.localEndpoints) + "\\b");
    if (reply->status != step.httpStatus || !std::regex_search(reply->body, count)) {
      return fail(where + ": got " + std::to_string(reply->status) + " " + reply->body);
    }
    return true;
  }

  const FlowCase& case_;
  const DataplaneFactory& factory_;
  std::vector<ServiceSpec> services_;  // as the manifests say now
  // Destroyed in reverse: the held connection, the dataplane, the echo servers, the topology.
  std::unique_ptr<Topology> topology_;
  std::vector<support::Process> echoes_;
  std::string manifestDir_;
  std::unique_ptr<L4Dataplane> dataplane_;
  support::TcpConnection held_;
  std::optional<size_t> stuck_;
  Clock::time_point lastChange_ = Clock::now();
  int talks_ = 0;
};

}  // namespace

void runFlowCase(const FlowCase& flowCase, const DataplaneFactory& factory) {
  CaseRun(flowCase, factory).run();
}

}  // namespace capstan::integration
