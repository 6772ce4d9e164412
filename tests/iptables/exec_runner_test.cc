// The real IptablesRunner against the real tools and kernel, each test in a network namespace of
// its own (tests/support/netns_child.h). Needs root: without it every test fails and says why.
//
// Besides the runner's own contract, the NoflushSemantics tests pin down what
// `iptables-restore --noflush` does with the lines the partial sync relies on, for both
// backends; if an iptables upgrade changes one of them, these say so first.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "iptables/iptables_runner.h"
#include "iptables/process.h"
#include "tests/support/netns_child.h"

namespace capstan::iptables {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

// Runs `body` in a child inside a fresh network namespace, which is deleted afterwards.
void inFreshNetns(const std::function<void()>& body) {
  support::TestNetns ns;
  ASSERT_TRUE(ns.ok()) << ns.error();
  EXPECT_EQ(ns.runInChild(body), "");
}

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A save without its "# Generated/Completed ... on <date>" comments: comparable across calls.
std::string withoutComments(const std::string& save) {
  std::istringstream in(save);
  std::string out, line;
  while (std::getline(in, line)) {
    if (!line.starts_with("#")) out += line + "\n";
  }
  return out;
}

size_t countLinesStartingWith(const std::string& text, std::string_view prefix) {
  size_t count = 0;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) count += line.starts_with(prefix) ? 1 : 0;
  return count;
}

std::string mustSave(IptablesRunner& runner, Table table, IpFamily family = IpFamily::kV4) {
  auto saved = runner.save(family, table);
  EXPECT_TRUE(saved.ok()) << saved.error().message();
  return saved.ok() ? *saved : "";
}

constexpr const char* kSmallNat =
    "*nat\n"
    ":KUBE-SERVICES - [0:0]\n"
    ":KUBE-SVC-WEB - [0:0]\n"
    ":KUBE-SEP-ONE - [0:0]\n"
    "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
    "-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-WEB\n"
    "-A KUBE-SVC-WEB -j KUBE-SEP-ONE\n"
    "-A KUBE-SEP-ONE -p tcp -m tcp -j DNAT --to-destination 10.244.1.5:8080\n"
    "COMMIT\n";

// The backends both tested; "" (the `iptables` on PATH, nft on Debian 12) has its own test.
class ExecRunnerTest : public ::testing::TestWithParam<std::string> {};

INSTANTIATE_TEST_SUITE_P(Backends, ExecRunnerTest, ::testing::Values("legacy", "nft"),
                         [](const auto& info) { return info.param; });

TEST_P(ExecRunnerTest, RestoreCreatesChainsAndRulesVisibleInSave) {
  const std::string backend = GetParam();
  inFreshNetns([&] {
    auto runner = makeExecRunner(backend);
    ASSERT_TRUE(runner->available(IpFamily::kV4));
    Status status = runner->restore(IpFamily::kV4, kSmallNat);
    ASSERT_TRUE(status.ok()) << status.error().message();
    std::string nat = mustSave(*runner, Table::kNat);
    EXPECT_THAT(nat, HasSubstr(":KUBE-SVC-WEB - [0:0]\n"));
    EXPECT_THAT(nat, HasSubstr("-A PREROUTING -m comment --comment \"kubernetes service portals\" "
                               "-j KUBE-SERVICES\n"));
    EXPECT_THAT(nat, HasSubstr("-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 "
                               "-j KUBE-SVC-WEB\n"));
    EXPECT_THAT(nat, HasSubstr("-A KUBE-SEP-ONE -p tcp -m tcp -j DNAT --to-destination "
                               "10.244.1.5:8080\n"));
    // The other backend's tables are separate kernel objects: nothing shows there.
    auto other = makeExecRunner(backend == "legacy" ? "nft" : "legacy");
    EXPECT_THAT(mustSave(*other, Table::kNat), Not(HasSubstr("KUBE-SVC-WEB")));
  });
}

TEST_P(ExecRunnerTest, FailedRestoreNamesTheLineAndChangesNothing) {
  const std::string backend = GetParam();
  inFreshNetns([&] {
    auto runner = makeExecRunner(backend);
    ASSERT_TRUE(runner->restore(IpFamily::kV4, kSmallNat).ok());
    const std::string before = withoutComments(mustSave(*runner, Table::kNat));

    // A jump to a chain that exists nowhere, after rules that on their own would apply.
    Status jump = runner->restore(IpFamily::kV4,
                                  "*nat\n"
                                  ":KUBE-NEW - [0:0]\n"
                                  "-A KUBE-SVC-WEB -j RETURN\n"
                                  "-A KUBE-NEW -j KUBE-MISSING\n"
                                  "COMMIT\n");
    ASSERT_FALSE(jump.ok());
    EXPECT_THAT(jump.error().message(), HasSubstr("exit status 2"));
    EXPECT_THAT(jump.error().message(), HasSubstr("KUBE-MISSING"));
    // legacy names the rule's line; nft reports a missing jump target at the COMMIT line.
    EXPECT_THAT(
        jump.error().message(),
        HasSubstr(backend == "legacy" ? "Error occurred at line: 4" : "Error occurred at line: 5"));
    EXPECT_THAT(jump.error().message(), Not(HasSubstr("Try `")));
    EXPECT_EQ(withoutComments(mustSave(*runner, Table::kNat)), before);

    // A rule that does not parse: both backends name its own line.
    Status parse = runner->restore(IpFamily::kV4,
                                   "*nat\n"
                                   "-A KUBE-SVC-WEB -j RETURN\n"
                                   "-A KUBE-SVC-WEB -p tcp --dport 99999 -j RETURN\n"
                                   "COMMIT\n");
    ASSERT_FALSE(parse.ok());
    EXPECT_THAT(parse.error().message(), HasSubstr("Error occurred at line: 3"));
    EXPECT_THAT(parse.error().message(), HasSubstr("99999"));
    EXPECT_EQ(withoutComments(mustSave(*runner, Table::kNat)), before);
  });
}

TEST_P(ExecRunnerTest, TwentyMegabytePayloadGoesThrough) {
  const std::string backend = GetParam();
  inFreshNetns([&] {
    auto runner = makeExecRunner(backend);
    constexpr int kChains = 10;
    constexpr int kRules = 100'000;
    std::string payload = "*nat\n";
    for (int c = 0; c < kChains; ++c) payload += ":KUBE-SVC-" + std::to_string(c) + " - [0:0]\n";
    char line[512];
    for (int i = 0; i < kRules; ++i) {
      int n = std::snprintf(
          line, sizeof(line),
          "-A KUBE-SVC-%d -s 10.%d.%d.%d/32 -p tcp -m comment --comment "
          "\"default/service-%06d:http cluster IP, some more padding to reach 200 bytes\" -m tcp "
          "--dport %d -j DNAT --to-destination 10.244.%d.%d:8080\n",
          i % kChains, (i >> 16) & 255, (i >> 8) & 255, i & 255, i, 1 + i % 60000, (i >> 8) & 255,
          i & 255);
      payload.append(line, static_cast<size_t>(n));
    }
    payload += "COMMIT\n*mangle\n:KUBE-PROXY-CANARY - [0:0]\nCOMMIT\n";
    ASSERT_GE(payload.size(), 20'000'000u);

    auto start = Clock::now();
    Status status = runner->restore(IpFamily::kV4, payload);
    double restoreSeconds = secondsSince(start);
    ASSERT_TRUE(status.ok()) << status.error().message();

    start = Clock::now();
    std::string nat = mustSave(*runner, Table::kNat);
    double saveSeconds = secondsSince(start);
    EXPECT_EQ(countLinesStartingWith(nat, "-A KUBE-SVC-"), static_cast<size_t>(kRules));

    // chainExists() with the big table in place: a chain of 10,000 rules, a canary in the small
    // mangle table, and a missing chain.
    auto timeChainExists = [&](Table table, const std::string& chain, bool expected) {
      constexpr int kCalls = 10;
      auto begin = Clock::now();
      for (int i = 0; i < kCalls; ++i)
        EXPECT_EQ(runner->chainExists(IpFamily::kV4, table, chain), expected);
      return secondsSince(begin) / kCalls * 1000;
    };
    double bigChainMs = timeChainExists(Table::kNat, "KUBE-SVC-3", true);
    double canaryMs = timeChainExists(Table::kMangle, "KUBE-PROXY-CANARY", true);
    double missingMs = timeChainExists(Table::kNat, "KUBE-NOPE", false);
    std::printf(
        "[ timing   ] backend %s: restore of %zu bytes (%d rules) %.3f s; save of the nat table "
        "%.3f s; chainExists: nat chain of 10,000 rules %.1f ms, empty canary in mangle %.1f ms, "
        "missing nat chain %.1f ms\n",
        backend.c_str(), payload.size(), kRules, restoreSeconds, saveSeconds, bigChainMs, canaryMs,
        missingMs);
  });
}

TEST_P(ExecRunnerTest, ChainExists) {
  const std::string backend = GetParam();
  inFreshNetns([&] {
    auto runner = makeExecRunner(backend);
    ASSERT_TRUE(runner
                    ->restore(IpFamily::kV4, std::string(kSmallNat) +
                                                 "*mangle\n:KUBE-PROXY-CANARY - [0:0]\nCOMMIT\n")
                    .ok());
    EXPECT_TRUE(runner->chainExists(IpFamily::kV4, Table::kNat, "KUBE-SVC-WEB"));
    EXPECT_TRUE(runner->chainExists(IpFamily::kV4, Table::kNat, "PREROUTING"));
    EXPECT_TRUE(runner->chainExists(IpFamily::kV4, Table::kMangle, "KUBE-PROXY-CANARY"));
    EXPECT_FALSE(runner->chainExists(IpFamily::kV4, Table::kNat, "KUBE-PROXY-CANARY"));
    EXPECT_FALSE(runner->chainExists(IpFamily::kV4, Table::kFilter, "KUBE-SVC-WEB"));
    EXPECT_FALSE(runner->chainExists(IpFamily::kV4, Table::kNat, "KUBE-NOPE"));
    EXPECT_FALSE(runner->chainExists(IpFamily::kV6, Table::kNat, "KUBE-SVC-WEB"));
    EXPECT_FALSE(runner->chainExists(IpFamily::kV4, Table::kNat, "-F"));
    EXPECT_FALSE(runner->chainExists(IpFamily::kV4, Table::kNat, ""));
  });
}

TEST_P(ExecRunnerTest, Ipv6RestoreAndSave) {
  const std::string backend = GetParam();
  inFreshNetns([&] {
    auto runner = makeExecRunner(backend);
    ASSERT_TRUE(runner->available(IpFamily::kV6));
    Status status = runner->restore(
        IpFamily::kV6,
        "*nat\n"
        ":KUBE-SERVICES - [0:0]\n"
        ":KUBE-SEP-V6 - [0:0]\n"
        "-A KUBE-SERVICES -d fd00:96::10/128 -p tcp -m tcp --dport 80 -j KUBE-SEP-V6\n"
        "-A KUBE-SEP-V6 -p tcp -m tcp -j DNAT --to-destination [fd00:244::5]:8080\n"
        "COMMIT\n");
    ASSERT_TRUE(status.ok()) << status.error().message();
    std::string nat = mustSave(*runner, Table::kNat, IpFamily::kV6);
    EXPECT_THAT(nat, HasSubstr("-A KUBE-SERVICES -d fd00:96::10/128 -p tcp -m tcp --dport 80 "
                               "-j KUBE-SEP-V6\n"));
    EXPECT_THAT(nat, HasSubstr("--to-destination [fd00:244::5]:8080"));
    EXPECT_TRUE(runner->chainExists(IpFamily::kV6, Table::kNat, "KUBE-SEP-V6"));
    EXPECT_THAT(mustSave(*runner, Table::kNat, IpFamily::kV4), Not(HasSubstr("KUBE-SEP-V6")));

    Status bad = runner->restore(IpFamily::kV6,
                                 "*nat\n-A KUBE-SERVICES -d 10.0.0.1 -j ACCEPT\n"
                                 "COMMIT\n");
    ASSERT_FALSE(bad.ok());
    EXPECT_THAT(bad.error().message(), HasSubstr("ip6tables-" + backend + "-restore (IPv6)"));
  });
}

TEST(ExecRunnerDefaultBackendTest, UsesTheToolsOnPath) {
  inFreshNetns([] {
    auto runner = makeExecRunner();
    ASSERT_TRUE(runner->available(IpFamily::kV4));
    Status status = runner->restore(IpFamily::kV4, kSmallNat);
    ASSERT_TRUE(status.ok()) << status.error().message();
    EXPECT_THAT(mustSave(*runner, Table::kNat), HasSubstr("-A KUBE-SVC-WEB -j KUBE-SEP-ONE\n"));
    EXPECT_TRUE(runner->chainExists(IpFamily::kV4, Table::kNat, "KUBE-SEP-ONE"));
    Status bad = runner->restore(IpFamily::kV4, "*nat\n-A NO-SUCH-CHAIN -j ACCEPT\nCOMMIT\n");
    ASSERT_FALSE(bad.ok());
    EXPECT_THAT(bad.error().message(),
                HasSubstr("iptables-restore (IPv4) failed with exit status"));
  });
}

TEST(ExecRunnerAvailableTest, UnknownBackendIsUnavailableAndSaysSo) {
  auto runner = makeExecRunner("bpf");
  EXPECT_FALSE(runner->available(IpFamily::kV4));
  EXPECT_FALSE(runner->available(IpFamily::kV6));
  Status status = runner->restore(IpFamily::kV4, "*nat\nCOMMIT\n");
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.error().message(), HasSubstr("iptables backend \"bpf\": unknown"));
  EXPECT_FALSE(runner->save(IpFamily::kV4, Table::kNat).ok());
  EXPECT_FALSE(runner->chainExists(IpFamily::kV4, Table::kNat, "PREROUTING"));
}

TEST(ExecRunnerLocalAddressesTest, SeesTheNamespacesAddresses) {
  inFreshNetns([] {
    auto runner = makeExecRunner();
    // A fresh namespace has only a loopback, down and without addresses.
    EXPECT_TRUE(runner->localAddresses(IpFamily::kV4).empty());
    ASSERT_EQ(support::runIp({"link", "set", "lo", "up"}), 0);
    ASSERT_EQ(support::runIp({"link", "add", "cap0", "type", "veth", "peer", "name", "cap1"}), 0);
    ASSERT_EQ(support::runIp({"addr", "add", "192.0.2.1/24", "dev", "cap0"}), 0);
    ASSERT_EQ(support::runIp({"addr", "add", "198.51.100.7/32", "dev", "cap1"}), 0);
    ASSERT_EQ(support::runIp({"addr", "add", "2001:db8::1/64", "dev", "cap0", "nodad"}), 0);
    ASSERT_EQ(support::runIp({"link", "set", "cap0", "up"}), 0);
    ASSERT_EQ(support::runIp({"link", "set", "cap1", "up"}), 0);
    // Up with carrier, the veths get fe80:: addresses (wait for them: they must be skipped).
    bool linkLocal = false;
    for (int i = 0; i < 200 && !linkLocal; ++i) {
      auto out = runCommand({"ip", "-6", "addr", "show", "dev", "cap0"}, "");
      linkLocal = out.ok() && out->stdoutText.find("fe80::") != std::string::npos;
      if (!linkLocal) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_TRUE(linkLocal) << "no link-local address appeared; the skip is not exercised";

    std::vector<std::string> v4, v6;
    for (const auto& ip : runner->localAddresses(IpFamily::kV4)) v4.push_back(ip.toString());
    for (const auto& ip : runner->localAddresses(IpFamily::kV6)) v6.push_back(ip.toString());
    EXPECT_THAT(v4, ::testing::ElementsAre("127.0.0.1", "192.0.2.1", "198.51.100.7"));
    EXPECT_THAT(v6, ::testing::ElementsAre("::1", "2001:db8::1"));
  });
}

// What --noflush does with the lines a partial sync would send. Each test restores a base, then
// one payload, and checks the table.
class NoflushSemanticsTest : public ExecRunnerTest {};

INSTANTIATE_TEST_SUITE_P(Backends, NoflushSemanticsTest, ::testing::Values("legacy", "nft"),
                         [](const auto& info) { return info.param; });

constexpr const char* kBase =
    "*nat\n"
    ":KUBE-A - [0:0]\n"
    ":KUBE-B - [0:0]\n"
    "-A PREROUTING -j KUBE-A\n"
    "-A KUBE-A -s 10.0.0.1/32 -j KUBE-B\n"
    "-A KUBE-A -s 10.0.0.2/32 -j ACCEPT\n"
    "-A KUBE-B -j RETURN\n"
    "COMMIT\n";

// The rules ("-A ...") of a save, in order.
std::vector<std::string> rulesOf(const std::string& save) {
  std::vector<std::string> rules;
  std::istringstream in(save);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("-A ")) rules.push_back(line);
  }
  return rules;
}

TEST_P(NoflushSemanticsTest, DeclaringAnExistingChainFlushesIt) {
  const std::string backend = GetParam();
  inFreshNetns([&] {
    auto runner = makeExecRunner(backend);
    ASSERT_TRUE(runner->restore(IpFamily::kV4, kBase).ok());
    // ":KUBE-A - [0:0]" with no rules after it empties KUBE-A even under --noflush; a built-in
    // chain's line (":PREROUTING ACCEPT") sets its policy and does not flush it.
    Status status =
        runner->restore(IpFamily::kV4, "*nat\n:KUBE-A - [0:0]\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n");
    ASSERT_TRUE(status.ok()) << status.error().message();
    EXPECT_THAT(rulesOf(mustSave(*runner, Table::kNat)),
                ::testing::ElementsAre("-A PREROUTING -j KUBE-A", "-A KUBE-B -j RETURN"));
  });
}

TEST_P(NoflushSemanticsTest, InsertAndDeleteRulesWork) {
  const std::string backend = GetParam();
  inFreshNetns([&] {
    auto runner = makeExecRunner(backend);
    ASSERT_TRUE(runner->restore(IpFamily::kV4, kBase).ok());
    Status status = runner->restore(IpFamily::kV4,
                                    "*nat\n"
                                    "-I KUBE-B 1 -s 10.9.9.9/32 -j ACCEPT\n"
                                    "-D KUBE-B -j RETURN\n"
                                    "-I PREROUTING 1 -s 10.1.1.1/32 -j RETURN\n"
                                    "-D KUBE-A -s 10.0.0.2/32 -j ACCEPT\n"
                                    "COMMIT\n");
    ASSERT_TRUE(status.ok()) << status.error().message();
    EXPECT_THAT(rulesOf(mustSave(*runner, Table::kNat)),
                ::testing::ElementsAre(
                    "-A PREROUTING -s 10.1.1.1/32 -j RETURN", "-A PREROUTING -j KUBE-A",
                    "-A KUBE-A -s 10.0.0.1/32 -j KUBE-B", "-A KUBE-B -s 10.9.9.9/32 -j ACCEPT"));
    // Deleting a rule that is not there fails the whole section: the -A before it is undone.
    const std::string before = withoutComments(mustSave(*runner, Table::kNat));
    Status missing = runner->restore(IpFamily::kV4,
                                     "*nat\n"
                                     "-A KUBE-B -s 10.7.7.7/32 -j ACCEPT\n"
                                     "-D KUBE-B -s 10.8.8.8/32 -j ACCEPT\n"
                                     "COMMIT\n");
    ASSERT_FALSE(missing.ok());
    EXPECT_THAT(missing.error().message(), HasSubstr("line 3 failed"));
    EXPECT_EQ(withoutComments(mustSave(*runner, Table::kNat)), before);
  });
}

TEST_P(NoflushSemanticsTest, DeletingAChainStillReferencedFails) {
  const std::string backend = GetParam();
  inFreshNetns([&] {
    auto runner = makeExecRunner(backend);
    ASSERT_TRUE(runner->restore(IpFamily::kV4, kBase).ok());
    const std::string before = withoutComments(mustSave(*runner, Table::kNat));

    // Referenced by a rule added earlier in the same payload: the -X fails, nothing is applied.
    Status samepayload = runner->restore(IpFamily::kV4,
                                         "*nat\n"
                                         ":KUBE-C - [0:0]\n"
                                         "-A KUBE-A -j KUBE-C\n"
                                         "-X KUBE-C\n"
                                         "COMMIT\n");
    ASSERT_FALSE(samepayload.ok());
    EXPECT_THAT(samepayload.error().message(),
                backend == "legacy"
                    ? HasSubstr("line 4 failed")
                    : HasSubstr("line 4: CHAIN_DEL failed (Device or resource busy)"));
    EXPECT_EQ(withoutComments(mustSave(*runner, Table::kNat)), before);

    // Referenced in the kernel (KUBE-A -> KUBE-B), the reference deleted only after the -X line:
    // order matters, this fails too.
    Status lateDelete = runner->restore(IpFamily::kV4,
                                        "*nat\n"
                                        ":KUBE-B - [0:0]\n"
                                        "-X KUBE-B\n"
                                        "-D KUBE-A -s 10.0.0.1/32 -j KUBE-B\n"
                                        "COMMIT\n");
    ASSERT_FALSE(lateDelete.ok());
    EXPECT_EQ(withoutComments(mustSave(*runner, Table::kNat)), before);

    // The reference removed first, by re-declaring (flushing) the referring chain: the -X works.
    // This is kube-proxy's order: every chain written or flushed first, the -X lines last.
    Status flushedFirst = runner->restore(IpFamily::kV4,
                                          "*nat\n"
                                          ":KUBE-A - [0:0]\n"
                                          ":KUBE-B - [0:0]\n"
                                          "-A KUBE-A -s 10.0.0.2/32 -j ACCEPT\n"
                                          "-X KUBE-B\n"
                                          "COMMIT\n");
    ASSERT_TRUE(flushedFirst.ok()) << flushedFirst.error().message();
    EXPECT_FALSE(runner->chainExists(IpFamily::kV4, Table::kNat, "KUBE-B"));
    EXPECT_THAT(
        rulesOf(mustSave(*runner, Table::kNat)),
        ::testing::ElementsAre("-A PREROUTING -j KUBE-A", "-A KUBE-A -s 10.0.0.2/32 -j ACCEPT"));

    // Deleting a chain that does not exist fails the section as well.
    EXPECT_FALSE(runner->restore(IpFamily::kV4, "*nat\n-X KUBE-NOPE\nCOMMIT\n").ok());
  });
}

TEST_P(NoflushSemanticsTest, EachTableSectionCommitsOnItsOwn) {
  const std::string backend = GetParam();
  inFreshNetns([&] {
    auto runner = makeExecRunner(backend);
    // A good filter section, then a bad nat section: filter stays applied. Atomic per section,
    // not per payload.
    Status status = runner->restore(IpFamily::kV4,
                                    "*filter\n"
                                    ":KUBE-OK - [0:0]\n"
                                    "-A KUBE-OK -j RETURN\n"
                                    "COMMIT\n"
                                    "*nat\n"
                                    ":KUBE-BAD - [0:0]\n"
                                    "-A KUBE-BAD -j KUBE-MISSING\n"
                                    "COMMIT\n");
    ASSERT_FALSE(status.ok());
    EXPECT_TRUE(runner->chainExists(IpFamily::kV4, Table::kFilter, "KUBE-OK"));
    EXPECT_FALSE(runner->chainExists(IpFamily::kV4, Table::kNat, "KUBE-BAD"));
  });
}

}  // namespace
}  // namespace capstan::iptables
