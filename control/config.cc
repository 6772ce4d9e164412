#include "control/config.h"

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include "control/decoder.h"
#include "control/document_reader.h"
#include "control/kube_time.h"
#include "control/proxier_factory.h"
#include "control/status_server.h"
#include "model/go_duration.h"

namespace capstan::control {

std::string_view toString(ProxyMode mode) {
  switch (mode) {
    case ProxyMode::kIptables:
      return "iptables";
    case ProxyMode::kNftables:
      return "nftables";
    case ProxyMode::kIpvs:
      return "ipvs";
    case ProxyMode::kDpdk:
      return "dpdk";
    case ProxyMode::kNone:
      return "none";
  }
  return "?";
}

std::optional<ProxyMode> parseProxyMode(std::string_view text) {
  if (text == "iptables" || text.empty()) return ProxyMode::kIptables;
  if (text == "nftables") return ProxyMode::kNftables;
  if (text == "ipvs") return ProxyMode::kIpvs;
  if (text == "dpdk") return ProxyMode::kDpdk;
  if (text == "none") return ProxyMode::kNone;
  return std::nullopt;
}

namespace {

// The raw flag values, before they are checked and applied over the file.
struct Flags {
  std::string mode;
  std::vector<std::string> manifests;
  std::string kubeconfig;
  std::string master;
  std::string hostnameOverride;
  std::string clusterCIDR;
  std::vector<std::string> nodePortAddresses;
  bool masqueradeAll = false;
  bool iptablesLocalhostNodePorts = true;
  std::string iptablesBackend;
  std::string minSyncPeriod;
  std::string syncPeriod;
  std::string healthzBindAddress;
  std::string metricsBindAddress;
  std::string configFile;
  int verbosity = 0;
  bool dryRun = false;
  bool cleanup = false;
  std::string ingressClass;
  size_t manifestMaxFileBytes = 0;
  std::string dpdkEalArgs;
  std::string dpdkPort;
  std::string dpdkExceptionPort;
  std::string dpdkWorkers;
  std::vector<std::string> dpdkNatAddresses;
  std::string dpdkNextHopMac;
  bool dpdkServeClusterIPs = false;
  std::string dpdkExitWhenIdle;
  bool ingress = false;
  std::string ingressHttpAddress;
  std::string ingressHttpsAddress;
  std::string ingressWorkers;
  std::string ingressHeaderTimeout;
  std::string ingressIdleTimeout;
  std::string ingressUpstreamConnectTimeout;
  std::string ingressUpstreamResponseTimeout;
  uint64_t ingressMaxBodySize = 0;
  std::string ingressMaxConnections;
  std::vector<std::string> ingressStatusAddresses;
  bool ingressStatusFromNode = false;
  std::string ingressAccessLog;
  std::string ingressAccessLogFormat;
  std::string ingressDrainTimeout;
  std::string ingressDefaultCertificate;
  bool version = false;
};

void defineFlags(CLI::App& app, Flags& f) {
  app.add_option("--proxy-mode", f.mode,
                 "Which proxy mode to use: iptables (default), nftables, ipvs, dpdk or none (no "
                 "L4 dataplane)");
  app.add_option("--manifests", f.manifests,
                 "A file or directory of Kubernetes manifests (YAML or JSON) to read objects "
                 "from; repeatable. Directories are watched for changes");
  app.add_option("--kubeconfig", f.kubeconfig,
                 "Path to a kubeconfig file with the API server and credentials to read objects "
                 "from (default: the in-cluster service account when KUBERNETES_SERVICE_HOST is "
                 "set and no --manifests are given)");
  app.add_option("--master", f.master,
                 "The address of the Kubernetes API server (overrides the kubeconfig's server)");
  app.add_option("--hostname-override", f.hostnameOverride,
                 "The name of this node, if not the host name");
  app.add_option("--cluster-cidr", f.clusterCIDR,
                 "The CIDR range(s) of the pods in the cluster, comma-separated for dual-stack; "
                 "traffic from outside them to a ClusterIP is masqueraded");
  app.add_option("--nodeport-addresses", f.nodePortAddresses,
                 "CIDRs (or \"primary\") of the node addresses NodePorts are served on; all "
                 "addresses when unset")
      ->delimiter(',');
  app.add_flag("--masquerade-all", f.masqueradeAll,
               "SNAT all traffic sent through Service cluster IPs");
  app.add_flag("--iptables-localhost-nodeports", f.iptablesLocalhostNodePorts,
               "iptables mode: serve NodePorts on 127.0.0.1 too (sets route_localnet; default "
               "true, --iptables-localhost-nodeports=false to turn off)");
  app.add_option("--iptables-backend", f.iptablesBackend,
                 "iptables mode: which iptables to drive, legacy or nft (default: the iptables on "
                 "PATH; use the one the node's other components use)");
  app.add_option("--min-sync-period", f.minSyncPeriod,
                 "The minimum period between syncs of the dataplane, e.g. 1s, 500ms (default 1s)");
  app.add_option("--sync-period", f.syncPeriod,
                 "The maximum period between full syncs of the dataplane (default 30s)");
  app.add_option("--healthz-bind-address", f.healthzBindAddress,
                 "IP:port of the health check server (/healthz, /livez); empty disables it "
                 "(default 0.0.0.0:10256)");
  app.add_option("--metrics-bind-address", f.metricsBindAddress,
                 "IP:port of the metrics server (/metrics); empty disables it (default "
                 "127.0.0.1:10249)");
  app.add_option("--config", f.configFile,
                 "A YAML configuration file (KubeProxyConfiguration fields); flags given on the "
                 "command line override it. SIGHUP re-reads it");
  app.add_option("-v,--v", f.verbosity, "Log verbosity: 0 info, 2 debug, 4 trace");
  app.add_flag("--dry-run", f.dryRun,
               "Print what the proxy mode would program for the manifests, and exit: 0 if they "
               "are valid, 1 with the errors if not");
  app.add_flag("--cleanup", f.cleanup, "Remove everything the proxy mode programmed, and exit");
  app.add_option("--ingress-class", f.ingressClass,
                 "The IngressClass name this Capstan serves (default capstan)");
  app.add_option("--manifest-max-file-size", f.manifestMaxFileBytes,
                 "Manifest files larger than this many bytes are refused (default 134217728)");
  app.add_option("--dpdk-eal-args", f.dpdkEalArgs,
                 "dpdk mode: the DPDK EAL arguments, e.g. \"-l 0,1 --file-prefix capstan\"");
  app.add_option("--dpdk-port", f.dpdkPort,
                 "dpdk mode: the data port, a probed device's name or a virtual device with its "
                 "arguments (net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap)");
  app.add_option("--dpdk-exception-port", f.dpdkExceptionPort,
                 "dpdk mode: the port frames not for a VIP go to (the kernel's TAP, e.g. "
                 "net_tap0,iface=capstan0); unset: they are dropped");
  app.add_option("--dpdk-workers", f.dpdkWorkers,
                 "dpdk mode: worker lcores running packet loops (default 1)");
  app.add_option("--dpdk-nat-address", f.dpdkNatAddresses,
                 "dpdk mode: the node's dataplane address NATed packets leave from and NodePorts "
                 "are served on; one per IP family, repeatable or comma-separated")
      ->delimiter(',');
  app.add_option("--dpdk-next-hop-mac", f.dpdkNextHopMac,
                 "dpdk mode: the destination MAC of forwarded frames (aa:bb:cc:dd:ee:ff); unset: "
                 "their Ethernet header is left as it came");
  app.add_flag("--dpdk-serve-cluster-ips", f.dpdkServeClusterIPs,
               "dpdk mode: serve ClusterIPs too, not only external and LoadBalancer IPs and "
               "NodePorts");
  app.add_option("--dpdk-exit-when-idle", f.dpdkExitWhenIdle,
                 "dpdk mode: exit once the packet loops have received something and then found "
                 "their queues empty this many polls in a row (pcap runs); 0 never (default)");
  app.add_flag("--ingress", f.ingress,
               "Serve Ingress resources: an HTTP and TLS reverse proxy beside the proxy mode (or "
               "alone with --proxy-mode=none)");
  app.add_option("--ingress-http-address", f.ingressHttpAddress,
                 "ingress: IP:port of the HTTP listener; empty disables it (default 0.0.0.0:80)");
  app.add_option("--ingress-https-address", f.ingressHttpsAddress,
                 "ingress: IP:port of the HTTPS listener; empty disables it (default 0.0.0.0:443)");
  app.add_option("--ingress-workers", f.ingressWorkers,
                 "ingress: worker threads, each with its own listeners and connections (default: "
                 "one per core)");
  app.add_option("--ingress-header-timeout", f.ingressHeaderTimeout,
                 "ingress: time for a whole request head to arrive (default 10s)");
  app.add_option("--ingress-idle-timeout", f.ingressIdleTimeout,
                 "ingress: keep-alive wait for the next request, and longest pause in a body or "
                 "an upgraded connection (default 60s)");
  app.add_option("--ingress-upstream-connect-timeout", f.ingressUpstreamConnectTimeout,
                 "ingress: time to connect to an endpoint (default 5s)");
  app.add_option("--ingress-upstream-response-timeout", f.ingressUpstreamResponseTimeout,
                 "ingress: time for an endpoint to start answering, and longest pause in its "
                 "answer (default 60s)");
  app.add_option("--ingress-max-body-size", f.ingressMaxBodySize,
                 "ingress: largest request body in bytes, larger ones get 413; 0 no limit "
                 "(default 1073741824)");
  app.add_option("--ingress-max-connections", f.ingressMaxConnections,
                 "ingress: client connections at once, all workers; 0 no limit (default 100000)");
  app.add_option("--ingress-status-address", f.ingressStatusAddresses,
                 "ingress, Kubernetes API source: write these IPs or host names into the "
                 "status.loadBalancer of the Ingresses served (every node the same: the address "
                 "of what is in front of the nodes); repeatable or comma-separated. Default: no "
                 "status is written, unless --ingress-status-from-node")
      ->delimiter(',');
  app.add_flag("--ingress-status-from-node", f.ingressStatusFromNode,
               "ingress, Kubernetes API source: add this node's address (ExternalIP, else "
               "InternalIP) to the status.loadBalancer of the Ingresses served; each node adds "
               "itself, none removes another");
  app.add_option("--ingress-access-log", f.ingressAccessLog,
                 "ingress: access log, one line per request: a file (appended to) or - for "
                 "stdout; empty: none (default)");
  app.add_option("--ingress-access-log-format", f.ingressAccessLogFormat,
                 "ingress: access log format: json or common (the combined log format and "
                 "key=\"value\" fields) (default json)");
  app.add_option("--ingress-default-certificate", f.ingressDefaultCertificate,
                 "ingress: namespace/name of the kubernetes.io/tls Secret served to TLS clients "
                 "whose server name no Ingress covers (default: a self-signed certificate)");
  app.add_option("--ingress-drain-timeout", f.ingressDrainTimeout,
                 "ingress: on SIGTERM, how long requests in flight may go on while new "
                 "connections are refused; 0 exits at once (default 10s)");
  app.add_flag("--version", f.version, "Print the version and exit");
}

Result<uint32_t> parseCount(std::string_view text, const std::string& what, uint32_t min) {
  uint64_t value = 0;
  if (text.empty() || text.size() > 10) {
    return Error(what + ": invalid number \"" + std::string(text) + "\"");
  }
  for (char ch : text) {
    if (ch < '0' || ch > '9') return Error(what + ": invalid number \"" + std::string(text) + "\"");
    value = value * 10 + static_cast<uint64_t>(ch - '0');
  }
  if (value > UINT32_MAX) return Error(what + ": " + std::string(text) + " is too large");
  if (value < min) return Error(what + ": must be at least " + std::to_string(min));
  return static_cast<uint32_t>(value);
}

Result<std::vector<IpAddress>> parseNatAddresses(const std::vector<std::string>& items,
                                                 const std::string& what) {
  std::vector<IpAddress> out;
  for (std::string_view item : items) {
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) continue;
    auto ip = IpAddress::parse(item);
    if (!ip) return Error(what + ": invalid IP address \"" + std::string(item) + "\"");
    for (const IpAddress& other : out) {
      if (other.family() == ip->family()) {
        return Error(what + ": two " + std::string(toString(ip->family())) + " addresses (" +
                     other.toString() + ", " + ip->toString() + "); give one per IP family");
      }
    }
    out.push_back(*ip);
  }
  return out;
}

// --ingress-status-address: IPs or host names (what an Ingress's status.loadBalancer.ingress
// holds), blanks around commas allowed.
Result<std::vector<std::string>> parseStatusAddresses(const std::vector<std::string>& items,
                                                      const std::string& what) {
  std::vector<std::string> out;
  for (std::string_view item : items) {
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) continue;
    if (!IpAddress::parse(item) && !isDns1123Subdomain(item)) {
      return Error(what + ": \"" + std::string(item) +
                   "\" is neither an IP address nor a host name (RFC 1123)");
    }
    out.emplace_back(item);
  }
  return out;
}

Result<std::array<uint8_t, 6>> parseMac(std::string_view text, const std::string& what) {
  std::array<uint8_t, 6> mac{};
  auto hex = [](char ch) -> int {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
  };
  bool ok = text.size() == 17;
  for (size_t i = 0; ok && i < 6; ++i) {
    const int hi = hex(text[3 * i]);
    const int lo = hex(text[3 * i + 1]);
    if (hi < 0 || lo < 0 || (i < 5 && text[3 * i + 2] != ':' && text[3 * i + 2] != '-')) {
      ok = false;
    } else {
      mac[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
  }
  if (!ok) {
    return Error(what + ": invalid MAC address \"" + std::string(text) +
                 "\" (want six hex bytes, aa:bb:cc:dd:ee:ff)");
  }
  return mac;
}

Result<std::vector<Cidr>> parseCidrList(std::string_view text, const std::string& what) {
  std::vector<Cidr> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view item =
        text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) {
      auto cidr = Cidr::parse(item);
      if (!cidr) return Error(what + ": invalid CIDR \"" + std::string(item) + "\"");
      out.push_back(*cidr);
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (out.size() > 2 || (out.size() == 2 && out[0].family() == out[1].family())) {
    return Error(what + ": at most one CIDR per IP family");
  }
  return out;
}

Status checkAccessLogFormat(const std::string& text, const std::string& what) {
  if (text == "json" || text == "common") return okStatus();
  return Error(what + ": \"" + text + "\" is not an access log format (json or common)");
}

// The Secret that "namespace/name" names; none when it is not of that form.
std::optional<NamespacedName> secretReference(const std::string& text) {
  const size_t slash = text.find('/');
  if (slash == std::string::npos || !isDns1123Subdomain(text.substr(0, slash)) ||
      !isDns1123Subdomain(text.substr(slash + 1))) {
    return std::nullopt;
  }
  return NamespacedName{text.substr(0, slash), text.substr(slash + 1)};
}

Status checkSecretReference(const std::string& text, const std::string& what) {
  if (text.empty() || secretReference(text)) return okStatus();  // empty: none
  return Error(what + ": \"" + text + "\" is not namespace/name of a Secret");
}

Result<std::chrono::nanoseconds> parseDuration(const std::string& text, const std::string& what) {
  auto ns = parseGoDuration(text);
  if (!ns || *ns < 0) {
    return Error(what + ": invalid duration \"" + text + "\" (examples: 1s, 500ms, 2m30s)");
  }
  return std::chrono::nanoseconds(*ns);
}

// Fields of kube-proxy's KubeProxyConfiguration that Capstan accepts and does not use (they
// configure things Capstan does differently or not at all), so existing files still load.
const std::set<std::string> kIgnoredKubeProxyFields = {"bindAddress",
                                                       "bindAddressHardFail",
                                                       "configSyncPeriod",
                                                       "conntrack",
                                                       "detectLocal",
                                                       "detectLocalMode",
                                                       "enableProfiling",
                                                       "featureGates",
                                                       "ipvs",
                                                       "nftables",
                                                       "linux",
                                                       "oomScoreAdj",
                                                       "portRange",
                                                       "showHiddenMetricsForVersion",
                                                       "udpIdleTimeout",
                                                       "winkernel",
                                                       "windowsRunAsService"};

Status applyConfigFile(const std::string& path, Config& config) {
  std::ifstream in(path);
  if (!in) return Error(path + ": cannot read the configuration file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::optional<Value> doc;
  Status st = readYamlDocuments(buffer.str(), [&](Value v, size_t) -> Status {
    if (doc) return Error("one document expected, found several");
    doc = std::move(v);
    return okStatus();
  });
  if (!st.ok()) return st.error().withContext(path);
  if (!doc) return okStatus();  // an empty file changes nothing
  if (!doc->isObject()) return Error(path + ": expected a mapping of settings");

  auto where = [&](const std::string& field) { return path + ": " + field; };
  auto str = [&](const Value& v, const std::string& field) -> Result<std::string> {
    if (v.isNull()) return std::string();
    if (!v.isString()) {
      return Error(where(field) + ": expected a string, got " + std::string(v.typeName()));
    }
    return v.asString();
  };
  auto boolean = [&](const Value& v, const std::string& field) -> Result<bool> {
    if (v.type() != Value::Type::kBool) {
      return Error(where(field) + ": expected true or false, got " + std::string(v.typeName()));
    }
    return v.asBool();
  };
  auto integer = [&](const Value& v, const std::string& field, int64_t min,
                     uint64_t max) -> Result<uint64_t> {
    if (v.type() != Value::Type::kInt || v.asInt() < min ||
        static_cast<uint64_t>(v.asInt()) > max) {
      return Error(where(field) + ": expected an integer from " + std::to_string(min) + " to " +
                   std::to_string(max));
    }
    return static_cast<uint64_t>(v.asInt());
  };
  auto duration = [&](const Value& v,
                      const std::string& field) -> Result<std::chrono::nanoseconds> {
    auto s = str(v, field);
    if (!s.ok()) return s.error();
    return parseDuration(*s, where(field));
  };
  auto stringList = [&](const Value& v,
                        const std::string& field) -> Result<std::vector<std::string>> {
    std::vector<std::string> out;
    if (v.isNull()) return out;
    if (!v.isArray()) return Error(where(field) + ": expected a list of strings");
    for (const Value& item : v.asArray()) {
      auto s = str(item, field);
      if (!s.ok()) return s.error();
      out.push_back(*s);
    }
    return out;
  };
#define CAPSTAN_TRY(lhs, expr)       \
  do {                               \
    auto r_ = (expr);                \
    if (!r_.ok()) return r_.error(); \
    lhs = std::move(r_).value();     \
  } while (0)

  for (const auto& [key, v] : doc->asObject()) {
    if (key == "apiVersion" || key == "kind") {
      auto s = str(v, key);
      if (!s.ok()) return s.error();
      static const std::set<std::string> kAccepted = {
          "kubeproxy.config.k8s.io/v1alpha1", "capstan.io/v1alpha1", "KubeProxyConfiguration",
          "CapstanConfiguration"};
      if (!kAccepted.count(*s)) {
        return Error(where(key) + ": unsupported value \"" + *s +
                     "\" (want kubeproxy.config.k8s.io/v1alpha1 KubeProxyConfiguration or "
                     "capstan.io/v1alpha1 CapstanConfiguration)");
      }
    } else if (key == "mode") {
      std::string s;
      CAPSTAN_TRY(s, str(v, key));
      auto mode = parseProxyMode(s);
      if (!mode) return Error(where(key) + ": unsupported proxy mode \"" + s + "\"");
      config.mode = *mode;
    } else if (key == "manifests") {
      CAPSTAN_TRY(config.manifests, stringList(v, key));
    } else if (key == "clientConnection") {
      // kube-proxy's ClientConnectionConfiguration: only the kubeconfig path is Capstan's
      // business (acceptContentTypes, contentType, qps and burst are accepted and unused).
      if (v.isNull()) continue;
      if (!v.isObject()) return Error(where(key) + ": expected a mapping");
      for (const auto& [sub, sv] : v.asObject()) {
        if (sub == "kubeconfig") {
          CAPSTAN_TRY(config.kubeconfig, str(sv, key + "." + sub));
        } else if (sub != "acceptContentTypes" && sub != "contentType" && sub != "qps" &&
                   sub != "burst") {
          return Error(where(key + "." + sub) + ": unknown field");
        }
      }
    } else if (key == "hostnameOverride") {
      CAPSTAN_TRY(config.hostnameOverride, str(v, key));
    } else if (key == "clusterCIDR") {
      std::string s;
      CAPSTAN_TRY(s, str(v, key));
      CAPSTAN_TRY(config.clusterCIDRs, parseCidrList(s, where(key)));
    } else if (key == "nodePortAddresses") {
      CAPSTAN_TRY(config.nodePortAddresses, stringList(v, key));
    } else if (key == "healthzBindAddress") {
      CAPSTAN_TRY(config.healthzBindAddress, str(v, key));
    } else if (key == "metricsBindAddress") {
      CAPSTAN_TRY(config.metricsBindAddress, str(v, key));
    } else if (key == "syncPeriod") {
      CAPSTAN_TRY(config.syncPeriod, duration(v, key));
    } else if (key == "minSyncPeriod") {
      CAPSTAN_TRY(config.minSyncPeriod, duration(v, key));
    } else if (key == "masqueradeAll") {
      CAPSTAN_TRY(config.masqueradeAll, boolean(v, key));
    } else if (key == "ingressClass") {
      CAPSTAN_TRY(config.ingressClass, str(v, key));
    } else if (key == "manifestMaxFileSize") {
      CAPSTAN_TRY(config.manifestMaxFileBytes, integer(v, key, 1, INT64_MAX));
    } else if (key == "dpdk") {
      // Capstan's own section (capstan.io/v1alpha1): the --dpdk-* flags without the prefix.
      if (v.isNull()) continue;
      if (!v.isObject()) return Error(where(key) + ": expected a mapping");
      for (const auto& [sub, sv] : v.asObject()) {
        std::string field = key + "." + sub;
        if (sub == "ealArgs") {
          CAPSTAN_TRY(config.dpdk.ealArgs, str(sv, field));
        } else if (sub == "port") {
          CAPSTAN_TRY(config.dpdk.port, str(sv, field));
        } else if (sub == "exceptionPort") {
          CAPSTAN_TRY(config.dpdk.exceptionPort, str(sv, field));
        } else if (sub == "workers") {
          CAPSTAN_TRY(config.dpdk.workers, integer(sv, field, 1, UINT32_MAX));
        } else if (sub == "exitWhenIdle") {
          CAPSTAN_TRY(config.dpdk.exitWhenIdlePolls, integer(sv, field, 0, UINT32_MAX));
        } else if (sub == "natAddresses") {
          std::vector<std::string> items;
          CAPSTAN_TRY(items, stringList(sv, field));
          CAPSTAN_TRY(config.dpdk.natAddresses, parseNatAddresses(items, where(field)));
        } else if (sub == "nextHopMAC") {
          std::string s;
          CAPSTAN_TRY(s, str(sv, field));
          if (s.empty()) {
            config.dpdk.nextHopMac.reset();
          } else {
            CAPSTAN_TRY(config.dpdk.nextHopMac, parseMac(s, where(field)));
          }
        } else if (sub == "serveClusterIPs") {
          CAPSTAN_TRY(config.dpdk.serveClusterIPs, boolean(sv, field));
        } else {
          return Error(where(field) + ": unknown field");
        }
      }
    } else if (key == "ingress") {
      // Capstan's own section (capstan.io/v1alpha1): the --ingress-* flags without the prefix.
      if (v.isNull()) continue;
      if (!v.isObject()) return Error(where(key) + ": expected a mapping");
      Config::Ingress& in = config.ingress;
      for (const auto& [sub, sv] : v.asObject()) {
        std::string field = key + "." + sub;
        if (sub == "enabled") {
          CAPSTAN_TRY(in.enabled, boolean(sv, field));
        } else if (sub == "httpAddress") {
          CAPSTAN_TRY(in.httpAddress, str(sv, field));
        } else if (sub == "httpsAddress") {
          CAPSTAN_TRY(in.httpsAddress, str(sv, field));
        } else if (sub == "workers") {
          CAPSTAN_TRY(in.workers, integer(sv, field, 0, 1024));
        } else if (sub == "headerTimeout") {
          CAPSTAN_TRY(in.headerTimeout, duration(sv, field));
        } else if (sub == "idleTimeout") {
          CAPSTAN_TRY(in.idleTimeout, duration(sv, field));
        } else if (sub == "upstreamConnectTimeout") {
          CAPSTAN_TRY(in.upstreamConnectTimeout, duration(sv, field));
        } else if (sub == "upstreamResponseTimeout") {
          CAPSTAN_TRY(in.upstreamResponseTimeout, duration(sv, field));
        } else if (sub == "maxBodySize") {
          CAPSTAN_TRY(in.maxBodyBytes, integer(sv, field, 0, INT64_MAX));
        } else if (sub == "maxConnections") {
          CAPSTAN_TRY(in.maxConnections, integer(sv, field, 0, UINT32_MAX));
        } else if (sub == "statusAddresses") {
          CAPSTAN_TRY(in.statusAddresses, stringList(sv, field));
          CAPSTAN_TRY(in.statusAddresses, parseStatusAddresses(in.statusAddresses, where(field)));
        } else if (sub == "statusFromNode") {
          CAPSTAN_TRY(in.statusFromNode, boolean(sv, field));
        } else if (sub == "accessLog") {
          CAPSTAN_TRY(in.accessLog, str(sv, field));
        } else if (sub == "accessLogFormat") {
          CAPSTAN_TRY(in.accessLogFormat, str(sv, field));
          if (Status st = checkAccessLogFormat(in.accessLogFormat, where(field)); !st.ok()) {
            return st.error();
          }
        } else if (sub == "defaultCertificate") {
          CAPSTAN_TRY(in.defaultCertificate, str(sv, field));
          if (Status st = checkSecretReference(in.defaultCertificate, where(field)); !st.ok()) {
            return st.error();
          }
        } else if (sub == "drainTimeout") {
          CAPSTAN_TRY(in.drainTimeout, duration(sv, field));
        } else {
          return Error(where(field) + ": unknown field");
        }
      }
    } else if (key == "iptables" || key == "logging") {
      if (v.isNull()) continue;
      if (!v.isObject()) return Error(where(key) + ": expected a mapping");
      for (const auto& [sub, sv] : v.asObject()) {
        std::string field = key + "." + sub;
        if (key == "iptables" && sub == "masqueradeAll") {
          CAPSTAN_TRY(config.masqueradeAll, boolean(sv, field));
        } else if (key == "iptables" && sub == "syncPeriod") {
          CAPSTAN_TRY(config.syncPeriod, duration(sv, field));
        } else if (key == "iptables" && sub == "minSyncPeriod") {
          CAPSTAN_TRY(config.minSyncPeriod, duration(sv, field));
        } else if (key == "iptables" && sub == "localhostNodePorts") {
          CAPSTAN_TRY(config.iptablesLocalhostNodePorts, boolean(sv, field));
        } else if (key == "logging" && sub == "verbosity") {
          if (sv.type() != Value::Type::kInt) return Error(where(field) + ": expected an integer");
          config.verbosity = static_cast<int>(sv.asInt());
        }
        // Other iptables.* and logging.* fields are kube-proxy's and not used here.
      }
    } else if (!kIgnoredKubeProxyFields.count(key)) {
      return Error(where(key) + ": unknown field");
    }
  }
#undef CAPSTAN_TRY
  return okStatus();
}

Status validate(const Config& c) {
  if (c.syncPeriod <= std::chrono::nanoseconds(0))
    return Error("--sync-period: must be greater than 0");
  if (c.minSyncPeriod > c.syncPeriod) {
    return Error("--min-sync-period: must not be longer than --sync-period");
  }
  for (const std::string& address : c.nodePortAddresses) {
    if (address != "primary" && !Cidr::parse(address)) {
      return Error("--nodeport-addresses: invalid CIDR \"" + address + "\" (or use \"primary\")");
    }
  }
  if (!c.healthzBindAddress.empty()) {
    if (auto hp = parseHostPort(c.healthzBindAddress); !hp.ok()) {
      return hp.error().withContext("--healthz-bind-address");
    }
  }
  if (!c.metricsBindAddress.empty()) {
    if (auto hp = parseHostPort(c.metricsBindAddress); !hp.ok()) {
      return hp.error().withContext("--metrics-bind-address");
    }
  }
  bool explicitApi = !c.kubeconfig.empty() || !c.master.empty();
  if (explicitApi && !c.manifests.empty()) {
    return Error(
        "--manifests: cannot be combined with --kubeconfig or --master (objects come from one "
        "source)");
  }
  if (!usesKubeApi(c) && c.manifests.empty() && !c.cleanup) {
    return Error(
        "--manifests: required (the files or directories to read Services, EndpointSlices and "
        "Ingresses from), unless --kubeconfig or --master is given or Capstan runs in a cluster "
        "(KUBERNETES_SERVICE_HOST)");
  }
  if (c.verbosity < 0) return Error("-v: must not be negative");
  if (!c.iptablesBackend.empty() && c.iptablesBackend != "legacy" && c.iptablesBackend != "nft") {
    return Error("--iptables-backend: unsupported value \"" + c.iptablesBackend +
                 "\" (supported: legacy, nft)");
  }
  // --dry-run renders the VIP table without DPDK, and --cleanup has nothing to remove: only a
  // running dataplane needs its ports and addresses.
  if (c.mode == ProxyMode::kDpdk && !c.dryRun && !c.cleanup) {
    if (c.dpdk.port.empty()) {
      return Error("--dpdk-port: required with --proxy-mode=dpdk (the data port's device)");
    }
    if (c.dpdk.natAddresses.empty()) {
      return Error(
          "--dpdk-nat-address: required with --proxy-mode=dpdk (the node's dataplane address "
          "NATed packets leave from)");
    }
  }
  if (c.ingress.enabled) {
    for (auto [flag, address] : {std::pair{"--ingress-http-address", &c.ingress.httpAddress},
                                 std::pair{"--ingress-https-address", &c.ingress.httpsAddress}}) {
      if (address->empty()) continue;
      if (auto hp = parseHostPort(*address); !hp.ok()) return hp.error().withContext(flag);
    }
    if (c.ingress.httpAddress.empty() && c.ingress.httpsAddress.empty()) {
      return Error("--ingress-http-address: both listeners are disabled (give one an address)");
    }
    for (auto [flag, d] :
         {std::pair{"--ingress-header-timeout", c.ingress.headerTimeout},
          std::pair{"--ingress-idle-timeout", c.ingress.idleTimeout},
          std::pair{"--ingress-upstream-connect-timeout", c.ingress.upstreamConnectTimeout},
          std::pair{"--ingress-upstream-response-timeout", c.ingress.upstreamResponseTimeout}}) {
      if (d <= std::chrono::nanoseconds(0)) return Error(std::string(flag) + ": must be positive");
    }
    if (c.ingress.drainTimeout < std::chrono::nanoseconds(0)) {
      return Error("--ingress-drain-timeout: must not be negative");
    }
  }
  if (!c.ingress.statusAddresses.empty() || c.ingress.statusFromNode) {
    const char* flag = c.ingress.statusAddresses.empty() ? "--ingress-status-from-node"
                                                         : "--ingress-status-address";
    if (!c.ingress.statusAddresses.empty() && c.ingress.statusFromNode) {
      return Error(
          "--ingress-status-address: cannot be combined with --ingress-status-from-node (one "
          "source of the address)");
    }
    if (!c.ingress.enabled) return Error(std::string(flag) + ": needs --ingress");
    // Only an Ingress read from the API server has a status to write to.
    if (!usesKubeApi(c) && !c.cleanup) {
      return Error(std::string(flag) +
                   ": needs the Kubernetes API source (--kubeconfig, --master or in-cluster), "
                   "not --manifests");
    }
  }
  return okStatus();
}

}  // namespace

std::optional<NamespacedName> defaultCertificateSecret(const Config& config) {
  return secretReference(config.ingress.defaultCertificate);
}

bool usesKubeApi(const Config& config) {
  if (!config.kubeconfig.empty() || !config.master.empty()) return true;
  // client-go's rest.InClusterConfig condition; --manifests wins, for a standalone Capstan run
  // inside a Pod.
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  return config.manifests.empty() && host != nullptr && *host != '\0';
}

std::string usage() {
  CLI::App app("capstan: a Kubernetes service proxy and load balancer", "capstan");
  Flags flags;
  defineFlags(app, flags);
  return app.help();
}

Result<ParsedArgs> parseArgs(const std::vector<std::string>& rawArgs) {
  // Go's flag package accepts -flag=value with one dash; kube-proxy users write -v=2.
  std::vector<std::string> args;
  for (const std::string& a : rawArgs) {
    if (a.size() > 2 && a[0] == '-' && a[1] != '-' && a.find('=') != std::string::npos &&
        a.find('=') > 2) {
      args.push_back("-" + a);
    } else if (a.starts_with("-v=")) {
      args.push_back("--v=" + a.substr(3));
    } else {
      args.push_back(a);
    }
  }
  CLI::App app("capstan: a Kubernetes service proxy and load balancer", "capstan");
  Flags f;
  defineFlags(app, f);
  ParsedArgs out;
  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them reversed
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out.exitNow = true;
    out.output = app.help();
    return out;
  } catch (const CLI::ParseError& e) {
    return Error(std::string(e.what()) + " (see capstan --help)");
  }
  if (f.version) {
    out.exitNow = true;
    out.output = "capstan " CAPSTAN_VERSION " (proxy modes: " + builtModeNames() + ")\n";
    return out;
  }

  Config& c = out.config;
  if (!f.configFile.empty()) {
    c.configFile = f.configFile;
    if (Status st = applyConfigFile(f.configFile, c); !st.ok()) return st.error();
  }
  auto given = [&](const char* name) { return app.count(name) > 0; };
  if (given("--proxy-mode")) {
    auto mode = parseProxyMode(f.mode);
    if (!mode) {
      return Error("--proxy-mode: unsupported value \"" + f.mode +
                   "\" (supported: iptables, nftables, ipvs, dpdk, none)");
    }
    c.mode = *mode;
  }
  if (given("--manifests")) c.manifests = f.manifests;
  if (given("--kubeconfig")) c.kubeconfig = f.kubeconfig;
  if (given("--master")) c.master = f.master;
  if (given("--hostname-override")) c.hostnameOverride = f.hostnameOverride;
  if (given("--cluster-cidr")) {
    auto cidrs = parseCidrList(f.clusterCIDR, "--cluster-cidr");
    if (!cidrs.ok()) return cidrs.error();
    c.clusterCIDRs = *cidrs;
  }
  if (given("--nodeport-addresses")) c.nodePortAddresses = f.nodePortAddresses;
  if (given("--masquerade-all")) c.masqueradeAll = f.masqueradeAll;
  if (given("--iptables-localhost-nodeports")) {
    c.iptablesLocalhostNodePorts = f.iptablesLocalhostNodePorts;
  }
  if (given("--iptables-backend")) c.iptablesBackend = f.iptablesBackend;
  if (given("--min-sync-period")) {
    auto d = parseDuration(f.minSyncPeriod, "--min-sync-period");
    if (!d.ok()) return d.error();
    c.minSyncPeriod = *d;
  }
  if (given("--sync-period")) {
    auto d = parseDuration(f.syncPeriod, "--sync-period");
    if (!d.ok()) return d.error();
    c.syncPeriod = *d;
  }
  if (given("--healthz-bind-address")) c.healthzBindAddress = f.healthzBindAddress;
  if (given("--metrics-bind-address")) c.metricsBindAddress = f.metricsBindAddress;
  if (given("--v")) c.verbosity = f.verbosity;
  if (given("--dry-run")) c.dryRun = f.dryRun;
  if (given("--cleanup")) c.cleanup = f.cleanup;
  if (given("--ingress-class")) c.ingressClass = f.ingressClass;
  if (given("--manifest-max-file-size")) {
    if (f.manifestMaxFileBytes == 0) return Error("--manifest-max-file-size: must be positive");
    c.manifestMaxFileBytes = f.manifestMaxFileBytes;
  }
  if (given("--dpdk-eal-args")) c.dpdk.ealArgs = f.dpdkEalArgs;
  if (given("--dpdk-port")) c.dpdk.port = f.dpdkPort;
  if (given("--dpdk-exception-port")) c.dpdk.exceptionPort = f.dpdkExceptionPort;
  if (given("--dpdk-workers")) {
    auto n = parseCount(f.dpdkWorkers, "--dpdk-workers", 1);
    if (!n.ok()) return n.error();
    c.dpdk.workers = *n;
  }
  if (given("--dpdk-nat-address")) {
    auto addresses = parseNatAddresses(f.dpdkNatAddresses, "--dpdk-nat-address");
    if (!addresses.ok()) return addresses.error();
    c.dpdk.natAddresses = *addresses;
  }
  if (given("--dpdk-next-hop-mac")) {
    if (f.dpdkNextHopMac.empty()) {
      c.dpdk.nextHopMac.reset();
    } else {
      auto mac = parseMac(f.dpdkNextHopMac, "--dpdk-next-hop-mac");
      if (!mac.ok()) return mac.error();
      c.dpdk.nextHopMac = *mac;
    }
  }
  if (given("--dpdk-serve-cluster-ips")) c.dpdk.serveClusterIPs = f.dpdkServeClusterIPs;
  if (given("--dpdk-exit-when-idle")) {
    auto n = parseCount(f.dpdkExitWhenIdle, "--dpdk-exit-when-idle", 0);
    if (!n.ok()) return n.error();
    c.dpdk.exitWhenIdlePolls = *n;
  }
  if (given("--ingress")) c.ingress.enabled = f.ingress;
  if (given("--ingress-http-address")) c.ingress.httpAddress = f.ingressHttpAddress;
  if (given("--ingress-https-address")) c.ingress.httpsAddress = f.ingressHttpsAddress;
  if (given("--ingress-workers")) {
    auto n = parseCount(f.ingressWorkers, "--ingress-workers", 0);
    if (!n.ok()) return n.error();
    c.ingress.workers = *n;
  }
  for (auto [flag, text, target] :
       {std::tuple{"--ingress-header-timeout", &f.ingressHeaderTimeout, &c.ingress.headerTimeout},
        std::tuple{"--ingress-idle-timeout", &f.ingressIdleTimeout, &c.ingress.idleTimeout},
        std::tuple{"--ingress-upstream-connect-timeout", &f.ingressUpstreamConnectTimeout,
                   &c.ingress.upstreamConnectTimeout},
        std::tuple{"--ingress-upstream-response-timeout", &f.ingressUpstreamResponseTimeout,
                   &c.ingress.upstreamResponseTimeout}}) {
    if (!given(flag)) continue;
    auto d = parseDuration(*text, flag);
    if (!d.ok()) return d.error();
    *target = *d;
  }
  if (given("--ingress-max-body-size")) c.ingress.maxBodyBytes = f.ingressMaxBodySize;
  if (given("--ingress-status-address")) {
    auto addresses = parseStatusAddresses(f.ingressStatusAddresses, "--ingress-status-address");
    if (!addresses.ok()) return addresses.error();
    c.ingress.statusAddresses = *addresses;
  }
  if (given("--ingress-status-from-node")) c.ingress.statusFromNode = f.ingressStatusFromNode;
  if (given("--ingress-max-connections")) {
    auto n = parseCount(f.ingressMaxConnections, "--ingress-max-connections", 0);
    if (!n.ok()) return n.error();
    c.ingress.maxConnections = *n;
  }
  if (given("--ingress-access-log")) c.ingress.accessLog = f.ingressAccessLog;
  if (given("--ingress-access-log-format")) {
    Status st = checkAccessLogFormat(f.ingressAccessLogFormat, "--ingress-access-log-format");
    if (!st.ok()) return st.error();
    c.ingress.accessLogFormat = f.ingressAccessLogFormat;
  }
  if (given("--ingress-default-certificate")) {
    Status st = checkSecretReference(f.ingressDefaultCertificate, "--ingress-default-certificate");
    if (!st.ok()) return st.error();
    c.ingress.defaultCertificate = f.ingressDefaultCertificate;
  }
  if (given("--ingress-drain-timeout")) {
    auto d = parseDuration(f.ingressDrainTimeout, "--ingress-drain-timeout");
    if (!d.ok()) return d.error();
    c.ingress.drainTimeout = *d;
  }
  if (Status st = validate(c); !st.ok()) return st.error();
  return out;
}

}  // namespace capstan::control
