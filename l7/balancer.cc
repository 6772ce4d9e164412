#include "l7/balancer.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "l7/http1/grammar.h"
#include "model/hash.h"

namespace capstan::l7 {

namespace {

constexpr uint64_t kHashSeed = 0x6361707374616e31;  // "capstan1": part of the wire behaviour

bool isPrime(uint32_t n) {
  if (n < 2) return false;
  for (uint32_t d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

// Maglev's M: prime, above 100 x N so a change of the endpoint set moves close to the minimum
// of keys (model/maglev.h), and no larger than needed (the table is built per worker on first
// use).
uint32_t maglevSize(size_t endpoints) {
  uint64_t want = std::max<uint64_t>(257, uint64_t{100} * endpoints);
  want = std::min<uint64_t>(want, MaglevTable::kMaxSize - 3);
  auto n = static_cast<uint32_t>(want);
  while (!isPrime(n)) ++n;
  return n;
}

// RFC 6265 5.4: the Cookie header is "name=value" pairs separated by "; "; a client may send
// several Cookie fields (HTTP/2 splits them), so every one is searched.
std::optional<std::string_view> findCookie(std::span<const http1::Header> headers,
                                           std::string_view name) {
  for (const http1::Header& header : headers) {
    if (!http1::equalsIgnoreCase(header.name, "cookie")) continue;
    std::string_view rest = header.value;
    while (!rest.empty()) {
      size_t end = rest.find(';');
      std::string_view pair = http1::trimOws(rest.substr(0, end));
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
      size_t eq = pair.find('=');
      if (eq == std::string_view::npos) continue;
      if (http1::trimOws(pair.substr(0, eq)) == name) return http1::trimOws(pair.substr(eq + 1));
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<uint64_t> requestHashKey(const LoadBalancePolicy& policy,
                                       std::span<const http1::Header> headers,
                                       const IpAddress& client) {
  switch (policy.kind) {
    case LoadBalanceKind::kRoundRobin:
    case LoadBalanceKind::kLeastRequest:
      return std::nullopt;
    case LoadBalanceKind::kHashHeader:
      for (const http1::Header& header : headers) {
        if (http1::equalsIgnoreCase(header.name, policy.key)) {
          return stableHash64(header.value, kHashSeed);
        }
      }
      return std::nullopt;
    case LoadBalanceKind::kHashCookie:
      if (auto value = findCookie(headers, policy.key)) return stableHash64(*value, kHashSeed);
      return std::nullopt;
    case LoadBalanceKind::kHashClientIp: {
      const auto& bytes = client.bytes();
      return stableHash64(
          std::string_view(reinterpret_cast<const char*>(bytes.data()), client.byteLength()),
          kHashSeed);
    }
  }
  return std::nullopt;
}

size_t RouteEndpointHash::operator()(const RouteEndpoint& e) const {
  uint64_t words[2];
  std::memcpy(words, e.ip.bytes().data(), sizeof(words));
  return mixHash64(words[0] ^ mixHash64(words[1] ^ (uint64_t{e.port} << 8) ^
                                        static_cast<uint64_t>(e.ip.family())));
}

Balancer::Balancer(HealthOptions options, uint64_t seed) : options_(options), random_(seed) {}

void Balancer::setTable(std::shared_ptr<const RouteTable> table) {
  std::unordered_map<RouteEndpoint, std::shared_ptr<EndpointHealth>, RouteEndpointHash> endpoints;
  std::vector<BackendState> backends(table ? table->backends().size() : 0);
  if (table) {
    for (const Backend& backend : table->backends()) {
      BackendState& state = backends[backend.id];
      state.endpoints.reserve(backend.endpoints.size());
      for (const RouteEndpoint& endpoint : backend.endpoints) {
        auto& slot = endpoints[endpoint];
        if (!slot) {
          auto old = endpoints_.find(endpoint);
          slot = old != endpoints_.end() ? old->second : std::make_shared<EndpointHealth>();
        }
        state.endpoints.push_back(slot.get());
      }
    }
  }
  endpoints_ = std::move(endpoints);
  backends_ = std::move(backends);
  table_ = std::move(table);
}

bool Balancer::usable(const EndpointHealth& state, Clock::time_point now, bool panic) const {
  return panic || state.ejectedUntil <= now;
}

uint32_t Balancer::leastRequest(const BackendState& backend, Clock::time_point now, bool panic,
                                uint32_t avoid) {
  const auto n = static_cast<uint32_t>(backend.endpoints.size());
  // The usable endpoint at or after `start` (wrapping), skipping `skip`; kNone if none.
  auto probe = [&](uint32_t start, uint32_t skip) {
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t index = (start + i) % n;
      if (index == skip || index == avoid) continue;
      if (usable(*backend.endpoints[index], now, panic)) return index;
    }
    return kNone;
  };
  uint32_t first = probe(static_cast<uint32_t>(random_() % n), kNone);
  if (first == kNone) return kNone;
  uint32_t second = probe(static_cast<uint32_t>(random_() % n), first);
  if (second == kNone) return first;
  return backend.endpoints[second]->inFlight < backend.endpoints[first]->inFlight ? second : first;
}

void Balancer::buildMaglev(const Backend& backend, BackendState& state) {
  const size_t n = backend.endpoints.size();
  std::vector<MaglevBackend> names;
  names.reserve(n);
  for (const RouteEndpoint& endpoint : backend.endpoints) names.push_back({endpoint.toString(), 1});
  // Names are unique (a backend's endpoints are distinct) and the size is prime and > N.
  auto built = MaglevTable::build(names, maglevSize(n));
  state.maglev =
      std::make_unique<MaglevTable>(built.ok() ? std::move(built).value() : MaglevTable());
  // Maglev indexes its backends sorted by name.
  state.maglevEndpoint.assign(state.maglev->backends().size(), 0);
  for (uint32_t sorted = 0; sorted < state.maglevEndpoint.size(); ++sorted) {
    const std::string& name = state.maglev->backends()[sorted].name;
    auto it = std::find_if(names.begin(), names.end(),
                           [&](const MaglevBackend& b) { return b.name == name; });
    state.maglevEndpoint[sorted] = static_cast<uint32_t>(it - names.begin());
  }
}

uint32_t Balancer::pick(const Route& route, std::optional<uint64_t> hashKey, Clock::time_point now,
                        uint32_t avoid) {
  const Backend& backend = *route.backend;
  const auto n = static_cast<uint32_t>(backend.endpoints.size());
  if (n == 0 || backend.id >= backends_.size()) return kNone;
  if (n == 1) return 0;
  BackendState& state = backends_[backend.id];
  const LoadBalanceKind kind =
      route.loadBalance ? route.loadBalance->kind : LoadBalanceKind::kLeastRequest;
  for (bool panic : {false, true}) {
    if (hashKey && kind != LoadBalanceKind::kRoundRobin && kind != LoadBalanceKind::kLeastRequest) {
      if (!state.maglev) buildMaglev(backend, state);
      uint32_t sorted = state.maglev->lookup(*hashKey);
      if (sorted != MaglevTable::kNoBackend) {
        uint32_t index = state.maglevEndpoint[sorted];
        if (index != avoid && usable(*state.endpoints[index], now, panic)) return index;
      }
    }
    if (kind == LoadBalanceKind::kRoundRobin) {
      for (uint32_t i = 0; i < n; ++i) {
        uint32_t index = state.cursor++ % n;
        if (index != avoid && usable(*state.endpoints[index], now, panic)) return index;
      }
    } else if (uint32_t index = leastRequest(state, now, panic, avoid); index != kNone) {
      return index;
    }
  }
  return avoid < n ? avoid : 0;
}

Balancer::Lease Balancer::started(const Backend& backend, uint32_t endpoint) {
  Lease lease;
  auto it = endpoints_.find(backend.endpoints[endpoint]);
  if (it == endpoints_.end()) return lease;
  lease.state_ = it->second;
  ++lease.state_->inFlight;
  return lease;
}

bool Balancer::finished(Lease lease, Outcome outcome, Clock::time_point now) {
  if (!lease) return false;
  EndpointHealth& state = *lease.state_;
  --state.inFlight;
  switch (outcome) {
    case Outcome::kNotCounted:
      return false;
    case Outcome::kSuccess:
      state.failures = 0;
      if (state.ejectedUntil <= now) state.ejectionsInRow = 0;
      return false;
    case Outcome::kFailure:
      if (options_.consecutiveFailures == 0) return false;
      if (++state.failures < options_.consecutiveFailures) return false;
      state.failures = 0;
      {
        auto backoff = options_.baseEjection * (int64_t{1} << std::min(state.ejectionsInRow, 20u));
        state.ejectedUntil =
            now + std::min<std::chrono::milliseconds>(backoff, options_.maxEjection);
      }
      ++state.ejectionsInRow;
      ++ejections_;
      return true;
  }
  return false;
}

bool Balancer::ejected(const RouteEndpoint& endpoint, Clock::time_point now) const {
  auto it = endpoints_.find(endpoint);
  return it != endpoints_.end() && it->second->ejectedUntil > now;
}

uint32_t Balancer::inFlight(const RouteEndpoint& endpoint) const {
  auto it = endpoints_.find(endpoint);
  return it == endpoints_.end() ? 0 : it->second->inFlight;
}

}  // namespace capstan::l7
