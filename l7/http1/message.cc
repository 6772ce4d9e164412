#include "l7/http1/message.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "l7/http1/grammar.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace capstan::l7::http1 {
namespace {

// The first byte at or after `p` that may not appear in a field value (RFC 9110 5.5: field-vchar,
// SP and HTAB; obs-text is kept). The values are most of a head's bytes, so 16 at a time.
const char* skipFieldValue(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i k1f = _mm_set1_epi8(0x1f);
  const __m128i kDel = _mm_set1_epi8(0x7f);
  while (end - p >= 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // max(x, 0x1f) == 0x1f exactly for the unsigned bytes 0x00..0x1f: the controls.
    const __m128i ctl = _mm_cmpeq_epi8(_mm_max_epu8(x, k1f), k1f);
    const int mask = _mm_movemask_epi8(_mm_or_si128(ctl, _mm_cmpeq_epi8(x, kDel)));
    if (mask == 0) {
      p += 16;
      continue;
    }
    p += __builtin_ctz(static_cast<unsigned>(mask));
    if (*p != '\t') return p;
    ++p;
  }
#endif
  while (p != end && isFieldValueChar(*p)) ++p;
  return p;
}

// The first byte at or after `p` that may not appear in a request-target: anything but VCHAR,
// and '#' (RFC 9112 3.2: the target carries no fragment).
const char* skipTarget(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i k21 = _mm_set1_epi8(0x21);
  const __m128i kDel = _mm_set1_epi8(0x7f);
  const __m128i kHash = _mm_set1_epi8('#');
  while (end - p >= 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // Signed: 0x80..0xff are negative, so one compare refuses the controls, SP and obs-text.
    const __m128i bad = _mm_or_si128(
        _mm_cmplt_epi8(x, k21), _mm_or_si128(_mm_cmpeq_epi8(x, kDel), _mm_cmpeq_epi8(x, kHash)));
    const int mask = _mm_movemask_epi8(bad);
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  while (p != end && isTargetChar(*p)) ++p;
  return p;
}

const char* skipTokenChars(const char* p, const char* end) {
  while (p != end && isTchar(*p)) ++p;
  return p;
}

enum class FieldName : uint8_t {
  kOther,
  kHost,
  kContentLength,
  kTransferEncoding,
  kConnection,
  kExpect,
  kUpgrade
};

FieldName classify(std::string_view name) {
  switch (name.size()) {
    case 4:
      return lowerTokenEquals(name, "host") ? FieldName::kHost : FieldName::kOther;
    case 6:
      return lowerTokenEquals(name, "expect") ? FieldName::kExpect : FieldName::kOther;
    case 7:
      return lowerTokenEquals(name, "upgrade") ? FieldName::kUpgrade : FieldName::kOther;
    case 10:
      return lowerTokenEquals(name, "connection") ? FieldName::kConnection : FieldName::kOther;
    case 14:
      return lowerTokenEquals(name, "content-length") ? FieldName::kContentLength
                                                      : FieldName::kOther;
    case 17:
      return lowerTokenEquals(name, "transfer-encoding") ? FieldName::kTransferEncoding
                                                         : FieldName::kOther;
    default:
      return FieldName::kOther;
  }
}

// What the fields that frame, route and hold a message open said, gathered while they are read.
struct FieldFacts {
  bool request = true;
  uint16_t hostCount = 0;
  std::string_view host;
  bool hasContentLength = false;
  uint64_t contentLength = 0;
  bool hasTransferEncoding = false;
  bool chunkedLast = false;
  uint8_t chunkedCount = 0;
  bool otherCoding = false;
  bool connectionClose = false;
  bool connectionKeepAlive = false;
  bool connectionUpgrade = false;
  bool expectContinue = false;
  bool hasUpgrade = false;
  std::string_view upgrade;
};

// Content-Length (RFC 9110 8.6): 1*DIGIT. A list of identical values ("5, 5", or the same value
// in two field lines) is one value (RFC 9112 6.3 item 5); anything else is refused, since two
// parsers picking different values is request smuggling.
bool addContentLength(std::string_view value, FieldFacts& facts) {
  bool any = false;
  return forEachListElement(value, /*allowEmpty=*/false,
                            [&](std::string_view element) {
                              uint64_t n = 0;
                              if (!parseDecimal(element, n)) return false;
                              if (facts.hasContentLength && n != facts.contentLength) return false;
                              facts.hasContentLength = true;
                              facts.contentLength = n;
                              any = true;
                              return true;
                            }) &&
         any;
}

// Transfer-Encoding (RFC 9112 6.1): transfer-coding *( OWS "," OWS transfer-coding ), over every
// field line in order. What matters for framing: is chunked the last coding, how often does it
// appear, and is there any other coding.
bool addTransferEncoding(std::string_view value, FieldFacts& facts) {
  facts.hasTransferEncoding = true;
  return forEachListElement(value, /*allowEmpty=*/true, [&](std::string_view element) {
    std::string_view name = element.substr(0, element.find(';'));
    const bool hasParameters = name.size() != element.size();
    name = trimOws(name);
    if (!isToken(name)) return false;
    if (equalsIgnoreCase(name, "chunked")) {
      // chunked takes no parameters (RFC 9112 7.1).
      if (hasParameters) return false;
      if (facts.chunkedCount < 255) ++facts.chunkedCount;
      facts.chunkedLast = true;
    } else {
      facts.otherCoding = true;
      facts.chunkedLast = false;
    }
    return true;
  });
}

// Connection (RFC 9110 7.6.1): a list of tokens, compared case-insensitively.
bool addConnection(std::string_view value, FieldFacts& facts) {
  return forEachListElement(value, /*allowEmpty=*/true, [&](std::string_view token) {
    if (!isToken(token)) return false;
    if (equalsIgnoreCase(token, "close")) {
      facts.connectionClose = true;
    } else if (equalsIgnoreCase(token, "keep-alive")) {
      facts.connectionKeepAlive = true;
    } else if (equalsIgnoreCase(token, "upgrade")) {
      facts.connectionUpgrade = true;
    }
    return true;
  });
}

// One field line's meaning for framing and routing. Only a request's Host, Expect and Upgrade
// matter; a response's Host (which it should not have) is just another field.
ParseStatus noteField(std::string_view name, std::string_view value, FieldFacts& facts,
                      ParseError& error) {
  switch (classify(name)) {
    case FieldName::kOther:
      return ParseStatus::kComplete;
    case FieldName::kHost:
      if (!facts.request) return ParseStatus::kComplete;
      // RFC 9112 3.2: more than one Host, or an invalid one, is answered 400.
      if (++facts.hostCount > 1) return fail(error, 400, "more than one Host");
      if (!isValidHost(value, /*requirePort=*/false)) return fail(error, 400, "invalid Host");
      facts.host = value;
      return ParseStatus::kComplete;
    case FieldName::kContentLength:
      if (!addContentLength(value, facts)) return fail(error, 400, "invalid Content-Length");
      return ParseStatus::kComplete;
    case FieldName::kTransferEncoding:
      if (!addTransferEncoding(value, facts)) return fail(error, 400, "invalid Transfer-Encoding");
      return ParseStatus::kComplete;
    case FieldName::kConnection:
      if (!addConnection(value, facts)) return fail(error, 400, "invalid Connection");
      return ParseStatus::kComplete;
    case FieldName::kExpect:
      if (!facts.request) return ParseStatus::kComplete;
      // RFC 9110 10.1.1: 100-continue is the only expectation; others may be answered 417.
      if (!forEachListElement(value, /*allowEmpty=*/true, [&](std::string_view e) {
            if (!equalsIgnoreCase(e, "100-continue")) return false;
            facts.expectContinue = true;
            return true;
          })) {
        return fail(error, 417, "unsupported expectation");
      }
      return ParseStatus::kComplete;
    case FieldName::kUpgrade:
      if (!facts.hasUpgrade) {
        facts.hasUpgrade = true;
        facts.upgrade = value;
      }
      return ParseStatus::kComplete;
  }
  return ParseStatus::kComplete;
}

// Reads field lines from `pos` up to and including the empty line that ends the head (RFC 9112
// 5). On kComplete, `pos` is just past the head. `end` is where the head must end by (the input,
// cut at maxHeadBytes).
ParseStatus parseFields(const char* base, size_t& pos, size_t end, size_t maxFields,
                        std::vector<Header>& headers, FieldFacts& facts, ParseError& error) {
  const char* const stop = base + end;
  const char* p = base + pos;
  while (true) {
    if (p == stop) return ParseStatus::kIncomplete;
    // The empty line. RFC 9112 2.2: a bare LF may end a line; a bare CR may not.
    if (*p == '\r') {
      if (p + 1 == stop) return ParseStatus::kIncomplete;
      if (p[1] != '\n') return fail(error, 400, "bare CR");
      pos = static_cast<size_t>(p + 2 - base);
      return ParseStatus::kComplete;
    }
    if (*p == '\n') {
      pos = static_cast<size_t>(p + 1 - base);
      return ParseStatus::kComplete;
    }
    // RFC 9112 5.2: obs-fold is refused (and so is whitespace before the first field line, RFC
    // 9112 2.2, which would otherwise hide a field from some parsers).
    if (*p == ' ' || *p == '\t') return fail(error, 400, "obs-fold or whitespace at line start");
    const char* nameEnd = skipTokenChars(p, stop);
    if (nameEnd == stop) return ParseStatus::kIncomplete;
    if (*nameEnd != ':') {
      // RFC 9112 5.1: no whitespace is allowed between the field name and the colon.
      if (*nameEnd == ' ' || *nameEnd == '\t') {
        return fail(error, 400, "whitespace between field name and colon");
      }
      return fail(error, 400, "invalid field name");
    }
    if (nameEnd == p) return fail(error, 400, "empty field name");
    const char* v = nameEnd + 1;
    while (v != stop && (*v == ' ' || *v == '\t')) ++v;
    const char* valueEnd = skipFieldValue(v, stop);
    if (valueEnd == stop) return ParseStatus::kIncomplete;
    const char* next;
    if (*valueEnd == '\r') {
      if (valueEnd + 1 == stop) return ParseStatus::kIncomplete;
      if (valueEnd[1] != '\n') return fail(error, 400, "bare CR in field value");
      next = valueEnd + 2;
    } else if (*valueEnd == '\n') {
      next = valueEnd + 1;
    } else {
      // RFC 9110 5.5: NUL (and every other control but HTAB) is not a field value character.
      return fail(error, 400, "invalid character in field value");
    }
    while (valueEnd != v && (valueEnd[-1] == ' ' || valueEnd[-1] == '\t')) --valueEnd;
    if (headers.size() >= maxFields) return fail(error, 431, "too many header fields");
    const std::string_view name(p, static_cast<size_t>(nameEnd - p));
    const std::string_view value(v, static_cast<size_t>(valueEnd - v));
    headers.push_back({name, value});
    if (noteField(name, value, facts, error) == ParseStatus::kError) return ParseStatus::kError;
    p = next;
  }
}

// "HTTP/" DIGIT "." DIGIT at `pos` (RFC 9112 2.3). kIncomplete while what is there could still
// become one; a well-formed version other than 1.0 and 1.1 is `unsupportedStatus`.
ParseStatus parseVersion(const char* base, size_t pos, size_t end, uint8_t& minor,
                         uint16_t unsupportedStatus, ParseError& error) {
  static constexpr std::string_view kPattern = "HTTP/0.0";
  const size_t available = std::min(end - pos, kPattern.size());
  for (size_t i = 0; i < available; ++i) {
    const char c = base[pos + i];
    const bool ok = kPattern[i] == '0' ? isDigit(c) : c == kPattern[i];
    if (!ok) return fail(error, 400, "malformed HTTP version");
  }
  if (available < kPattern.size()) return ParseStatus::kIncomplete;
  if (base[pos + 5] != '1' || base[pos + 7] > '1') {
    return fail(error, unsupportedStatus, "unsupported HTTP version");
  }
  minor = static_cast<uint8_t>(base[pos + 7] - '0');
  return ParseStatus::kComplete;
}

// The end of the start line at `pos`: CRLF or (RFC 9112 2.2) a bare LF. On kComplete, `pos` is
// past it.
ParseStatus parseLineEnd(const char* base, size_t& pos, size_t end, ParseError& error) {
  if (pos == end) return ParseStatus::kIncomplete;
  if (base[pos] == '\n') {
    pos += 1;
    return ParseStatus::kComplete;
  }
  if (base[pos] != '\r') return fail(error, 400, "malformed start line");
  if (pos + 1 == end) return ParseStatus::kIncomplete;
  if (base[pos + 1] != '\n') return fail(error, 400, "bare CR");
  pos += 2;
  return ParseStatus::kComplete;
}

Method methodOf(std::string_view m) {
  // Methods are case-sensitive (RFC 9110 9.1): "get" is some other method.
  switch (m.size()) {
    case 3:
      if (m == "GET") return Method::kGet;
      if (m == "PUT") return Method::kPut;
      break;
    case 4:
      if (m == "HEAD") return Method::kHead;
      if (m == "POST") return Method::kPost;
      break;
    case 5:
      if (m == "PATCH") return Method::kPatch;
      if (m == "TRACE") return Method::kTrace;
      break;
    case 6:
      if (m == "DELETE") return Method::kDelete;
      break;
    case 7:
      if (m == "CONNECT") return Method::kConnect;
      if (m == "OPTIONS") return Method::kOptions;
      break;
    default:
      break;
  }
  return Method::kOther;
}

bool startsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && equalsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

// The request-target (RFC 9112 3.2), its characters already checked: fills path, pathAndQuery
// and, for absolute-form and authority-form, the host it names.
ParseStatus parseTarget(RequestHead& out, std::string_view& targetHost, ParseError& error) {
  const std::string_view target = out.target;
  if (target[0] == '/') {
    // origin-form; CONNECT takes authority-form only (RFC 9112 3.2.3).
    if (out.method == Method::kConnect) return fail(error, 400, "CONNECT without authority-form");
    out.pathAndQuery = target;
    out.path = target.substr(0, target.find('?'));
    return ParseStatus::kComplete;
  }
  if (out.method == Method::kConnect) {
    // authority-form = uri-host ":" port (RFC 9112 3.2.3).
    if (!isValidHost(target, /*requirePort=*/true)) {
      return fail(error, 400, "invalid authority-form target");
    }
    targetHost = target;
    out.pathAndQuery = target;
    out.path = {};
    return ParseStatus::kComplete;
  }
  if (target == "*") {
    // asterisk-form is for OPTIONS only (RFC 9112 3.2.4); it routes as the root.
    if (out.method != Method::kOptions) return fail(error, 400, "asterisk-form without OPTIONS");
    out.pathAndQuery = "*";
    out.path = "/";
    return ParseStatus::kComplete;
  }
  // absolute-form (RFC 9112 3.2.2), http and https only.
  size_t authorityStart;
  if (startsWithIgnoreCase(target, "http://")) {
    authorityStart = 7;
  } else if (startsWithIgnoreCase(target, "https://")) {
    authorityStart = 8;
  } else {
    return fail(error, 400, "invalid request target");
  }
  const size_t authorityEnd = std::min(target.find_first_of("/?", authorityStart), target.size());
  const std::string_view authority = target.substr(authorityStart, authorityEnd - authorityStart);
  // RFC 9110 4.2.4: userinfo in an http(s) URI is to be treated as an error; RFC 9110 4.2.1: an
  // empty host is invalid.
  if (authority.find('@') != std::string_view::npos) {
    return fail(error, 400, "userinfo in request target");
  }
  if (!isValidHost(authority, /*requirePort=*/false) || authority.empty() || authority[0] == ':') {
    return fail(error, 400, "invalid authority in request target");
  }
  targetHost = authority;
  const std::string_view rest = target.substr(authorityEnd);
  if (rest.empty()) {
    // RFC 9112 3.2.4: OPTIONS to an empty path goes on as "*"; any other method as "/".
    out.pathAndQuery = out.method == Method::kOptions ? "*" : "/";
    out.path = "/";
    return ParseStatus::kComplete;
  }
  // "http://h?q" would go upstream as "/?q", which is not in the input: refused, as no client
  // sends it to an ingress.
  if (rest[0] != '/') return fail(error, 400, "absolute-form target with a query but no path");
  out.pathAndQuery = rest;
  out.path = rest.substr(0, rest.find('?'));
  return ParseStatus::kComplete;
}

// Leading empty lines: RFC 9112 2.2 has a server ignore at least one before the request line
// (a client may send an extra CRLF after a body). They count towards maxHeadBytes.
ParseStatus skipEmptyLines(const char* base, size_t& pos, size_t end, ParseError& error) {
  while (pos < end) {
    if (base[pos] == '\n') {
      ++pos;
    } else if (base[pos] == '\r') {
      if (pos + 1 == end) return ParseStatus::kIncomplete;
      if (base[pos + 1] != '\n') return fail(error, 400, "bare CR");
      pos += 2;
    } else {
      return ParseStatus::kComplete;
    }
  }
  return ParseStatus::kIncomplete;
}

}  // namespace

void RequestHead::clear() {
  method = Method::kGet;
  methodText = {};
  target = {};
  path = {};
  pathAndQuery = {};
  minorVersion = 1;
  headers.clear();
  host = {};
  body = BodyKind::kNone;
  contentLength = 0;
  keepAlive = true;
  expectContinue = false;
  upgrade = false;
  upgradeProtocol = {};
  headLength = 0;
}

void ResponseHead::clear() {
  status = 0;
  reason = {};
  minorVersion = 1;
  headers.clear();
  body = BodyKind::kNone;
  contentLength = 0;
  keepAlive = true;
  headLength = 0;
}

ParseStatus parseRequestHead(std::string_view input, const Limits& limits, RequestHead& out,
                             ParseError& error) {
  out.clear();
  const char* const base = input.data();
  // Nothing past maxHeadBytes can belong to an acceptable head: scan no further.
  const size_t end = std::min(input.size(), limits.maxHeadBytes);
  auto incomplete = [&] {
    if (input.size() > limits.maxHeadBytes) return fail(error, 431, "request head too large");
    return ParseStatus::kIncomplete;
  };
  size_t pos = 0;
  ParseStatus s = skipEmptyLines(base, pos, end, error);
  if (s != ParseStatus::kComplete) return s == ParseStatus::kIncomplete ? incomplete() : s;

  // request-line = method SP request-target SP HTTP-version (RFC 9112 3), single spaces.
  const size_t lineStart = pos;
  auto lineIncomplete = [&](size_t at) {
    // A line longer than the limit is refused before its end arrives (+1: a CR may be pending).
    if (at - lineStart > limits.maxRequestLine + 1)
      return fail(error, 414, "request line too long");
    return incomplete();
  };
  const char* methodEnd = skipTokenChars(base + pos, base + end);
  if (methodEnd == base + end) return lineIncomplete(end);
  if (*methodEnd != ' ' || methodEnd == base + pos) return fail(error, 400, "malformed method");
  out.methodText = std::string_view(base + pos, static_cast<size_t>(methodEnd - (base + pos)));
  out.method = methodOf(out.methodText);

  const char* targetStart = methodEnd + 1;
  const char* targetEnd = skipTarget(targetStart, base + end);
  if (targetEnd == base + end) return lineIncomplete(end);
  if (*targetEnd != ' ') return fail(error, 400, "invalid character in request target");
  if (targetEnd == targetStart) return fail(error, 400, "empty request target");
  out.target = std::string_view(targetStart, static_cast<size_t>(targetEnd - targetStart));

  pos = static_cast<size_t>(targetEnd + 1 - base);
  s = parseVersion(base, pos, end, out.minorVersion, 505, error);
  if (s == ParseStatus::kIncomplete) return lineIncomplete(end);
  if (s == ParseStatus::kError) return s;
  pos += 8;
  const size_t lineEnd = pos;
  s = parseLineEnd(base, pos, end, error);
  if (s == ParseStatus::kIncomplete) return lineIncomplete(end);
  if (s == ParseStatus::kError) return s;
  if (lineEnd - lineStart > limits.maxRequestLine) return fail(error, 414, "request line too long");

  std::string_view targetHost;
  if (parseTarget(out, targetHost, error) == ParseStatus::kError) return ParseStatus::kError;

  FieldFacts facts;
  s = parseFields(base, pos, end, limits.maxHeaders, out.headers, facts, error);
  if (s == ParseStatus::kIncomplete) return incomplete();
  if (s == ParseStatus::kError) return s;
  out.headLength = pos;

  // Framing (RFC 9112 6.1, 6.3).
  if (facts.hasTransferEncoding) {
    // RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
    if (out.minorVersion == 0) return fail(error, 400, "Transfer-Encoding in HTTP/1.0");
    // RFC 9112 6.1: a server may reject a request with both; a proxy that forwards one of the
    // two is how requests are smuggled.
    if (facts.hasContentLength) {
      return fail(error, 400, "both Content-Length and Transfer-Encoding");
    }
    // RFC 9112 6.3 item 4: chunked not last in a request: 400. RFC 9112 7: never twice.
    if (!facts.chunkedLast) return fail(error, 400, "chunked is not the last transfer coding");
    if (facts.chunkedCount > 1) return fail(error, 400, "chunked applied twice");
    // RFC 9112 6.1: a transfer coding the server does not understand is answered 501.
    if (facts.otherCoding) return fail(error, 501, "unsupported transfer coding");
    out.body = BodyKind::kChunked;
  } else if (facts.hasContentLength) {
    out.body = BodyKind::kContentLength;
    out.contentLength = facts.contentLength;
  }

  // RFC 9112 3.2: an HTTP/1.1 request without Host is answered 400, whatever its target form.
  if (out.minorVersion == 1 && facts.hostCount == 0) return fail(error, 400, "missing Host");
  // RFC 9112 3.2.2: the authority of an absolute-form target replaces Host.
  out.host = targetHost.empty() ? facts.host : targetHost;

  // RFC 9112 9.3: 1.1 persists unless "close"; 1.0 only with "keep-alive".
  out.keepAlive = !facts.connectionClose && (out.minorVersion == 1 || facts.connectionKeepAlive);
  // RFC 9110 10.1.1 and 7.8: a 1.0 request's 100-continue and Upgrade are ignored.
  out.expectContinue = facts.expectContinue && out.minorVersion == 1;
  out.upgrade = facts.connectionUpgrade && facts.hasUpgrade && out.minorVersion == 1;
  if (out.upgrade) out.upgradeProtocol = facts.upgrade;
  return ParseStatus::kComplete;
}

ParseStatus parseResponseHead(std::string_view input, const Limits& limits, Method requestMethod,
                              ResponseHead& out, ParseError& error) {
  out.clear();
  const char* const base = input.data();
  const size_t end = std::min(input.size(), limits.maxHeadBytes);
  auto incomplete = [&] {
    if (input.size() > limits.maxHeadBytes) return fail(error, 502, "response head too large");
    return ParseStatus::kIncomplete;
  };
  auto refuse = [&](ParseStatus s) {
    if (s == ParseStatus::kError) error.status = 502;  // the client is answered 502 whatever
    return s;
  };
  // status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 4).
  size_t pos = 0;
  ParseStatus s = parseVersion(base, pos, end, out.minorVersion, 502, error);
  if (s == ParseStatus::kIncomplete) return incomplete();
  if (s == ParseStatus::kError) return refuse(s);
  pos += 8;
  for (size_t i = 0; i < 4; ++i, ++pos) {
    if (pos == end) return incomplete();
    const bool ok = i == 0 ? base[pos] == ' ' : isDigit(base[pos]);
    if (!ok) return fail(error, 502, "malformed status line");
    if (i > 0) out.status = static_cast<uint16_t>(out.status * 10 + (base[pos] - '0'));
  }
  if (out.status < 100) return fail(error, 502, "invalid status code");
  if (pos == end) return incomplete();
  // Some servers omit the SP before an empty reason; RFC 9112 4 has clients ignore the reason.
  size_t reasonEnd = pos;
  if (base[pos] == ' ') {
    ++pos;
    reasonEnd = static_cast<size_t>(skipFieldValue(base + pos, base + end) - base);
    out.reason = std::string_view(base + pos, reasonEnd - pos);
  }
  pos = reasonEnd;
  s = parseLineEnd(base, pos, end, error);
  if (s == ParseStatus::kIncomplete) return incomplete();
  if (s == ParseStatus::kError) return refuse(s);
  if (reasonEnd > limits.maxRequestLine) return fail(error, 502, "status line too long");

  FieldFacts facts;
  facts.request = false;
  s = parseFields(base, pos, end, limits.maxHeaders, out.headers, facts, error);
  if (s == ParseStatus::kIncomplete) return incomplete();
  if (s == ParseStatus::kError) return refuse(s);
  out.headLength = pos;
  out.contentLength = facts.contentLength;
  out.keepAlive = !facts.connectionClose && (out.minorVersion == 1 || facts.connectionKeepAlive);

  // RFC 9112 6.3 items 1 and 2: no body after HEAD, 1xx, 204, 304, or a 2xx to CONNECT.
  if (requestMethod == Method::kHead || out.status < 200 || out.status == 204 ||
      out.status == 304 || (requestMethod == Method::kConnect && out.status < 300)) {
    out.body = BodyKind::kNone;
    return ParseStatus::kComplete;
  }
  if (facts.hasTransferEncoding) {
    if (facts.chunkedCount > 1) return fail(error, 502, "chunked applied twice");
    // RFC 9112 6.3 item 3: both present, chunked wins, and the connection is not reused. RFC
    // 9112 6.1: in HTTP/1.0 the framing is faulty: the connection is not reused either.
    if (facts.hasContentLength || out.minorVersion == 0) out.keepAlive = false;
    // RFC 9112 6.3 item 4: chunked not last in a response: the body runs until close.
    if (facts.chunkedLast) {
      out.body = BodyKind::kChunked;
    } else {
      out.body = BodyKind::kUntilClose;
      out.keepAlive = false;
    }
    out.contentLength = 0;
  } else if (facts.hasContentLength) {
    out.body = BodyKind::kContentLength;
  } else {
    // RFC 9112 6.3 item 8.
    out.body = BodyKind::kUntilClose;
    out.keepAlive = false;
  }
  return ParseStatus::kComplete;
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (toLowerAscii(a[i]) != toLowerAscii(b[i])) return false;
  }
  return true;
}

std::string_view findHeader(const std::vector<Header>& headers, std::string_view name) {
  for (const Header& h : headers) {
    if (equalsIgnoreCase(h.name, name)) return h.value;
  }
  return {};
}

}  // namespace capstan::l7::http1
