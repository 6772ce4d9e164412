// IngressStatusWriter: writes status.loadBalancer.ingress of the Ingresses Capstan serves back to
// the API server, as ingress controllers do, so `kubectl get ingress` shows where they are
// reached.
//
// What is written (IngressStatusOptions):
//   addresses  (--ingress-status-address) exactly these IPs or host names, on every node: all
//              nodes of a DaemonSet write the same value, so their writes agree and only the
//              first one changes anything (ingress-nginx's --publish-status-address).
//   fromNode   (--ingress-status-from-node) this node's address, ExternalIP else InternalIP (what
//              ingress-nginx reports for a node), added to the addresses already in the status
//              and sorted: each node adds itself and none removes another, so the nodes of a
//              DaemonSet converge on the list of them all instead of overwriting each other
//              (Capstan watches only its own Node, and elects no leader). A node that leaves the
//              cluster stays listed until someone edits the status.
//
// When: whenever an Ingress of Capstan's class, the IngressClasses or the Node change, and the
// wanted status differs from the one the Ingress has. The Ingress's own watch event of a patch
// shows the wanted status, so it causes no second write; the status another writer puts there
// is overwritten again. A PATCH (JSON merge patch of status.loadBalancer, the path and verb from
// api_access.h) that fails is retried after a backoff (client-go's, honouring Retry-After); a
// 404 means the Ingress was deleted meanwhile and is no error. Nothing is written before the
// Ingresses and IngressClasses (and the Node, for fromNode) have been listed.
//
// Runs on the KubeSource's io_context beside the reflectors, reading their objects; not
// thread-safe.
#pragma once

// clang-format off
#include <utility>  // first: Boost 1.74's awaitable.hpp uses std::exchange without it
// clang-format on

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "control/kube/api_client.h"
#include "control/kube/reflector.h"
#include "model/ingress.h"

namespace capstan::control::kube {

// One entry of status.loadBalancer.ingress: an IP or a host name.
struct LoadBalancerIngress {
  std::string ip;
  std::string hostname;

  auto operator<=>(const LoadBalancerIngress&) const = default;
  bool operator==(const LoadBalancerIngress&) const = default;
};

// "10.0.0.1" as an ip, anything else as a hostname.
LoadBalancerIngress loadBalancerIngressOf(std::string_view address);

// status.loadBalancer.ingress of an Ingress object, sorted (ports are not compared).
std::vector<LoadBalancerIngress> loadBalancerStatusOf(const Value& ingress);

// The address ingress-nginx reports for a node (GetNodeIPOrName without
// --report-node-internal-ip-address): its first ExternalIP, else its first InternalIP.
std::optional<std::string> nodeStatusAddress(const Value& node);

// {"status":{"loadBalancer":{"ingress":[{"ip":"..."},{"hostname":"..."}]}}}
std::string loadBalancerStatusPatch(const std::vector<LoadBalancerIngress>& ingress);

struct IngressStatusOptions {
  std::vector<std::string> addresses;  // exactly these; or, when empty:
  bool fromNode = false;               // this node's address added to those there
  IngressClassSelector classSelector;
  std::chrono::nanoseconds backoffInitial = std::chrono::milliseconds(800);
  std::chrono::nanoseconds backoffMax = std::chrono::seconds(30);
  std::chrono::nanoseconds backoffReset = std::chrono::minutes(2);
  std::chrono::nanoseconds maxRetryAfter = std::chrono::minutes(5);
  uint64_t seed = 0;  // 0: from std::random_device
};

// The status an Ingress should have given the one it has (sorted); nullopt when nothing can be
// said yet (fromNode before the Node has an address).
std::optional<std::vector<LoadBalancerIngress>> wantedLoadBalancerStatus(
    const IngressStatusOptions& options, const std::vector<LoadBalancerIngress>& current,
    const std::optional<std::string>& nodeAddress);

class IngressStatusWriter {
 public:
  using Report = std::function<void(Diagnostic)>;

  // `ingresses`, `classes` and `nodes` are the reflectors of those resources; the writer reads
  // their decoded objects and observes their raw ones (for the status and the Node's address
  // types, which the decoder leaves out). `nodes` is needed only with fromNode.
  IngressStatusWriter(boost::asio::io_context& io, ApiClient& client, Reflector& ingresses,
                      Reflector& classes, Reflector* nodes, IngressStatusOptions options,
                      Report report);

  // One of the observed reflectors delivered an update: look again.
  void changed();
  // Writes until stop().
  boost::asio::awaitable<void> run();
  void stop();

  struct Stats {
    uint64_t patches = 0;   // PATCH requests sent
    uint64_t written = 0;   // answered 200
    uint64_t notFound = 0;  // answered 404 (the Ingress was gone)
    uint64_t failures = 0;  // failed otherwise (retried)
  };
  const Stats& stats() const { return stats_; }

 private:
  // One pass over the served Ingresses; false when a write failed (retry after a backoff).
  boost::asio::awaitable<bool> writeDifferences();
  bool ready() const;

  ApiClient& client_;
  Reflector& ingresses_;
  Reflector& classes_;
  Reflector* nodes_;
  IngressStatusOptions options_;
  Report report_;
  Backoff backoff_;
  boost::asio::steady_timer wake_;
  boost::asio::steady_timer retry_;
  bool pending_ = false;
  bool stopped_ = false;
  std::optional<std::chrono::seconds> retryAfter_;
  // The status each Ingress has, as last seen (observed or in a patch's answer).
  std::map<NamespacedName, std::vector<LoadBalancerIngress>> status_;
  // Ingresses a patch found gone (404): not written again until seen again.
  std::set<NamespacedName> gone_;
  std::optional<std::string> nodeAddress_;
  Stats stats_;
};

}  // namespace capstan::control::kube
