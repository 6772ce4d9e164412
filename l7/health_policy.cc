#include "l7/health_policy.h"

#include <algorithm>
#include <charconv>

#include "l7/http1/grammar.h"
#include "model/go_duration.h"

namespace capstan::l7 {

namespace {

std::string annotation(std::string_view suffix) {
  return std::string(kHealthCheckAnnotationPrefix) + std::string(suffix);
}

Error bad(std::string_view suffix, std::string_view value, std::string_view expected) {
  return Error("metadata.annotations[" + annotation(suffix) + "]: \"" + std::string(value) +
               "\": " + std::string(expected));
}

// A Go duration from 10ms to 1h.
Result<std::chrono::milliseconds> durationOf(std::string_view suffix, const std::string& value) {
  std::optional<int64_t> nanos = parseGoDuration(value);
  if (!nanos || *nanos < 10'000'000 || *nanos > int64_t{3600} * 1'000'000'000) {
    return bad(suffix, value, "want a duration from 10ms to 1h, such as 5s or 500ms");
  }
  return std::chrono::milliseconds(*nanos / 1'000'000);
}

Result<uint32_t> countOf(std::string_view suffix, const std::string& value) {
  uint32_t n = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (ec != std::errc() || end != value.data() + value.size() || n < 1 || n > 100) {
    return bad(suffix, value, "want a whole number from 1 to 100");
  }
  return n;
}

// A path a request line may carry: absolute, of request-target bytes (the rule Capstan's own
// parser holds requests to: VCHAR but '#').
bool validPath(std::string_view path) {
  if (path.empty() || path[0] != '/' || path.size() > 1024) return false;
  return std::all_of(path.begin(), path.end(), http1::isTargetChar);
}

bool validHost(std::string_view host) {
  if (host.empty() || host.size() > 255) return false;
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == ':' || c == '[' || c == ']';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

Result<std::optional<HealthCheckPolicy>> healthCheckPolicyOf(const Ingress& ingress) {
  auto find = [&](std::string_view suffix) -> const std::string* {
    auto it = ingress.annotations.find(annotation(suffix));
    return it == ingress.annotations.end() ? nullptr : &it->second;
  };
  const std::string* path = find("path");
  if (path == nullptr) return std::optional<HealthCheckPolicy>();
  HealthCheckPolicy policy;
  if (!validPath(*path)) {
    return bad("path", *path, "want an absolute path such as /healthz, without blanks");
  }
  policy.path = *path;
  if (const std::string* host = find("host")) {
    if (!validHost(*host)) return bad("host", *host, "want a host name or address");
    policy.host = *host;
  }
  for (auto [suffix, field] :
       {std::pair{"interval", &policy.interval}, std::pair{"timeout", &policy.timeout}}) {
    if (const std::string* value = find(suffix)) {
      auto parsed = durationOf(suffix, *value);
      if (!parsed.ok()) return parsed.error();
      *field = *parsed;
    }
  }
  for (auto [suffix, field] : {std::pair{"unhealthy-threshold", &policy.unhealthyThreshold},
                               std::pair{"healthy-threshold", &policy.healthyThreshold}}) {
    if (const std::string* value = find(suffix)) {
      auto parsed = countOf(suffix, *value);
      if (!parsed.ok()) return parsed.error();
      *field = *parsed;
    }
  }
  return std::optional<HealthCheckPolicy>(std::move(policy));
}

}  // namespace capstan::l7
