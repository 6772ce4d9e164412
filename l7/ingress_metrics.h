// Per-route and per-upstream traffic statistics of the ingress, and the per-request recorder that
// feeds them and the access log.
//
// Share nothing: every worker has its own WorkerStats. A counter is written by its worker only
// (a relaxed load and store, no read-modify-write, no cache line shared with another worker) and
// read by the /metrics scraper, which sums the workers (IngressServer::stats()). Recording a
// request allocates nothing and takes no lock.
//
// Stats are keyed by what Prometheus labels them with — a route by its Ingress, host and path, an
// upstream by its service, port and endpoint — so a route or endpoint that stays across route
// tables keeps its counters, and one that goes is dropped at the table swap (once no request or
// connection uses it): the label sets stay bounded by the current table. Which stats a table has,
// and which of the previous table's they continue, is worked out once per published table on the
// control thread (StatsLayout); a worker's swap only moves pointers.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "l7/access_log.h"
#include "l7/route_table.h"

namespace capstan::l7 {

// Upper bounds of the latency histograms, in seconds (Prometheus's default buckets); one more
// bucket counts what is above the last.
inline constexpr std::array<double, 11> kLatencyBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                           0.5,   1,    2.5,   5,    10};

// A value only its worker writes and the scraper reads.
class WorkerCounter {
 public:
  void add(uint64_t n) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void sub(uint64_t n) { add(0 - n); }  // gauges: wraps back
  uint64_t get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// What routes and upstreams both count.
struct TrafficStats {
  WorkerCounter requests;
  std::array<WorkerCounter, 5> responses;  // [0] 1xx ... [4] 5xx
  WorkerCounter bytesIn;                   // from the client: request head and body
  WorkerCounter bytesOut;                  // to the client: response head and body
  WorkerCounter durationNs;
  std::array<WorkerCounter, kLatencyBuckets.size() + 1> buckets;  // not cumulative

  void record(uint16_t status, uint64_t in, uint64_t out, std::chrono::nanoseconds duration);
};

struct RouteLabels {
  std::string ingress;  // "namespace/name"
  std::string host;     // as the rule writes it; empty: every host
  std::string path;     // as the rule writes it; empty: the defaultBackend
  auto operator<=>(const RouteLabels&) const = default;
};

struct UpstreamLabels {
  std::string service;   // "namespace/name"
  std::string port;      // the service port's name (or number as the Ingress wrote it)
  std::string endpoint;  // "ip:port"
  auto operator<=>(const UpstreamLabels&) const = default;
};

struct RouteStats {
  const RouteLabels* labels = nullptr;  // in a StatsLayout the worker keeps alive
  TrafficStats traffic;
  WorkerCounter inFlight;  // requests
};

struct UpstreamStats {
  const UpstreamLabels* labels = nullptr;
  TrafficStats traffic;  // duration: the upstream's part (from its choice to the response's end)
  WorkerCounter inFlight;
  WorkerCounter open;  // connections, in use and pooled
};

// The stats one route table has: its distinct route and endpoint label sets ("slots", sorted),
// which slot each route and endpoint counts in, and which slot of the previous layout each
// continues. Built on the control thread for every published table; immutable.
struct StatsLayout {
  static std::shared_ptr<const StatsLayout> build(const RouteTable* table,
                                                  const StatsLayout* previous);

  uint64_t id = 0;          // unique per process
  uint64_t previousId = 0;  // the layout `previous` was; 0: none
  const RouteTable* table = nullptr;
  std::vector<RouteLabels> routes;         // by slot, sorted
  std::vector<uint32_t> routeSlot;         // by Route::id
  std::vector<int32_t> routeFromPrevious;  // by slot: the previous layout's slot, or -1
  std::vector<UpstreamLabels> upstreams;   // by slot, sorted
  std::vector<uint32_t> backendOffset;     // by Backend::id: where its endpoints start in:
  std::vector<uint32_t> endpointSlot;
  std::vector<int32_t> upstreamFromPrevious;
};

// Counts one open upstream connection in its endpoint's stats for as long as it lives.
class OpenConnectionGauge {
 public:
  OpenConnectionGauge() = default;
  OpenConnectionGauge(const OpenConnectionGauge&) = delete;
  OpenConnectionGauge& operator=(const OpenConnectionGauge&) = delete;
  ~OpenConnectionGauge() {
    if (stats_) stats_->open.sub(1);
  }
  void attach(UpstreamStats* stats) {
    if (stats_) stats_->open.sub(1);
    stats_ = stats;
    if (stats_) stats_->open.add(1);
  }

 private:
  UpstreamStats* stats_ = nullptr;
};

// A snapshot of TrafficStats, summed over workers.
struct TrafficSample {
  uint64_t requests = 0;
  std::array<uint64_t, 5> responses{};
  uint64_t bytesIn = 0;
  uint64_t bytesOut = 0;
  uint64_t durationNs = 0;
  std::array<uint64_t, kLatencyBuckets.size() + 1> buckets{};

  void add(const TrafficStats& stats);
};

struct RouteSample : RouteLabels {
  TrafficSample traffic;
  uint64_t inFlight = 0;
};

struct UpstreamSample : UpstreamLabels {
  TrafficSample traffic;
  uint64_t open = 0;
};

// Sorted by labels.
struct IngressStats {
  std::vector<RouteSample> routes;
  std::vector<UpstreamSample> upstreams;
};

// One worker's stats. Everything but collect() is for the worker's thread only.
class WorkerStats {
 public:
  // With the table the worker adopts: the stats of routes and endpoints that stay move over,
  // new ones are created, the others are retired (freed once unused). Pointer moves only when
  // `layout` follows the worker's current one, as publishing in order makes it.
  void setLayout(std::shared_ptr<const StatsLayout> layout);

  // The stats of a route of the current table.
  RouteStats* route(const Route& route) const {
    return routes_[layout_->routeSlot[route.id]].get();
  }
  // The stats of endpoint `index` of `backend` of `table`: an index lookup for the current
  // table, a search by labels (or null) for an older table a request still uses.
  UpstreamStats* upstream(const RouteTable* table, const Backend& backend, uint32_t index) const;

  // Frees retired stats that no request or connection uses any more.
  void reap();

  // Adds this worker's current stats to `routes` and `upstreams`. Any thread.
  void collect(std::map<RouteLabels, RouteSample>& routes,
               std::map<UpstreamLabels, UpstreamSample>& upstreams) const;

 private:
  struct Retired {
    std::shared_ptr<const StatsLayout> layout;  // their labels
    std::vector<std::unique_ptr<RouteStats>> routes;
    std::vector<std::unique_ptr<UpstreamStats>> upstreams;
  };

  mutable std::mutex mutex_;  // layout_ and the slots: the worker at swaps, the scraper
  std::shared_ptr<const StatsLayout> layout_;
  std::vector<std::unique_ptr<RouteStats>> routes_;        // by slot of layout_
  std::vector<std::unique_ptr<UpstreamStats>> upstreams_;  // by slot of layout_
  std::vector<Retired> retired_;
};

// Sums the workers' stats into one sorted snapshot.
IngressStats mergeStats(std::map<RouteLabels, RouteSample> routes,
                        std::map<UpstreamLabels, UpstreamSample> upstreams);

// One connection's record of the request it is serving: when it started, where it went, what was
// sent; at its end, the stats and the access log line. Allocation-free once the log fields'
// strings have grown. Each begin() is followed by exactly one end().
class RequestRecorder {
 public:
  using Clock = std::chrono::steady_clock;

  // The request's head has been read (`logged`: the access log is on, so its fields are copied).
  void begin(Clock::time_point now, bool logged);
  // The log's fields of the head; only when logged. Empty method: the head was refused.
  void head(std::string_view method, std::string_view target, uint8_t minorVersion,
            std::string_view host, std::string_view userAgent, std::string_view referer,
            std::string_view requestId);
  void generatedRequestId(std::string_view id);  // when the client sent none
  void route(RouteStats* stats);
  // An upstream was chosen (again, after a failed connect): the last one is recorded.
  void upstream(UpstreamStats* stats, Clock::time_point now);
  void received(uint64_t bytes) { bytesIn_ += bytes; }
  void sent(uint64_t bytes) { bytesOut_ += bytes; }
  void status(uint16_t status) { status_ = status; }

  // The request ended (answered, or given up): counts it, and logs it when `log` is on.
  void end(Clock::time_point now, std::string_view client, AccessLogBuffer& log);

  bool active() const { return active_; }
  UpstreamStats* upstreamStats() const { return upstream_; }

 private:
  bool active_ = false;
  bool logged_ = false;
  uint16_t status_ = 0;
  uint8_t minorVersion_ = 1;
  Clock::time_point start_{};
  Clock::time_point upstreamStart_{};
  uint64_t bytesIn_ = 0;
  uint64_t bytesOut_ = 0;
  RouteStats* route_ = nullptr;
  UpstreamStats* upstream_ = nullptr;
  // The log's fields of the head, one after the other in one string (a connection carries one
  // string, not six: idle keep-alive connections are many), and where each ends.
  enum Field : uint8_t { kMethod, kTarget, kHost, kUserAgent, kReferer, kRequestId, kFieldCount };
  std::string_view field(Field f) const;
  std::string fields_;
  std::array<uint32_t, kFieldCount> fieldEnd_{};
};

}  // namespace capstan::l7
