#include "model/go_duration.h"

namespace capstan {

std::optional<int64_t> parseGoDuration(std::string_view s) {
  if (s == "0") return 0;
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) return std::nullopt;
  long double total = 0;
  while (!s.empty()) {
    size_t i = 0;
    long double value = 0;
    size_t digits = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9')
      value = value * 10 + (s[i++] - '0'), ++digits;
    if (i < s.size() && s[i] == '.') {
      ++i;
      long double scale = 0.1L;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        value += (s[i++] - '0') * scale;
        scale /= 10;
        ++digits;
      }
    }
    if (digits == 0) return std::nullopt;
    size_t unitStart = i;
    while (i < s.size() && !(s[i] >= '0' && s[i] <= '9') && s[i] != '.') ++i;
    std::string_view unit = s.substr(unitStart, i - unitStart);
    long double scale;
    if (unit == "ns") {
      scale = 1;
    } else if (unit == "us" || unit == "\xc2\xb5s" || unit == "\xce\xbcs") {
      scale = 1e3L;
    } else if (unit == "ms") {
      scale = 1e6L;
    } else if (unit == "s") {
      scale = 1e9L;
    } else if (unit == "m") {
      scale = 60e9L;
    } else if (unit == "h") {
      scale = 3600e9L;
    } else {
      return std::nullopt;
    }
    total += value * scale;
    if (total > 9.2e18L) return std::nullopt;
    s.remove_prefix(i);
  }
  int64_t out = static_cast<int64_t>(total + 0.5L);
  return negative ? -out : out;
}

std::string formatGoDuration(int64_t nanos) {
  if (nanos == 0) return "0s";
  std::string sign = nanos < 0 ? "-" : "";
  uint64_t n = nanos < 0 ? static_cast<uint64_t>(-nanos) : static_cast<uint64_t>(nanos);
  auto trimmed = [](uint64_t whole, uint64_t frac, int width) {
    std::string out = std::to_string(whole);
    if (frac == 0) return out;
    std::string f = std::to_string(frac);
    f.insert(0, static_cast<size_t>(width) - f.size(), '0');
    while (f.back() == '0') f.pop_back();
    return out + "." + f;
  };
  if (n < 1000) return sign + std::to_string(n) + "ns";
  if (n < 1000000) return sign + trimmed(n / 1000, n % 1000, 3) + "\xc2\xb5s";
  if (n < 1000000000) return sign + trimmed(n / 1000000, n % 1000000, 6) + "ms";
  uint64_t secs = n / 1000000000, frac = n % 1000000000;
  std::string out = sign;
  if (secs >= 3600) out += std::to_string(secs / 3600) + "h";
  if (secs >= 60) out += std::to_string(secs / 60 % 60) + "m";
  return out + trimmed(secs % 60, frac, 9) + "s";
}

}  // namespace capstan
