#include "control/proxier_factory.h"

namespace capstan::control {

std::vector<ProxyMode> builtProxyModes() { return {ProxyMode::kNone}; }

std::string builtModeNames() {
  std::string out;
  for (ProxyMode m : builtProxyModes()) out += (out.empty() ? "" : ",") + std::string(toString(m));
  return out;
}

Result<std::unique_ptr<Proxier>> makeProxier(const Config& config) {
  switch (config.mode) {
    case ProxyMode::kNone:
      return std::unique_ptr<Proxier>();
    case ProxyMode::kIptables:
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
