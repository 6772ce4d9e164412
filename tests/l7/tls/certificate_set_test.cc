#include "l7/tls/certificate_set.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/ec.h>

#include <chrono>
#include <string>
#include <vector>

#include "l7/tls/self_signed_certificate.h"
#include "tests/l7/tls/tls_test_support.h"

namespace capstan::l7::tls {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using namespace capstan::l7::tls::testing;

std::chrono::system_clock::time_point now() { return std::chrono::system_clock::now(); }

class CertificateSetTest : public ::testing::Test {
 protected:
  // Makes the keys and certificates once for the whole suite: RSA key generation is slow.
  static void SetUpTestSuite() {
    pki_ = new TestPki();
    exact_ = pki_->issue("default/a-tls", {"a.example.com"});
    wildcard_ = pki_->issue("default/wildcard-tls", {"*.example.com"}, KeyKind::kRsa2048);
    catchAll_ =
        pki_->issue("default/catch-all-tls", {},
                    {.commonName = "default/catch-all-tls", .dnsNames = {"catch-all.test"}});
    Result<PemCertificate> generated = generateSelfSignedCertificate();
    ASSERT_TRUE(generated.ok()) << generated.error().message();
    defaultSource_ = {
        "capstan/default-certificate", {}, generated->certificatePem, generated->privateKeyPem};
  }
  static void TearDownTestSuite() { delete pki_; }

  static CertificateSet::Built build(const std::vector<CertificateSource>& sources) {
    Result<CertificateSet::Built> built = CertificateSet::build(sources, defaultSource_, now());
    if (!built.ok()) {
      ADD_FAILURE() << built.error().message();
      return {};
    }
    return std::move(built.value());
  }

  static inline TestPki* pki_ = nullptr;
  static inline CertificateSource exact_, wildcard_, catchAll_, defaultSource_;
};

TEST_F(CertificateSetTest, SelectsExactThenOneLabelWildcardThenCatchAllThenDefault) {
  CertificateSet::Built built = build({exact_, wildcard_, catchAll_});
  ASSERT_NE(built.set, nullptr);
  EXPECT_THAT(built.errors, IsEmpty());
  EXPECT_THAT(built.warnings, IsEmpty());
  const CertificateSet& set = *built.set;
  EXPECT_EQ(set.select("a.example.com").name(), "default/a-tls");
  // RFC 4343: case-insensitive; the root's trailing dot is the same name.
  EXPECT_EQ(set.select("A.Example.COM").name(), "default/a-tls");
  EXPECT_EQ(set.select("a.example.com.").name(), "default/a-tls");
  EXPECT_EQ(set.select("b.example.com").name(), "default/wildcard-tls");
  EXPECT_EQ(set.select("B.EXAMPLE.com.").name(), "default/wildcard-tls");
  // A wildcard stands for exactly one label.
  EXPECT_EQ(set.select("b.a.example.com").name(), "default/catch-all-tls");
  EXPECT_EQ(set.select("example.com").name(), "default/catch-all-tls");
  EXPECT_EQ(set.select(".example.com").name(), "default/catch-all-tls");
  EXPECT_EQ(set.select("other.test").name(), "default/catch-all-tls");
  EXPECT_EQ(set.select("").name(), "default/catch-all-tls");
  EXPECT_EQ(set.select(std::string(300, 'a')).name(), "default/catch-all-tls");
  EXPECT_EQ(set.certificateCount(), 4u);
  EXPECT_EQ(set.hostCount(), 2u);
}

TEST_F(CertificateSetTest, WithoutCatchAllUnknownNamesGetTheDefault) {
  CertificateSet::Built built = build({exact_, wildcard_});
  ASSERT_NE(built.set, nullptr);
  EXPECT_EQ(built.set->select("unknown.test").name(), "capstan/default-certificate");
  EXPECT_EQ(built.set->select("").name(), "capstan/default-certificate");
  EXPECT_EQ(&built.set->select("b.a.example.com"), &built.set->defaultCertificate());
}

TEST_F(CertificateSetTest, KeyNotMatchingItsCertificateIsReportedAndTheOthersLoad) {
  CertificateSource broken = exact_;
  broken.name = "default/web-tls";
  broken.hosts = {"web.example.com"};
  broken.privateKeyPem = wildcard_.privateKeyPem;  // another Secret's key
  CertificateSet::Built built = build({broken, wildcard_, catchAll_});
  ASSERT_NE(built.set, nullptr);
  EXPECT_THAT(built.errors, ElementsAre("Secret default/web-tls: tls.key: does not match tls.crt"));
  EXPECT_EQ(built.set->select("web.example.com").name(), "default/wildcard-tls");
  EXPECT_EQ(built.set->select("x.other.test").name(), "default/catch-all-tls");
  EXPECT_EQ(built.set->certificateCount(), 3u);
}

TEST_F(CertificateSetTest, MalformedSecretsNameTheirField) {
  CertificateSource noCertificate = {"default/empty-crt", {"e.test"}, "", exact_.privateKeyPem};
  CertificateSource notPem = {"default/garbage-crt", {"g.test"}, "not a PEM", exact_.privateKeyPem};
  CertificateSource noKey = {"default/no-key", {"k.test"}, exact_.certificatePem, ""};
  CertificateSource crtAsKey = {
      "default/crt-as-key", {"k.test"}, exact_.certificatePem, exact_.certificatePem};
  CertificateSource keyOnly = {
      "default/key-in-crt", {"c.test"}, exact_.privateKeyPem, exact_.privateKeyPem};
  std::string corrupt = exact_.certificatePem;
  corrupt[corrupt.find('\n') + 10] ^= 0x01;  // one base64 letter in the leaf's body
  CertificateSource badBody = {"default/corrupt", {"b.test"}, corrupt, exact_.privateKeyPem};
  CertificateSet::Built built =
      build({noCertificate, notPem, noKey, keyOnly, badBody, crtAsKey, exact_});
  ASSERT_NE(built.set, nullptr);
  ASSERT_EQ(built.errors.size(), 6u);
  EXPECT_EQ(built.errors[0], "Secret default/empty-crt: tls.crt: no certificate");
  EXPECT_EQ(built.errors[1], "Secret default/garbage-crt: tls.crt: no certificate");
  EXPECT_EQ(built.errors[2], "Secret default/no-key: tls.key: no private key");
  EXPECT_EQ(built.errors[3], "Secret default/key-in-crt: tls.crt: no certificate");
  EXPECT_THAT(built.errors[4], HasSubstr("Secret default/corrupt: tls.crt: certificate 0: "));
  EXPECT_EQ(built.errors[5], "Secret default/crt-as-key: tls.key: no private key");

  EXPECT_EQ(built.set->select("a.example.com").name(), "default/a-tls");
  EXPECT_EQ(built.set->select("e.test").name(), "capstan/default-certificate");
  std::string corruptKey = exact_.privateKeyPem;
  corruptKey[corruptKey.find('\n') + 10] ^= 0x01;
  built = build({{"default/corrupt-key", {"k.test"}, exact_.certificatePem, corruptKey}});
  ASSERT_EQ(built.errors.size(), 1u);
  EXPECT_THAT(built.errors[0],
              HasSubstr("Secret default/corrupt-key: tls.key: cannot read the private key: "));
}

TEST_F(CertificateSetTest, KeyTooWeakForTlsIsRefusedAtBuild) {
  CertificateSource weak = pki_->issue("default/weak-tls", {"weak.test"}, KeyKind::kRsa512);
  CertificateSet::Built built = build({weak});
  ASSERT_EQ(built.errors.size(), 1u);
  EXPECT_THAT(built.errors[0], HasSubstr("Secret default/weak-tls: tls.crt: not usable for TLS: "));
  EXPECT_EQ(built.set->select("weak.test").name(), "capstan/default-certificate");
}

TEST_F(CertificateSetTest, ExpiredCertificateLoadsWithAWarning) {
  CertificateSource expired = pki_->issue(
      "default/old-tls", {"old.test"},
      {.commonName = "old", .validFromSeconds = -90L * 86400, .validToSeconds = -86400});
  CertificateSource future =
      pki_->issue("default/new-tls", {"new.test"},
                  {.commonName = "new", .validFromSeconds = 86400, .validToSeconds = 2 * 86400});
  CertificateSet::Built built = build({expired, future});
  EXPECT_THAT(built.errors, IsEmpty());
  ASSERT_EQ(built.warnings.size(), 2u);
  EXPECT_THAT(built.warnings[0], HasSubstr("Secret default/old-tls: tls.crt: expired on 20"));
  EXPECT_THAT(built.warnings[1], HasSubstr("Secret default/new-tls: tls.crt: not valid before 20"));
  EXPECT_EQ(built.set->select("old.test").name(), "default/old-tls");
}

TEST_F(CertificateSetTest, ReportsUncoveredHostsDuplicateHostsAndSecondCatchAll) {
  CertificateSource uncovered =
      pki_->issue("default/a-too", {}, {.commonName = "a-too", .dnsNames = {"a.example.com"}});
  uncovered.hosts = {"a.example.com", "b.other.test", "*.example.com", "a.*.test"};
  CertificateSource secondCatchAll = wildcard_;
  secondCatchAll.hosts = {};
  CertificateSet::Built built = build({exact_, uncovered, catchAll_, secondCatchAll});
  EXPECT_THAT(built.errors, IsEmpty());
  EXPECT_THAT(
      built.warnings,
      ElementsAre(
          "Secret default/a-too: hosts[0] \"a.example.com\": served by Secret default/a-tls "
          "already",
          "Secret default/a-too: hosts[1] \"b.other.test\": tls.crt does not cover this host",
          "Secret default/a-too: hosts[2] \"*.example.com\": tls.crt does not cover this host",
          "Secret default/a-too: hosts[3] \"a.*.test\": not a host name or a \"*.\" wildcard; "
          "ignored",
          "Secret default/wildcard-tls: hosts: empty (a catch-all), but Secret "
          "default/catch-all-tls is the catch-all already"));
  // The first source of a host wins; the uncovered host is still served by its source (the
  // client reports the certificate error, as it would for any other wrong certificate).
  EXPECT_EQ(built.set->select("a.example.com").name(), "default/a-tls");
  EXPECT_EQ(built.set->select("b.other.test").name(), "default/a-too");
  EXPECT_EQ(built.set->select("").name(), "default/catch-all-tls");
}

TEST_F(CertificateSetTest, OneSecretNamedByManyEntriesIsParsedOnce) {
  CertificateSource again = exact_;
  again.hosts = {"a2.example.com"};
  CertificateSet::Built built = build({exact_, again, exact_});
  EXPECT_THAT(built.warnings, Contains(HasSubstr("tls.crt does not cover")));
  EXPECT_EQ(built.set->certificateCount(), 2u);  // the default and default/a-tls
  EXPECT_EQ(&built.set->select("a.example.com"), &built.set->select("a2.example.com"));
}

TEST_F(CertificateSetTest, BadDefaultCertificateFailsTheBuild) {
  CertificateSource bad = defaultSource_;
  bad.privateKeyPem = exact_.privateKeyPem;
  Result<CertificateSet::Built> built = CertificateSet::build({}, bad, now());
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.error().message(),
            "default certificate: Secret capstan/default-certificate: tls.key: does not match "
            "tls.crt");
}

TEST(SelfSignedCertificateTest, IsAnEcP256CertificateNamedAsAsked) {
  Result<PemCertificate> generated = generateSelfSignedCertificate();
  ASSERT_TRUE(generated.ok()) << generated.error().message();
  CertificateSource source{
      "capstan/default", {}, generated->certificatePem, generated->privateKeyPem};
  Result<CertificateSet::Built> built = CertificateSet::build({}, source, now());
  ASSERT_TRUE(built.ok()) << built.error().message();
  EXPECT_THAT(built->warnings, IsEmpty());
  const Certificate& certificate = built->set->defaultCertificate();
  EXPECT_EQ(commonNameOf(certificate.leaf()), "Capstan Default Certificate");
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(certificate.leaf()),
                          X509_get_issuer_name(certificate.leaf())),
            0);
  EXPECT_EQ(X509_verify(certificate.leaf(), certificate.privateKey()), 1);  // signed by its key
  char group[32] = "";
  size_t length = 0;
  ASSERT_TRUE(EVP_PKEY_get_group_name(certificate.privateKey(), group, sizeof(group), &length));
  EXPECT_STREQ(group, "prime256v1");

  Result<PemCertificate> other = generateSelfSignedCertificate("other", std::chrono::hours(1));
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->privateKeyPem, generated->privateKeyPem);  // a new key each time
  EXPECT_FALSE(generateSelfSignedCertificate("").ok());
}

}  // namespace
}  // namespace capstan::l7::tls
