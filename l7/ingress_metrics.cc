#include "l7/ingress_metrics.h"

#include <algorithm>

namespace capstan::l7 {

namespace {

// Bucket bounds in nanoseconds, for an integer comparison per bucket.
constexpr std::array<int64_t, kLatencyBuckets.size()> kBucketNs = [] {
  std::array<int64_t, kLatencyBuckets.size()> out{};
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<int64_t>(kLatencyBuckets[i] * 1e9 + 0.5);
  }
  return out;
}();

WorkerStats::RouteKey routeKey(const Route& route) {
  return {route.ingressName().toString(), std::string(route.host), std::string(route.path)};
}

WorkerStats::UpstreamKey upstreamKey(const Backend& backend, uint32_t index) {
  const ServicePortName& port = backend.servicePort;
  return {port.service.toString(), port.port, backend.endpoints[index].toString()};
}

}  // namespace

void TrafficStats::record(uint16_t status, uint64_t in, uint64_t out,
                          std::chrono::nanoseconds duration) {
  requests.add(1);
  if (status >= 100 && status < 600) responses[status / 100 - 1].add(1);
  bytesIn.add(in);
  bytesOut.add(out);
  const int64_t ns = std::max<int64_t>(0, duration.count());
  durationNs.add(static_cast<uint64_t>(ns));
  size_t bucket = 0;
  while (bucket < kBucketNs.size() && ns > kBucketNs[bucket]) ++bucket;
  buckets[bucket].add(1);
}

void TrafficSample::add(const TrafficStats& stats) {
  requests += stats.requests.get();
  for (size_t i = 0; i < responses.size(); ++i) responses[i] += stats.responses[i].get();
  bytesIn += stats.bytesIn.get();
  bytesOut += stats.bytesOut.get();
  durationNs += stats.durationNs.get();
  for (size_t i = 0; i < buckets.size(); ++i) buckets[i] += stats.buckets[i].get();
}

void WorkerStats::setTable(const RouteTable* table) {
  std::lock_guard lock(mutex_);
  std::map<RouteKey, std::unique_ptr<RouteStats>> routeMap;
  std::map<UpstreamKey, std::unique_ptr<UpstreamStats>> upstreamMap;
  routes_.clear();
  backendOffset_.clear();
  upstreams_.clear();
  table_ = table;
  if (table != nullptr) {
    for (const Route& route : table->routes()) {
      RouteKey key = routeKey(route);
      auto& slot = routeMap[key];
      if (!slot) {
        if (auto old = routeMap_.find(key); old != routeMap_.end()) {
          slot = std::move(old->second);
        } else {
          slot = std::make_unique<RouteStats>();
          std::tie(slot->ingress, slot->host, slot->path) = std::move(key);
        }
      }
      routes_.push_back(slot.get());
    }
    for (const Backend& backend : table->backends()) {
      backendOffset_.push_back(static_cast<uint32_t>(upstreams_.size()));
      for (uint32_t i = 0; i < backend.endpoints.size(); ++i) {
        UpstreamKey key = upstreamKey(backend, i);
        auto& slot = upstreamMap[key];
        if (!slot) {
          if (auto old = upstreamMap_.find(key); old != upstreamMap_.end()) {
            slot = std::move(old->second);
          } else {
            slot = std::make_unique<UpstreamStats>();
            std::tie(slot->service, slot->port, slot->endpoint) = std::move(key);
          }
        }
        upstreams_.push_back(slot.get());
      }
    }
  }
  // What the new table has no use for: gone from /metrics now, freed once unused.
  for (auto& [key, stats] : routeMap_) {
    if (stats) retiredRoutes_.push_back(std::move(stats));
  }
  for (auto& [key, stats] : upstreamMap_) {
    if (stats) retiredUpstreams_.push_back(std::move(stats));
  }
  routeMap_ = std::move(routeMap);
  upstreamMap_ = std::move(upstreamMap);
  std::erase_if(retiredRoutes_, [](const auto& s) { return s->inFlight.get() == 0; });
  std::erase_if(retiredUpstreams_,
                [](const auto& s) { return s->inFlight.get() == 0 && s->open.get() == 0; });
}

UpstreamStats* WorkerStats::upstream(const RouteTable* table, const Backend& backend,
                                     uint32_t index) const {
  if (table == table_) return upstreams_[backendOffset_[backend.id] + index];
  // A request that began before the last swap: its endpoint's stats if the new table kept them.
  auto found = upstreamMap_.find(upstreamKey(backend, index));
  return found == upstreamMap_.end() ? nullptr : found->second.get();
}

void WorkerStats::reap() {
  if (retiredRoutes_.empty() && retiredUpstreams_.empty()) return;
  std::erase_if(retiredRoutes_, [](const auto& s) { return s->inFlight.get() == 0; });
  std::erase_if(retiredUpstreams_,
                [](const auto& s) { return s->inFlight.get() == 0 && s->open.get() == 0; });
}

void WorkerStats::collect(std::map<RouteKey, RouteSample>& routes,
                          std::map<UpstreamKey, UpstreamSample>& upstreams) const {
  std::lock_guard lock(mutex_);
  for (const auto& [key, stats] : routeMap_) {
    RouteSample& sample = routes[key];
    sample.traffic.add(stats->traffic);
    sample.inFlight += stats->inFlight.get();
  }
  for (const auto& [key, stats] : upstreamMap_) {
    UpstreamSample& sample = upstreams[key];
    sample.traffic.add(stats->traffic);
    sample.open += stats->open.get();
  }
}

IngressStats mergeStats(std::map<WorkerStats::RouteKey, RouteSample> routes,
                        std::map<WorkerStats::UpstreamKey, UpstreamSample> upstreams) {
  IngressStats out;
  for (auto& [key, sample] : routes) {
    std::tie(sample.ingress, sample.host, sample.path) = key;
    out.routes.push_back(std::move(sample));
  }
  for (auto& [key, sample] : upstreams) {
    std::tie(sample.service, sample.port, sample.endpoint) = key;
    out.upstreams.push_back(std::move(sample));
  }
  return out;
}

void RequestRecorder::begin(Clock::time_point now, bool logged) {
  active_ = true;
  logged_ = logged;
  status_ = 0;
  start_ = now;
  bytesIn_ = 0;
  bytesOut_ = 0;
  route_ = nullptr;
  upstream_ = nullptr;
  if (logged) {
    fields_.clear();
    fieldEnd_.fill(0);
  }
}

std::string_view RequestRecorder::field(Field f) const {
  const uint32_t begin = f == 0 ? 0 : fieldEnd_[f - 1];
  return std::string_view(fields_).substr(begin, fieldEnd_[f] - begin);
}

void RequestRecorder::head(std::string_view method, std::string_view target, uint8_t minorVersion,
                           std::string_view host, std::string_view userAgent,
                           std::string_view referer, std::string_view requestId) {
  minorVersion_ = minorVersion;
  fields_.clear();
  size_t i = 0;
  for (std::string_view value : {method, target, host, userAgent, referer, requestId}) {
    fields_.append(value);
    fieldEnd_[i++] = static_cast<uint32_t>(fields_.size());
  }
}

void RequestRecorder::generatedRequestId(std::string_view id) {
  // The request id is the last field: one the client did not send is appended in place.
  if (logged_ && field(kRequestId).empty()) {
    fields_.append(id);
    fieldEnd_[kRequestId] = static_cast<uint32_t>(fields_.size());
  }
}

void RequestRecorder::route(RouteStats* stats) {
  route_ = stats;
  if (stats) stats->inFlight.add(1);
}

void RequestRecorder::upstream(UpstreamStats* stats, Clock::time_point now) {
  if (upstream_ == nullptr) upstreamStart_ = now;
  if (upstream_) upstream_->inFlight.sub(1);
  upstream_ = stats;
  if (stats) stats->inFlight.add(1);
}

void RequestRecorder::end(Clock::time_point now, std::string_view client, AccessLogBuffer& log) {
  if (!active_) return;
  active_ = false;
  const std::chrono::nanoseconds duration = now - start_;
  const std::chrono::nanoseconds upstreamTime =
      upstream_ ? std::chrono::nanoseconds(now - upstreamStart_) : std::chrono::nanoseconds(-1);
  if (route_) {
    route_->traffic.record(status_, bytesIn_, bytesOut_, duration);
    route_->inFlight.sub(1);
  }
  if (upstream_) {
    upstream_->traffic.record(status_, bytesIn_, bytesOut_, upstreamTime);
    upstream_->inFlight.sub(1);
  }
  if (logged_ && log.enabled()) {
    AccessLogEntry entry;
    entry.time = std::chrono::system_clock::now();
    entry.client = client;
    entry.method = field(kMethod);
    entry.target = field(kTarget);
    entry.minorVersion = minorVersion_;
    entry.status = status_;
    entry.bytesSent = bytesOut_;
    entry.duration = duration;
    if (upstream_) entry.upstream = upstream_->endpoint;
    entry.upstreamTime = upstreamTime;
    entry.host = field(kHost);
    if (route_) entry.route = route_->ingress;
    entry.requestId = field(kRequestId);
    entry.userAgent = field(kUserAgent);
    entry.referer = field(kReferer);
    log.log(entry);
  }
}

}  // namespace capstan::l7
