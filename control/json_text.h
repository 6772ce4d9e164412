// Writing JSON text by hand where a whole library would be too much (the health check bodies,
// the benchmark's manifest generator): one string escaper, RFC 8259 section 7. Header-only.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace capstan::control {

// Appends `s` to `out` as a JSON string: quoted, with '"', '\\' and control characters escaped.
inline void appendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

inline std::string jsonString(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  appendJsonString(out, s);
  return out;
}

}  // namespace capstan::control
