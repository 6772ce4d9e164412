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

// Appends to `out` the head to send upstream: "<method> <pathAndQuery> HTTP/1.1", the client's
// fields minus hop-by-hop ones and Expect (the ingress answers 100-continue itself), Host as the
// client sent it, X-Forwarded-For (the client's value + ", " + clientAddress), X-Forwarded-Proto
// and X-Forwarded-Host (replacing the client's), X-Request-Id (the client's, else requestId);
// framing: "Content-Length: N" for kContentLength, "Transfer-Encoding: chunked" for kChunked
// (the body is re-chunked); for an upgrade, "Connection: upgrade" and the Upgrade field.
void appendUpstreamRequestHead(const RequestHead& request, const RequestForwarding& forwarding,
                               std::string& out);

struct ResponseForwarding {
  uint8_t clientMinorVersion = 1;  // a 1.0 client gets no chunked body: close-delimited instead
  bool closeAfter = false;         // the ingress closes the client connection after this response
  Method requestMethod = Method::kGet;
};

// How the body written after appendClientResponseHead is framed towards the client.
enum class ClientBodyFraming : uint8_t { kNone, kContentLength, kChunked, kUntilClose };

// Appends to `out` the head to send to the client: "HTTP/1.1 <status> <reason>", the upstream's
// fields minus hop-by-hop ones, then framing — Content-Length kept, chunked for an upstream body
// of unknown length to a 1.1 client, close-delimited to a 1.0 client — and "Connection: close"
// when the client connection ends after it; a 101 keeps Connection: upgrade and Upgrade. Returns
// the framing the caller must use for the body.
ClientBodyFraming appendClientResponseHead(const ResponseHead& response,
                                           const ResponseForwarding& forwarding, std::string& out);

// Appends a complete short answer of the ingress itself: status line, Content-Type text/plain,
// Content-Length, "Connection: close" when `close`, and a body "<status> <reason>\n" (none for
// HEAD). Example: appendLocalResponse(404, false, Method::kGet, out).
void appendLocalResponse(uint16_t status, bool close, Method requestMethod, std::string& out);

// The reason phrase of a status code the ingress uses ("Not Found"), or "Unknown".
std::string_view reasonPhrase(uint16_t status);

}  // namespace capstan::l7::http1
