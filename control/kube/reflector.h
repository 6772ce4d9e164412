// Reflector: one resource of the API server mirrored the way client-go's Reflector does it
// (tools/cache/reflector.go), turned into the ObjectEvents every Capstan source produces.
//
//   list    GET /api/v1/services?limit=500[&continue=...]; the first list asks for
//           resourceVersion=0 (the server's cache), a relist after 410 Gone for the latest
//           state (no resourceVersion); an expired continue token falls back to one unpaginated
//           list (client-go's pager, FullListIfExpired).
//   watch   GET ...?watch=true&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=T,
//           T drawn from [5, 10) minutes as client-go draws it; every event and BOOKMARK
//           advances RV. A watch that ends (timeout, dropped connection) is resumed from RV.
//   410     as an HTTP status or as an ERROR event with code 410: relist. The relist produces
//           exactly the difference from the previous view: upserts for new and changed objects,
//           deletes for those gone, nothing for the rest, so the tracker sees no false change.
//   errors  connection failures, 429 and 5xx: retry after a backoff with jitter (client-go's
//           800 ms doubling to 30 s, each wait d..2d, reset after 2 quiet minutes), never
//           shorter than the server's Retry-After.
//
// Objects go through the project's one decoder. An object it rejects is reported (name, field)
// and skipped; the last good version of it stays, as with manifest files. Runs on the
// KubeSource's io_context; not thread-safe.
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
#include <random>
#include <string>
#include <vector>

#include "control/decoder.h"
#include "control/kube/api_client.h"
#include "control/source.h"

namespace capstan::control::kube {

// What to mirror: a collection path and the selectors the list and watch carry.
struct ResourceSpec {
  ObjectKind kind = ObjectKind::kService;
  std::string path;  // "/api/v1/services"
  std::string labelSelector;
  std::string fieldSelector;
};

// The label selector kube-proxy puts on its Service and EndpointSlice informers
// (cmd/kube-proxy/app/server.go: noProxyName and noHeadlessEndpoints, as labels.Selector prints
// them, sorted): objects handed to another proxy, and the slices of headless Services (which
// no proxy programs), never reach it.
inline constexpr std::string_view kProxyLabelSelector =
    "!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name";

// Services, EndpointSlices, Ingresses, IngressClasses, TLS Secrets (fieldSelector
// type=kubernetes.io/tls) and this node's Node (fieldSelector metadata.name=<node>, as
// kube-proxy's node informer).
std::vector<ResourceSpec> capstanResources(const std::string& nodeName);

// The backoff of client-go's reflector (wait.NewExponentialBackoffManager(800ms, 30s, 2m, 2.0,
// 1.0)): each wait is d plus up to d of jitter, d doubling from `initial` to `max`; d starts over
// after `resetAfter` without a backoff.
class Backoff {
 public:
  using Clock = std::chrono::steady_clock;
  Backoff(std::chrono::nanoseconds initial, std::chrono::nanoseconds max,
          std::chrono::nanoseconds resetAfter, uint64_t seed);
  std::chrono::nanoseconds next(Clock::time_point now);

 private:
  std::chrono::nanoseconds initial_, max_, resetAfter_, current_;
  std::optional<Clock::time_point> last_;
  std::mt19937_64 random_;
};

struct ReflectorOptions {
  uint32_t pageSize = 500;  // client-go's pager default
  std::chrono::nanoseconds backoffInitial = std::chrono::milliseconds(800);
  std::chrono::nanoseconds backoffMax = std::chrono::seconds(30);
  std::chrono::nanoseconds backoffReset = std::chrono::minutes(2);
  // timeoutSeconds of each watch is drawn from [min, 2 min) (client-go's minWatchTimeout).
  std::chrono::seconds minWatchTimeout = std::chrono::minutes(5);
  // A watch silent this long past its timeoutSeconds is taken for dead.
  std::chrono::nanoseconds watchGrace = std::chrono::seconds(30);
  // A Retry-After longer than this is shortened to it.
  std::chrono::nanoseconds maxRetryAfter = std::chrono::minutes(5);
  uint64_t seed = 0;  // 0: from std::random_device
  // EndpointSlice trigger times not after this are not reported (kube-proxy ignores those
  // before its change tracker started). Unix ns.
  int64_t startTimeNs = 0;
};

// What a reflector hands on: object events, problems, and whether this completes a full list.
struct ReflectorUpdate {
  ObjectKind kind = ObjectKind::kService;
  std::vector<ObjectEvent> events;
  std::vector<Diagnostic> diagnostics;
  bool listed = false;  // true: the resource's whole current state has now been delivered
};

class Reflector {
 public:
  using Sink = std::function<void(ReflectorUpdate)>;
  // Called whenever the server answered (a list page, a watch opened, a watch event).
  using ContactHandler = std::function<void(bool watching)>;

  Reflector(boost::asio::io_context& io, ApiClient& client, ResourceSpec spec,
            ReflectorOptions options, Sink sink, ContactHandler onContact = {});

  // Sees every object the server sends, before it is decoded: each item of a list page (type
  // "LIST") and each watch event's object ("ADDED", "MODIFIED", "DELETED"). For what the
  // decoder leaves out, such as an Ingress's status; set before run().
  using ObjectObserver = std::function<void(std::string_view type, const Value& object)>;
  void observeObjects(ObjectObserver observer) { observer_ = std::move(observer); }

  // Lists and watches until stop().
  boost::asio::awaitable<void> run();
  // Ends run() soon: wakes a backoff wait. The caller also cancels the client's connections.
  void stop();

  const ResourceSpec& spec() const { return spec_; }
  const std::string& resourceVersion() const { return resourceVersion_; }
  const std::map<ObjectKey, KubeObject>& objects() const { return objects_; }
  // Counters for tests and logs.
  struct Stats {
    uint64_t lists = 0;         // completed full lists
    uint64_t listRequests = 0;  // pages requested
    uint64_t watches = 0;       // watch requests sent
    uint64_t relistsGone = 0;   // relists caused by 410
    uint64_t backoffs = 0;
    std::chrono::nanoseconds lastBackoff{0};
  };
  const Stats& stats() const { return stats_; }

 private:
  enum class Next { kWatch, kRelist, kRelistLatest, kBackoffWatch, kBackoffRelist, kStop };
  struct Failure {
    Next next = Next::kBackoffRelist;
    std::optional<std::chrono::seconds> retryAfter;
  };

  boost::asio::awaitable<Next> list();
  boost::asio::awaitable<Next> watch();
  boost::asio::awaitable<void> wait(std::chrono::nanoseconds delay);
  boost::asio::awaitable<void> backoff(std::optional<std::chrono::seconds> retryAfter);
  // How a failed request continues: 410 relists, 429 and 5xx retry, others relist after backoff.
  Failure classify(const Result<ApiResponse>& response, bool watching,
                   std::vector<Diagnostic>& diagnostics);
  std::string query(bool watch) const;
  // Handles one watch line; returns the next step when the line ends the watch.
  std::optional<Next> handleWatchLine(std::string_view line, ReflectorUpdate& update);
  int64_t triggerTime(const KubeObject& object) const;
  void report(std::vector<Diagnostic> diagnostics);

  boost::asio::io_context& io_;
  ApiClient& client_;
  ResourceSpec spec_;
  ReflectorOptions options_;
  Sink sink_;
  ContactHandler onContact_;
  ObjectObserver observer_;
  ObjectDecoder decoder_;
  Backoff backoff_;
  std::mt19937_64 random_;
  boost::asio::steady_timer timer_;
  bool stopped_ = false;
  std::string resourceVersion_;  // of the last list, event or bookmark; "" before the first list
  bool latestNeeded_ = false;    // the last RV expired: list the latest state
  std::optional<std::chrono::seconds> pendingRetryAfter_;
  std::map<ObjectKey, KubeObject> objects_;
  Stats stats_;
};

}  // namespace capstan::control::kube
