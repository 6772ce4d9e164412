// The iptables mode's behaviour when iptables-restore fails, on the real daemon in a node
// namespace of a Topology: the rules of the last good sync keep serving, the failure is counted
// in kube-proxy's metrics, and the sync is retried (as a full one) until it succeeds.
//
// The failure is injected with a wrapper `iptables-restore` first on the daemon's PATH that
// fails while a flag file exists and runs the real tool otherwise.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "tests/integration/l4_flow_table.h"
#include "tests/support/child_process.h"
#include "tests/support/l4_client.h"

namespace capstan::integration {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* kRestoreFailures =
    "kubeproxy_sync_proxy_rules_iptables_restore_failures_total";
constexpr const char* kPartialRestoreFailures =
    "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total";

bool writeFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  return static_cast<bool>(out.flush());
}

// Which backends answer `count` TCP asks of 10.96.0.10:80 from the client, by name; failed asks
// under "".
std::map<std::string, int> askWeb(Topology& topology, int count) {
  return topology.within(topology.client(), [&] {
    std::map<std::string, int> seen;
    for (int i = 0; i < count; ++i) {
      support::Answer a = support::tcpAsk("10.96.0.10", 80, 2s);
      ++seen[a.ok() ? a.name : ""];
    }
    return seen;
  });
}

TEST(IptablesDaemonTest, AFailedRestoreKeepsTheLastRulesIsCountedAndIsRetried) {
  auto created = Topology::create({2, false});
  ASSERT_TRUE(created.ok()) << created.error().message();
  Topology& topology = **created;
  std::vector<support::Process> echoes;
  for (size_t i = 0; i < 2; ++i) {
    auto echo = support::startEchoServer(
        topology, topology.backend(i), "b" + std::to_string(i),
        {Topology::backendAddress(i, Family::kIPv4) + ":" + std::to_string(kEchoPort)});
    ASSERT_TRUE(echo.ok()) << echo.error().message();
    echoes.push_back(std::move(*echo));
  }

  std::string realRestore = support::findProgram("iptables-restore");
  ASSERT_FALSE(realRestore.empty()) << "iptables-restore is not installed";
  std::string tools = topology.scratchDir() + "/tools";
  std::string flag = topology.scratchDir() + "/fail-restore";
  fs::create_directories(tools);
  ASSERT_TRUE(writeFile(tools + "/iptables-restore",
                        "#!/bin/sh\n"
                        "if [ -e '" +
                            flag +
                            "' ]; then\n"
                            "  echo 'iptables-restore: injected failure' >&2\n"
                            "  exit 1\n"
                            "fi\n"
                            "exec '" +
                            realRestore + "' \"$@\"\n"));
  fs::permissions(tools + "/iptables-restore", fs::perms::owner_all);

  std::string manifests = topology.scratchDir() + "/manifests";
  fs::create_directories(manifests);
  ASSERT_TRUE(writeFile(manifests + "/web.yaml",
                        manifestYaml(Svc("web", "10.96.0.10").endpoints({0, 1}), topology)));

  CapstanDaemon daemon(topology, "iptables");
  const char* path = std::getenv("PATH");
  daemon.setEnvironment({"PATH=" + tools + ":" + (path ? path : "/usr/sbin:/usr/bin:/sbin:/bin")});
  auto started = daemon.start(manifests);
  ASSERT_TRUE(started.ok()) << started.error().message();
  auto seen = askWeb(topology, 30);
  EXPECT_GT(seen["b0"], 0);
  EXPECT_GT(seen["b1"], 0);
  EXPECT_EQ(seen[""], 0);

  // Restores fail from now on; b0's removal cannot be programmed.
  ASSERT_TRUE(writeFile(flag, ""));
  ASSERT_TRUE(writeFile(manifests + "/web.yaml",
                        manifestYaml(Svc("web", "10.96.0.10").endpoints({1}), topology)));
  std::string metrics;
  bool failed = support::waitFor(
      [&] {
        metrics = daemon.metrics().value_or("");
        return metricValue(metrics, kRestoreFailures).value_or(0) >= 2;
      },
      10s);
  ASSERT_TRUE(failed) << "no failed restore counted:\n" << daemon.ruleDump();
  EXPECT_GE(metricValue(metrics, kPartialRestoreFailures).value_or(0), 1)
      << "the first failure was of the partial sync";
  // The retry is a full sync, and it fails too: partial failures stay at 1 while it retries.
  EXPECT_EQ(metricValue(metrics, kPartialRestoreFailures).value_or(0), 1);
  EXPECT_GE(metricValue(metrics, "capstan_sync_proxy_rules_failures_total").value_or(0), 2);

  // The rules of the last good sync still serve both backends.
  seen = askWeb(topology, 30);
  EXPECT_GT(seen["b0"], 0) << "the old rules were lost";
  EXPECT_GT(seen["b1"], 0);
  EXPECT_EQ(seen[""], 0);

  // Once restores work again, a retry programs the change: only b1 answers. (The last successful
  // sync's timestamp moves; asks alone could see b1 only by chance.)
  const char* kLastSync = "kubeproxy_sync_proxy_rules_last_timestamp_seconds";
  double lastGood = metricValue(daemon.metrics().value_or(""), kLastSync).value_or(0);
  fs::remove(flag);
  bool synced = support::waitFor(
      [&] { return metricValue(daemon.metrics().value_or(""), kLastSync).value_or(0) > lastGood; },
      15s);
  ASSERT_TRUE(synced) << "no successful sync after restores recovered:\n" << daemon.ruleDump();
  seen = askWeb(topology, 30);
  EXPECT_EQ(seen["b1"], 30) << "the change was not applied:\n" << daemon.ruleDump();
  EXPECT_TRUE(daemon.stop().ok());
}

}  // namespace
}  // namespace capstan::integration
