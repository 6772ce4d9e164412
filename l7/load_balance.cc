#include "l7/load_balance.h"

#include <cctype>

namespace capstan::l7 {

namespace {

// RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_"
// / "`" / "|" / "~" / DIGIT / ALPHA.
bool isToken(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0) continue;
    if (std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) return false;
  }
  return true;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
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
  const std::string_view value = trim(text);
  if (value == "round-robin") return LoadBalancePolicy{LoadBalanceKind::kRoundRobin, ""};
  if (value == "least-request") return LoadBalancePolicy{LoadBalanceKind::kLeastRequest, ""};
  if (value == "hash-client-ip") return LoadBalancePolicy{LoadBalanceKind::kHashClientIp, ""};
  for (auto [prefix, kind] :
       {std::pair{std::string_view("hash-header:"), LoadBalanceKind::kHashHeader},
        std::pair{std::string_view("hash-cookie:"), LoadBalanceKind::kHashCookie}}) {
    if (!value.starts_with(prefix)) continue;
    const std::string_view name = value.substr(prefix.size());
    if (!isToken(name)) {
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
