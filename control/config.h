// The daemon's configuration: command-line flags (named as kube-proxy names them) and the
// --config file (YAML; kube-proxy's KubeProxyConfiguration field names are accepted, so an
// existing kube-proxy ConfigMap works), flags given explicitly winning over the file.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/ip.h"
#include "model/result.h"
#include "model/service.h"

namespace capstan::control {

enum class ProxyMode { kIptables, kNftables, kIpvs, kDpdk, kNone };

std::string_view toString(ProxyMode mode);
std::optional<ProxyMode> parseProxyMode(std::string_view text);

struct Config {
  ProxyMode mode = ProxyMode::kIptables;  // kube-proxy's default
  std::vector<std::string> manifests;
  // The Kubernetes API source (kube-proxy's --kubeconfig and --master; the file's
  // clientConnection.kubeconfig). With neither and no --manifests, the in-cluster service
  // account is used when KUBERNETES_SERVICE_HOST is set.
  std::string kubeconfig;
  std::string master;
  std::string hostnameOverride;
  std::vector<Cidr> clusterCIDRs;  // --cluster-cidr, comma-separated for dual-stack
  // --nodeport-addresses: CIDRs, or "primary" (the node's primary IPs, kube-proxy 1.29+).
  std::vector<std::string> nodePortAddresses;
  bool masqueradeAll = false;
  bool iptablesLocalhostNodePorts = true;  // --iptables-localhost-nodeports
  std::string iptablesBackend;             // --iptables-backend: "", "legacy" or "nft"
  std::chrono::nanoseconds minSyncPeriod = std::chrono::seconds(1);
  std::chrono::nanoseconds syncPeriod = std::chrono::seconds(30);
  std::string healthzBindAddress = "0.0.0.0:10256";    // empty: disabled
  std::string metricsBindAddress = "127.0.0.1:10249";  // empty: disabled
  std::string configFile;
  int verbosity = 0;
  bool dryRun = false;
  bool cleanup = false;
  std::string ingressClass = "capstan";
  size_t manifestMaxFileBytes = size_t{128} << 20;
  // --proxy-mode=dpdk (the file's "dpdk" section); a change of any of it needs a restart.
  struct Dpdk {
    std::string ealArgs;                               // --dpdk-eal-args
    std::string port;                                  // --dpdk-port
    std::string exceptionPort;                         // --dpdk-exception-port
    uint32_t workers = 1;                              // --dpdk-workers
    std::vector<IpAddress> natAddresses;               // --dpdk-nat-address, one per family
    std::optional<std::array<uint8_t, 6>> nextHopMac;  // --dpdk-next-hop-mac
    bool serveClusterIPs = false;                      // --dpdk-serve-cluster-ips
    uint32_t exitWhenIdlePolls = 0;                    // --dpdk-exit-when-idle; 0: never

    bool operator==(const Dpdk&) const = default;
  };
  Dpdk dpdk;
  // The L7 ingress (the file's "ingress" section); a change of any of it needs a restart.
  struct Ingress {
    bool enabled = false;                      // --ingress
    std::string httpAddress = "0.0.0.0:80";    // --ingress-http-address; empty: none
    std::string httpsAddress = "0.0.0.0:443";  // --ingress-https-address; empty: none
    uint32_t workers = 0;                      // --ingress-workers; 0: one per core
    std::chrono::nanoseconds headerTimeout = std::chrono::seconds(10);
    std::chrono::nanoseconds idleTimeout = std::chrono::seconds(60);
    std::chrono::nanoseconds upstreamConnectTimeout = std::chrono::seconds(5);
    std::chrono::nanoseconds upstreamResponseTimeout = std::chrono::seconds(60);
    uint64_t maxBodyBytes = uint64_t{1} << 30;  // --ingress-max-body-size; 0: no limit
    uint32_t maxConnections = 100'000;          // --ingress-max-connections; 0: no limit
    // Ingress status write-back (Kubernetes API source only): these IPs or host names
    // (--ingress-status-address), or this node's address added (--ingress-status-from-node).
    std::vector<std::string> statusAddresses;
    bool statusFromNode = false;
    std::string accessLog;                 // --ingress-access-log: a path, "-"; empty: none
    std::string accessLogFormat = "json";  // --ingress-access-log-format: json or common
    // --ingress-drain-timeout: on SIGTERM, how long requests in flight may finish.
    std::chrono::nanoseconds drainTimeout = std::chrono::seconds(10);
    // --ingress-default-certificate: "namespace/name" of the kubernetes.io/tls Secret served
    // when no Ingress covers a TLS client's server name; empty: a self-signed one.
    std::string defaultCertificate;

    bool operator==(const Ingress&) const = default;
  };
  Ingress ingress;

  bool operator==(const Config&) const = default;
};

// Whether objects come from the Kubernetes API rather than from --manifests.
bool usesKubeApi(const Config& config);

// The Secret of --ingress-default-certificate (validated when parsed); none when not given.
std::optional<NamespacedName> defaultCertificateSecret(const Config& config);

struct ParsedArgs {
  Config config;
  // --help or --version: print `output` and exit with `exitCode` without running.
  bool exitNow = false;
  int exitCode = 0;
  std::string output;
};

// Parses argv (without argv[0]), reads --config if given, applies explicit flags over it and
// validates the result. Errors name the flag, or the file and field.
Result<ParsedArgs> parseArgs(const std::vector<std::string>& args);

// The usage text (--help).
std::string usage();

}  // namespace capstan::control
