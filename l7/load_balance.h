// The load-balancing policy of an ingress route, chosen per Ingress by the annotation
// capstan.io/load-balance. The route table (l7/route_table.h) parses it when it is built; the
// workers' balancers (later in issue 5) read the parsed value from each Route.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "model/result.h"

namespace capstan::l7 {

inline constexpr std::string_view kLoadBalanceAnnotation = "capstan.io/load-balance";

enum class LoadBalanceKind : uint8_t {
  kRoundRobin,    // "round-robin"
  kLeastRequest,  // "least-request": power of two choices; the default
  kHashHeader,    // "hash-header:NAME": consistent hash (Maglev) of a request header
  kHashCookie,    // "hash-cookie:NAME": consistent hash of a cookie
  kHashClientIp,  // "hash-client-ip": consistent hash of the client's address
};

struct LoadBalancePolicy {
  LoadBalanceKind kind = LoadBalanceKind::kLeastRequest;
  // The header (lower-cased: header names are case-insensitive, RFC 9110 5.1) or the cookie
  // (as written: cookie names are case-sensitive, RFC 6265 5.3) to hash; empty otherwise.
  std::string key;

  std::string toString() const;  // the annotation value that gives this policy
  bool operator==(const LoadBalancePolicy&) const = default;
};

// Parses an annotation value. Surrounding blanks are ignored; the kind is case-sensitive, as
// Kubernetes enum values are. NAME must be a non-empty RFC 9110 token. The error says what is
// accepted, for the route table's warning.
Result<LoadBalancePolicy> parseLoadBalancePolicy(std::string_view text);

}  // namespace capstan::l7
