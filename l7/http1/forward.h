// The heads the ingress writes: a client's request re-serialized for the upstream, an upstream's
// response re-serialized for the client, and the ingress's own short answers (404, 502, ...).
//
// Forwarding rewrites framing and hop-by-hop fields instead of copying the peer's bytes, so that
// the two sides of the proxy can never disagree about where a message ends (RFC 9110 7.6.1:
// Connection, the fields it names, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding
// and Upgrade are hop-by-hop).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "l7/http1/message.h"

namespace capstan::l7::http1 {

struct RequestForwarding {
  std::string_view clientAddress;  // appended to X-Forwarded-For ("1.2.3.4", "2001:db8::1")
  std::string_view proto;          // X-Forwarded-Proto: "http" or "https"
  std::string_view requestId;      // X-Request-Id when the client sent none
};

// Appends to `out` the head to send upstream: "<method> <pathAndQuery> HTTP/1.1", then
// "Host: <request.host>" first (the client's Host, or the authority of an absolute-form target,
// RFC 9112 3.2.2), the client's fields in order minus hop-by-hop ones (including every field a
// Connection option names) and Expect (the ingress answers 100-continue itself), then
// X-Forwarded-For (the client's values joined by ", ", then clientAddress), X-Forwarded-Proto
// and X-Forwarded-Host (replacing the client's; each left out when empty), X-Request-Id (the
// client's first, else requestId when not empty); framing: "Content-Length: N" for
// kContentLength, "Transfer-Encoding: chunked" for kChunked (the body is re-chunked), nothing
// for kNone; for an upgrade, "Connection: upgrade" and the Upgrade field. Example, for
// "GET /a HTTP/1.1\r\nHost: h\r\nAccept: text/html\r\n\r\n" from 10.0.0.1 over http:
//   GET /a HTTP/1.1\r\nHost: h\r\nAccept: text/html\r\nX-Forwarded-For: 10.0.0.1\r\n
//   X-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\nX-Request-Id: <requestId>\r\n\r\n
void appendUpstreamRequestHead(const RequestHead& request, const RequestForwarding& forwarding,
                               std::string& out);

struct ResponseForwarding {
  uint8_t clientMinorVersion = 1;  // a 1.0 client gets no chunked body: close-delimited instead
  bool closeAfter = false;         // the ingress closes the client connection after this response
  Method requestMethod = Method::kGet;
};

// How the body written after appendClientResponseHead is framed towards the client.
enum class ClientBodyFraming : uint8_t { kNone, kContentLength, kChunked, kUntilClose };

// Appends to `out` the head to send to the client: "HTTP/1.1 <status> <reason>" (the upstream's
// reason, or reasonPhrase when it sent none), the upstream's fields minus hop-by-hop ones, then
// framing — Content-Length kept, chunked for an upstream body of unknown length to a 1.1 client,
// close-delimited to a 1.0 client; for a body of kNone the upstream's Content-Length is passed on
// for HEAD and 304 and dropped for 1xx and 204 (RFC 9110 8.6) — and "Connection: close" when the
// client connection ends after it (closeAfter, or a close-delimited body), "Connection:
// keep-alive" to a 1.0 client whose connection stays open (RFC 9112 9.3); a 101 keeps
// Connection: upgrade and Upgrade; other 1xx get no Connection field. Returns the framing the
// caller must use for the body.
ClientBodyFraming appendClientResponseHead(const ResponseHead& response,
                                           const ResponseForwarding& forwarding, std::string& out);

// Appends a complete short answer of the ingress itself: status line, Content-Type text/plain,
// Content-Length, "Connection: close" when `close`, and a body "<status> <reason>\n" (none for
// HEAD). 1xx, 204 and 304 are the status line alone (plus "Connection: close" for 204/304 when
// `close`): appendLocalResponse(100, ...) is the "HTTP/1.1 100 Continue\r\n\r\n" that answers
// Expect: 100-continue. Example: appendLocalResponse(404, false, Method::kGet, out).
void appendLocalResponse(uint16_t status, bool close, Method requestMethod, std::string& out);

// The reason phrase of a status code the ingress uses ("Not Found"), or "Unknown".
std::string_view reasonPhrase(uint16_t status);

}  // namespace capstan::l7::http1
