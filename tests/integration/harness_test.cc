// The L4 test harness itself, without Capstan: the Topology of namespaces comes up and goes
// leaving nothing behind (also when a test fails an assertion midway), the echo server answers
// TCP and UDP across namespaces, and hand-written iptables rules in the node namespace (a DNAT,
// a REJECT, a DROP) give the client exactly what the L4 flow table expects of a dataplane: the
// backend, "refused" at once, "timeout".
#include <arpa/inet.h>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/l4_client.h"
#include "tests/support/netns.h"
#include "tests/support/text_lines.h"

namespace capstan::support {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto v4 = Family::kIPv4;
constexpr auto v6 = Family::kIPv6;
constexpr uint16_t kPort = 8080;

using support::lines;

// Namespace names in `ip netns list` of this machine.
std::set<std::string> namespaceNames() {
  std::set<std::string> out;
  CommandResult r = runCommand({"ip", "netns", "list"});
  EXPECT_TRUE(r.ok()) << r.describe() << ": " << r.output;
  for (const std::string& line : lines(r.output)) out.insert(line.substr(0, line.find(' ')));
  return out;
}

size_t namespacesStartingWith(const std::string& prefix) {
  size_t n = 0;
  for (const std::string& name : namespaceNames()) n += name.starts_with(prefix) ? 1 : 0;
  return n;
}

// The veth and bridge links of the caller's (root) namespace: where a leaked end would show.
std::set<std::string> rootVirtualLinks() {
  std::set<std::string> out;
  for (const char* kind : {"veth", "bridge"}) {
    CommandResult r = runCommand({"ip", "-o", "link", "show", "type", kind});
    EXPECT_TRUE(r.ok()) << r.describe() << ": " << r.output;
    for (const std::string& line : lines(r.output)) out.insert(line);
  }
  return out;
}

std::string withPort(const std::string& address, Family family, uint16_t port) {
  return (family == v4 ? address : "[" + address + "]") + ":" + std::to_string(port);
}

// A Topology with an echo server named b<i> on every backend (TCP and UDP, IPv4 and IPv6).
struct EchoNetwork {
  std::unique_ptr<Topology> topology;
  std::vector<Process> echoes;
};

void startEchoNetwork(EchoNetwork& net, size_t backends) {
  auto topology = Topology::create({backends, true});
  ASSERT_TRUE(topology.ok()) << topology.error().message();
  net.topology = std::move(*topology);
  for (size_t i = 0; i < backends; ++i) {
    auto echo = startEchoServer(*net.topology, net.topology->backend(i), "b" + std::to_string(i),
                                {withPort(Topology::backendAddress(i, v4), v4, kPort),
                                 withPort(Topology::backendAddress(i, v6), v6, kPort)});
    ASSERT_TRUE(echo.ok()) << echo.error().message();
    net.echoes.push_back(std::move(*echo));
  }
}

void iptables(const Topology& t, const std::string& tool, const std::string& rule) {
  CommandResult r = t.shell(t.node(), tool + " -w " + rule);
  ASSERT_TRUE(r.ok()) << tool << " " << rule << ": " << r.describe() << ": " << r.output;
}

TEST(TopologyTest, ComesUpConfiguredAndGoesLeavingNothingBehind) {
  std::set<std::string> linksBefore = rootVirtualLinks();
  std::string prefix;
  pid_t sleeper = -1;
  {
    auto created = Topology::create({2, true});
    ASSERT_TRUE(created.ok()) << created.error().message();
    Topology& t = **created;
    prefix = t.prefix();
    EXPECT_TRUE(prefix.starts_with("cpt" + std::to_string(::getpid()) + "-")) << prefix;
    EXPECT_EQ(t.namespaces().size(), 4u);
    EXPECT_EQ(namespacesStartingWith(prefix), 4u);

    // Addresses, routes and forwarding as the plan says.
    CommandResult nodeAddrs = t.run(t.node(), {"ip", "-o", "addr"});
    for (const std::string& a : {Topology::nodeAddress(v4), Topology::nodeBackendAddress(v4),
                                 Topology::nodeAddress(v6), Topology::nodeBackendAddress(v6)}) {
      EXPECT_NE(nodeAddrs.output.find(" " + a + "/"), std::string::npos) << a << nodeAddrs.output;
    }
    EXPECT_EQ(t.run(t.node(), {"sysctl", "-n", "net.ipv4.ip_forward"}).output, "1\n");
    EXPECT_EQ(t.run(t.node(), {"sysctl", "-n", "net.ipv6.conf.all.forwarding"}).output, "1\n");
    EXPECT_EQ(t.run(t.client(), {"sysctl", "-n", "net.ipv4.ip_forward"}).output, "0\n");
    CommandResult clientRoutes = t.run(t.client(), {"ip", "route", "get", "10.96.0.10"});
    EXPECT_NE(clientRoutes.output.find("via " + Topology::nodeAddress(v4)), std::string::npos)
        << clientRoutes.output;
    CommandResult nodeRoutes = t.run(t.node(), {"ip", "route", "get", "10.96.0.10"});
    EXPECT_NE(nodeRoutes.output.find("dev br0"), std::string::npos) << nodeRoutes.output;
    // Interface names within IFNAMSIZ, inside the namespaces only.
    CommandResult nodeLinks = t.run(t.node(), {"ip", "-o", "link"});
    for (const char* name : {"cli0@", "br0:", "be0@", "be1@"}) {
      EXPECT_NE(nodeLinks.output.find(name), std::string::npos) << name << nodeLinks.output;
    }
    EXPECT_EQ(rootVirtualLinks(), linksBefore);

    // A command's output and exit code; a command killed at its limit.
    CommandResult echoed = t.shell(t.backend(1), "echo out; echo err >&2; exit 3");
    EXPECT_EQ(echoed.exitCode(), 3);
    EXPECT_EQ(echoed.output, "out\nerr\n");
    auto start = Clock::now();
    CommandResult slow = t.run(t.client(), {"sleep", "5"}, 200ms);
    EXPECT_TRUE(slow.timedOut);
    EXPECT_LT(Clock::now() - start, 2s);

    // A long-running process, left for the destructor to kill.
    auto spawned = t.spawn(t.client(), {"sleep", "600"}, "sleep.log");
    ASSERT_TRUE(spawned.ok()) << spawned.error().message();
    static Process kept;  // outlives the Topology on purpose
    kept = std::move(*spawned);
    sleeper = kept.pid();
    EXPECT_TRUE(kept.running());
  }
  EXPECT_EQ(namespacesStartingWith(prefix), 0u);
  EXPECT_EQ(rootVirtualLinks(), linksBefore);
  EXPECT_NE(::kill(sleeper, 0), 0) << "the process spawned in the topology still runs";
}

std::string failedTopologyPrefix;

// Builds a topology and fails an assertion while it stands.
void createTopologyAndFail() {
  auto created = Topology::create({1, false});
  ASSERT_TRUE(created.ok()) << created.error().message();
  failedTopologyPrefix = (*created)->prefix();
  ASSERT_TRUE(false) << "a deliberate failure";
}

TEST(TopologyTest, IsRemovedAfterAFailedAssertion) {
  EXPECT_FATAL_FAILURE(createTopologyAndFail(), "a deliberate failure");
  ASSERT_FALSE(failedTopologyPrefix.empty());
  EXPECT_EQ(namespacesStartingWith(failedTopologyPrefix), 0u);
}

TEST(TopologyTest, WithinRunsInTheNamespaceAndReturnsTheValue) {
  auto created = Topology::create({1, false});
  ASSERT_TRUE(created.ok()) << created.error().message();
  Topology& t = **created;
  // The namespace's own view: only its loopback and its link, and the address given to it.
  std::string links = t.within(t.backend(0), [] {
    std::ifstream in("/proc/net/dev");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  });
  EXPECT_NE(links.find("eth0"), std::string::npos) << links;
  EXPECT_EQ(links.find("br0"), std::string::npos) << links;
  // A socket made within a namespace belongs to it: the node's address binds there only.
  auto bindsNodeAddress = [] {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    ::inet_pton(AF_INET, Topology::nodeAddress(v4).c_str(), &addr.sin_addr);
    bool bound = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    if (fd >= 0) ::close(fd);
    return bound;
  };
  EXPECT_TRUE(t.within(t.node(), bindsNodeAddress));
  EXPECT_FALSE(t.within(t.client(), bindsNodeAddress));
  EXPECT_FALSE(bindsNodeAddress());
}

TEST(EchoServerTest, AnswersTcpAndUdpAcrossNamespacesOnBothFamilies) {
  EchoNetwork net;
  ASSERT_NO_FATAL_FAILURE(startEchoNetwork(net, 2));
  Topology& t = *net.topology;
  for (Family f : {v4, v6}) {
    for (size_t i = 0; i < 2; ++i) {
      std::string address = Topology::backendAddress(i, f);
      Answer tcp = t.within(t.client(), [&] { return tcpAsk(address, kPort, 2s); });
      EXPECT_TRUE(tcp.ok()) << address << ": " << tcp.describe();
      EXPECT_EQ(tcp.name, "b" + std::to_string(i));
      Answer udp = t.within(t.client(), [&] { return udpAsk(address, kPort, 2s, 40000); });
      EXPECT_TRUE(udp.ok()) << address << ": " << udp.describe();
      EXPECT_EQ(udp.name, "b" + std::to_string(i));
      // From the node too (the backends' own subnet).
      Answer fromNode = t.within(t.node(), [&] { return tcpAsk(address, kPort, 2s); });
      EXPECT_EQ(fromNode.name, "b" + std::to_string(i)) << fromNode.describe();
    }
  }
  // The same source port again and again: a stable flow, always answered.
  for (int i = 0; i < 5; ++i) {
    Answer udp = t.within(
        t.client(), [&] { return udpAsk(Topology::backendAddress(0, v4), kPort, 2s, 40001); });
    EXPECT_EQ(udp.name, "b0") << udp.describe();
  }
  // No listener: refused at once, for TCP (RST) and UDP (ICMP port unreachable).
  Answer tcpRefused =
      t.within(t.client(), [&] { return tcpAsk(Topology::backendAddress(0, v4), 9, 2s); });
  EXPECT_EQ(tcpRefused.outcome, Outcome::kRefused) << tcpRefused.describe();
  EXPECT_LT(tcpRefused.elapsed, 1s);
  Answer udpRefused =
      t.within(t.client(), [&] { return udpAsk(Topology::backendAddress(0, v4), 9, 2s, 40002); });
  EXPECT_EQ(udpRefused.outcome, Outcome::kRefused) << udpRefused.describe();
}

TEST(EchoServerTest, HoldsManyConnectionsAndTalksOnEach) {
  EchoNetwork net;
  ASSERT_NO_FATAL_FAILURE(startEchoNetwork(net, 1));
  Topology& t = *net.topology;
  constexpr size_t kConnections = 300;
  std::vector<TcpConnection> held = t.within(t.client(), [&] {
    std::vector<TcpConnection> out;
    for (size_t i = 0; i < kConnections; ++i) {
      out.push_back(tcpHold(Topology::backendAddress(0, i % 2 ? v6 : v4), kPort, 2s));
    }
    return out;
  });
  for (size_t round = 0; round < 2; ++round) {
    for (size_t i = 0; i < held.size(); ++i) {
      ASSERT_TRUE(held[i].greeting().ok()) << i << ": " << held[i].greeting().describe();
      Answer a = held[i].talk("line " + std::to_string(i) + " round " + std::to_string(round), 2s);
      ASSERT_TRUE(a.ok()) << i << ": " << a.describe();
      EXPECT_EQ(a.name, "b0");
    }
  }
  // A reply that is not the echo protocol's, and a closed connection, are told apart.
  Answer bad = held[0].talk("has\nnewline", 1s);
  EXPECT_EQ(bad.outcome, Outcome::kError);
  // SIGTERM: the server exits 0, and held connections see the close.
  std::optional<int> status = net.echoes[0].stop(5s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  Answer closed = held[1].talk("anyone?", 2s);
  EXPECT_EQ(closed.outcome, Outcome::kClosed) << closed.describe();
}

TEST(HandWrittenRulesTest, DnatToABackendReachesIt) {
  EchoNetwork net;
  ASSERT_NO_FATAL_FAILURE(startEchoNetwork(net, 2));
  Topology& t = *net.topology;
  // What a dataplane does for ClusterIP 10.96.0.10:80 -> b1:8080, from outside and from the node.
  std::string to = Topology::backendAddress(1, v4) + ":8080";
  for (const char* chain : {"PREROUTING", "OUTPUT"}) {
    for (const char* proto : {"tcp", "udp"}) {
      ASSERT_NO_FATAL_FAILURE(iptables(t, "iptables",
                                       std::string("-t nat -A ") + chain + " -d 10.96.0.10 -p " +
                                           proto + " --dport 80 -j DNAT --to-destination " + to));
    }
  }
  ASSERT_NO_FATAL_FAILURE(
      iptables(t, "ip6tables",
               "-t nat -A PREROUTING -d fd00:96::10 -p tcp --dport 80 -j DNAT --to-destination [" +
                   Topology::backendAddress(1, v6) + "]:8080"));

  for (const std::string& ns : {t.client(), t.node()}) {
    Answer a = t.within(ns, [] { return tcpAsk("10.96.0.10", 80, 2s); });
    EXPECT_TRUE(a.ok()) << ns << ": " << a.describe();
    EXPECT_EQ(a.name, "b1");
    Answer u = t.within(ns, [] { return udpAsk("10.96.0.10", 80, 2s, 40053); });
    EXPECT_EQ(u.name, "b1") << ns << ": " << u.describe();
  }
  Answer a6 = t.within(t.client(), [] { return tcpAsk("fd00:96::10", 80, 2s); });
  EXPECT_EQ(a6.name, "b1") << a6.describe();

  // An established connection keeps its backend when the rule changes (conntrack), while new
  // connections follow the new rule.
  TcpConnection held = t.within(t.client(), [] { return tcpHold("10.96.0.10", 80, 2s); });
  ASSERT_EQ(held.greeting().name, "b1") << held.greeting().describe();
  ASSERT_NO_FATAL_FAILURE(iptables(t, "iptables", "-t nat -F PREROUTING"));
  ASSERT_NO_FATAL_FAILURE(iptables(t, "iptables",
                                   "-t nat -A PREROUTING -d 10.96.0.10 -p tcp --dport 80 -j DNAT "
                                   "--to-destination " +
                                       Topology::backendAddress(0, v4) + ":8080"));
  Answer moved = t.within(t.client(), [] { return tcpAsk("10.96.0.10", 80, 2s); });
  EXPECT_EQ(moved.name, "b0") << moved.describe();
  Answer still = held.talk("still b1?", 2s);
  EXPECT_EQ(still.name, "b1") << still.describe();
}

TEST(HandWrittenRulesTest, RejectIsRefusedAtOnceAndDropIsATimeout) {
  EchoNetwork net;
  ASSERT_NO_FATAL_FAILURE(startEchoNetwork(net, 1));
  Topology& t = *net.topology;
  ASSERT_NO_FATAL_FAILURE(iptables(t, "iptables", "-A FORWARD -d 10.96.0.20 -j REJECT"));
  ASSERT_NO_FATAL_FAILURE(
      iptables(t, "iptables", "-A FORWARD -d 10.96.0.21 -p tcp -j REJECT --reject-with tcp-reset"));
  ASSERT_NO_FATAL_FAILURE(iptables(t, "iptables", "-A FORWARD -d 10.96.0.22 -j DROP"));
  ASSERT_NO_FATAL_FAILURE(iptables(t, "ip6tables", "-A FORWARD -d fd00:96::20 -j REJECT"));
  // From the node itself, REJECT in OUTPUT as kube-proxy writes it for a service without
  // endpoints.
  ASSERT_NO_FATAL_FAILURE(iptables(t, "iptables", "-A OUTPUT -d 10.96.0.20 -j REJECT"));

  for (const std::string& ns : {t.client(), t.node()}) {
    Answer icmp = t.within(ns, [] { return tcpAsk("10.96.0.20", 80, 3s); });
    EXPECT_EQ(icmp.outcome, Outcome::kRefused) << ns << ": " << icmp.describe();
    EXPECT_LT(icmp.elapsed, 1s) << icmp.describe();
  }
  Answer rst = t.within(t.client(), [] { return tcpAsk("10.96.0.21", 80, 3s); });
  EXPECT_EQ(rst.outcome, Outcome::kRefused) << rst.describe();
  EXPECT_LT(rst.elapsed, 1s) << rst.describe();
  Answer udp = t.within(t.client(), [] { return udpAsk("10.96.0.20", 53, 3s, 40054); });
  EXPECT_EQ(udp.outcome, Outcome::kRefused) << udp.describe();
  EXPECT_LT(udp.elapsed, 1s) << udp.describe();
  // IPv6 is refused too, but only after the first SYN retransmission (1 s): on veth the whole
  // round trip runs inside connect(), and an ICMPv6 error arriving while connect() holds the
  // socket is dropped by tcp_v6_err (TcpExtLockDroppedIcmps; IPv4 defers it instead). Across a
  // real link it would be at once.
  Answer six = t.within(t.client(), [] { return tcpAsk("fd00:96::20", 80, 3s); });
  EXPECT_EQ(six.outcome, Outcome::kRefused) << six.describe();
  EXPECT_LT(six.elapsed, 1500ms) << six.describe();

  Answer dropped = t.within(t.client(), [] { return tcpAsk("10.96.0.22", 80, 500ms); });
  EXPECT_EQ(dropped.outcome, Outcome::kTimeout) << dropped.describe();
  EXPECT_GE(dropped.elapsed, 450ms) << dropped.describe();
  EXPECT_LT(dropped.elapsed, 1500ms) << dropped.describe();
  Answer udpDropped = t.within(t.client(), [] { return udpAsk("10.96.0.22", 53, 500ms, 40055); });
  EXPECT_EQ(udpDropped.outcome, Outcome::kTimeout) << udpDropped.describe();
}

TEST(HandWrittenRulesTest, HttpAskReadsAReplyFromAnotherNamespace) {
  auto created = Topology::create({1, false});
  ASSERT_TRUE(created.ok()) << created.error().message();
  Topology& t = **created;
  // A one-reply HTTP server on the node's client-side address: the socket is made in the node
  // namespace and served from this process (no python: it stalls in a namespace).
  int listener = t.within(t.node(), [] {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(32000);
    ::inet_pton(AF_INET, Topology::nodeAddress(v4).c_str(), &addr.sin_addr);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd, 4) != 0) {
      return -1;
    }
    return fd;
  });
  ASSERT_GE(listener, 0) << std::strerror(errno);
  std::thread server([listener] {
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return;
    int fd = ::accept(listener, nullptr, nullptr);
    if (fd < 0) return;
    char buf[1024];
    (void)::recv(fd, buf, sizeof(buf), 0);
    std::string reply =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 20\r\n\r\n{\"localEndpoints\": 0}";
    (void)::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    ::close(fd);
  });
  Result<HttpReply> reply =
      t.within(t.client(), [&] { return httpAsk(Topology::nodeAddress(v4), 32000, "/", 2s); });
  server.join();
  ::close(listener);
  ASSERT_TRUE(reply.ok()) << reply.error().message();
  EXPECT_EQ(reply->status, 503);
  EXPECT_EQ(reply->body, "{\"localEndpoints\": 0}");
  // Nothing listening in the client's namespace on that port: the address is the node's.
  Result<HttpReply> none =
      t.within(t.client(), [&] { return httpAsk(Topology::nodeAddress(v4), 32000, "/", 2s); });
  EXPECT_FALSE(none.ok());
}

}  // namespace
}  // namespace capstan::support
