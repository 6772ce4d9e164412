#include "control/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <fstream>

namespace capstan::control {
namespace {

using namespace std::chrono_literals;

class ConfigTest : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/capstan-config-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string writeFile(const std::string& name, const std::string& content) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << content;
    return path;
  }
  std::string dir_;
};

TEST_F(ConfigTest, DefaultsFollowKubeProxy) {
  auto r = parseArgs({"--manifests", "/m"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  const Config& c = r->config;
  EXPECT_EQ(c.mode, ProxyMode::kIptables);
  EXPECT_EQ(c.minSyncPeriod, 1s);
  EXPECT_EQ(c.syncPeriod, 30s);
  EXPECT_EQ(c.healthzBindAddress, "0.0.0.0:10256");
  EXPECT_EQ(c.metricsBindAddress, "127.0.0.1:10249");
  EXPECT_FALSE(c.masqueradeAll);
  EXPECT_EQ(c.manifests, (std::vector<std::string>{"/m"}));
}

TEST_F(ConfigTest, ParsesEveryFlag) {
  auto r = parseArgs({"--proxy-mode=none",
                      "--manifests",
                      "/a",
                      "--manifests=/b",
                      "--hostname-override",
                      "node-a",
                      "--cluster-cidr",
                      "10.244.0.0/16,fd00::/48",
                      "--nodeport-addresses",
                      "10.0.0.0/8,primary",
                      "--masquerade-all",
                      "--min-sync-period",
                      "250ms",
                      "--sync-period=1m",
                      "--healthz-bind-address",
                      "[::]:10256",
                      "--metrics-bind-address",
                      "",
                      "-v",
                      "3",
                      "--ingress-class",
                      "edge",
                      "--manifest-max-file-size",
                      "1048576"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  const Config& c = r->config;
  EXPECT_EQ(c.mode, ProxyMode::kNone);
  EXPECT_EQ(c.manifests, (std::vector<std::string>{"/a", "/b"}));
  EXPECT_EQ(c.hostnameOverride, "node-a");
  ASSERT_EQ(c.clusterCIDRs.size(), 2u);
  EXPECT_EQ(c.clusterCIDRs[1].toString(), "fd00::/48");
  EXPECT_EQ(c.nodePortAddresses, (std::vector<std::string>{"10.0.0.0/8", "primary"}));
  EXPECT_TRUE(c.masqueradeAll);
  EXPECT_EQ(c.minSyncPeriod, 250ms);
  EXPECT_EQ(c.syncPeriod, 60s);
  EXPECT_EQ(c.healthzBindAddress, "[::]:10256");
  EXPECT_EQ(c.metricsBindAddress, "");
  EXPECT_EQ(c.verbosity, 3);
  EXPECT_EQ(c.ingressClass, "edge");
  EXPECT_EQ(c.manifestMaxFileBytes, 1048576u);
}

TEST_F(ConfigTest, AcceptsGoStyleSingleDashFlags) {
  auto r = parseArgs({"-v=4", "-proxy-mode=none", "-manifests=/m", "--masquerade-all=false"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->config.verbosity, 4);
  EXPECT_EQ(r->config.mode, ProxyMode::kNone);
  EXPECT_FALSE(r->config.masqueradeAll);
}

TEST_F(ConfigTest, RejectsBadFlagsNamingThem) {
  struct Bad {
    std::vector<std::string> args;
    std::string mentions;
  };
  for (const Bad& bad : std::vector<Bad>{
           {{"--manifests", "/m", "--proxy-mode", "userspace"}, "--proxy-mode"},
           {{"--manifests", "/m", "--min-sync-period", "fast"}, "--min-sync-period"},
           {{"--manifests", "/m", "--sync-period", "0s"}, "--sync-period"},
           {{"--manifests", "/m", "--min-sync-period", "1m", "--sync-period", "30s"},
            "--min-sync-period"},
           {{"--manifests", "/m", "--cluster-cidr", "10.0.0.0/33"}, "--cluster-cidr"},
           {{"--manifests", "/m", "--cluster-cidr", "10.0.0.0/8,10.1.0.0/16"}, "--cluster-cidr"},
           {{"--manifests", "/m", "--nodeport-addresses", "eth0"}, "--nodeport-addresses"},
           {{"--manifests", "/m", "--healthz-bind-address", "localhost:1"},
            "--healthz-bind-address"},
           {{"--manifests", "/m", "--metrics-bind-address", "1.2.3.4"}, "--metrics-bind-address"},
           {{"--proxy-mode", "none"}, "--manifests"},
           {{"--manifests", "/m", "--no-such-flag"}, "no-such-flag"},
       }) {
    auto r = parseArgs(bad.args);
    ASSERT_FALSE(r.ok()) << bad.mentions;
    EXPECT_NE(r.error().message().find(bad.mentions), std::string::npos) << r.error().message();
  }
}

TEST_F(ConfigTest, HelpAndVersionExitEarly) {
  auto help = parseArgs({"--help"});
  ASSERT_TRUE(help.ok());
  EXPECT_TRUE(help->exitNow);
  EXPECT_NE(help->output.find("--min-sync-period"), std::string::npos);
  auto version = parseArgs({"--version"});
  ASSERT_TRUE(version.ok());
  EXPECT_TRUE(version->exitNow);
  EXPECT_NE(version->output.find("proxy modes:"), std::string::npos);
  EXPECT_EQ(usage(), help->output);
}

TEST_F(ConfigTest, ReadsKubeProxyConfigurationAndFlagsOverrideIt) {
  std::string path = writeFile("config.yaml", R"(apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: "none"
clusterCIDR: 10.244.0.0/16
hostnameOverride: node-from-file
healthzBindAddress: 127.0.0.1:20256
metricsBindAddress: 127.0.0.1:20249
nodePortAddresses: [10.0.0.0/8]
iptables:
  masqueradeAll: true
  syncPeriod: 45s
  minSyncPeriod: 2s
  localhostNodePorts: true
logging:
  verbosity: 2
  format: text
conntrack:
  maxPerCore: 32768
featureGates: {}
manifests: [/etc/capstan/manifests]
)");
  auto fromFile = parseArgs({"--config", path});
  ASSERT_TRUE(fromFile.ok()) << fromFile.error().message();
  const Config& c = fromFile->config;
  EXPECT_EQ(c.mode, ProxyMode::kNone);
  EXPECT_EQ(c.clusterCIDRs.at(0).toString(), "10.244.0.0/16");
  EXPECT_EQ(c.hostnameOverride, "node-from-file");
  EXPECT_EQ(c.healthzBindAddress, "127.0.0.1:20256");
  EXPECT_TRUE(c.masqueradeAll);
  EXPECT_EQ(c.syncPeriod, 45s);
  EXPECT_EQ(c.minSyncPeriod, 2s);
  EXPECT_EQ(c.verbosity, 2);
  EXPECT_EQ(c.manifests, (std::vector<std::string>{"/etc/capstan/manifests"}));
  EXPECT_EQ(c.configFile, path);

  auto overridden =
      parseArgs({"--config", path, "--sync-period", "10s", "--hostname-override", "node-b"});
  ASSERT_TRUE(overridden.ok()) << overridden.error().message();
  EXPECT_EQ(overridden->config.syncPeriod, 10s);
  EXPECT_EQ(overridden->config.hostnameOverride, "node-b");
  EXPECT_EQ(overridden->config.minSyncPeriod, 2s);  // from the file
}

TEST_F(ConfigTest, ConfigFileErrorsNameFileAndField) {
  struct Bad {
    std::string content;
    std::string mentions;
  };
  for (const Bad& bad : std::vector<Bad>{
           {"modee: iptables\nmanifests: [/m]\n", "modee: unknown field"},
           {"mode: userspace\nmanifests: [/m]\n", "mode: unsupported proxy mode"},
           {"syncPeriod: soon\nmanifests: [/m]\n", "syncPeriod: invalid duration"},
           {"iptables:\n  masqueradeAll: maybe\nmanifests: [/m]\n", "iptables.masqueradeAll"},
           {"manifests: /m\n", "manifests: expected a list"},
           {"kind: Deployment\nmanifests: [/m]\n", "kind: unsupported value"},
           {"mode: [\n", "line"},
           {"- a\n- b\n", "expected a mapping"},
       }) {
    std::string path = writeFile("bad.yaml", bad.content);
    auto r = parseArgs({"--config", path});
    ASSERT_FALSE(r.ok()) << bad.content;
    EXPECT_NE(r.error().message().find(path), std::string::npos) << r.error().message();
    EXPECT_NE(r.error().message().find(bad.mentions), std::string::npos) << r.error().message();
  }
  auto missing = parseArgs({"--config", dir_ + "/nope.yaml"});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("nope.yaml"), std::string::npos);
}

TEST_F(ConfigTest, ParsesIngressFlagsAndTheIngressSection) {
  auto defaults = parseArgs({"--manifests", "/m"});
  ASSERT_TRUE(defaults.ok());
  EXPECT_FALSE(defaults->config.ingress.enabled);
  EXPECT_EQ(defaults->config.ingress.httpAddress, "0.0.0.0:80");
  EXPECT_EQ(defaults->config.ingress.httpsAddress, "0.0.0.0:443");
  EXPECT_EQ(defaults->config.ingress.accessLog, "");
  EXPECT_EQ(defaults->config.ingress.accessLogFormat, "json");
  EXPECT_EQ(defaults->config.ingress.drainTimeout, std::chrono::seconds(10));

  std::string path = writeFile("capstan.yaml", R"(apiVersion: capstan.io/v1alpha1
kind: CapstanConfiguration
manifests: [/m]
ingress:
  enabled: true
  httpAddress: "127.0.0.1:8080"
  httpsAddress: ""
  workers: 3
  headerTimeout: 5s
  idleTimeout: 2m
  upstreamConnectTimeout: 250ms
  upstreamResponseTimeout: 30s
  maxBodySize: 1048576
  maxConnections: 50
  accessLog: /var/log/capstan/access.log
  accessLogFormat: common
  drainTimeout: 20s
  defaultCertificate: ingress-system/wildcard-tls
)");
  auto r = parseArgs({"--config", path, "--ingress-workers", "4"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  const Config::Ingress& in = r->config.ingress;
  EXPECT_TRUE(in.enabled);
  EXPECT_EQ(in.httpAddress, "127.0.0.1:8080");
  EXPECT_EQ(in.httpsAddress, "");
  EXPECT_EQ(in.workers, 4u);  // the flag wins over the file
  EXPECT_EQ(in.headerTimeout, std::chrono::seconds(5));
  EXPECT_EQ(in.idleTimeout, std::chrono::minutes(2));
  EXPECT_EQ(in.upstreamConnectTimeout, std::chrono::milliseconds(250));
  EXPECT_EQ(in.upstreamResponseTimeout, std::chrono::seconds(30));
  EXPECT_EQ(in.maxBodyBytes, 1048576u);
  EXPECT_EQ(in.maxConnections, 50u);
  EXPECT_EQ(in.accessLog, "/var/log/capstan/access.log");
  EXPECT_EQ(in.accessLogFormat, "common");
  EXPECT_EQ(in.drainTimeout, std::chrono::seconds(20));
  EXPECT_EQ(defaultCertificateSecret(r->config),
            (NamespacedName{"ingress-system", "wildcard-tls"}));
  EXPECT_EQ(defaultCertificateSecret(defaults->config), std::nullopt);

  auto flags =
      parseArgs({"--manifests", "/m", "--ingress", "--ingress-http-address", "[::1]:81",
                 "--ingress-idle-timeout", "90s", "--ingress-max-body-size", "0",
                 "--ingress-access-log", "-", "--ingress-access-log-format", "common",
                 "--ingress-drain-timeout", "0s", "--ingress-default-certificate", "default/tls"});
  ASSERT_TRUE(flags.ok()) << flags.error().message();
  EXPECT_TRUE(flags->config.ingress.enabled);
  EXPECT_EQ(flags->config.ingress.httpAddress, "[::1]:81");
  EXPECT_EQ(flags->config.ingress.idleTimeout, std::chrono::seconds(90));
  EXPECT_EQ(flags->config.ingress.maxBodyBytes, 0u);
  EXPECT_EQ(flags->config.ingress.accessLog, "-");
  EXPECT_EQ(flags->config.ingress.accessLogFormat, "common");
  EXPECT_EQ(flags->config.ingress.drainTimeout, std::chrono::seconds(0));
  EXPECT_EQ(flags->config.ingress.defaultCertificate, "default/tls");
}

TEST_F(ConfigTest, RejectsBadIngressSettingsNamingThem) {
  struct Bad {
    std::vector<std::string> args;
    std::string mentions;
  };
  for (const Bad& bad : std::vector<Bad>{
           {{"--ingress-http-address", "nonsense"}, "--ingress-http-address"},
           {{"--ingress-https-address", "1.2.3.4:99999"}, "--ingress-https-address"},
           {{"--ingress-http-address", "", "--ingress-https-address", ""}, "both listeners"},
           {{"--ingress-header-timeout", "0s"}, "--ingress-header-timeout"},
           {{"--ingress-idle-timeout", "soon"}, "--ingress-idle-timeout"},
           {{"--ingress-workers", "-1"}, "--ingress-workers"},
           {{"--ingress-max-connections", "x"}, "--ingress-max-connections"},
           {{"--ingress-access-log-format", "xml"}, "--ingress-access-log-format: \"xml\""},
           {{"--ingress-drain-timeout", "-1s"}, "--ingress-drain-timeout"},
           {{"--ingress-drain-timeout", "later"}, "--ingress-drain-timeout"},
           {{"--ingress-default-certificate", "tls"}, "--ingress-default-certificate: \"tls\""},
           {{"--ingress-default-certificate", "a/B_C"}, "not namespace/name of a Secret"},
       }) {
    std::vector<std::string> args = {"--manifests", "/m", "--ingress"};
    args.insert(args.end(), bad.args.begin(), bad.args.end());
    auto r = parseArgs(args);
    ASSERT_FALSE(r.ok()) << bad.mentions;
    EXPECT_NE(r.error().message().find(bad.mentions), std::string::npos) << r.error().message();
  }
  std::string path = writeFile("bad.yaml", "manifests: [/m]\ningress:\n  listen: 80\n");
  auto r = parseArgs({"--config", path});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("ingress.listen: unknown field"), std::string::npos)
      << r.error().message();
  path = writeFile("bad-format.yaml", "manifests: [/m]\ningress:\n  accessLogFormat: xml\n");
  r = parseArgs({"--config", path});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("ingress.accessLogFormat: \"xml\" is not"), std::string::npos)
      << r.error().message();
}

TEST_F(ConfigTest, ParsesIngressStatusSettings) {
  auto flags = parseArgs({"--master", "http://127.0.0.1:1", "--ingress", "--ingress-status-address",
                          "192.0.2.1, lb.example.com", "--ingress-status-address", "2001:db8::1"});
  ASSERT_TRUE(flags.ok()) << flags.error().message();
  EXPECT_EQ(flags->config.ingress.statusAddresses,
            (std::vector<std::string>{"192.0.2.1", "lb.example.com", "2001:db8::1"}));
  EXPECT_FALSE(flags->config.ingress.statusFromNode);
  std::string path = writeFile("status.yaml", R"(kind: CapstanConfiguration
ingress:
  enabled: true
  statusFromNode: true
)");
  auto file = parseArgs({"--config", path, "--master", "http://127.0.0.1:1"});
  ASSERT_TRUE(file.ok()) << file.error().message();
  EXPECT_TRUE(file->config.ingress.statusFromNode);
  EXPECT_TRUE(file->config.ingress.statusAddresses.empty());

  struct Bad {
    std::vector<std::string> args;
    std::string message;
  };
  for (const Bad& bad : std::vector<Bad>{
           {{"--master", "http://127.0.0.1:1", "--ingress", "--ingress-status-address",
             "Not_A_Host"},
            "--ingress-status-address: \"Not_A_Host\" is neither an IP address nor a host name "
            "(RFC 1123)"},
           {{"--master", "http://127.0.0.1:1", "--ingress-status-address", "192.0.2.1"},
            "--ingress-status-address: needs --ingress"},
           {{"--manifests", "/m", "--ingress", "--ingress-status-from-node"},
            "--ingress-status-from-node: needs the Kubernetes API source"},
           {{"--master", "http://127.0.0.1:1", "--ingress", "--ingress-status-from-node",
             "--ingress-status-address", "192.0.2.1"},
            "--ingress-status-address: cannot be combined with --ingress-status-from-node"},
       }) {
    auto r = parseArgs(bad.args);
    ASSERT_FALSE(r.ok()) << bad.message;
    EXPECT_NE(r.error().message().find(bad.message), std::string::npos) << r.error().message();
  }
  std::string badFile =
      writeFile("badstatus.yaml", "manifests: [/m]\ningress:\n  statusAddresses: [\"a b\"]\n");
  auto r = parseArgs({"--config", badFile});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("ingress.statusAddresses: \"a b\" is neither"),
            std::string::npos)
      << r.error().message();
}

TEST_F(ConfigTest, ParsesDpdkFlags) {
  auto r = parseArgs(
      {"--proxy-mode=dpdk", "--manifests", "/m", "--dpdk-eal-args", "-l 0,1 --file-prefix capstan",
       "--dpdk-port", "net_tap0,iface=cap0", "--dpdk-exception-port", "net_tap1", "--dpdk-workers",
       "2", "--dpdk-nat-address", "192.0.2.1,2001:db8::1", "--dpdk-next-hop-mac",
       "02:00:00:00:00:FE", "--dpdk-serve-cluster-ips", "--dpdk-exit-when-idle", "1000"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  const Config& c = r->config;
  EXPECT_EQ(c.mode, ProxyMode::kDpdk);
  EXPECT_EQ(c.dpdk.ealArgs, "-l 0,1 --file-prefix capstan");
  EXPECT_EQ(c.dpdk.port, "net_tap0,iface=cap0");
  EXPECT_EQ(c.dpdk.exceptionPort, "net_tap1");
  EXPECT_EQ(c.dpdk.workers, 2u);
  ASSERT_EQ(c.dpdk.natAddresses.size(), 2u);
  EXPECT_EQ(c.dpdk.natAddresses[0].toString(), "192.0.2.1");
  EXPECT_EQ(c.dpdk.natAddresses[1].toString(), "2001:db8::1");
  ASSERT_TRUE(c.dpdk.nextHopMac);
  EXPECT_EQ(*c.dpdk.nextHopMac, (std::array<uint8_t, 6>{2, 0, 0, 0, 0, 0xfe}));
  EXPECT_TRUE(c.dpdk.serveClusterIPs);
  EXPECT_EQ(c.dpdk.exitWhenIdlePolls, 1000u);

  // --dry-run renders the VIP table without a port.
  auto dry = parseArgs({"--proxy-mode=dpdk", "--manifests", "/m", "--dry-run"});
  ASSERT_TRUE(dry.ok()) << dry.error().message();
  EXPECT_EQ(dry->config.dpdk.workers, 1u);
  EXPECT_EQ(dry->config.dpdk.exitWhenIdlePolls, 0u);
}

TEST_F(ConfigTest, RejectsBadDpdkFlagsNamingThem) {
  const std::vector<std::string> base = {"--proxy-mode=dpdk", "--manifests", "/m"};
  const std::vector<std::string> port = {"--dpdk-port", "net_null0"};
  const std::vector<std::string> nat = {"--dpdk-nat-address", "192.0.2.1"};
  struct Bad {
    std::vector<std::string> args;
    std::string mentions;
  };
  for (const Bad& bad : std::vector<Bad>{
           {nat, "--dpdk-port: required"},
           {port, "--dpdk-nat-address: required"},
           {{"--dpdk-workers", "0"}, "--dpdk-workers"},
           {{"--dpdk-workers", "two"}, "--dpdk-workers"},
           {{"--dpdk-exit-when-idle", "-1"}, "--dpdk-exit-when-idle"},
           {{"--dpdk-exit-when-idle", "99999999999"}, "--dpdk-exit-when-idle"},
           {{"--dpdk-nat-address", "192.0.2.300"}, "--dpdk-nat-address"},
           {{"--dpdk-nat-address", "192.0.2.1,192.0.2.2"}, "--dpdk-nat-address: two IPv4"},
           {{"--dpdk-next-hop-mac", "02:00:00:00:00"}, "--dpdk-next-hop-mac"},
           {{"--dpdk-next-hop-mac", "02:00:00:00:00:zz"}, "--dpdk-next-hop-mac"},
       }) {
    std::vector<std::string> args = base;
    args.insert(args.end(), bad.args.begin(), bad.args.end());
    if (bad.mentions.find("required") == std::string::npos) {
      args.insert(args.end(), port.begin(), port.end());
      if (bad.mentions.find("nat-address") == std::string::npos) {
        args.insert(args.end(), nat.begin(), nat.end());
      }
    }
    auto r = parseArgs(args);
    ASSERT_FALSE(r.ok()) << bad.mentions;
    EXPECT_NE(r.error().message().find(bad.mentions), std::string::npos) << r.error().message();
  }
}

TEST_F(ConfigTest, ReadsTheDpdkSectionAndFlagsOverrideIt) {
  std::string path = writeFile("capstan.yaml", R"(apiVersion: capstan.io/v1alpha1
kind: CapstanConfiguration
mode: dpdk
manifests: [/m]
dpdk:
  ealArgs: "-l 0,1"
  port: net_tap0
  exceptionPort: net_tap1
  workers: 1
  natAddresses: ["192.0.2.1"]
  nextHopMAC: "02:00:00:00:00:01"
  serveClusterIPs: true
  exitWhenIdle: 10
)");
  auto r = parseArgs({"--config", path, "--dpdk-workers", "3"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  const Config& c = r->config;
  EXPECT_EQ(c.mode, ProxyMode::kDpdk);
  EXPECT_EQ(c.dpdk.ealArgs, "-l 0,1");
  EXPECT_EQ(c.dpdk.port, "net_tap0");
  EXPECT_EQ(c.dpdk.exceptionPort, "net_tap1");
  EXPECT_EQ(c.dpdk.workers, 3u);
  ASSERT_EQ(c.dpdk.natAddresses.size(), 1u);
  EXPECT_TRUE(c.dpdk.nextHopMac);
  EXPECT_TRUE(c.dpdk.serveClusterIPs);
  EXPECT_EQ(c.dpdk.exitWhenIdlePolls, 10u);

  for (const auto& [content, mentions] : std::vector<std::pair<std::string, std::string>>{
           {"manifests: [/m]\ndpdk:\n  workers: 0\n", "dpdk.workers"},
           {"manifests: [/m]\ndpdk:\n  natAddresses: [nope]\n", "dpdk.natAddresses"},
           {"manifests: [/m]\ndpdk:\n  nextHopMAC: zz\n", "dpdk.nextHopMAC"},
           {"manifests: [/m]\ndpdk:\n  prot: net_tap0\n", "dpdk.prot: unknown field"},
       }) {
    std::string bad = writeFile("bad.yaml", content);
    auto e = parseArgs({"--config", bad});
    ASSERT_FALSE(e.ok()) << content;
    EXPECT_NE(e.error().message().find(mentions), std::string::npos) << e.error().message();
  }
}

}  // namespace
}  // namespace capstan::control

namespace capstan::control {
namespace {

TEST(ParseArgs, KubeApiSourceFlagsAndFile) {
  auto r =
      parseArgs({"--kubeconfig", "/etc/kubernetes/kubeconfig", "--master", "https://api:6443"});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->config.kubeconfig, "/etc/kubernetes/kubeconfig");
  EXPECT_EQ(r->config.master, "https://api:6443");
  EXPECT_TRUE(usesKubeApi(r->config));
  auto both = parseArgs({"--kubeconfig", "/k", "--manifests", "/m"});
  ASSERT_FALSE(both.ok());
  EXPECT_EQ(both.error().message(),
            "--manifests: cannot be combined with --kubeconfig or --master (objects come from one "
            "source)");

  char tmpl[] = "/tmp/capstan-config-XXXXXX";
  int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  std::string text =
      "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
      "clientConnection:\n  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\n"
      "  qps: 5\n  burst: 10\n  contentType: application/vnd.kubernetes.protobuf\n";
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fd);
  auto file = parseArgs({"--config", tmpl});
  ASSERT_TRUE(file.ok()) << file.error().message();
  EXPECT_EQ(file->config.kubeconfig, "/var/lib/kube-proxy/kubeconfig.conf");
  std::ofstream(tmpl) << "clientConnection:\n  kubeconfigg: /x\n";
  auto typo = parseArgs({"--config", tmpl});
  ASSERT_FALSE(typo.ok());
  EXPECT_EQ(typo.error().message(),
            std::string(tmpl) + ": clientConnection.kubeconfigg: unknown field");
  ::unlink(tmpl);
}

}  // namespace
}  // namespace capstan::control
