// DpdkProxier: --proxy-mode=dpdk. Runs the userspace L4 load balancer (the DPDK shell around the
// packet core) and keeps its VipTable in step with the ProxyState.
//
// The first sync initialises the EAL, opens the ports, creates the Shell, publishes the first
// VipTable and starts the packet loops; every later sync builds a whole new VipTable and publishes
// it (there is nothing partial to do: a table is cheap to build and is swapped atomically). A
// failed first sync leaves nothing started and is retried by the next sync. The daemon calls
// everything from its control thread, which becomes DPDK's main lcore.
//
// Nothing outlives the process (no kernel state is programmed), so cleanup() has nothing to do.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/dpdk/port.h"
#include "dataplane/dpdk/shell.h"
#include "dataplane/vip_table.h"
#include "model/ip.h"
#include "model/proxier.h"

namespace capstan::dataplane::dpdk {

struct DpdkProxierConfig {
  std::string ealArgs;        // --dpdk-eal-args
  std::string port;           // --dpdk-port: the data port's device (see port.h)
  std::string exceptionPort;  // --dpdk-exception-port; empty: kernel frames are dropped
  uint32_t workers = 1;       // --dpdk-workers: worker lcores, one queue pair each per port
  // --dpdk-nat-address: the node's dataplane addresses, one per family at most. NATed packets
  // leave from them, and NodePorts are served on them.
  std::optional<IpAddress> natAddressV4;
  std::optional<IpAddress> natAddressV6;
  std::optional<std::array<uint8_t, 6>> nextHopMac;  // --dpdk-next-hop-mac
  bool serveClusterIPs = false;                      // --dpdk-serve-cluster-ips
  uint32_t exitWhenIdlePolls = 0;                    // --dpdk-exit-when-idle
};

class DpdkProxier : public Proxier {
 public:
  explicit DpdkProxier(DpdkProxierConfig config);
  // Stops the loops, then closes every port before any is destroyed (port.h).
  ~DpdkProxier() override;

  std::string_view name() const override { return "dpdk"; }
  // SyncStats::rulesWritten counts VIPs; VipTable problems come back as SyncStats::warnings.
  SyncResult sync(const ProxyState& state, const ChangeSet& changes) override;
  // The VIP table sync() would publish, one VIP a line with its endpoints. Touches no DPDK.
  Result<std::string> render(const ProxyState& state) const override;
  Status cleanup() override { return okStatus(); }
  std::optional<std::string> finished() override;

  // The shell's counters, one line (for the log).
  std::string countersSummary() const;

 private:
  VipTableConfig vipTableConfig() const;
  Status start();

  DpdkProxierConfig config_;
  std::unique_ptr<Port> data_;
  std::unique_ptr<Port> exception_;
  std::unique_ptr<Shell> shell_;
  bool started_ = false;
};

// The text render() prints for `table`.
std::string describeVipTable(const VipTable& table);

}  // namespace capstan::dataplane::dpdk
