#include "model/conntrack_cleanup.h"

#include <algorithm>
#include <tuple>
#include <utility>

namespace capstan {

std::string ConntrackFilter::toString() const {
  std::string out(capstan::toString(family));
  out += " ";
  out += capstan::toString(protocol);
  if (origDst) out += " orig-dst=" + origDst->toString();
  if (origDstPort) out += " orig-dport=" + std::to_string(*origDstPort);
  if (replySrc) out += " reply-src=" + replySrc->toString();
  if (!origDst && !origDstPort && !replySrc) out += " (every entry)";
  return out;
}

// --- ConntrackFilterSet ---

namespace {

// Orders filters by one key field (origDst or origDstPort) and then the reply source, so that the
// filters an entry may match are two runs: those with its reply source and those with none. The
// runs differ only in family, protocol or port, so they are short.
template <typename Key, std::optional<Key> ConntrackFilter::*kField>
struct ByKeyThenReply {
  struct Probe {
    const Key& key;
    const std::optional<IpAddress>& replySrc;
  };
  static auto tie(const ConntrackFilter& f) { return std::tie(*(f.*kField), f.replySrc); }
  static auto tie(const Probe& p) { return std::tie(p.key, p.replySrc); }
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return tie(a) < tie(b);
  }
};

using ByDst = ByKeyThenReply<IpAddress, &ConntrackFilter::origDst>;
using ByPort = ByKeyThenReply<uint16_t, &ConntrackFilter::origDstPort>;

}  // namespace

ConntrackFilterSet::ConntrackFilterSet(std::span<const ConntrackFilter> filters) {
  for (const ConntrackFilter& f : filters) {
    if (f.origDst) {
      byDst_.push_back(f);
    } else if (f.origDstPort) {
      byPort_.push_back(f);
    } else {
      rest_.push_back(f);
    }
  }
  std::sort(byDst_.begin(), byDst_.end(), ByDst());
  std::sort(byPort_.begin(), byPort_.end(), ByPort());
}

bool ConntrackFilterSet::matchesOne(const ConntrackFilter& f, const ConntrackEntryKey& e) {
  return f.family == e.family && f.protocol == e.protocol &&
         (!f.origDst || *f.origDst == e.origDst) &&
         (!f.origDstPort || *f.origDstPort == e.origDstPort) &&
         (!f.replySrc || *f.replySrc == e.replySrc);
}

bool ConntrackFilterSet::matches(const ConntrackEntryKey& entry) const {
  auto anyIn = [&](auto range) {
    return std::any_of(range.first, range.second,
                       [&](const ConntrackFilter& f) { return matchesOne(f, entry); });
  };
  const std::optional<IpAddress> reply = entry.replySrc;
  for (const std::optional<IpAddress>& r : {std::optional<IpAddress>(), reply}) {
    if (anyIn(std::equal_range(byDst_.begin(), byDst_.end(), ByDst::Probe{entry.origDst, r},
                               ByDst()))) {
      return true;
    }
    if (anyIn(std::equal_range(byPort_.begin(), byPort_.end(), ByPort::Probe{entry.origDstPort, r},
                               ByPort()))) {
      return true;
    }
  }
  return std::any_of(rest_.begin(), rest_.end(),
                     [&](const ConntrackFilter& f) { return matchesOne(f, entry); });
}

// --- staleConntrackFilters ---

namespace {

// Where a client's datagram enters a service port: VIP:port, or the NodePort on any address.
struct Frontend {
  std::optional<IpAddress> ip;
  uint16_t port = 0;
  bool operator==(const Frontend&) const = default;
};

using EndpointKey = std::pair<IpAddress, uint16_t>;

// Only UDP ports of Services kube-proxy programs at all.
bool relevant(const ServicePort* port) {
  return port != nullptr && port->name.protocol == Protocol::kUDP && port->service->isProxied();
}

// The frontends of `port` in `family` and the endpoints that flows through them may reach: the
// selected ones, and those still serving (a terminating endpoint left out of the selection keeps
// its established flows, as with kube-proxy: that is graceful termination). All empty when the
// Service has no ClusterIP of that family (kube-proxy's proxier for that family skips it).
// `active`: whether new flows reach any endpoint (the selection is not empty).
void collect(const ServicePort& port, IpFamily family, std::vector<Frontend>& frontends,
             std::vector<EndpointKey>& endpoints, bool& active) {
  const Service& svc = *port.service;
  const IpAddress* clusterIP = svc.clusterIP(family);
  if (clusterIP == nullptr) return;
  uint16_t servicePort = port.spec.port;
  frontends.push_back({*clusterIP, servicePort});
  for (const auto* ips : {&svc.externalIPs, &svc.loadBalancerIPs}) {
    for (const IpAddress& ip : *ips) {
      if (ip.family() == family) frontends.push_back({ip, servicePort});
    }
  }
  if (port.spec.nodePort != 0) frontends.push_back({std::nullopt, port.spec.nodePort});
  const std::vector<uint32_t>& selected = port.selectionFor(family).allReachable;
  active = !selected.empty();
  for (uint32_t i : selected) endpoints.emplace_back(port.endpoints[i].ip, port.endpoints[i].port);
  for (const Endpoint& ep : port.endpoints) {
    if (ep.ip.family() == family && ep.serving) endpoints.emplace_back(ep.ip, ep.port);
  }
  std::sort(endpoints.begin(), endpoints.end());
  endpoints.erase(std::unique(endpoints.begin(), endpoints.end()), endpoints.end());
}

bool contains(const std::vector<Frontend>& set, const Frontend& f) {
  return std::find(set.begin(), set.end(), f) != set.end();
}

ConntrackFilter filterFor(IpFamily family, const Frontend& frontend,
                          std::optional<IpAddress> replySrc = std::nullopt) {
  return ConntrackFilter{family, Protocol::kUDP, frontend.ip, frontend.port, std::move(replySrc)};
}

// The filters for one service port that is new (`before` null), gone (`after` null) or changed.
void diffPort(const ServicePort* before, const ServicePort* after,
              std::vector<ConntrackFilter>& out) {
  if (!relevant(before)) before = nullptr;
  if (!relevant(after)) after = nullptr;
  if (before == nullptr && after == nullptr) return;
  std::vector<Frontend> frontsBefore, frontsAfter;
  std::vector<EndpointKey> epsBefore, epsAfter;
  std::vector<IpAddress> gone;
  for (IpFamily family : {IpFamily::kV4, IpFamily::kV6}) {
    frontsBefore.clear();
    frontsAfter.clear();
    epsBefore.clear();
    epsAfter.clear();
    gone.clear();
    bool activeBefore = false, activeAfter = false;
    if (before != nullptr) collect(*before, family, frontsBefore, epsBefore, activeBefore);
    if (after != nullptr) collect(*after, family, frontsAfter, epsAfter, activeAfter);

    for (const Frontend& f : frontsBefore) {
      if (!contains(frontsAfter, f)) out.push_back(filterFor(family, f));
    }
    if (activeAfter) {
      for (const Frontend& f : frontsAfter) {
        if (!activeBefore || !contains(frontsBefore, f)) out.push_back(filterFor(family, f));
      }
    }
    // Endpoints are compared as IP:port (a changed targetPort makes the old flows stale too), but
    // conntrack is filtered by the endpoint's IP alone, as kube-proxy does.
    for (auto b = epsBefore.begin(), a = epsAfter.begin(); b != epsBefore.end();) {
      if (a == epsAfter.end() || *b < *a) {
        if (gone.empty() || gone.back() != b->first) gone.push_back(b->first);
        ++b;
      } else if (*a < *b) {
        ++a;
      } else {
        ++a;
        ++b;
      }
    }
    if (gone.empty()) continue;
    for (const Frontend& f : frontsAfter) {
      if (!contains(frontsBefore, f)) continue;  // new: nothing went through it to anyone
      for (const IpAddress& ip : gone) out.push_back(filterFor(family, f, ip));
    }
  }
}

}  // namespace

std::vector<ConntrackFilter> staleConntrackFilters(const ProxyState& before,
                                                   const ProxyState& after) {
  std::vector<ConntrackFilter> out;
  const ServicePortList& b = before.servicePorts();
  const ServicePortList& a = after.servicePorts();
  size_t i = 0, j = 0;
  // A merge of the two sorted lists. Unchanged ports are the same object in both snapshots:
  // that one pointer comparison is all they cost.
  while (i < b.size() && j < a.size()) {
    if (b[i] == a[j]) {
      ++i;
      ++j;
      continue;
    }
    auto order = b[i]->name <=> a[j]->name;
    if (order < 0) {
      diffPort(b[i++].get(), nullptr, out);
    } else if (order > 0) {
      diffPort(nullptr, a[j++].get(), out);
    } else {
      diffPort(b[i++].get(), a[j++].get(), out);
    }
  }
  for (; i < b.size(); ++i) diffPort(b[i].get(), nullptr, out);
  for (; j < a.size(); ++j) diffPort(nullptr, a[j].get(), out);

  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  // A filter without reply source sorts right before the narrower ones for the same frontend
  // (an unset optional is the smallest), and takes their entries too: drop those.
  const ConntrackFilter* wide = nullptr;
  auto absorbed = [&](const ConntrackFilter& f) {
    if (!f.replySrc) {
      wide = &f;
      return false;
    }
    return wide != nullptr && wide->family == f.family && wide->protocol == f.protocol &&
           wide->origDst == f.origDst && wide->origDstPort == f.origDstPort;
  };
  std::vector<ConntrackFilter> kept;
  kept.reserve(out.size());
  for (const ConntrackFilter& f : out) {
    if (!absorbed(f)) kept.push_back(f);
  }
  return kept;
}

}  // namespace capstan
