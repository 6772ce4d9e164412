// Port: one DPDK ethdev the shell receives from and transmits on, with one RX/TX queue pair per
// worker lcore and its own mbuf pool.
//
// The device comes from a --dpdk-port setting: a virtual device with its arguments
// ("net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap", "net_tap0,iface=capstan0",
// "net_af_packet0,iface=veth0"), hot-plugged here with rte_dev_probe(), or the name of a device the
// EAL already probed (a PCI address allowed with -a, or a --vdev of the EAL arguments). The
// control thread opens ports after Eal::init() and before Shell::start(); the worker lcores call
// rxBurst()/txBurst() on their own queue only, between Shell::start() and Shell::stop().
//
// close() stops and closes the port (which flushes a pcap device's output file) and detaches a
// device it probed; the destructor closes and then frees the port's mbuf pool. Frames received on
// one port may sit in another's TX queue: close() every port before destroying any.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "model/result.h"

struct rte_mbuf;
struct rte_mempool;

namespace capstan::dataplane::dpdk {

struct PortConfig {
  std::string device;
  uint16_t queues = 1;  // RX/TX queue pairs: one per worker lcore
  uint16_t rxDescriptors = 1024;
  uint16_t txDescriptors = 1024;
  // The pool must cover every RX descriptor of every queue (the driver keeps them filled), the
  // frames in flight in TX rings and in bursts, and the per-lcore caches.
  uint32_t mbufs = 8191;
  uint16_t mbufCache = 256;
  bool promiscuous = true;
};

struct PortStats {
  uint64_t rxPackets = 0;
  uint64_t txPackets = 0;
  uint64_t rxBytes = 0;
  uint64_t txBytes = 0;
  uint64_t rxMissed = 0;  // dropped by the device: RX queue full
  uint64_t rxErrors = 0;
  uint64_t txErrors = 0;
  uint64_t rxNoMbuf = 0;  // the pool ran dry
};

class Port {
 public:
  static Result<std::unique_ptr<Port>> open(const PortConfig& config);
  ~Port();
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;

  uint16_t id() const { return id_; }
  const std::string& name() const { return name_; }
  uint16_t queues() const { return queues_; }
  const std::array<uint8_t, 6>& mac() const { return mac_; }
  rte_mempool* mempool() const { return pool_; }

  // Burst I/O on one queue, from the lcore that owns it. txBurst() transmits a prefix of `mbufs`
  // and returns its length; the caller still owns (and must free or retry) the rest.
  uint16_t rxBurst(uint16_t queue, rte_mbuf** mbufs, uint16_t count);
  uint16_t txBurst(uint16_t queue, rte_mbuf** mbufs, uint16_t count);

  PortStats stats() const;

  // Stops, closes and (if open() probed it) detaches the device. Idempotent; control thread only,
  // with no worker using the port.
  void close();

 private:
  Port() = default;
  Status configure(const PortConfig& config);

  uint16_t id_ = 0;
  std::string name_;
  uint16_t queues_ = 0;
  std::array<uint8_t, 6> mac_{};
  rte_mempool* pool_ = nullptr;
  bool probed_ = false;   // hot-plugged by open(): detached by the destructor
  bool started_ = false;  // rte_eth_dev_start() succeeded
  bool configured_ = false;
};

}  // namespace capstan::dataplane::dpdk
