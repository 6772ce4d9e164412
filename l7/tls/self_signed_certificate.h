// The certificate Capstan answers with when the operator configures none: a self-signed EC P-256
// certificate made at start-up, as ingress-nginx makes its "Kubernetes Ingress Controller Fake
// Certificate". No client trusts it; it lets a handshake for an unknown name complete so that the
// client sees a certificate error rather than a reset connection.
//
// Who calls it: the daemon's start-up, on the control thread, once.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "model/result.h"

namespace capstan::l7::tls {

struct PemCertificate {
  std::string certificatePem;  // one certificate, self-signed
  std::string privateKeyPem;   // PKCS#8, unencrypted
};

inline constexpr std::string_view kDefaultCertificateName = "Capstan Default Certificate";

// A new key pair and a certificate for it with subject CN `commonName`, valid from now (minus an
// hour for clock skew) for `validity`.
Result<PemCertificate> generateSelfSignedCertificate(
    std::string_view commonName = kDefaultCertificateName,
    std::chrono::seconds validity = std::chrono::hours(24 * 365));

}  // namespace capstan::l7::tls
