#include "control/proxier_factory.h"

#include "iptables/iptables_proxier.h"

namespace capstan::control {

std::vector<ProxyMode> builtProxyModes() { return {ProxyMode::kIptables, ProxyMode::kNone}; }

std::string builtModeNames() {
  std::string out;
  for (ProxyMode m : builtProxyModes()) out += (out.empty() ? "" : ",") + std::string(toString(m));
  return out;
}

Result<std::unique_ptr<Proxier>> makeProxier(const Config& config) {
  switch (config.mode) {
    case ProxyMode::kNone:
      return std::unique_ptr<Proxier>();
    case ProxyMode::kIptables: {
      iptables::IptablesConfig c;
      c.clusterCIDRs = config.clusterCIDRs;
      c.masqueradeAll = config.masqueradeAll;
      c.nodePortAddresses = config.nodePortAddresses;
      c.localhostNodePorts = config.iptablesLocalhostNodePorts;
      return std::unique_ptr<Proxier>(std::make_unique<iptables::IptablesProxier>(
          std::move(c), iptables::makeExecRunner(config.iptablesBackend)));
    }
    case ProxyMode::kNftables:
    case ProxyMode::kIpvs:
    case ProxyMode::kDpdk:
      break;
  }
  std::string built;
  for (ProxyMode m : builtProxyModes())
    built += (built.empty() ? "" : ", ") + std::string(toString(m));
  return Error("--proxy-mode: " + std::string(toString(config.mode)) +
               " is not available in this build of Capstan (available: " + built + ")");
}

}  // namespace capstan::control
