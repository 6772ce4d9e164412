// Kubeconfig and in-cluster configuration: what client-go reads, and errors naming the field.
#include "control/kube/cluster_config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "control/base64.h"

namespace capstan::control::kube {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/capstan-kube-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string write(const std::string& name, const std::string& content) const {
    std::string p = path_ + "/" + name;
    std::ofstream(p) << content;
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

constexpr char kCa[] = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";

std::string kubeconfig(const std::string& clusterExtra, const std::string& userExtra,
                       const std::string& current = "work") {
  return R"(apiVersion: v1
kind: Config
clusters:
- name: other
  cluster:
    server: https://other.example:6443
- name: prod
  cluster:
    server: https://api.prod.example:6443/
)" + clusterExtra +
         R"(contexts:
- name: home
  context: {cluster: other, user: nobody}
- name: work
  context:
    cluster: prod
    user: admin
    namespace: shop
current-context: )" +
         current + R"(
users:
- name: admin
  user:
)" + userExtra;
}

TEST(Base64, DecodesAndRejects) {
  EXPECT_EQ(decodeBase64("aGVsbG8="), "hello");
  EXPECT_EQ(decodeBase64("aGVs\nbG8h"), "hello!");
  EXPECT_EQ(decodeBase64(""), "");
  EXPECT_FALSE(decodeBase64("aGVsbG8=x"));
  EXPECT_FALSE(decodeBase64("a*=="));
  EXPECT_FALSE(decodeBase64("a"));
  EXPECT_EQ(decodeBase64(base64("\x01\x02\xff")), "\x01\x02\xff");
}

TEST(Kubeconfig, CurrentContextWithInlineData) {
  auto c = parseKubeconfig(kubeconfig("    certificate-authority-data: " + base64(kCa) + "\n",
                                      "    client-certificate-data: " + base64("CERT") + "\n" +
                                          "    client-key-data: " + base64("KEY") + "\n"),
                           "/etc/kubeconfig");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->server, "https://api.prod.example:6443");
  EXPECT_EQ(c->caPem, kCa);
  EXPECT_EQ(c->clientCertPem, "CERT");
  EXPECT_EQ(c->clientKeyPem, "KEY");
  EXPECT_EQ(c->ns, "shop");
  EXPECT_FALSE(c->insecureSkipTlsVerify);
  EXPECT_EQ(c->origin, "/etc/kubeconfig");
}

TEST(Kubeconfig, FilesAreRelativeToTheKubeconfig) {
  TempDir dir;
  dir.write("ca.crt", kCa);
  dir.write("token", "file-token\n");
  std::string path = dir.write(
      "config", kubeconfig("    certificate-authority: ca.crt\n    tls-server-name: kubernetes\n",
                           "    token: static-token\n    tokenFile: token\n"));
  auto c = loadKubeconfig(path);
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->caPem, kCa);
  EXPECT_EQ(c->tlsServerName, "kubernetes");
  EXPECT_EQ(c->token, "static-token");
  EXPECT_EQ(c->tokenFile, dir.path() + "/token");
  // The file, once read, wins over the static token (clientcmd AuthInfo.TokenFile).
  BearerToken token(*c);
  EXPECT_EQ(token.get(BearerToken::Clock::now()).value_or(""), "file-token");
}

TEST(Kubeconfig, InsecureAndPlainServer) {
  auto c =
      parseKubeconfig(kubeconfig("    insecure-skip-tls-verify: true\n", "    token: t\n"), "k");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_TRUE(c->insecureSkipTlsVerify);
  EXPECT_EQ(c->token, "t");
  auto home = parseKubeconfig(kubeconfig("", "    token: t\n", "home"), "k");
  // Context "home" names a user that does not exist.
  ASSERT_FALSE(home.ok());
  EXPECT_EQ(home.error().message(), "k: users: no entry named \"nobody\"");
}

TEST(Kubeconfig, ErrorsNameTheFileAndField) {
  struct Case {
    std::string text;
    std::string error;
  };
  std::vector<Case> cases = {
      {"apiVersion: v1\nkind: Config\n",
       "k: current-context: not set (choose one with kubectl config use-context)"},
      {kubeconfig("", "    token: t\n", "missing"), "k: contexts: no entry named \"missing\""},
      {kubeconfig("    certificate-authority-data: '%%%'\n", "    token: t\n"),
       "k: clusters[1].cluster.certificate-authority-data: not valid base64"},
      {kubeconfig("    insecure-skip-tls-verify: 'yes'\n", ""),
       "k: clusters[1].cluster.insecure-skip-tls-verify: expected true or false, got a string"},
      {kubeconfig("    insecure-skip-tls-verify: true\n    certificate-authority-data: " +
                      base64(kCa) + "\n",
                  ""),
       "k: clusters[1].cluster.insecure-skip-tls-verify: cannot be combined with "
       "certificate-authority(-data)"},
      {kubeconfig("", "    client-certificate-data: " + base64("C") + "\n"),
       "k: users[0].user.client-key: required with client-certificate"},
      {kubeconfig("", "    exec:\n      command: aws\n"),
       "k: users[0].user.exec: not supported by Capstan (use a token, tokenFile or client "
       "certificate)"},
      {kubeconfig("", "    client-key: /nonexistent/key\n    client-certificate-data: " +
                          base64("C") + "\n"),
       "k: users[0].user.client-key: /nonexistent/key: cannot read: No such file or directory"},
  };
  for (const Case& c : cases) {
    auto r = parseKubeconfig(c.text, "k");
    ASSERT_FALSE(r.ok()) << c.error;
    EXPECT_EQ(r.error().message(), c.error);
  }
  auto server = parseKubeconfig(
      "current-context: a\ncontexts:\n- name: a\n  context: {cluster: c}\nclusters:\n- name: c\n"
      "  cluster: {server: 'ftp://x'}\n",
      "k");
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(
      server.error().message(),
      "k: clusters[0].cluster.server: unsupported scheme in \"ftp://x\" (want http or https)");
}

TEST(InCluster, ReadsEnvironmentAndServiceAccount) {
  TempDir dir;
  dir.write("ca.crt", kCa);
  dir.write("token", "sa-token\n");
  dir.write("namespace", "kube-system");
  std::map<std::string, std::string> env = {{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                                            {"KUBERNETES_SERVICE_PORT", "443"}};
  auto getenv = [&](std::string_view k) -> std::optional<std::string> {
    auto it = env.find(std::string(k));
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  auto c = inClusterConfig(getenv, dir.path());
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->server, "https://10.96.0.1:443");
  EXPECT_EQ(c->caPem, kCa);
  EXPECT_EQ(c->token, "sa-token");
  EXPECT_EQ(c->tokenFile, dir.path() + "/token");
  EXPECT_EQ(c->ns, "kube-system");

  env["KUBERNETES_SERVICE_HOST"] = "fd00::1";
  auto v6 = inClusterConfig(getenv, dir.path());
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->server, "https://[fd00::1]:443");

  env.erase("KUBERNETES_SERVICE_PORT");
  auto missing = inClusterConfig(getenv, dir.path());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT"),
            std::string::npos);

  env["KUBERNETES_SERVICE_PORT"] = "443";
  fs::remove(dir.path() + "/token");
  auto noToken = inClusterConfig(getenv, dir.path());
  ASSERT_FALSE(noToken.ok());
  EXPECT_EQ(noToken.error().message(), "in-cluster configuration: " + dir.path() +
                                           "/token: cannot read: No such file or directory");
}

TEST(BuildClusterConfig, MasterOverridesAndAlone) {
  TempDir dir;
  std::string path = dir.write("config", kubeconfig("", "    token: t\n"));
  auto noEnv = [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
  auto both = buildClusterConfig("http://127.0.0.1:8080", path, noEnv);
  ASSERT_TRUE(both.ok()) << both.error().message();
  EXPECT_EQ(both->server, "http://127.0.0.1:8080");
  EXPECT_EQ(both->token, "t");
  auto master = buildClusterConfig("127.0.0.1:6443", "", noEnv);
  ASSERT_TRUE(master.ok());
  EXPECT_EQ(master->server, "https://127.0.0.1:6443");
  auto none = buildClusterConfig("", "", noEnv);
  EXPECT_FALSE(none.ok());
  auto bad = buildClusterConfig("", dir.path() + "/nope", noEnv);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(),
            "--kubeconfig: " + dir.path() + "/nope: cannot read: No such file or directory");
}

TEST(BearerToken, RereadsThePeriodAfterAndAfterInvalidate) {
  TempDir dir;
  ClusterConfig c;
  c.tokenFile = dir.write("token", "one\n");
  BearerToken token(c, std::chrono::minutes(1));
  auto t0 = BearerToken::Clock::now();
  EXPECT_EQ(token.get(t0).value_or(""), "one");
  dir.write("token", "two");
  EXPECT_EQ(token.get(t0 + std::chrono::seconds(30)).value_or(""), "one");  // cached
  EXPECT_EQ(token.get(t0 + std::chrono::seconds(61)).value_or(""), "two");  // a minute on
  dir.write("token", "three");
  token.invalidate();  // a 401
  EXPECT_EQ(token.get(t0 + std::chrono::seconds(62)).value_or(""), "three");
  fs::remove(c.tokenFile);  // a missing file keeps the last token
  EXPECT_EQ(token.get(t0 + std::chrono::minutes(5)).value_or(""), "three");
}

}  // namespace
}  // namespace capstan::control::kube
