// The character classes and small grammar pieces of RFC 9110 5.5/5.6 and RFC 3986 that the
// HTTP/1.1 codec's parts share (message.cc, chunked.cc, forward.cc). Internal to l7/: the request
// path includes message.h, chunked.h and forward.h; the load-balancing annotation and cookies
// (load_balance.cc, balancer.cc) use the token and OWS rules from here.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "l7/http1/message.h"

namespace capstan::l7::http1 {

// Records why input is refused; returns kError, for `return fail(error, 400, "...")`.
inline ParseStatus fail(ParseError& error, uint16_t status, std::string_view reason) {
  error.status = status;
  error.reason = reason;
  return ParseStatus::kError;
}

namespace chars_internal {

enum : uint8_t {
  kTchar = 1 << 0,       // RFC 9110 5.6.2
  kFieldValue = 1 << 1,  // RFC 9110 5.5: field-vchar (VCHAR, obs-text), SP, HTAB
  kTarget = 1 << 2,      // a request-target byte: VCHAR but '#'
  kHost = 1 << 3,        // RFC 3986 reg-name: unreserved / sub-delims ('%' checked apart)
  kHex = 1 << 4,
  kDigit = 1 << 5,
};

constexpr std::array<uint8_t, 256> makeClasses() {
  std::array<uint8_t, 256> table{};
  constexpr std::string_view kTcharPunct = "!#$%&'*+-.^_`|~";
  constexpr std::string_view kHostPunct = "-._~!$&'()*+,;=";
  for (int c = 0; c < 256; ++c) {
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    const bool vchar = c >= 0x21 && c <= 0x7e;
    uint8_t v = 0;
    if (alpha || digit || (c < 0x80 && kTcharPunct.find(static_cast<char>(c)) != kTcharPunct.npos))
      v |= kTchar;
    if (vchar || c >= 0x80 || c == ' ' || c == '\t') v |= kFieldValue;
    if (vchar && c != '#') v |= kTarget;
    if (alpha || digit || (c < 0x80 && kHostPunct.find(static_cast<char>(c)) != kHostPunct.npos))
      v |= kHost;
    if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) v |= kHex;
    if (digit) v |= kDigit;
    table[static_cast<size_t>(c)] = v;
  }
  return table;
}

inline constexpr std::array<uint8_t, 256> kClasses = makeClasses();

inline bool is(char c, uint8_t cls) { return (kClasses[static_cast<unsigned char>(c)] & cls) != 0; }

}  // namespace chars_internal

inline bool isTchar(char c) { return chars_internal::is(c, chars_internal::kTchar); }
inline bool isFieldValueChar(char c) { return chars_internal::is(c, chars_internal::kFieldValue); }
inline bool isTargetChar(char c) { return chars_internal::is(c, chars_internal::kTarget); }
inline bool isHostChar(char c) { return chars_internal::is(c, chars_internal::kHost); }
inline bool isHexDigit(char c) { return chars_internal::is(c, chars_internal::kHex); }
inline bool isDigit(char c) { return chars_internal::is(c, chars_internal::kDigit); }

inline char toLowerAscii(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c;
}

inline bool isToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!isTchar(c)) return false;
  }
  return true;
}

// `token` equals the lower-case `lower`, ignoring case. For tokens only (field names from the
// parser): no tchar but a letter's other case maps onto a letter or '-' by |0x20, so one OR per
// byte does what a tolower table does.
inline bool lowerTokenEquals(std::string_view token, std::string_view lower) {
  if (token.size() != lower.size()) return false;
  for (size_t i = 0; i < token.size(); ++i) {
    if ((static_cast<unsigned char>(token[i]) | 0x20) != static_cast<unsigned char>(lower[i])) {
      return false;
    }
  }
  return true;
}

// OWS = *( SP / HTAB ), RFC 9110 5.6.3.
inline std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// 1*DIGIT into `out`; false when empty, not digits, or over UINT64_MAX.
inline bool parseDecimal(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  uint64_t n = 0;
  for (char c : s) {
    if (!isDigit(c)) return false;
    const auto d = static_cast<uint64_t>(c - '0');
    if (n > (UINT64_MAX - d) / 10) return false;
    n = n * 10 + d;
  }
  out = n;
  return true;
}

// Calls f(element) for each element of a comma-separated list (RFC 9110 5.6.1), OWS trimmed.
// Empty elements are skipped when `allowEmpty` (as 5.6.1 has recipients do), refused otherwise.
// Stops and returns false as soon as f does.
template <typename F>
bool forEachListElement(std::string_view list, bool allowEmpty, F&& f) {
  while (true) {
    const size_t comma = list.find(',');
    const std::string_view element = trimOws(list.substr(0, comma));
    if (element.empty()) {
      if (!allowEmpty) return false;
    } else if (!f(element)) {
      return false;
    }
    if (comma == std::string_view::npos) return true;
    list.remove_prefix(comma + 1);
  }
}

// uri-host [ ":" port ] (RFC 9110 7.2, RFC 3986 3.2.2): an IP-literal in brackets, or a reg-name
// (which covers IPv4), then optional port digits (required when `requirePort`, as in CONNECT's
// authority-form). An empty reg-name is valid: RFC 9110 7.2 has a client send an empty Host when
// the target URI has no authority.
inline bool isValidHost(std::string_view h, bool requirePort) {
  size_t i = 0;
  if (!h.empty() && h[0] == '[') {
    const size_t close = h.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (i = 1; i < close; ++i) {
      if (!isHostChar(h[i]) && h[i] != ':' && h[i] != '%') return false;
    }
    i = close + 1;
  } else {
    while (i < h.size() && h[i] != ':') {
      if (h[i] == '%') {
        if (i + 2 >= h.size() || !isHexDigit(h[i + 1]) || !isHexDigit(h[i + 2])) return false;
        i += 3;
        continue;
      }
      if (!isHostChar(h[i])) return false;
      ++i;
    }
  }
  if (i == h.size()) return !requirePort;
  if (h[i] != ':') return false;
  const std::string_view port = h.substr(i + 1);
  if (requirePort && port.empty()) return false;
  for (char c : port) {
    if (!isDigit(c)) return false;
  }
  return true;
}

}  // namespace capstan::l7::http1
