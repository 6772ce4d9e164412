// Time as Kubernetes writes it (RFC 3339 in annotations) and as kube-proxy prints it (Go's
// time.Time String() in the /healthz body).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace capstan::control {

// "2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123456789+02:00" -> Unix nanoseconds.
std::optional<int64_t> parseRfc3339(std::string_view text);

// Unix nanoseconds -> "2024-05-01 12:00:00.123456789 +0000 UTC", the form Go's fmt prints a
// time.Time in (without the monotonic clock reading).
std::string formatGoTime(int64_t unixNanos);

}  // namespace capstan::control
