// HTTP/1.1 message heads (RFC 9112, RFC 9110) as the ingress reads them: the request a client
// sends and the response an upstream sends back. Parsing is zero-copy (every string_view points
// into the caller's buffer) and allocation-free once the caller's Head has grown its header list.
//
// The request parser is the ingress's first line of defence against request smuggling: what it
// accepts is forwarded upstream re-serialized in one canonical form (l7/http1/forward.h), and
// what it refuses is answered with the status in ParseError and the connection closed.
//
// Who calls it: an ingress worker, on the bytes read so far from a connection. A head may arrive
// in pieces; call again with the longer buffer after kIncomplete (the head is parsed from its
// start each time, like picohttpparser: heads are small and usually arrive whole). On kIncomplete
// and kError the fields of `out` are unspecified.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace capstan::l7::http1 {

enum class ParseStatus : uint8_t { kIncomplete, kComplete, kError };

// Why a message was refused. For a request, `status` is what the client is answered (400, 413,
// 414, 417, 431, 501, 505); for a response, the ingress answers 502 whatever it holds. `reason` is
// a static string for logs and counters ("both Content-Length and Transfer-Encoding").
struct ParseError {
  uint16_t status = 400;
  std::string_view reason;
};

struct Limits {
  size_t maxRequestLine = 8 * 1024;  // beyond: 414 URI Too Long
  size_t maxHeadBytes = 32 * 1024;   // the whole head; beyond: 431
  size_t maxHeaders = 100;           // beyond: 431
};

enum class Method : uint8_t {
  kGet,
  kHead,
  kPost,
  kPut,
  kDelete,
  kConnect,
  kOptions,
  kTrace,
  kPatch,
  kOther
};

struct Header {
  std::string_view name;   // as sent (compare case-insensitively)
  std::string_view value;  // leading and trailing OWS removed
};

// How the message body is delimited (RFC 9112 6.3).
enum class BodyKind : uint8_t {
  kNone,           // no body (a request without CL/TE; a response to HEAD, 1xx, 204, 304)
  kContentLength,  // exactly contentLength bytes (may be 0)
  kChunked,        // chunked transfer coding (l7/http1/chunked.h)
  kUntilClose,     // responses only: the body ends when the upstream closes
};

struct RequestHead {
  Method method = Method::kGet;
  std::string_view methodText;
  std::string_view target;  // as sent: origin-form "/a/b?q", absolute-form, "*", authority-form
  // The path of the target, without query: what routing looks at. "/" for "*" and for an
  // absolute "http://h"; empty for CONNECT's authority-form.
  std::string_view path;
  // What goes upstream: the origin-form (for an absolute-form target, its path and query; "/"
  // for "http://h"); "*" for asterisk-form and for OPTIONS to "http://h" (RFC 9112 3.2.4); the
  // authority for CONNECT.
  std::string_view pathAndQuery;
  uint8_t minorVersion = 1;     // HTTP/1.0 or HTTP/1.1
  std::vector<Header> headers;  // every field line, in order; reused across requests
  // Host as sent, port included (or the authority of an absolute-form or authority-form target,
  // RFC 9112 3.2.2); empty for an HTTP/1.0 request without Host.
  std::string_view host;
  BodyKind body = BodyKind::kNone;
  uint64_t contentLength = 0;
  bool keepAlive = true;        // after the version default and Connection close/keep-alive
  bool expectContinue = false;  // Expect: 100-continue (ignored in HTTP/1.0, RFC 9110 10.1.1)
  // Connection names "upgrade" and an Upgrade header is present (HTTP/1.1 only, RFC 9110 7.8).
  bool upgrade = false;
  std::string_view upgradeProtocol;  // the Upgrade header's value
  size_t headLength = 0;             // bytes of the head, the final empty line included

  void clear();
};

struct ResponseHead {
  uint16_t status = 0;
  std::string_view reason;
  uint8_t minorVersion = 1;
  std::vector<Header> headers;
  BodyKind body = BodyKind::kNone;
  // The Content-Length value when the response has one and no Transfer-Encoding, also when the
  // body is kNone (a response to HEAD, a 304); 0 otherwise.
  uint64_t contentLength = 0;
  bool keepAlive = true;  // false too when the framing makes the connection unsafe to reuse
  size_t headLength = 0;

  void clear();
};

// Parses the request head at the start of `input` into `out`. kIncomplete: no complete head yet
// and no limit crossed (a request line longer than maxRequestLine without its end is already an
// error). kComplete: out.headLength bytes are the head; the body (if any) follows. kError: `error`
// says why; answer error.status and close.
//
// Refused (RFC 9112, RFC 9110): a malformed request line (single SPs, a token method, a target of
// VCHARs without '#'); a version other than 1.0/1.1 (505); a target form the method does not take
// (origin-form starts with '/'; "*" only for OPTIONS; authority-form "host:port" only, and always,
// for CONNECT; absolute-form only http:// or https://, with a non-empty host, no userinfo, and a
// path before any query);
// whitespace between a field name and the colon; obs-fold; NUL, bare CR or LF in a value; an
// invalid field name; missing Host in HTTP/1.1, more than one Host, an invalid Host; both
// Content-Length and Transfer-Encoding; Content-Length that is not digits, overflows, or has
// differing values (identical repeats "5, 5" are one value); Transfer-Encoding in HTTP/1.0;
// Transfer-Encoding whose last coding is not chunked, or chunked twice (400), or with a coding
// other than chunked (501); a request line over maxRequestLine (414); a head over maxHeadBytes or
// with more than maxHeaders fields (431); an Expect other than 100-continue (417). Bare LF ends a
// line (RFC 9112 2.2 allows it); a bare CR anywhere is refused; empty lines before the request
// line are skipped (RFC 9112 2.2) and counted in headLength.
ParseStatus parseRequestHead(std::string_view input, const Limits& limits, RequestHead& out,
                             ParseError& error);

// Parses a response head from an upstream. `requestMethod` decides the body of a response to
// HEAD (and of a 2xx to CONNECT: none); a 1xx other than 101 is a complete head with no body, to
// be relayed and followed by the final response. Both Transfer-Encoding and Content-Length:
// chunked wins and keepAlive is false (RFC 9112 6.1). Transfer-Encoding without chunked last:
// kUntilClose. Fields are checked as in a request; every error has status 502. The status line
// is bounded by limits.maxRequestLine.
ParseStatus parseResponseHead(std::string_view input, const Limits& limits, Method requestMethod,
                              ResponseHead& out, ParseError& error);

// Case-insensitive ASCII comparison of header names and tokens.
bool equalsIgnoreCase(std::string_view a, std::string_view b);

// The value of the first header named `name` (case-insensitive), or empty.
std::string_view findHeader(const std::vector<Header>& headers, std::string_view name);

}  // namespace capstan::l7::http1
