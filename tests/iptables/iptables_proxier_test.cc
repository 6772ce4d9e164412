// IptablesProxier's decisions (full or partial, rollback, canary, cleanup) against a fake
// runner that records what it is asked. The real kernel is exercised in tests/integration.
#include "iptables/iptables_proxier.h"

#include <gtest/gtest.h>

#include "iptables/chain_names.h"

namespace capstan::iptables {
namespace {

class FakeRunner : public IptablesRunner {
 public:
  struct Log {
    std::vector<std::pair<IpFamily, std::string>> restores;
    std::vector<std::string> ensured, deleted, saves;
    std::map<std::string, std::string> sysctls;
    bool v6 = true;
    bool canary = true;
    int failRestores = 0;  // the next N restores fail
    std::string natSave = "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n";
    std::string filterSave = "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n";
    std::vector<IpAddress> addresses = {*IpAddress::parse("127.0.0.1"),
                                        *IpAddress::parse("192.168.0.2")};
  };
  explicit FakeRunner(std::shared_ptr<Log> log) : log_(std::move(log)) {}

  bool available(IpFamily family) override { return family == IpFamily::kV4 || log_->v6; }
  Status restore(IpFamily family, const std::string& payload) override {
    if (log_->failRestores > 0) {
      --log_->failRestores;
      return Error("iptables-restore: line 7 failed");
    }
    log_->restores.emplace_back(family, payload);
    return okStatus();
  }
  Result<std::string> save(IpFamily, Table table) override {
    log_->saves.push_back(std::string(toString(table)));
    return table == Table::kNat ? log_->natSave : log_->filterSave;
  }
  bool chainExists(IpFamily, Table, const std::string&) override { return log_->canary; }
  bool chainHasRules(IpFamily, Table, const std::string&) override { return log_->canary; }
  std::vector<IpAddress> localAddresses(IpFamily family) override {
    std::vector<IpAddress> out;
    for (const auto& ip : log_->addresses) {
      if (ip.family() == family) out.push_back(ip);
    }
    return out;
  }
  Status ensureRule(IpFamily, Table table, const std::string& chain,
                    const std::vector<std::string>& args) override {
    log_->ensured.push_back(std::string(toString(table)) + " " + chain + " -> " + args.back());
    return okStatus();
  }
  Status deleteRule(IpFamily, Table table, const std::string& chain,
                    const std::vector<std::string>& args) override {
    log_->deleted.push_back(std::string(toString(table)) + " " + chain + " -> " + args.back());
    return okStatus();
  }
  Result<std::string> readSysctl(const std::string& name) override {
    auto it = log_->sysctls.find(name);
    if (it == log_->sysctls.end()) return Error("no " + name);
    return it->second;
  }
  Status writeSysctl(const std::string& name, const std::string& value) override {
    log_->sysctls[name] = value;
    return okStatus();
  }

 private:
  std::shared_ptr<Log> log_;
};

std::shared_ptr<const ProxyState> state(std::vector<std::string> webEndpoints,
                                        bool withDual = false) {
  auto svc = std::make_shared<Service>();
  svc->name = {"default", "web"};
  svc->clusterIPs = {*IpAddress::parse("10.96.0.10")};
  if (withDual) svc->clusterIPs.push_back(*IpAddress::parse("fd00:96::10"));
  ServicePortSpec spec;
  spec.name = "http";
  spec.port = 80;
  spec.targetPort = int32_t{8080};
  svc->ports = {spec};
  std::vector<std::shared_ptr<const EndpointSlice>> slices;
  auto slice = std::make_shared<EndpointSlice>();
  slice->name = {"default", "web-1"};
  slice->serviceName = "web";
  for (const auto& ip : webEndpoints) {
    EndpointSliceEndpoint e;
    e.addresses = {*IpAddress::parse(ip)};
    slice->endpoints.push_back(e);
  }
  slice->ports = {{"http", Protocol::kTCP, 8080, ""}};
  slices.push_back(slice);
  NodeInfo node{.name = "node-a"};
  return std::make_shared<ProxyState>(1, node, makeServicePorts(svc, slices, node), IngressState{});
}

const ServicePortName kWeb{{"default", "web"}, "http", Protocol::kTCP};

class IptablesProxierTest : public testing::Test {
 protected:
  std::shared_ptr<FakeRunner::Log> log = std::make_shared<FakeRunner::Log>();
  IptablesConfig config{.clusterCIDRs = {*Cidr::parse("10.244.0.0/16")}};
  std::unique_ptr<IptablesProxier> proxier;

  void SetUp() override { make(); }
  void make() {
    proxier = std::make_unique<IptablesProxier>(config, std::make_unique<FakeRunner>(log));
  }

  SyncResult sync(const ProxyState& s, bool full, std::vector<ServicePortName> changed = {}) {
    ChangeSet changes;
    changes.full = full;
    changes.changed = std::move(changed);
    return proxier->sync(s, changes);
  }
  std::string lastV4() {
    for (auto it = log->restores.rbegin(); it != log->restores.rend(); ++it) {
      if (it->first == IpFamily::kV4) return it->second;
    }
    return "";
  }
};

TEST_F(IptablesProxierTest, FirstSyncIsFullForEachFamilyAndHooksTheChains) {
  auto r = sync(*state({"10.244.1.1"}, true), /*full=*/false);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(r->full);
  ASSERT_EQ(log->restores.size(), 2u);  // IPv4 and IPv6
  EXPECT_NE(lastV4().find("*filter"), std::string::npos);
  EXPECT_NE(lastV4().find("--to-destination 10.244.1.1:8080"), std::string::npos);
  EXPECT_NE(log->restores[1].second.find("fd00:96::10"), std::string::npos);
  // Jumps are ensured after the chains exist; the nat table was read once for stale chains.
  EXPECT_NE(std::find(log->ensured.begin(), log->ensured.end(), "nat PREROUTING -> KUBE-SERVICES"),
            log->ensured.end());
  EXPECT_EQ(std::count(log->saves.begin(), log->saves.end(), "nat"), 2);  // once per family
  EXPECT_EQ(log->sysctls["net/ipv4/conf/all/route_localnet"], "1");
  EXPECT_GT(r->rulesWritten, 0u);
  EXPECT_EQ(r->servicePorts, 2u);  // the port, once per family
}

TEST_F(IptablesProxierTest, ChangesAfterwardsArePartialAndSmall) {
  ASSERT_TRUE(sync(*state({"10.244.1.1"}), false).ok());
  log->restores.clear();
  log->ensured.clear();
  log->saves.clear();
  auto r = sync(*state({"10.244.1.1", "10.244.1.2"}), false, {kWeb});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_FALSE(r->full);
  ASSERT_EQ(log->restores.size(), 1u);  // the service has no IPv6 ClusterIP: nothing for v6
  EXPECT_EQ(lastV4().find("*filter"), std::string::npos);
  EXPECT_EQ(lastV4().find("KUBE-POSTROUTING"), std::string::npos);
  EXPECT_NE(lastV4().find("10.244.1.2:8080"), std::string::npos);
  EXPECT_TRUE(log->ensured.empty());
  EXPECT_TRUE(log->saves.empty());
  // Nothing changed: nothing written.
  log->restores.clear();
  ASSERT_TRUE(sync(*state({"10.244.1.1", "10.244.1.2"}), false, {kWeb}).ok());
  EXPECT_TRUE(log->restores.empty());
}

TEST_F(IptablesProxierTest, AFailedRestoreChangesNothingAndForcesAFullSync) {
  ASSERT_TRUE(sync(*state({"10.244.1.1"}), false).ok());
  log->failRestores = 1;
  auto r = sync(*state({"10.244.1.1", "10.244.1.2"}), false, {kWeb});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("line 7 failed"), std::string::npos);
  EXPECT_NE(r.error().message().find("IPv4"), std::string::npos);
  log->restores.clear();
  // Even a sync that asks for nothing in particular is full now, and carries the endpoint.
  r = sync(*state({"10.244.1.1", "10.244.1.2"}), false);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->full);
  EXPECT_NE(lastV4().find("*filter"), std::string::npos);
  EXPECT_NE(lastV4().find("10.244.1.2:8080"), std::string::npos);
}

TEST_F(IptablesProxierTest, AFlushedTableIsNoticedByTheCanary) {
  ASSERT_TRUE(sync(*state({"10.244.1.1"}), false).ok());
  log->canary = false;
  log->restores.clear();
  auto r = sync(*state({"10.244.1.1", "10.244.1.2"}), false, {kWeb});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->full);
  EXPECT_NE(lastV4().find("*filter"), std::string::npos);
}

TEST_F(IptablesProxierTest, StaleChainsFoundAtStartAreDeleted) {
  log->natSave =
      "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-OLDOLDOLDOLDOLD1 - [0:0]\n"
      ":KUBE-SEP-OLDOLDOLDOLDOLD2 - [0:0]\n:SOMEONE-ELSE - [0:0]\nCOMMIT\n";
  ASSERT_TRUE(sync(*state({"10.244.1.1"}), false).ok());
  EXPECT_NE(lastV4().find("-X KUBE-SVC-OLDOLDOLDOLDOLD1"), std::string::npos);
  EXPECT_NE(lastV4().find("-X KUBE-SEP-OLDOLDOLDOLDOLD2"), std::string::npos);
  EXPECT_EQ(lastV4().find("SOMEONE-ELSE"), std::string::npos);
}

TEST_F(IptablesProxierTest, ChainsOfAPeriodicFullSyncAreDeletedWithoutReadingTheKernel) {
  ASSERT_TRUE(sync(*state({"10.244.1.1", "10.244.1.2"}), false).ok());
  log->saves.clear();
  // The endpoint went away, and this sync is the periodic full one.
  ASSERT_TRUE(sync(*state({"10.244.1.1"}), true).ok());
  EXPECT_TRUE(log->saves.empty());
  Endpoint gone;
  gone.ip = *IpAddress::parse("10.244.1.2");
  gone.port = 8080;
  EXPECT_NE(lastV4().find("-X " + endpointChain(kWeb, gone)), std::string::npos) << lastV4();
}

TEST_F(IptablesProxierTest, OnlyIPv4WhereThereIsNoIPv6) {
  log->v6 = false;
  make();
  EXPECT_EQ(proxier->families(), (std::vector<IpFamily>{IpFamily::kV4}));
  ASSERT_TRUE(sync(*state({"10.244.1.1"}, true), false).ok());
  for (const auto& [family, payload] : log->restores) EXPECT_EQ(family, IpFamily::kV4);
}

TEST_F(IptablesProxierTest, NodePortAddressesResolveAgainstLocalAddresses) {
  config.nodePortAddresses = {"192.168.0.0/24"};
  log->v6 = false;
  make();
  ASSERT_TRUE(sync(*state({"10.244.1.1"}), false).ok());
  EXPECT_NE(lastV4().find("-d 192.168.0.2 -j KUBE-NODEPORTS"), std::string::npos) << lastV4();
  // A new local address is a new setting: the next sync is full.
  log->addresses.push_back(*IpAddress::parse("192.168.0.3"));
  log->restores.clear();
  auto r = sync(*state({"10.244.1.1"}), false);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->full);
  EXPECT_NE(lastV4().find("-d 192.168.0.3 -j KUBE-NODEPORTS"), std::string::npos);
}

TEST_F(IptablesProxierTest, CleanupRemovesJumpsAndEveryChainOfOurs) {
  log->natSave =
      "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n"
      ":KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]\n:DOCKER - [0:0]\nCOMMIT\n";
  log->filterSave = "*filter\n:KUBE-FORWARD - [0:0]\n:KUBE-FIREWALL - [0:0]\nCOMMIT\n";
  ASSERT_TRUE(proxier->cleanup().ok());
  EXPECT_NE(std::find(log->deleted.begin(), log->deleted.end(), "nat PREROUTING -> KUBE-SERVICES"),
            log->deleted.end());
  EXPECT_NE(std::find(log->deleted.begin(), log->deleted.end(), "filter INPUT -> KUBE-FIREWALL"),
            log->deleted.end());
  const std::string& payload = log->restores.at(0).second;
  for (const char* chain : {"KUBE-SERVICES", "KUBE-MARK-MASQ", "KUBE-SVC-AAAAAAAAAAAAAAAA",
                            "KUBE-FORWARD", "KUBE-FIREWALL"}) {
    EXPECT_NE(payload.find(std::string("-X ") + chain), std::string::npos) << chain;
  }
  EXPECT_EQ(payload.find("DOCKER"), std::string::npos);
}

TEST_F(IptablesProxierTest, RenderIsTheFullPayloadOfEachFamily) {
  auto text = proxier->render(*state({"10.244.1.1"}, true));
  ASSERT_TRUE(text.ok());
  EXPECT_NE(text->find("# iptables-restore --noflush input"), std::string::npos);
  EXPECT_NE(text->find("# ip6tables-restore --noflush input"), std::string::npos);
  EXPECT_TRUE(log->restores.empty());  // nothing applied
}

}  // namespace
}  // namespace capstan::iptables
