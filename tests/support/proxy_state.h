// Building ProxyState snapshots in unit tests from a test's own service descriptions.
// Header-only.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/proxy_state.h"

namespace capstan::support {

// A snapshot (generation 1, node `node`) of the ports `portsOf(spec)` gives for every spec, in
// the order ProxyState expects (sorted by name).
template <typename Spec, typename PortsOf>
std::shared_ptr<ProxyState> stateOf(const std::vector<Spec>& specs, PortsOf&& portsOf,
                                    const std::string& node = "node-a") {
  ServicePortList ports;
  for (const Spec& s : specs) {
    auto p = portsOf(s);
    ports.insert(ports.end(), p.begin(), p.end());
  }
  std::sort(ports.begin(), ports.end(),
            [](const auto& a, const auto& b) { return a->name < b->name; });
  return std::make_shared<ProxyState>(1, NodeInfo{.name = node}, std::move(ports), IngressState{});
}

}  // namespace capstan::support
