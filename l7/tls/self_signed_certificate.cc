#include "l7/tls/self_signed_certificate.h"

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <climits>

#include "l7/tls/openssl_ptr.h"

namespace capstan::l7::tls {
namespace {

std::string bioText(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return size > 0 ? std::string(data, static_cast<size_t>(size)) : std::string();
}

Status addExtension(X509* x509, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x509, x509, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (extension == nullptr) return Error(std::string(value) + ": " + takeOpensslError());
  const int added = X509_add_ext(x509, extension, -1);
  X509_EXTENSION_free(extension);
  if (added != 1) return Error(std::string(value) + ": " + takeOpensslError());
  return okStatus();
}

}  // namespace

Result<PemCertificate> generateSelfSignedCertificate(std::string_view commonName,
                                                     std::chrono::seconds validity) {
  if (commonName.empty() || commonName.size() > 64) {
    // RFC 5280 appendix A: ub-common-name is 64.
    return Error("commonName: must have 1 to 64 characters");
  }
  // EC P-256: every TLS client supports it (RFC 8446 9.1 makes secp256r1 mandatory) and signing
  // with it costs a fraction of RSA-2048.
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  X509Ptr x509(X509_new());
  if (key == nullptr || x509 == nullptr) return Error("EC P-256 key: " + takeOpensslError());

  // RFC 5280 4.1.2.2: a positive serial of up to 20 octets; 16 random ones.
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof(serial)) != 1) return Error("serial: " + takeOpensslError());
  serial[0] &= 0x7f;
  BIGNUM* serialNumber = BN_bin2bn(serial, sizeof(serial), nullptr);
  const bool serialSet = serialNumber != nullptr &&
                         BN_to_ASN1_INTEGER(serialNumber, X509_get_serialNumber(x509.get()));
  BN_free(serialNumber);

  X509_NAME* name = X509_get_subject_name(x509.get());
  const auto* cn = reinterpret_cast<const unsigned char*>(commonName.data());
  if (!serialSet || X509_set_version(x509.get(), X509_VERSION_3) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(x509.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(x509.get()), static_cast<long>(validity.count())) ==
          nullptr ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, cn, static_cast<int>(commonName.size()),
                                 -1, 0) != 1 ||
      X509_set_issuer_name(x509.get(), name) != 1 || X509_set_pubkey(x509.get(), key.get()) != 1) {
    return Error("certificate: " + takeOpensslError());
  }
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:FALSE"},
                            std::pair{NID_key_usage, "critical,digitalSignature"},
                            std::pair{NID_ext_key_usage, "serverAuth"}}) {
    if (Status s = addExtension(x509.get(), nid, value); !s.ok()) {
      return s.error().withContext("certificate");
    }
  }
  if (X509_sign(x509.get(), key.get(), EVP_sha256()) == 0) {
    return Error("certificate: signing: " + takeOpensslError());
  }

  BioPtr certificateBio(BIO_new(BIO_s_mem()));
  BioPtr keyBio(BIO_new(BIO_s_mem()));
  if (certificateBio == nullptr || keyBio == nullptr ||
      PEM_write_bio_X509(certificateBio.get(), x509.get()) != 1 ||
      PEM_write_bio_PrivateKey(keyBio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1) {
    return Error("PEM: " + takeOpensslError());
  }
  return PemCertificate{bioText(certificateBio.get()), bioText(keyBio.get())};
}

}  // namespace capstan::l7::tls
