#include "l7/http1/forward.h"

#include <charconv>

#include "l7/http1/grammar.h"

namespace capstan::l7::http1 {
namespace {

// What forwarding does with a field of the peer's head.
enum class FieldRole : uint8_t {
  kCopy,
  kHopByHop,  // RFC 9110 7.6.1 (and Proxy-Connection, its non-standard ancestor): dropped
  kContentLength,
  kExpect,
  kHost,
  kForwardedFor,
  kForwardedProto,
  kForwardedHost,
  kRequestId,
};

FieldRole roleOf(std::string_view name) {
  switch (name.size()) {
    case 2:
      if (lowerTokenEquals(name, "te")) return FieldRole::kHopByHop;
      break;
    case 4:
      if (lowerTokenEquals(name, "host")) return FieldRole::kHost;
      break;
    case 6:
      if (lowerTokenEquals(name, "expect")) return FieldRole::kExpect;
      break;
    case 7:
      if (lowerTokenEquals(name, "upgrade") || lowerTokenEquals(name, "trailer")) {
        return FieldRole::kHopByHop;
      }
      break;
    case 10:
      if (lowerTokenEquals(name, "connection") || lowerTokenEquals(name, "keep-alive")) {
        return FieldRole::kHopByHop;
      }
      break;
    case 12:
      if (lowerTokenEquals(name, "x-request-id")) return FieldRole::kRequestId;
      break;
    case 14:
      if (lowerTokenEquals(name, "content-length")) return FieldRole::kContentLength;
      break;
    case 15:
      if (lowerTokenEquals(name, "x-forwarded-for")) return FieldRole::kForwardedFor;
      break;
    case 16:
      if (lowerTokenEquals(name, "proxy-connection")) return FieldRole::kHopByHop;
      if (lowerTokenEquals(name, "x-forwarded-host")) return FieldRole::kForwardedHost;
      break;
    case 17:
      if (lowerTokenEquals(name, "transfer-encoding")) return FieldRole::kHopByHop;
      if (lowerTokenEquals(name, "x-forwarded-proto")) return FieldRole::kForwardedProto;
      break;
    default:
      break;
  }
  return FieldRole::kCopy;
}

bool isConnectionField(const Header& h) { return lowerTokenEquals(h.name, "connection"); }

// Whether a Connection field names anything beyond close, keep-alive and upgrade (whose fields,
// if any, are hop-by-hop anyway). Usually not, and then no field needs the per-name check.
bool connectionNamesOtherFields(const std::vector<Header>& headers) {
  for (const Header& h : headers) {
    if (!isConnectionField(h)) continue;
    bool other = false;
    forEachListElement(h.value, /*allowEmpty=*/true, [&](std::string_view token) {
      other = !equalsIgnoreCase(token, "close") && !equalsIgnoreCase(token, "keep-alive") &&
              !equalsIgnoreCase(token, "upgrade");
      return !other;
    });
    if (other) return true;
  }
  return false;
}

// RFC 9110 7.6.1: a field named by a Connection option is hop-by-hop.
bool namedByConnection(std::string_view name, const std::vector<Header>& headers) {
  for (const Header& h : headers) {
    if (!isConnectionField(h)) continue;
    bool named = false;
    forEachListElement(h.value, /*allowEmpty=*/true, [&](std::string_view token) {
      named = equalsIgnoreCase(token, name);
      return !named;
    });
    if (named) return true;
  }
  return false;
}

void appendField(std::string_view name, std::string_view value, std::string& out) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

void appendNumber(uint64_t n, std::string& out) {
  char digits[20];
  const auto result = std::to_chars(digits, digits + sizeof digits, n);
  out.append(digits, result.ptr);
}

void appendContentLength(uint64_t n, std::string& out) {
  out.append("Content-Length: ");
  appendNumber(n, out);
  out.append("\r\n");
}

void appendStatusLine(uint16_t status, std::string_view reason, std::string& out) {
  out.append("HTTP/1.1 ");
  appendNumber(status, out);
  out.push_back(' ');
  out.append(reason);
  out.append("\r\n");
}

}  // namespace

void appendUpstreamRequestHead(const RequestHead& request, const RequestForwarding& forwarding,
                               std::string& out) {
  // RFC 9110 6.2 / 7.6.3: the ingress speaks its own version upstream, whatever the client's.
  out.append(request.methodText);
  out.push_back(' ');
  out.append(request.pathAndQuery);
  out.append(" HTTP/1.1\r\n");
  // RFC 9110 7.2: Host first. For an absolute-form target, request.host is its authority, which
  // replaces the client's Host (RFC 9112 3.2.2).
  appendField("Host", request.host, out);

  const bool checkConnection = connectionNamesOtherFields(request.headers);
  std::string_view requestId = forwarding.requestId;
  bool clientRequestId = false;
  bool hasForwardedFor = false;
  for (const Header& h : request.headers) {
    const FieldRole role = roleOf(h.name);
    if (role != FieldRole::kCopy && role != FieldRole::kRequestId) continue;
    if (checkConnection && namedByConnection(h.name, request.headers)) continue;
    if (role == FieldRole::kRequestId) {
      // The client's first X-Request-Id, written with the ingress's own fields below, so that
      // the head is the same whichever of the two supplied it.
      if (!clientRequestId) requestId = h.value;
      clientRequestId = true;
      continue;
    }
    appendField(h.name, h.value, out);
  }
  // X-Forwarded-For: every value the client sent, in order, then the client's own address.
  for (const Header& h : request.headers) {
    if (roleOf(h.name) != FieldRole::kForwardedFor || h.value.empty()) continue;
    if (checkConnection && namedByConnection(h.name, request.headers)) continue;
    out.append(hasForwardedFor ? ", " : "X-Forwarded-For: ");
    out.append(h.value);
    hasForwardedFor = true;
  }
  if (!forwarding.clientAddress.empty()) {
    out.append(hasForwardedFor ? ", " : "X-Forwarded-For: ");
    out.append(forwarding.clientAddress);
    hasForwardedFor = true;
  }
  if (hasForwardedFor) out.append("\r\n");
  if (!forwarding.proto.empty()) appendField("X-Forwarded-Proto", forwarding.proto, out);
  if (!request.host.empty()) appendField("X-Forwarded-Host", request.host, out);
  if (clientRequestId || !requestId.empty()) appendField("X-Request-Id", requestId, out);
  // The framing is the ingress's own (RFC 9112 6.1: Transfer-Encoding is hop-by-hop): the
  // upstream sees exactly one of Content-Length or chunked, never both.
  if (request.body == BodyKind::kContentLength) {
    appendContentLength(request.contentLength, out);
  } else if (request.body == BodyKind::kChunked) {
    out.append("Transfer-Encoding: chunked\r\n");
  }
  if (request.upgrade) {
    out.append("Connection: upgrade\r\n");
    appendField("Upgrade", request.upgradeProtocol, out);
  }
  out.append("\r\n");
}

ClientBodyFraming appendClientResponseHead(const ResponseHead& response,
                                           const ResponseForwarding& forwarding, std::string& out) {
  const uint16_t status = response.status;
  appendStatusLine(status, response.reason.empty() ? reasonPhrase(status) : response.reason, out);

  // RFC 9110 8.6: no Content-Length in a 1xx or 204; a HEAD or 304 response may carry the
  // upstream's, which describes the representation, not this message's (empty) body.
  const bool keepContentLength = response.body == BodyKind::kNone && status >= 200 && status != 204;
  const bool checkConnection = connectionNamesOtherFields(response.headers);
  for (const Header& h : response.headers) {
    const FieldRole role = roleOf(h.name);
    if (role == FieldRole::kHopByHop) continue;
    if (role == FieldRole::kContentLength && !keepContentLength) continue;
    if (checkConnection && namedByConnection(h.name, response.headers)) continue;
    appendField(h.name, h.value, out);
  }

  ClientBodyFraming framing = ClientBodyFraming::kNone;
  switch (response.body) {
    case BodyKind::kNone:
      break;
    case BodyKind::kContentLength:
      appendContentLength(response.contentLength, out);
      framing = ClientBodyFraming::kContentLength;
      break;
    case BodyKind::kChunked:
    case BodyKind::kUntilClose:
      // A body of unknown length: chunked to a 1.1 client; a 1.0 client knows no chunked coding
      // (RFC 9112 7), so its body ends with the connection.
      if (forwarding.clientMinorVersion >= 1) {
        out.append("Transfer-Encoding: chunked\r\n");
        framing = ClientBodyFraming::kChunked;
      } else {
        framing = ClientBodyFraming::kUntilClose;
      }
      break;
  }

  if (status == 101) {
    // RFC 9110 7.8: the switch names the protocol in Upgrade, with Connection: upgrade.
    out.append("Connection: upgrade\r\n");
    appendField("Upgrade", findHeader(response.headers, "upgrade"), out);
  } else if (status >= 200) {
    if (forwarding.closeAfter || framing == ClientBodyFraming::kUntilClose) {
      out.append("Connection: close\r\n");
    } else if (forwarding.clientMinorVersion == 0) {
      // RFC 9112 9.3: a 1.0 connection persists only when each response says so.
      out.append("Connection: keep-alive\r\n");
    }
  }
  out.append("\r\n");
  return framing;
}

void appendLocalResponse(uint16_t status, bool close, Method requestMethod, std::string& out) {
  const std::string_view reason = reasonPhrase(status);
  appendStatusLine(status, reason, out);
  // RFC 9110 15.2, 15.3.5, 15.4.5: 1xx, 204 and 304 have no content (a local 100 Continue is
  // just its status line).
  if (status < 200 || status == 204 || status == 304) {
    if (close && status >= 200) out.append("Connection: close\r\n");
    out.append("\r\n");
    return;
  }
  // The body: "<status> <reason>\n".
  char digits[8];
  const std::string_view code(
      digits, static_cast<size_t>(std::to_chars(digits, digits + 8, status).ptr - digits));
  out.append("Content-Type: text/plain\r\n");
  appendContentLength(code.size() + 1 + reason.size() + 1, out);
  if (close) out.append("Connection: close\r\n");
  out.append("\r\n");
  // RFC 9110 9.3.2: a response to HEAD has the same fields as for GET but no content.
  if (requestMethod == Method::kHead) return;
  out.append(code);
  out.push_back(' ');
  out.append(reason);
  out.push_back('\n');
}

std::string_view reasonPhrase(uint16_t status) {
  // RFC 9110 15.
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 417:
      return "Expectation Failed";
    case 421:
      return "Misdirected Request";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

}  // namespace capstan::l7::http1
