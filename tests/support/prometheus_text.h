// Reading a Prometheus text exposition (what /metrics serves) in tests. Header-only.
#pragma once

#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>

namespace capstan::support {

// The value of the unlabelled sample `name` in `exposition`, or nullopt when it has none.
inline std::optional<double> metricValue(const std::string& exposition, const std::string& name) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > name.size() && line.starts_with(name) && line[name.size()] == ' ') {
      char* end = nullptr;
      const char* start = line.c_str() + name.size() + 1;
      double v = std::strtod(start, &end);
      if (end == start) return std::nullopt;
      return v;
    }
  }
  return std::nullopt;
}

}  // namespace capstan::support
