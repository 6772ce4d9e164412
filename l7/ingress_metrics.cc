#include "l7/ingress_metrics.h"

#include <algorithm>
#include <atomic>

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

RouteLabels routeLabels(const Route& route) {
  return {route.ingressName().toString(), std::string(route.host), std::string(route.path)};
}

UpstreamLabels upstreamLabels(const Backend& backend, uint32_t index) {
  return {backend.servicePort.service.toString(), backend.servicePort.port,
          backend.endpoints[index].toString()};
}

// Sorts `keys` (label sets with the index of what has them), keeps each label set once in
// `slots`, and says for each index its slot in `slotOf`.
template <class Labels>
void assignSlots(std::vector<std::pair<Labels, uint32_t>> keys, std::vector<Labels>& slots,
                 std::vector<uint32_t>& slotOf) {
  std::sort(keys.begin(), keys.end());
  slotOf.resize(keys.size());
  for (auto& [labels, index] : keys) {
    if (slots.empty() || slots.back() != labels) slots.push_back(std::move(labels));
    slotOf[index] = static_cast<uint32_t>(slots.size() - 1);
  }
}

// For each slot of `now`, the slot of `before` with the same labels, or -1 (both sorted).
template <class Labels>
std::vector<int32_t> matchSlots(const std::vector<Labels>& now, const std::vector<Labels>* before) {
  std::vector<int32_t> out(now.size(), -1);
  if (before == nullptr) return out;
  size_t j = 0;
  for (size_t i = 0; i < now.size(); ++i) {
    while (j < before->size() && (*before)[j] < now[i]) ++j;
    if (j < before->size() && (*before)[j] == now[i]) out[i] = static_cast<int32_t>(j);
  }
  return out;
}

// Moves the stats of `old` (slots of `before`) to their slots of `now` in `out`, what has no
// slot there to `left`, and creates the stats of the new slots.
template <class Stats, class Labels>
void carryOver(std::vector<std::unique_ptr<Stats>>& old, const std::vector<int32_t>& fromPrevious,
               bool follows, const std::vector<Labels>* before, const std::vector<Labels>& now,
               std::vector<std::unique_ptr<Stats>>& out,
               std::vector<std::unique_ptr<Stats>>& left) {
  out.resize(now.size());
  if (follows) {
    for (size_t k = 0; k < now.size(); ++k) {
      if (fromPrevious[k] >= 0) out[k] = std::move(old[static_cast<size_t>(fromPrevious[k])]);
    }
  } else if (before != nullptr) {
    // Published out of order: match by labels.
    const std::vector<int32_t> match = matchSlots(*before, &now);
    for (size_t j = 0; j < old.size(); ++j) {
      if (match[j] >= 0) out[static_cast<size_t>(match[j])] = std::move(old[j]);
    }
  }
  for (size_t k = 0; k < now.size(); ++k) {
    if (!out[k]) out[k] = std::make_unique<Stats>();
    out[k]->labels = &now[k];
  }
  for (auto& stats : old) {
    if (stats) left.push_back(std::move(stats));
  }
}

bool unused(const RouteStats& s) { return s.inFlight.get() == 0; }
bool unused(const UpstreamStats& s) { return s.inFlight.get() == 0 && s.open.get() == 0; }

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

std::shared_ptr<const StatsLayout> StatsLayout::build(const RouteTable* table,
                                                      const StatsLayout* previous) {
  static std::atomic<uint64_t> ids{0};
  auto layout = std::make_shared<StatsLayout>();
  layout->id = ids.fetch_add(1) + 1;
  layout->previousId = previous ? previous->id : 0;
  layout->table = table;
  if (table != nullptr) {
    std::vector<std::pair<RouteLabels, uint32_t>> routeKeys;
    for (const Route& route : table->routes()) routeKeys.emplace_back(routeLabels(route), route.id);
    assignSlots(std::move(routeKeys), layout->routes, layout->routeSlot);
    std::vector<std::pair<UpstreamLabels, uint32_t>> upstreamKeys;
    for (const Backend& backend : table->backends()) {
      layout->backendOffset.push_back(static_cast<uint32_t>(upstreamKeys.size()));
      for (uint32_t i = 0; i < backend.endpoints.size(); ++i) {
        upstreamKeys.emplace_back(upstreamLabels(backend, i),
                                  static_cast<uint32_t>(upstreamKeys.size()));
      }
    }
    assignSlots(std::move(upstreamKeys), layout->upstreams, layout->endpointSlot);
  }
  layout->routeFromPrevious = matchSlots(layout->routes, previous ? &previous->routes : nullptr);
  layout->upstreamFromPrevious =
      matchSlots(layout->upstreams, previous ? &previous->upstreams : nullptr);
  return layout;
}

void WorkerStats::setLayout(std::shared_ptr<const StatsLayout> layout) {
  std::lock_guard lock(mutex_);
  const bool follows = layout_ && layout->previousId == layout_->id;
  Retired retired{layout_, {}, {}};
  std::vector<std::unique_ptr<RouteStats>> routes;
  std::vector<std::unique_ptr<UpstreamStats>> upstreams;
  carryOver(routes_, layout->routeFromPrevious, follows, layout_ ? &layout_->routes : nullptr,
            layout->routes, routes, retired.routes);
  carryOver(upstreams_, layout->upstreamFromPrevious, follows,
            layout_ ? &layout_->upstreams : nullptr, layout->upstreams, upstreams,
            retired.upstreams);
  routes_ = std::move(routes);
  upstreams_ = std::move(upstreams);
  layout_ = std::move(layout);
  if (!retired.routes.empty() || !retired.upstreams.empty()) retired_.push_back(std::move(retired));
  reap();
}

UpstreamStats* WorkerStats::upstream(const RouteTable* table, const Backend& backend,
                                     uint32_t index) const {
  if (table == layout_->table) {
    return upstreams_[layout_->endpointSlot[layout_->backendOffset[backend.id] + index]].get();
  }
  // A request that began before the last swap: its endpoint's stats if the new table kept them.
  const UpstreamLabels labels = upstreamLabels(backend, index);
  auto found = std::lower_bound(layout_->upstreams.begin(), layout_->upstreams.end(), labels);
  if (found == layout_->upstreams.end() || *found != labels) return nullptr;
  return upstreams_[static_cast<size_t>(found - layout_->upstreams.begin())].get();
}

void WorkerStats::reap() {
  for (Retired& r : retired_) {
    std::erase_if(r.routes, [](const auto& s) { return unused(*s); });
    std::erase_if(r.upstreams, [](const auto& s) { return unused(*s); });
  }
  std::erase_if(retired_, [](const Retired& r) { return r.routes.empty() && r.upstreams.empty(); });
}

void WorkerStats::collect(std::map<RouteLabels, RouteSample>& routes,
                          std::map<UpstreamLabels, UpstreamSample>& upstreams) const {
  std::lock_guard lock(mutex_);
  for (const auto& stats : routes_) {
    RouteSample& sample = routes[*stats->labels];
    sample.traffic.add(stats->traffic);
    sample.inFlight += stats->inFlight.get();
  }
  for (const auto& stats : upstreams_) {
    UpstreamSample& sample = upstreams[*stats->labels];
    sample.traffic.add(stats->traffic);
    sample.open += stats->open.get();
  }
}

IngressStats mergeStats(std::map<RouteLabels, RouteSample> routes,
                        std::map<UpstreamLabels, UpstreamSample> upstreams) {
  IngressStats out;
  for (auto& [labels, sample] : routes) {
    static_cast<RouteLabels&>(sample) = labels;
    out.routes.push_back(std::move(sample));
  }
  for (auto& [labels, sample] : upstreams) {
    static_cast<UpstreamLabels&>(sample) = labels;
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
    if (upstream_) entry.upstream = upstream_->labels->endpoint;
    entry.upstreamTime = upstreamTime;
    entry.host = field(kHost);
    if (route_) entry.route = route_->labels->ingress;
    entry.requestId = field(kRequestId);
    entry.userAgent = field(kUserAgent);
    entry.referer = field(kReferer);
    log.log(entry);
  }
}

}  // namespace capstan::l7
