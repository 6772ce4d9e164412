#include "model/endpoint.h"

#include <algorithm>

namespace capstan {

std::vector<Endpoint> endpointsForPort(std::span<const std::shared_ptr<const EndpointSlice>> slices,
                                       std::string_view portName, Protocol protocol,
                                       std::string_view nodeName) {
  std::vector<const EndpointSlice*> ordered;
  ordered.reserve(slices.size());
  for (const auto& slice : slices) ordered.push_back(slice.get());
  std::sort(ordered.begin(), ordered.end(),
            [](const EndpointSlice* a, const EndpointSlice* b) { return a->name < b->name; });

  std::vector<Endpoint> out;
  for (const EndpointSlice* slice : ordered) {
    if (slice->addressType == AddressType::kFQDN) continue;
    for (const EndpointSlicePort& slicePort : slice->ports) {
      if (slicePort.name != portName || slicePort.protocol != protocol || !slicePort.port) continue;
      for (const EndpointSliceEndpoint& e : slice->endpoints) {
        if (e.addresses.empty()) continue;
        Endpoint ep;
        ep.ip = e.addresses.front();
        ep.port = *slicePort.port;
        ep.ready = e.conditions.ready.value_or(true);
        ep.serving = e.conditions.serving.value_or(true);
        ep.terminating = e.conditions.terminating.value_or(false);
        ep.isLocal = !e.nodeName.empty() && e.nodeName == nodeName;
        ep.nodeName = e.nodeName;
        ep.zone = e.zone;
        ep.zoneHints = e.zoneHints;
        ep.nodeHints = e.nodeHints;
        out.push_back(std::move(ep));
      }
    }
  }

  // Sort by identity, keeping first-seen order among duplicates, then keep one copy of each: the
  // first, unless a later copy is local (kube-proxy: "we favor a true value here if it exists").
  std::stable_sort(out.begin(), out.end(), [](const Endpoint& a, const Endpoint& b) {
    return std::tie(a.ip, a.port) < std::tie(b.ip, b.port);
  });
  size_t kept = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (kept > 0 && out[kept - 1].ip == out[i].ip && out[kept - 1].port == out[i].port) {
      if (out[i].isLocal && !out[kept - 1].isLocal) out[kept - 1] = std::move(out[i]);
      continue;
    }
    if (kept != i) out[kept] = std::move(out[i]);
    ++kept;
  }
  out.resize(kept);
  // The list lives as long as its snapshot: drop the growth slack (a third of the memory of
  // 10-endpoint ports otherwise).
  out.shrink_to_fit();
  return out;
}

}  // namespace capstan
