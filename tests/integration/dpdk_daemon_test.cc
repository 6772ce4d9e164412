// The real `capstan --proxy-mode=dpdk`, started as a child process on a net_pcap data port: a
// client's SYN to a LoadBalancer IP, written with the packet builder into the input pcap, comes
// out of the output pcap full-NATed to one of the Service's endpoints with valid checksums, and
// the daemon exits 0 by itself once its packet loop has gone idle (--dpdk-exit-when-idle). And
// --dry-run prints the VIP table without starting DPDK.
//
// Every wait is bounded; a child still running when a test ends is killed in TearDown.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/child_process.h"

#ifdef CAPSTAN_HAVE_DPDK
#include "tests/dataplane/packet_checks.h"
#include "tests/dataplane/dpdk/pcap_file.h"
#include "tests/dataplane/dpdk/test_eal.h"
#endif

namespace capstan::control {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kCapstan = CAPSTAN_BINARY_DIR "/control/capstan";

#ifdef CAPSTAN_HAVE_DPDK

using capstan::support::spawn;
using capstan::support::waitExit;
using dataplane::test::Frame;
using dataplane::test::PacketBuilder;

constexpr const char* kVip = "203.0.113.10";
constexpr const char* kNat = "192.0.2.1";
constexpr const char* kClient = "198.18.0.7";

const char* const kManifests = R"(apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.10
  ports:
  - name: http
    port: 80
    targetPort: 8080
    nodePort: 30080
status:
  loadBalancer:
    ingress:
    - ip: 203.0.113.10
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: default
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
endpoints:
- addresses: ["10.244.1.1"]
  conditions: {ready: true}
- addresses: ["10.244.1.2"]
  conditions: {ready: true}
ports:
- name: http
  port: 8080
  protocol: TCP
)";

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class DpdkDaemonTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::access(kCapstan, X_OK), 0) << kCapstan << " is not built";
    char pattern[] = "/tmp/capstan-dpdk-daemon-test-XXXXXX";
    char* made = ::mkdtemp(pattern);
    ASSERT_NE(made, nullptr);
    root_ = made;
    fs::create_directories(path("manifests"));
    std::ofstream(path("manifests/web.yaml")) << kManifests;
  }

  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (HasFailure()) {
      for (const char* log : {"daemon.out", "daemon.err"}) {
        if (fs::exists(path(log))) {
          std::printf("--- %s ---\n%s--- end ---\n", log, readFile(path(log)).c_str());
        }
      }
    }
    std::error_code ignored;
    if (!root_.empty()) fs::remove_all(root_, ignored);
    // The EAL's runtime directory (empty with --no-shconf) outlives the daemon.
    if (!filePrefix_.empty()) fs::remove_all("/var/run/dpdk/" + filePrefix_, ignored);
  }

  std::string path(const std::string& rel) const { return root_ + "/" + rel; }

  // The EAL arguments of the tests' EAL (tests/dataplane/dpdk/test_eal.h) with a prefix of this
  // test's own.
  std::string ealArgs() {
    std::string args = dataplane::test::testEalArgs();
    const std::string flag = "--file-prefix ";
    const size_t at = args.find(flag);
    const size_t end = args.find(' ', at + flag.size());
    filePrefix_ = "capstan-dpdkd-" + std::to_string(::getpid());
    return args.substr(0, at + flag.size()) + filePrefix_ + args.substr(end);
  }

  std::string root_;
  std::string filePrefix_;
  pid_t pid_ = -1;
};

TEST_F(DpdkDaemonTest, DryRunPrintsTheVipTable) {
  const pid_t pid = spawn({kCapstan, "--dry-run", "--proxy-mode=dpdk", "--manifests",
                           path("manifests"), "--dpdk-nat-address", kNat},
                          path("daemon.out"), path("daemon.err"));
  ASSERT_GT(pid, 0);
  pid_ = pid;
  const std::optional<int> status = waitExit(pid, 20s);
  ASSERT_TRUE(status) << "capstan --dry-run did not exit within 20 s";
  pid_ = -1;
  ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "wait status " << *status;
  const std::string out = readFile(path("daemon.out"));
  EXPECT_NE(out.find("203.0.113.10:80/TCP LoadBalancerIP default/web:http -> 10.244.1.1:8080 "
                     "10.244.1.2:8080"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("192.0.2.1:30080/TCP NodePort default/web:http ->"), std::string::npos) << out;
  // ClusterIPs only with --dpdk-serve-cluster-ips.
  EXPECT_EQ(out.find("10.96.0.10"), std::string::npos) << out;
}

TEST_F(DpdkDaemonTest, SynThroughNetPcapIsNatedToAnEndpoint) {
  if (::geteuid() != 0) GTEST_SKIP() << "the DPDK EAL does not start without root here";
  const Frame syn =
      PacketBuilder().ipv4(kClient, kVip, 57).tcp(40000, 80, dataplane::kTcpSyn).build();
  // Not for a VIP and no exception port: dropped and counted, never on the data port.
  const Frame noVip = PacketBuilder().ipv4(kClient, "198.51.100.99").tcp(40001, 22).build();
  ASSERT_TRUE(dataplane::test::writePcap(path("in.pcap"), {syn, noVip}));

  pid_ = spawn({kCapstan, "--proxy-mode=dpdk", "--manifests", path("manifests"), "--dpdk-eal-args",
                ealArgs(), "--dpdk-port",
                "net_pcap0,rx_pcap=" + path("in.pcap") + ",tx_pcap=" + path("out.pcap"),
                "--dpdk-nat-address", kNat, "--dpdk-exit-when-idle", "1000",
                "--healthz-bind-address", "", "--metrics-bind-address", ""},
               path("daemon.out"), path("daemon.err"));
  ASSERT_GT(pid_, 0);
  const std::optional<int> status = waitExit(pid_, 60s);
  ASSERT_TRUE(status) << "capstan did not exit by itself within 60 s";
  pid_ = -1;
  ASSERT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "wait status " << *status;
  EXPECT_NE(readFile(path("daemon.err")).find("ended by themselves"), std::string::npos);

  auto out = dataplane::test::readPcap(path("out.pcap"));
  ASSERT_TRUE(out) << out.error().message();
  ASSERT_EQ(out->size(), 1u);
  const Frame& frame = (*out)[0];
  dataplane::ParsedPacket p;
  ASSERT_EQ(dataplane::parsePacket(frame, p), dataplane::DropReason::kNone);
  EXPECT_EQ(p.key.srcAddress().toString(), kNat);
  const std::string endpoint = p.key.dstAddress().toString();
  EXPECT_TRUE(endpoint == "10.244.1.1" || endpoint == "10.244.1.2") << endpoint;
  EXPECT_EQ(p.key.dstPort, 8080);
  EXPECT_EQ(p.tcpFlags, dataplane::kTcpSyn);
  EXPECT_TRUE(dataplane::test::checksumsValid(frame));
}

#else

TEST(DpdkDaemonTest, NotBuilt) {
  GTEST_SKIP() << "this build of Capstan has no DPDK (CAPSTAN_WITH_DPDK is OFF or libdpdk-dev is "
                  "not installed)";
}

#endif

}  // namespace
}  // namespace capstan::control
