#include "dataplane/dpdk/port.h"

#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <atomic>
#include <cstring>

namespace capstan::dataplane::dpdk {
namespace {

// "net_pcap0,rx_pcap=a.pcap" -> "net_pcap0".
std::string deviceName(const std::string& spec) { return spec.substr(0, spec.find(',')); }

Error failed(const std::string& port, const char* what, int rc) {
  // Ethdev calls return -errno; a few set rte_errno instead and return -1.
  const int code = rc == -1 && rte_errno != 0 ? rte_errno : -rc;
  return Error("DPDK port " + port + ": " + what + ": " + rte_strerror(code));
}

}  // namespace

Result<std::unique_ptr<Port>> Port::open(const PortConfig& config) {
  if (config.device.empty()) return Error("--dpdk-port: empty device");
  if (config.queues == 0) return Error("DPDK port " + config.device + ": zero queues");
  std::unique_ptr<Port> port(new Port());
  port->name_ = deviceName(config.device);
  uint16_t id = 0;
  if (rte_eth_dev_get_port_by_name(port->name_.c_str(), &id) != 0) {
    // Not probed by the EAL: hot-plug it (a virtual device with its arguments, or a bus address).
    const int rc = rte_dev_probe(config.device.c_str());
    if (rc != 0) return failed(config.device, "rte_dev_probe", rc);
    port->probed_ = true;
    if (rte_eth_dev_get_port_by_name(port->name_.c_str(), &id) != 0) {
      // Best effort: detach what was probed (the destructor only knows port ids).
      rte_eal_hotplug_remove("vdev", port->name_.c_str());
      return Error("DPDK port " + config.device + ": probed, but no ethdev is named " +
                   port->name_);
    }
  }
  port->id_ = id;
  if (Status s = port->configure(config); !s) return s.error();
  return port;
}

Status Port::configure(const PortConfig& config) {
  rte_eth_dev_info info;
  if (int rc = rte_eth_dev_info_get(id_, &info); rc != 0) {
    return failed(name_, "rte_eth_dev_info_get", rc);
  }
  if (config.queues > info.max_rx_queues || config.queues > info.max_tx_queues) {
    return Error("DPDK port " + name_ + ": " + std::to_string(config.queues) +
                 " queue pairs asked (one per worker lcore), the device has at most " +
                 std::to_string(info.max_rx_queues) + " RX and " +
                 std::to_string(info.max_tx_queues) + " TX queues");
  }
  rte_eth_conf conf;
  std::memset(&conf, 0, sizeof(conf));
  if (config.queues > 1 && info.flow_type_rss_offloads != 0) {
    // Spread flows over the lcores. Full-NAT replies must reach the lcore owning their NAT port,
    // which plain RSS does not guarantee: see Shell.
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_hf =
        (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
  }
  if (int rc = rte_eth_dev_configure(id_, config.queues, config.queues, &conf); rc != 0) {
    return failed(name_, "rte_eth_dev_configure", rc);
  }
  configured_ = true;
  queues_ = config.queues;

  static std::atomic<uint32_t> poolCount{0};
  const std::string poolName = "capstan_mb" + std::to_string(poolCount.fetch_add(1));
  const int socket = rte_eth_dev_socket_id(id_);
  pool_ = rte_pktmbuf_pool_create(poolName.c_str(), config.mbufs, config.mbufCache, 0,
                                  RTE_MBUF_DEFAULT_BUF_SIZE, socket);
  if (pool_ == nullptr) {
    return Error("DPDK port " + name_ + ": mbuf pool of " + std::to_string(config.mbufs) +
                 " buffers: " + rte_strerror(rte_errno) + " (raise -m in --dpdk-eal-args?)");
  }

  uint16_t rxDescriptors = config.rxDescriptors, txDescriptors = config.txDescriptors;
  if (int rc = rte_eth_dev_adjust_nb_rx_tx_desc(id_, &rxDescriptors, &txDescriptors); rc != 0) {
    return failed(name_, "rte_eth_dev_adjust_nb_rx_tx_desc", rc);
  }
  const unsigned socketId = socket < 0 ? SOCKET_ID_ANY : static_cast<unsigned>(socket);
  for (uint16_t q = 0; q < config.queues; ++q) {
    if (int rc =
            rte_eth_rx_queue_setup(id_, q, rxDescriptors, socketId, &info.default_rxconf, pool_);
        rc != 0) {
      return failed(name_, ("RX queue " + std::to_string(q)).c_str(), rc);
    }
    if (int rc = rte_eth_tx_queue_setup(id_, q, txDescriptors, socketId, &info.default_txconf);
        rc != 0) {
      return failed(name_, ("TX queue " + std::to_string(q)).c_str(), rc);
    }
  }
  if (int rc = rte_eth_dev_start(id_); rc != 0) return failed(name_, "rte_eth_dev_start", rc);
  started_ = true;
  if (config.promiscuous) {
    // Virtual devices without the notion say ENOTSUP: nothing to enable then.
    const int rc = rte_eth_promiscuous_enable(id_);
    if (rc != 0 && rc != -ENOTSUP) return failed(name_, "rte_eth_promiscuous_enable", rc);
  }
  rte_ether_addr mac;
  if (int rc = rte_eth_macaddr_get(id_, &mac); rc != 0) {
    return failed(name_, "rte_eth_macaddr_get", rc);
  }
  std::memcpy(mac_.data(), mac.addr_bytes, mac_.size());
  return okStatus();
}

void Port::close() {
  rte_device* device = nullptr;
  if (probed_) {
    rte_eth_dev_info info;
    if (rte_eth_dev_info_get(id_, &info) == 0) device = info.device;
    probed_ = false;
  }
  // Stopping flushes and closes net_pcap's output files.
  if (started_) rte_eth_dev_stop(id_);
  started_ = false;
  // Closing releases the queues, returning the mbufs still in them to their pools.
  if (configured_) rte_eth_dev_close(id_);
  configured_ = false;
  if (device != nullptr) rte_dev_remove(device);
}

Port::~Port() {
  close();
  if (pool_ != nullptr) rte_mempool_free(pool_);
}

uint16_t Port::rxBurst(uint16_t queue, rte_mbuf** mbufs, uint16_t count) {
  return rte_eth_rx_burst(id_, queue, mbufs, count);
}

uint16_t Port::txBurst(uint16_t queue, rte_mbuf** mbufs, uint16_t count) {
  return rte_eth_tx_burst(id_, queue, mbufs, count);
}

PortStats Port::stats() const {
  rte_eth_stats s;
  PortStats out;
  if (rte_eth_stats_get(id_, &s) != 0) return out;
  out.rxPackets = s.ipackets;
  out.txPackets = s.opackets;
  out.rxBytes = s.ibytes;
  out.txBytes = s.obytes;
  out.rxMissed = s.imissed;
  out.rxErrors = s.ierrors;
  out.txErrors = s.oerrors;
  out.rxNoMbuf = s.rx_nombuf;
  return out;
}

}  // namespace capstan::dataplane::dpdk
