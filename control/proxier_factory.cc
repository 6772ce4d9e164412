#include "control/proxier_factory.h"

#include "iptables/iptables_proxier.h"
#ifdef CAPSTAN_HAVE_DPDK
#include "dataplane/dpdk/dpdk_proxier.h"
#endif

namespace capstan::control {

std::vector<ProxyMode> builtProxyModes() {
#ifdef CAPSTAN_HAVE_DPDK
  return {ProxyMode::kIptables, ProxyMode::kDpdk, ProxyMode::kNone};
#else
  return {ProxyMode::kIptables, ProxyMode::kNone};
#endif
}

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
    case ProxyMode::kDpdk: {
#ifdef CAPSTAN_HAVE_DPDK
      dataplane::dpdk::DpdkProxierConfig c;
      c.ealArgs = config.dpdk.ealArgs;
      c.port = config.dpdk.port;
      c.exceptionPort = config.dpdk.exceptionPort;
      c.workers = config.dpdk.workers;
      for (const IpAddress& address : config.dpdk.natAddresses) {
        (address.isV4() ? c.natAddressV4 : c.natAddressV6) = address;
      }
      c.nextHopMac = config.dpdk.nextHopMac;
      c.serveClusterIPs = config.dpdk.serveClusterIPs;
      c.exitWhenIdlePolls = config.dpdk.exitWhenIdlePolls;
      return std::unique_ptr<Proxier>(std::make_unique<dataplane::dpdk::DpdkProxier>(std::move(c)));
#else
      break;
#endif
    }
    case ProxyMode::kNftables:
    case ProxyMode::kIpvs:
      break;
  }
  std::string built;
  for (ProxyMode m : builtProxyModes())
    built += (built.empty() ? "" : ", ") + std::string(toString(m));
  return Error("--proxy-mode: " + std::string(toString(config.mode)) +
               " is not available in this build of Capstan (available: " + built + ")");
}

}  // namespace capstan::control
