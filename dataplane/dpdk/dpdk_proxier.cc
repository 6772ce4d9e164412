#include "dataplane/dpdk/dpdk_proxier.h"

#include <algorithm>
#include <chrono>
#include <tuple>

#include "dataplane/bytes.h"
#include "dataplane/dpdk/eal.h"

namespace capstan::dataplane::dpdk {

namespace {

IpAddress backendAddress(const Backend& backend, IpFamily family) {
  return family == IpFamily::kV4 ? IpAddress::v4(load32be(backend.address.data()))
                                 : IpAddress::v6(backend.address);
}

}  // namespace

std::string describeVipTable(const VipTable& table) {
  std::vector<const Vip*> vips;
  for (const Vip& vip : table.vips()) vips.push_back(&vip);
  // The table's order is its build order; print a stable one.
  std::sort(vips.begin(), vips.end(), [](const Vip* a, const Vip* b) {
    return std::tie(a->family, a->address, a->protocol, a->port) <
           std::tie(b->family, b->address, b->protocol, b->port);
  });
  std::string out = "# dpdk VIP table: " + std::to_string(vips.size()) +
                    (vips.size() == 1 ? " VIP\n" : " VIPs\n");
  for (const Vip* vip : vips) {
    out += vip->toString() + " " + std::string(toString(vip->kind)) + " " +
           vip->servicePort.toString();
    if (vip->clientIPAffinity) out += " affinity=ClientIP";
    for (const Cidr& range : vip->sourceRanges) out += " allow=" + range.toString();
    out += " ->";
    if (!vip->backends || vip->backends->backends.empty()) {
      out += vip->backends && vip->backends->hasAnyEndpoints ? " (no endpoint for this policy)"
                                                             : " (no endpoints)";
    } else {
      for (const Backend& b : vip->backends->backends) {
        out += " " + joinHostPort(backendAddress(b, vip->family), b.port);
      }
    }
    out += "\n";
  }
  return out;
}

DpdkProxier::DpdkProxier(DpdkProxierConfig config) : config_(std::move(config)) {}

DpdkProxier::~DpdkProxier() {
  if (shell_) shell_->stop();
  if (data_) data_->close();
  if (exception_) exception_->close();
  shell_.reset();
  exception_.reset();
  data_.reset();
}

VipTableConfig DpdkProxier::vipTableConfig() const {
  VipTableConfig c;
  if (config_.natAddressV4) c.nodePortAddresses.push_back(*config_.natAddressV4);
  if (config_.natAddressV6) c.nodePortAddresses.push_back(*config_.natAddressV6);
  c.serveClusterIPs = config_.serveClusterIPs;
  return c;
}

Status DpdkProxier::start() {
  if (Status st = Eal::init(config_.ealArgs); !st.ok()) {
    return st.error().withContext("--dpdk-eal-args");
  }
  const std::vector<unsigned> lcores = Eal::workerLcores();
  if (config_.workers == 0 || lcores.size() < config_.workers) {
    return Error("--dpdk-workers: " + std::to_string(config_.workers) +
                 " workers asked for, but the EAL has " + std::to_string(lcores.size()) +
                 " worker lcores (give more with -l or --lcores in --dpdk-eal-args)");
  }
  const auto queues = static_cast<uint16_t>(config_.workers);
  auto data = Port::open({.device = config_.port, .queues = queues});
  if (!data.ok()) return data.error().withContext("--dpdk-port");
  data_ = std::move(data).value();
  if (!config_.exceptionPort.empty()) {
    auto exception = Port::open({.device = config_.exceptionPort, .queues = queues});
    if (!exception.ok()) return exception.error().withContext("--dpdk-exception-port");
    exception_ = std::move(exception).value();
  }
  ShellConfig shellConfig;
  shellConfig.core.natAddressV4 = config_.natAddressV4;
  shellConfig.core.natAddressV6 = config_.natAddressV6;
  shellConfig.lcores.assign(lcores.begin(), lcores.begin() + config_.workers);
  shellConfig.exitWhenIdlePolls = config_.exitWhenIdlePolls;
  shellConfig.nextHopMac = config_.nextHopMac;
  auto shell = Shell::create(*data_, exception_.get(), shellConfig);
  if (!shell.ok()) return shell.error();
  shell_ = std::move(shell).value();
  return okStatus();
}

SyncResult DpdkProxier::sync(const ProxyState& state, const ChangeSet& changes) {
  (void)changes;  // every sync publishes a whole table
  if (!shell_) {
    if (Status st = start(); !st.ok()) {
      // Nothing half-started stays behind: the next sync starts over.
      shell_.reset();
      if (exception_) exception_->close();
      if (data_) data_->close();
      exception_.reset();
      data_.reset();
      return st.error();
    }
  }
  VipTable::BuildResult built = VipTable::build(state, vipTableConfig());
  SyncStats stats;
  stats.full = true;
  stats.servicePorts = state.servicePorts().size();
  stats.rulesWritten = built.table->size();
  stats.warnings = std::move(built.problems);
  const Status published = shell_->publish(built.table);
  if (!started_) {
    if (Status st = shell_->start(); !st.ok()) return st.error();
    started_ = true;
  }
  // A late grace period is not a failure of this sync: the table is in use all the same.
  if (!published.ok()) stats.warnings.push_back(published.error().message());
  return stats;
}

Result<std::string> DpdkProxier::render(const ProxyState& state) const {
  VipTable::BuildResult built = VipTable::build(state, vipTableConfig());
  std::string out = describeVipTable(*built.table);
  for (const std::string& problem : built.problems) out += "# problem: " + problem + "\n";
  return out;
}

std::optional<std::string> DpdkProxier::finished() {
  if (!started_ || !shell_ || shell_->running()) return std::nullopt;
  shell_->stop();
  return "the packet loops ended by themselves (--dpdk-exit-when-idle): " + countersSummary();
}

std::string DpdkProxier::countersSummary() const {
  if (!shell_) return "not started";
  const WorkerCounters c = shell_->counters().total();
  return "rx " + std::to_string(c.rxPackets) + " packets, forwarded " +
         std::to_string(c.core.forwarded) + ", to kernel " + std::to_string(c.core.toKernel) +
         ", dropped " + std::to_string(c.core.dropped) + ", new flows " +
         std::to_string(c.core.newFlows) + ", tx forwarded " + std::to_string(c.txForwarded) +
         ", tx to kernel " + std::to_string(c.txToKernel) + ", from kernel " +
         std::to_string(c.fromKernel) + ", tx full " + std::to_string(c.txFull) +
         ", no kernel port " + std::to_string(c.noKernelPort);
}

}  // namespace capstan::dataplane::dpdk
