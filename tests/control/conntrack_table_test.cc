// ConntrackTable against the real kernel, in a network namespace of its own: a client and two
// backends on lo, iptables DNAT rules standing in for a Service, UDP datagrams that make
// conntrack entries, and `conntrack -L` (conntrack-tools, independent of the code under test) to
// see which entries remain. StaleConntrackCleaner with a fake table.
//
// Needs root (CI runs as root): without it the tests fail and say why.
#include "control/conntrack_table.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>

#include "tests/support/netns_child.h"

namespace capstan::control {
namespace {

using namespace std::chrono_literals;

IpAddress ip(const std::string& text) { return IpAddress::parse(text).value_or(IpAddress()); }

// Runs a shell command (bounded by timeout(1)); a failure is a test failure naming it.
bool sh(const std::string& command) {
  int status = std::system(("timeout 20 " + command + " >/dev/null 2>&1").c_str());
  bool ok = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  EXPECT_TRUE(ok) << "`" << command << "` failed (status " << status << ")";
  return ok;
}

// What a command printed on stdout (bounded by timeout(1) and 64 MiB).
std::string output(const std::string& command) {
  std::string out;
  FILE* p = ::popen(("timeout 20 " + command + " 2>/dev/null").c_str(), "r");
  if (p == nullptr) return out;
  char buf[65536];
  for (size_t n; out.size() < (size_t{64} << 20) && (n = std::fread(buf, 1, sizeof(buf), p)) > 0;) {
    out.append(buf, n);
  }
  ::pclose(p);
  return out;
}

// Sends one UDP datagram from client:sport to dst:dport (a conntrack entry follows, through the
// nat OUTPUT rules). SO_REUSEADDR so the same source port can be used again at once.
bool sendUdp(const std::string& client, uint16_t sport, const std::string& dst, uint16_t dport) {
  IpAddress from = ip(client), to = ip(dst);
  int family = from.isV4() ? AF_INET : AF_INET6;
  int fd = ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_storage a{}, b{};
  socklen_t len = 0;
  auto fill = [&](sockaddr_storage& s, const IpAddress& addr, uint16_t port) {
    if (addr.isV4()) {
      auto* in = reinterpret_cast<sockaddr_in*>(&s);
      in->sin_family = AF_INET;
      in->sin_port = htons(port);
      in->sin_addr.s_addr = htonl(addr.v4Value());
      len = sizeof(sockaddr_in);
    } else {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&s);
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons(port);
      std::memcpy(&in6->sin6_addr, addr.bytes().data(), 16);
      len = sizeof(sockaddr_in6);
    }
  };
  fill(a, from, sport);
  fill(b, to, dport);
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), len) == 0 &&
            ::sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&b), len) == 1;
  ::close(fd);
  return ok;
}

// The UDP entries of one family as `conntrack -L` prints them, one per line.
std::string listEntries(IpFamily family) {
  return output(std::string("conntrack -L -p udp -f ") +
                (family == IpFamily::kV4 ? "ipv4" : "ipv6"));
}

// The reply source of the entry for client:sport -> dst:dport, or nullopt if there is none.
std::optional<std::string> replySource(IpFamily family, const std::string& client, uint16_t sport,
                                       const std::string& dst, uint16_t dport) {
  std::string orig = "src=" + client + " dst=" + dst + " sport=" + std::to_string(sport) +
                     " dport=" + std::to_string(dport) + " ";
  std::istringstream lines(listEntries(family));
  std::string line;
  while (std::getline(lines, line)) {
    size_t at = line.find(orig);
    if (at == std::string::npos) continue;
    size_t reply = line.find("src=", at + orig.size());
    if (reply == std::string::npos) return "";
    size_t end = line.find(' ', reply);
    return line.substr(reply + 4, end == std::string::npos ? end : end - reply - 4);
  }
  return std::nullopt;
}

size_t countLines(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Addresses and rules for one family, inside the namespace:
//   client C; backends A and B; VIP1:53 -> A:5353, VIP2:53 -> B:5353, NODE:30053 -> A:5353.
struct Topology {
  IpFamily family;
  std::string client, a, b, vip1, vip2, node;

  std::string iptables() const { return family == IpFamily::kV4 ? "iptables" : "ip6tables"; }
  std::string hostPort(const std::string& host, int port) const {
    return family == IpFamily::kV4 ? host + ":" + std::to_string(port)
                                   : "[" + host + "]:" + std::to_string(port);
  }
  std::string dnat(const std::string& dst, int dport, const std::string& to) const {
    return iptables() + " -w -t nat -A OUTPUT -p udp" + (dst.empty() ? "" : " -d " + dst) +
           " --dport " + std::to_string(dport) + " -j DNAT --to-destination " + hostPort(to, 5353);
  }
  bool setUp() const {
    std::string prefix = family == IpFamily::kV4 ? "/32" : "/128";
    bool ok = sh("ip link set lo up");
    for (const std::string* addr : {&client, &a, &b, &vip1, &vip2, &node}) {
      ok = ok && sh("ip addr add " + *addr + prefix + " dev lo");
    }
    return ok && sh(dnat(vip1, 53, a)) && sh(dnat(vip2, 53, b)) && sh(dnat(node, 30053, a));
  }
  std::optional<std::string> reply(uint16_t sport, const std::string& dst, uint16_t dport) const {
    return replySource(family, client, sport, dst, dport);
  }
};

const Topology kV4{IpFamily::kV4, "10.0.0.100", "10.0.0.1",   "10.0.0.2",
                   "10.96.0.10",  "10.96.0.11", "192.168.0.5"};
const Topology kV6{IpFamily::kV6, "fd00::100",   "fd00::1",  "fd00::2",
                   "fd00:96::10", "fd00:96::11", "fd00:1::5"};

ConntrackFilter filter(const Topology& t, std::optional<std::string> dst,
                       std::optional<uint16_t> port, std::optional<std::string> reply,
                       Protocol protocol = Protocol::kUDP) {
  ConntrackFilter f{t.family, protocol};
  if (dst) f.origDst = ip(*dst);
  f.origDstPort = port;
  if (reply) f.replySrc = ip(*reply);
  return f;
}

// The same five flows each time: to VIP1 (-> A), VIP2 (-> B), the NodePort (-> A), straight to
// B (not NATed), and VIP1 on a port without a rule (not NATed, answered by the VIP itself).
void makeFlows(const Topology& t) {
  ASSERT_TRUE(sendUdp(t.client, 40001, t.vip1, 53));
  ASSERT_TRUE(sendUdp(t.client, 40002, t.vip2, 53));
  ASSERT_TRUE(sendUdp(t.client, 40003, t.node, 30053));
  ASSERT_TRUE(sendUdp(t.client, 40004, t.b, 5353));
  ASSERT_TRUE(sendUdp(t.client, 40005, t.vip1, 54));
  ASSERT_EQ(t.reply(40001, t.vip1, 53), t.a) << listEntries(t.family);
  ASSERT_EQ(t.reply(40002, t.vip2, 53), t.b);
  ASSERT_EQ(t.reply(40003, t.node, 30053), t.a);
  ASSERT_EQ(t.reply(40004, t.b, 5353), t.b);
  ASSERT_EQ(t.reply(40005, t.vip1, 54), t.vip1);
}

struct Present {
  bool vip1, vip2, nodePort, direct, otherPort;
};

void expectPresent(const Topology& t, Present want) {
  EXPECT_EQ(t.reply(40001, t.vip1, 53).has_value(), want.vip1) << "VIP1 flow";
  EXPECT_EQ(t.reply(40002, t.vip2, 53).has_value(), want.vip2) << "VIP2 flow";
  EXPECT_EQ(t.reply(40003, t.node, 30053).has_value(), want.nodePort) << "NodePort flow";
  EXPECT_EQ(t.reply(40004, t.b, 5353).has_value(), want.direct) << "direct flow";
  EXPECT_EQ(t.reply(40005, t.vip1, 54).has_value(), want.otherPort) << "VIP1:54 flow";
}

// Deletes the conntrack entries of this family between cases.
void flush(const Topology& t) {
  sh(std::string("conntrack -F -f ") + (t.family == IpFamily::kV4 ? "ipv4" : "ipv6"));
}

void filtersSelectTheirEntries(const Topology& t) {
  ASSERT_TRUE(t.setUp());
  auto table = makeNetlinkConntrackTable();

  // NAT filter (a deleted endpoint): VIP1:53 answered by A. The NodePort flow to A stays.
  makeFlows(t);
  if (testing::Test::HasFatalFailure()) return;
  auto n = table->remove({filter(t, t.vip1, 53, t.a)});
  ASSERT_TRUE(n.ok()) << n.error().message();
  EXPECT_EQ(*n, 1u);
  expectPresent(t, {false, true, true, true, true});

  // A filter that names the same entry with another protocol, or another reply source: none.
  n = table->remove({filter(t, t.vip2, 53, t.b, Protocol::kTCP), filter(t, t.vip2, 53, t.a),
                     filter(t, std::nullopt, 30053, t.b)});
  ASSERT_TRUE(n.ok()) << n.error().message();
  EXPECT_EQ(*n, 0u);
  expectPresent(t, {false, true, true, true, true});

  // Nothing to do: the table is not even read.
  n = table->remove({});
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);

  // Destination only (a newly active or deleted frontend): VIP2:53, whoever answered.
  n = table->remove({filter(t, t.vip2, 53, std::nullopt)});
  ASSERT_TRUE(n.ok()) << n.error().message();
  EXPECT_EQ(*n, 1u);
  expectPresent(t, {false, false, true, true, true});

  // Port only (a NodePort): 30053 on any address.
  n = table->remove({filter(t, std::nullopt, 30053, std::nullopt)});
  ASSERT_TRUE(n.ok()) << n.error().message();
  EXPECT_EQ(*n, 1u);
  expectPresent(t, {false, false, false, true, true});

  // Address only, no port (kube-proxy's ClearEntriesForIP): every flow to VIP1, NATed or not.
  flush(t);
  makeFlows(t);
  if (testing::Test::HasFatalFailure()) return;
  n = table->remove({filter(t, t.vip1, std::nullopt, std::nullopt)});
  ASSERT_TRUE(n.ok()) << n.error().message();
  EXPECT_EQ(*n, 2u);
  expectPresent(t, {false, true, true, true, false});

  // Port-only NAT filter (a NodePort's deleted endpoint), several filters at once, duplicates.
  n = table->remove({filter(t, std::nullopt, 30053, t.a), filter(t, std::nullopt, 30053, t.a),
                     filter(t, t.b, 5353, t.b)});
  ASSERT_TRUE(n.ok()) << n.error().message();
  EXPECT_EQ(*n, 2u);
  expectPresent(t, {false, true, false, false, false});
}

// The bug itself: the client keeps sending from the same port while the Service's endpoint
// changes. Until the entry is deleted its datagrams go to the old endpoint.
void staleFlowFollowsTheNewRule(const Topology& t) {
  ASSERT_TRUE(t.setUp());
  ASSERT_TRUE(sendUdp(t.client, 40001, t.vip1, 53));
  ASSERT_EQ(t.reply(40001, t.vip1, 53), t.a);
  // "Endpoint A deleted, B added": the rule now sends VIP1 to B.
  ASSERT_TRUE(sh(t.iptables() + " -w -t nat -F OUTPUT"));
  ASSERT_TRUE(sh(t.dnat(t.vip1, 53, t.b)));
  ASSERT_TRUE(sendUdp(t.client, 40001, t.vip1, 53));
  EXPECT_EQ(t.reply(40001, t.vip1, 53), t.a) << "the kernel should still use the old entry";
  auto n = makeNetlinkConntrackTable()->remove({filter(t, t.vip1, 53, t.a)});
  ASSERT_TRUE(n.ok()) << n.error().message();
  EXPECT_EQ(*n, 1u);
  ASSERT_TRUE(sendUdp(t.client, 40001, t.vip1, 53));
  EXPECT_EQ(t.reply(40001, t.vip1, 53), t.b);
}

TEST(NetlinkConntrackTable, FiltersSelectTheirEntriesIPv4) {
  support::TestNetns ns;
  ASSERT_TRUE(ns.ok()) << ns.error();
  EXPECT_EQ(ns.runInChild([] { filtersSelectTheirEntries(kV4); }, 120s), "");
}

TEST(NetlinkConntrackTable, FiltersSelectTheirEntriesIPv6) {
  support::TestNetns ns;
  ASSERT_TRUE(ns.ok()) << ns.error();
  EXPECT_EQ(ns.runInChild([] { filtersSelectTheirEntries(kV6); }, 120s), "");
}

TEST(NetlinkConntrackTable, StaleFlowFollowsTheNewRuleOnceDeletedIPv4) {
  support::TestNetns ns;
  ASSERT_TRUE(ns.ok()) << ns.error();
  EXPECT_EQ(ns.runInChild([] { staleFlowFollowsTheNewRule(kV4); }, 120s), "");
}

TEST(NetlinkConntrackTable, StaleFlowFollowsTheNewRuleOnceDeletedIPv6) {
  support::TestNetns ns;
  ASSERT_TRUE(ns.ok()) << ns.error();
  EXPECT_EQ(ns.runInChild([] { staleFlowFollowsTheNewRule(kV6); }, 120s), "");
}

TEST(NetlinkConntrackTable, BothFamiliesInOneCall) {
  support::TestNetns ns;
  ASSERT_TRUE(ns.ok()) << ns.error();
  EXPECT_EQ(ns.runInChild(
                [] {
                  ASSERT_TRUE(kV4.setUp());
                  ASSERT_TRUE(kV6.setUp());
                  makeFlows(kV4);
                  makeFlows(kV6);
                  if (testing::Test::HasFatalFailure()) return;
                  auto n = makeNetlinkConntrackTable()->remove(
                      {filter(kV4, kV4.vip1, 53, kV4.a), filter(kV6, kV6.vip2, 53, std::nullopt)});
                  ASSERT_TRUE(n.ok()) << n.error().message();
                  EXPECT_EQ(*n, 2u);
                  expectPresent(kV4, {false, true, true, true, true});
                  expectPresent(kV6, {true, false, true, true, true});
                },
                120s),
            "");
}

// The figure for the record: dump and delete with 10,000 UDP entries in the table, half of
// them matching (a Service with thousands of clients losing the endpoint they were on).
TEST(NetlinkConntrackTable, TenThousandEntries) {
  support::TestNetns ns;
  ASSERT_TRUE(ns.ok()) << ns.error();
  EXPECT_EQ(
      ns.runInChild(
          [] {
            const Topology& t = kV4;
            ASSERT_TRUE(t.setUp());
            constexpr int kEntries = 10000;
            for (int i = 0; i < kEntries; ++i) {
              ASSERT_TRUE(sendUdp(t.client, static_cast<uint16_t>(20000 + i),
                                  i % 2 == 0 ? t.vip1 : t.vip2, 53));
            }
            std::string all = listEntries(t.family);
            ASSERT_EQ(countLines(all, "dst=" + t.vip1 + " sport="), kEntries / 2u);
            ASSERT_EQ(countLines(all, "dst=" + t.vip2 + " sport="), kEntries / 2u);
            auto table = makeNetlinkConntrackTable();

            auto start = std::chrono::steady_clock::now();
            auto none = table->remove({filter(t, t.vip1, 53, t.b)});
            double dumpMs =
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                    .count();
            ASSERT_TRUE(none.ok()) << none.error().message();
            EXPECT_EQ(*none, 0u);

            start = std::chrono::steady_clock::now();
            auto n = table->remove({filter(t, t.vip1, 53, t.a)});
            double deleteMs =
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                    .count();
            ASSERT_TRUE(n.ok()) << n.error().message();
            EXPECT_EQ(*n, kEntries / 2u);
            std::printf(
                "conntrack, %d UDP entries: dump + match, nothing to delete: %.1f ms; "
                "dump + delete %zu: %.1f ms\n",
                kEntries, dumpMs, *n, deleteMs);
            all = listEntries(t.family);
            EXPECT_EQ(countLines(all, "dst=" + t.vip1 + " sport="), 0u);
            EXPECT_EQ(countLines(all, "dst=" + t.vip2 + " sport="), kEntries / 2u);
          },
          180s),
      "");
}

// --- StaleConntrackCleaner, with a fake table ---

class FakeConntrackTable : public ConntrackTable {
 public:
  Result<size_t> remove(const std::vector<ConntrackFilter>& filters) override {
    calls.push_back(filters);
    if (fail) return Error("conntrack: IPv4 table: dump failed: Operation not permitted");
    return filters.size();
  }
  std::vector<std::vector<ConntrackFilter>> calls;
  bool fail = false;
};

std::shared_ptr<const ProxyState> dnsState(uint64_t generation, std::vector<std::string> eps) {
  auto svc = std::make_shared<Service>();
  svc->name = {"kube-system", "dns"};
  svc->clusterIPs = {ip("10.96.0.10")};
  ServicePortSpec spec;
  spec.name = "dns";
  spec.protocol = Protocol::kUDP;
  spec.port = 53;
  spec.targetPort = int32_t{53};
  svc->ports = {spec};
  auto slice = std::make_shared<EndpointSlice>();
  slice->name = {"kube-system", "dns-1"};
  slice->serviceName = "dns";
  for (const auto& e : eps) {
    EndpointSliceEndpoint ep;
    ep.addresses = {ip(e)};
    slice->endpoints.push_back(ep);
  }
  slice->ports = {{"dns", Protocol::kUDP, 53, ""}};
  std::vector<std::shared_ptr<const EndpointSlice>> slices = {slice};
  return std::make_shared<ProxyState>(generation, NodeInfo{.name = "n"},
                                      makeServicePorts(svc, slices, NodeInfo{.name = "n"}),
                                      IngressState{});
}

TEST(StaleConntrackCleaner, DiffsAgainstTheLastSyncedState) {
  FakeConntrackTable table;
  StaleConntrackCleaner cleaner(table);
  // The first sync: everything with endpoints is newly active.
  auto r = cleaner.synced(dnsState(1, {"10.0.0.1", "10.0.0.2"}));
  EXPECT_EQ(r.filters.size(), 1u);
  EXPECT_EQ(r.deleted, 1u);
  EXPECT_FALSE(r.error);
  ASSERT_EQ(table.calls.size(), 1u);
  EXPECT_EQ(table.calls[0][0].toString(), "IPv4 UDP orig-dst=10.96.0.10 orig-dport=53");

  // Nothing stale: the table is not touched.
  auto same = cleaner.synced(dnsState(2, {"10.0.0.1", "10.0.0.2"}));
  EXPECT_TRUE(same.filters.empty());
  EXPECT_EQ(table.calls.size(), 1u);

  // An endpoint gone.
  table.fail = true;
  auto failed = cleaner.synced(dnsState(3, {"10.0.0.1"}));
  ASSERT_EQ(table.calls.size(), 2u);
  EXPECT_EQ(table.calls[1][0].toString(),
            "IPv4 UDP orig-dst=10.96.0.10 orig-dport=53 reply-src=10.0.0.2");
  ASSERT_TRUE(failed.error);
  EXPECT_NE(failed.error->message().find("dump failed"), std::string::npos);
  EXPECT_EQ(failed.deleted, 0u);

  // Not retried: the next diff is from the state just programmed.
  table.fail = false;
  cleaner.synced(dnsState(4, {"10.0.0.1"}));
  EXPECT_EQ(table.calls.size(), 2u);
  EXPECT_EQ(cleaner.lastSynced()->generation(), 4u);
}

}  // namespace
}  // namespace capstan::control
