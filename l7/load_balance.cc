#include "l7/load_balance.h"

#include "l7/http1/grammar.h"

namespace capstan::l7 {

namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = http1::toLowerAscii(c);
  return out;
}

}  // namespace

std::string LoadBalancePolicy::toString() const {
  switch (kind) {
    case LoadBalanceKind::kRoundRobin:
      return "round-robin";
    case LoadBalanceKind::kLeastRequest:
      return "least-request";
    case LoadBalanceKind::kHashHeader:
      return "hash-header:" + key;
    case LoadBalanceKind::kHashCookie:
      return "hash-cookie:" + key;
    case LoadBalanceKind::kHashClientIp:
      return "hash-client-ip";
  }
  return "?";
}

Result<LoadBalancePolicy> parseLoadBalancePolicy(std::string_view text) {
  const std::string_view value = http1::trimOws(text);
  if (value == "round-robin") return LoadBalancePolicy{LoadBalanceKind::kRoundRobin, ""};
  if (value == "least-request") return LoadBalancePolicy{LoadBalanceKind::kLeastRequest, ""};
  if (value == "hash-client-ip") return LoadBalancePolicy{LoadBalanceKind::kHashClientIp, ""};
  for (auto [prefix, kind] :
       {std::pair{std::string_view("hash-header:"), LoadBalanceKind::kHashHeader},
        std::pair{std::string_view("hash-cookie:"), LoadBalanceKind::kHashCookie}}) {
    if (!value.starts_with(prefix)) continue;
    const std::string_view name = value.substr(prefix.size());
    if (!http1::isToken(name)) {  // RFC 9110 5.6.2
      return Error("invalid " + std::string(prefix.substr(0, prefix.size() - 1)) + " name \"" +
                   std::string(name) + "\" (want an HTTP token, such as X-User)");
    }
    return LoadBalancePolicy{
        kind, kind == LoadBalanceKind::kHashHeader ? lower(name) : std::string(name)};
  }
  return Error("invalid value \"" + std::string(value) +
               "\" (want round-robin, least-request, hash-header:NAME, hash-cookie:NAME or "
               "hash-client-ip)");
}

}  // namespace capstan::l7
