// Durations as Go writes them (time.Duration's String and ParseDuration): the form of Kubernetes
// configuration fields (KubeProxyConfiguration's syncPeriod) and of Capstan's annotations.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace capstan {

// Go's time.ParseDuration syntax: "300ms", "1.5h", "2h45m", "0". Units ns, us, µs, ms, s, m, h.
std::optional<int64_t> parseGoDuration(std::string_view text);  // nanoseconds

// The inverse, in Go's form: 1500000000 -> "1.5s", 90000000000 -> "1m30s".
std::string formatGoDuration(int64_t nanos);

}  // namespace capstan
