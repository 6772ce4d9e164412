// The L4 flow table: the packet-flow cases every L4 proxy mode (iptables, nftables, ipvs, dpdk)
// must pass against the real kernel, written once as data, and the runner that plays one case
// against one dataplane in a fresh Topology (tests/support/netns.h).
//
// A mode's test instantiates the table with a DataplaneFactory (see iptables_flow_test.cc):
//
//   INSTANTIATE_TEST_SUITE_P(Iptables, IptablesFlowTest, testing::ValuesIn(l4FlowCases()),
//                            flowCaseName);
//   TEST_P(IptablesFlowTest, Flows) { runFlowCase(GetParam(), capstanDaemon("iptables")); }
//
// For each case the runner builds the topology (client, node, three backends b0..b2, each
// running capstan_test_echo named "b<i>" on TCP and UDP port 8080, IPv4 and IPv6), writes the
// case's Services and EndpointSlices to a manifest directory, starts the dataplane on the node,
// plays the steps and checks each one's expectation. A failed step stops the case and prints
// the dataplane's ruleDump().
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/result.h"
#include "tests/support/netns.h"
#include "tests/support/prometheus_text.h"

namespace capstan::integration {

using support::Family;
using support::metricValue;
using support::Topology;

// ---- The dataplane under test ----

// One L4 proxy mode, run on the node namespace of a Topology. Implementations are called from
// the test's thread only; every method is bounded in time (a few seconds at most).
class L4Dataplane {
 public:
  virtual ~L4Dataplane() = default;

  // The proxy mode's name, for messages: "iptables", "nftables", "ipvs", "dpdk".
  virtual std::string mode() const = 0;

  // Starts the dataplane reading the manifests in `manifestDir` (and following changes to them)
  // and returns once it serves traffic: its first sync of those manifests has completed.
  virtual Result<void> start(const std::string& manifestDir) = 0;

  // Stops it the way its operator would (SIGTERM; exit status 0 expected). What it programmed
  // stays in place where the mode does so (kube-proxy leaves its rules on exit).
  virtual Result<void> stop() = 0;

  // stop(), then start() on the same manifests; returns once the new process has synced.
  virtual Result<void> restart() = 0;

  // Removes everything the mode programmed (`capstan --proxy-mode=<mode> --cleanup` in the node
  // namespace). Called with the dataplane stopped.
  virtual Result<void> cleanup() = 0;

  // What this mode has programmed into the node namespace, one item a line (iptables: every
  // line of iptables-save/ip6tables-save naming a KUBE- chain): non-empty while a service is
  // programmed, empty after cleanup(). The check of "cleanup leaves nothing", made specific to
  // the mode.
  virtual std::string leftovers() = 0;

  // Everything useful to read when a case fails: the programmed rules, connection tracking
  // entries, the tail of the dataplane's log.
  virtual std::string ruleDump() = 0;
};

// Makes the dataplane for one case, on that case's topology (which outlives it).
using DataplaneFactory = std::function<std::unique_ptr<L4Dataplane>(Topology&)>;

// The real `capstan` binary (CAPSTAN_BINARY_DIR/control/capstan) in the node namespace:
//   capstan --proxy-mode=<mode> --manifests DIR --hostname-override node-a
//     --min-sync-period 100ms --sync-period 5s --healthz-bind-address 127.0.0.1:<free>
//     --metrics-bind-address 127.0.0.1:<free> --cluster-cidr <kClusterCIDRs> <extraArgs>
// start() waits for /healthz 200 and kubeproxy_sync_proxy_rules_duration_seconds_count >= 1,
// polled from inside the node namespace. leftovers() knows iptables; a new mode adds its own
// probe there (until it does, leftovers() says so and the cleanup case fails).
class CapstanDaemon : public L4Dataplane {
 public:
  CapstanDaemon(Topology& topology, std::string mode, std::vector<std::string> extraArgs = {});
  ~CapstanDaemon() override;

  std::string mode() const override { return mode_; }
  Result<void> start(const std::string& manifestDir) override;
  Result<void> stop() override;
  Result<void> restart() override;
  Result<void> cleanup() override;
  std::string leftovers() override;
  std::string ruleDump() override;

  // Variables set in the daemon's environment at its next start ("PATH=/x:/usr/bin"): through
  // env(1), so that a test can put its own tools first on the daemon's PATH.
  void setEnvironment(std::vector<std::string> assignments) { env_ = std::move(assignments); }
  // The daemon's /metrics (Prometheus text), fetched from inside the node namespace.
  Result<std::string> metrics();

 private:
  Result<void> waitUntilSynced();
  std::string logTail() const;

  Topology& topology_;
  std::string mode_;
  std::vector<std::string> extraArgs_;
  std::vector<std::string> env_;
  std::string manifestDir_;
  support::Process process_;
  int starts_ = 0;
  uint16_t healthPort_ = 0;
  uint16_t metricsPort_ = 0;
};

// A DataplaneFactory for CapstanDaemon in `mode`.
DataplaneFactory capstanDaemon(const std::string& mode, std::vector<std::string> extraArgs = {});

// The pod CIDRs given to --cluster-cidr: the backends' subnets. Not the client's: kube-proxy
// treats traffic from the cluster CIDR as pod traffic (never masqueraded, and sent to every
// endpoint even for externalTrafficPolicy: Local), so the client must be outside it to be an
// external client.
inline constexpr const char* kClusterCIDRs = "10.100.2.0/24,fd00:100:2::/64";

// ---- The cases, as data ----

enum class Protocol { kTCP, kUDP };

inline constexpr uint16_t kEchoPort = 8080;  // every backend's TCP and UDP port
inline constexpr const char* kThisNode = "node-a";
inline constexpr const char* kOtherNode = "node-b";
// The backend a previous kAsk with Expect::kSticksToOne settled on (for a later step).
inline constexpr size_t kStuckBackend = static_cast<size_t>(-1);

struct EndpointSpec {
  size_t backend = 0;  // backend i: address Topology::backendAddress(i), name "b<i>"
  bool local = true;   // nodeName node-a (this node) or node-b (another node)
};

// One Service with one port, and its EndpointSlice. Built with the helpers below:
//   Svc("web", "10.96.0.10").endpoints({0, 1, 2}).onNodePort(30080)
struct ServiceSpec {
  std::string name;
  std::string clusterIP;
  Family family = Family::kIPv4;
  std::string type = "ClusterIP";  // ClusterIP, NodePort or LoadBalancer
  Protocol protocol = Protocol::kTCP;
  uint16_t port = 80;
  uint16_t nodePort = 0;
  std::string loadBalancerIP;  // status.loadBalancer.ingress[0].ip
  bool externalTrafficPolicyLocal = false;
  uint16_t healthCheckNodePort = 0;
  bool sessionAffinityClientIP = false;
  bool internalTrafficPolicyLocal = false;
  bool createdLater = false;  // not in the manifests until a kAddEndpoint step writes it
  std::vector<EndpointSpec> endpointList;

  // Endpoints on this node (local) and on another one (remote), by backend index.
  ServiceSpec& endpoints(std::vector<size_t> local, std::vector<size_t> remote = {});
  ServiceSpec& onNodePort(uint16_t port);                          // type NodePort
  ServiceSpec& asLoadBalancer(uint16_t nodePort, std::string ip);  // type LoadBalancer
  // healthCheckNodePort 0: none (Kubernetes gives one to type LoadBalancer only).
  ServiceSpec& externalTrafficLocal(uint16_t healthCheckNodePort);
  ServiceSpec& clientIPAffinity();
  ServiceSpec& internalTrafficLocal();  // internalTrafficPolicy: Local
  ServiceSpec& later();                 // created by the first kAddEndpoint step
  ServiceSpec& udp();
  ServiceSpec& ipv6();  // an IPv6 single-stack Service (its clusterIP must be IPv6)
};

ServiceSpec Svc(std::string name, std::string clusterIP);

// The Service and EndpointSlice YAML the runner writes for `service` (one file per Service).
std::string manifestYaml(const ServiceSpec& service, const Topology& topology);

// Where an ask is made: the client, the node itself, or backend b0 (a pod reaching a Service,
// possibly its own: hairpin).
enum class From { kClient, kNode, kBackend0 };
enum class Via { kClusterIP, kNodePort, kLoadBalancerIP };  // which address of the service

// What a kAsk of `count` asks must come to.
struct Expect {
  enum class Kind {
    kReachesOnly,    // every ask answered, each by one of `backends`
    kReachesEach,    // every ask answered by one of `backends`, and each of them answered
    kSticksToOne,    // every ask answered, all by the same one of `backends` (remembered)
    kRefusedWithin,  // every ask refused, each in less than `within` (no timeout)
    kNotServed,      // no ask answered (refused or timed out: dropped is fine)
  };
  Kind kind = Kind::kReachesOnly;
  std::vector<size_t> backends;  // may hold kStuckBackend
  bool excludeStuck = false;     // the stuck backend is not allowed, even if listed
  std::chrono::milliseconds within{0};

  static Expect reachesOnly(std::vector<size_t> backends);
  static Expect reachesEach(std::vector<size_t> backends);
  static Expect sticksToOne(std::vector<size_t> backends);
  static Expect refusedWithin(std::chrono::milliseconds within);
  static Expect notServed();
  Expect& butNotTheStuckOne();
  std::string describe() const;
};

struct Step {
  enum class Kind {
    kAsk,             // `count` asks of `service` via `via` from `from`, checked against `expect`
    kHold,            // open a TCP connection to `service` and keep it (one held at a time)
    kTalk,            // talk on the held connection: the same backend must echo
    kHealthCheck,     // GET / on the node's healthCheckNodePort of `service`, from the client
    kRemoveEndpoint,  // rewrite `service`'s EndpointSlice without `backend` (at time t)
    kAddEndpoint,     // rewrite it with `backend` added, on this node (at time t); creates it
                      // if it was createdLater
    kRestart,         // L4Dataplane::restart()
    kCleanup,         // stop, cleanup(), and nothing of the mode may be left
  };
  Kind kind = Kind::kAsk;
  std::string service;
  From from = From::kClient;
  Via via = Via::kClusterIP;
  size_t count = 1;
  uint16_t sourcePort = 0;  // UDP asks: a fixed source port (one flow); 0: a new one each time
  std::chrono::milliseconds timeout{2000};  // of one ask
  // kAsk after a kRemoveEndpoint or kAddEndpoint: the expectation must hold for every ask started
  // this long after the change (earlier asks are made every 20 ms, to measure when it took effect,
  // and not checked).
  std::chrono::milliseconds settle{0};
  Expect expect;
  size_t backend = 0;  // kRemoveEndpoint (may be kStuckBackend), kAddEndpoint
  int httpStatus = 0;  // kHealthCheck: the status, and the localEndpoints count in the body
  int localEndpoints = 0;

  std::string describe() const;
};

// Step builders, so that a case reads as a sentence.
Step ask(From from, std::string service, Via via, size_t count, Expect expect);
Step askUdp(std::string service, size_t count, uint16_t sourcePort, Expect expect);
Step hold(std::string service);
Step talk();
Step healthCheck(std::string service, int httpStatus, int localEndpoints);
Step removeEndpoint(std::string service, size_t backend);
Step addEndpoint(std::string service, size_t backend);
Step restart();
Step cleanupLeavesNothing();
// Modifiers: the expectation must hold `settle` after the last change; a shorter or longer
// timeout for each ask.
Step settleWithin(Step step, std::chrono::milliseconds settle);
Step withTimeout(Step step, std::chrono::milliseconds timeout);

struct FlowCase {
  std::string name;  // a GoogleTest name: letters and digits
  std::vector<ServiceSpec> services;
  std::vector<Step> steps;
};

// GoogleTest prints a case by its name.
void PrintTo(const FlowCase& flowCase, std::ostream* os);

// Every case, in order.
const std::vector<FlowCase>& l4FlowCases();

// The name GoogleTest gives a case's test (INSTANTIATE_TEST_SUITE_P's last argument).
std::string flowCaseName(const testing::TestParamInfo<FlowCase>& info);

// Plays `flowCase` against a dataplane made by `factory` on a fresh topology, reporting failures
// through GoogleTest (EXPECT/ADD_FAILURE); stops at the first failed step. Every namespace,
// process and file it made is gone when it returns, whatever happened.
void runFlowCase(const FlowCase& flowCase, const DataplaneFactory& factory);

}  // namespace capstan::integration
