#include "l7/http1/forward.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace capstan::l7::http1 {
namespace {

// --- Requests: what the upstream receives ---------------------------------------------------

struct UpstreamRow {
  const char* name;
  std::string client;  // the client's head
  RequestForwarding forwarding;
  std::string upstream;  // exactly what goes upstream
};

constexpr RequestForwarding kHttp = {"10.0.0.1", "http", "req-1"};

const std::vector<UpstreamRow>& upstreamRows() {
  static const std::vector<UpstreamRow> rows = {
      {"plain GET", "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: text/html\r\n\r\n", kHttp,
       "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: text/html\r\n"
       "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: example.com\r\n"
       "X-Request-Id: req-1\r\n\r\n"},
      {"Host goes first, other fields keep their order and spelling",
       "GET / HTTP/1.1\r\nuser-agent: x\r\nHOST: example.com\r\nAccept:  */*  \r\n\r\n", kHttp,
       "GET / HTTP/1.1\r\nHost: example.com\r\nuser-agent: x\r\nAccept: */*\r\n"
       "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: example.com\r\n"
       "X-Request-Id: req-1\r\n\r\n"},
      {"hop-by-hop fields and the fields Connection names are dropped",
       "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret, x-other\r\n"
       "Keep-Alive: timeout=5\r\nX-Secret: 1\r\nX-Other: 2\r\nTE: trailers\r\nTrailer: X-T\r\n"
       "Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Kept: 3\r\n\r\n",
       kHttp,
       "GET / HTTP/1.1\r\nHost: h\r\nX-Kept: 3\r\nX-Forwarded-For: 10.0.0.1\r\n"
       "X-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\nX-Request-Id: req-1\r\n\r\n"},
      {"X-Forwarded-For appends; Proto and Host replace; the client's X-Request-Id kept",
       "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\nX-Request-Id: client-id\r\n"
       "X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nx-forwarded-for: 2.2.2.2, "
       "3.3.3.3\r\n\r\n",
       {"2001:db8::1", "https", "req-2"},
       "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 2001:db8::1\r\n"
       "X-Forwarded-Proto: https\r\nX-Forwarded-Host: h\r\nX-Request-Id: client-id\r\n\r\n"},
      {"empty client X-Forwarded-For is skipped",
       "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For:\r\n\r\n", kHttp,
       "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
       "X-Forwarded-Host: h\r\nX-Request-Id: req-1\r\n\r\n"},
      {"POST: Content-Length rewritten, Expect dropped",
       "POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 005\r\nExpect: 100-continue\r\n\r\n", kHttp,
       "POST /f HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
       "X-Forwarded-Host: h\r\nX-Request-Id: req-1\r\nContent-Length: 5\r\n\r\n"},
      {"chunked: one Transfer-Encoding of the ingress's own",
       "POST /f HTTP/1.1\r\nTransfer-Encoding: Chunked\r\nHost: h\r\n\r\n", kHttp,
       "POST /f HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
       "X-Forwarded-Host: h\r\nX-Request-Id: req-1\r\nTransfer-Encoding: chunked\r\n\r\n"},
      {"absolute-form: origin-form upstream, authority as Host",
       "GET http://target.example:8080/p?q HTTP/1.1\r\nHost: ignored.example\r\n\r\n", kHttp,
       "GET /p?q HTTP/1.1\r\nHost: target.example:8080\r\nX-Forwarded-For: 10.0.0.1\r\n"
       "X-Forwarded-Proto: http\r\nX-Forwarded-Host: target.example:8080\r\n"
       "X-Request-Id: req-1\r\n\r\n"},
      {"HTTP/1.0 goes upstream as HTTP/1.1",
       "GET /old HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", kHttp,
       "GET /old HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
       "X-Forwarded-Host: h\r\nX-Request-Id: req-1\r\n\r\n"},
      {"websocket upgrade",
       "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
       "Sec-WebSocket-Key: k\r\n\r\n",
       kHttp,
       "GET /ws HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Key: k\r\nX-Forwarded-For: 10.0.0.1\r\n"
       "X-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\nX-Request-Id: req-1\r\n"
       "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n"},
      {"OPTIONS *",
       "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
       {"10.0.0.1", "", ""},
       "OPTIONS * HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Host: h\r\n\r\n"},
  };
  return rows;
}

TEST(AppendUpstreamRequestHeadTest, WritesTheCanonicalHead) {
  for (const UpstreamRow& row : upstreamRows()) {
    SCOPED_TRACE(row.name);
    RequestHead head;
    ParseError error;
    ASSERT_EQ(parseRequestHead(row.client, Limits{}, head, error), ParseStatus::kComplete)
        << error.reason;
    std::string out = "kept:";
    appendUpstreamRequestHead(head, row.forwarding, out);
    EXPECT_EQ(out, "kept:" + row.upstream);
  }
}

// The canonical head parses back to the same request, and is a fixed point: parsed and
// forwarded again (with no further X-Forwarded-For hop), it comes out byte for byte the same.
TEST(AppendUpstreamRequestHeadTest, CanonicalHeadParsesBackToTheSameRequest) {
  for (const UpstreamRow& row : upstreamRows()) {
    SCOPED_TRACE(row.name);
    RequestHead head;
    ParseError error;
    ASSERT_EQ(parseRequestHead(row.client, Limits{}, head, error), ParseStatus::kComplete);
    std::string upstream;
    appendUpstreamRequestHead(head, row.forwarding, upstream);
    RequestHead again;
    ASSERT_EQ(parseRequestHead(upstream, Limits{}, again, error), ParseStatus::kComplete)
        << error.reason;
    EXPECT_EQ(again.methodText, head.methodText);
    EXPECT_EQ(again.path, head.path);
    EXPECT_EQ(again.host, head.host);
    EXPECT_EQ(again.body, head.body);
    EXPECT_EQ(again.contentLength, head.contentLength);
    EXPECT_EQ(again.upgrade, head.upgrade);
    EXPECT_EQ(again.headLength, upstream.size());
    std::string twice;
    appendUpstreamRequestHead(again, {"", row.forwarding.proto, ""}, twice);
    EXPECT_EQ(twice, upstream);
  }
}

// --- Responses: what the client receives ----------------------------------------------------

struct ClientRow {
  const char* name;
  std::string upstream;  // the upstream's head
  ResponseForwarding forwarding;
  std::string client;  // exactly what goes to the client
  ClientBodyFraming framing;
};

const std::vector<ClientRow>& clientRows() {
  static const std::vector<ClientRow> rows = {
      {"Content-Length kept",
       "HTTP/1.1 200 OK\r\nServer: up\r\nContent-Length: 5\r\n\r\n",
       {},
       "HTTP/1.1 200 OK\r\nServer: up\r\nContent-Length: 5\r\n\r\n",
       ClientBodyFraming::kContentLength},
      {"HTTP/1.0 upstream, reason kept",
       "HTTP/1.0 404 Nope\r\nContent-Length: 0\r\n\r\n",
       {},
       "HTTP/1.1 404 Nope\r\nContent-Length: 0\r\n\r\n",
       ClientBodyFraming::kContentLength},
      {"no reason: the ingress's",
       "HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n",
       {},
       "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
       ClientBodyFraming::kContentLength},
      {"chunked to a 1.1 client",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\nVary: a\r\n\r\n",
       {},
       "HTTP/1.1 200 OK\r\nVary: a\r\nTransfer-Encoding: chunked\r\n\r\n",
       ClientBodyFraming::kChunked},
      {"until close to a 1.1 client: chunked",
       "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
       {},
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
       ClientBodyFraming::kChunked},
      {"chunked to a 1.0 client: until close",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
       {.clientMinorVersion = 0},
       "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
       ClientBodyFraming::kUntilClose},
      {"a 1.0 client kept open is told so",
       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
       {.clientMinorVersion = 0},
       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\n",
       ClientBodyFraming::kContentLength},
      {"closeAfter",
       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: t=5\r\n\r\n",
       {.closeAfter = true},
       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n",
       ClientBodyFraming::kContentLength},
      {"fields named by Connection dropped",
       "HTTP/1.1 200 OK\r\nConnection: X-Internal\r\nX-Internal: secret\r\nContent-Length: 0\r\n"
       "\r\n",
       {},
       "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
       ClientBodyFraming::kContentLength},
      {"101 keeps Connection: upgrade and Upgrade",
       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Accept: a\r\n\r\n",
       {},
       "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: a\r\nConnection: upgrade\r\n"
       "Upgrade: websocket\r\n\r\n",
       ClientBodyFraming::kNone},
      {"100 Continue: no Connection, even when closing after",
       "HTTP/1.1 100 Continue\r\n\r\n",
       {.closeAfter = true},
       "HTTP/1.1 100 Continue\r\n\r\n",
       ClientBodyFraming::kNone},
      {"204 loses a Content-Length",
       "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
       {},
       "HTTP/1.1 204 No Content\r\n\r\n",
       ClientBodyFraming::kNone},
      {"304 keeps its Content-Length",
       "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 10\r\n\r\n",
       {},
       "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 10\r\n\r\n",
       ClientBodyFraming::kNone},
      {"HEAD keeps Content-Length",
       "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
       {.requestMethod = Method::kHead},
       "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
       ClientBodyFraming::kNone},
      {"CL and TE from upstream: chunked only",
       "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n",
       {},
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
       ClientBodyFraming::kChunked},
  };
  return rows;
}

TEST(AppendClientResponseHeadTest, WritesTheClientHeadAndSaysTheFraming) {
  for (const ClientRow& row : clientRows()) {
    SCOPED_TRACE(row.name);
    ResponseHead head;
    ParseError error;
    ASSERT_EQ(parseResponseHead(row.upstream, Limits{}, row.forwarding.requestMethod, head, error),
              ParseStatus::kComplete)
        << error.reason;
    std::string out;
    EXPECT_EQ(appendClientResponseHead(head, row.forwarding, out), row.framing);
    EXPECT_EQ(out, row.client);
  }
}

// --- The ingress's own answers --------------------------------------------------------------

TEST(AppendLocalResponseTest, WritesCompleteShortResponses) {
  struct Row {
    uint16_t status;
    bool close;
    Method method;
    std::string expected;
  };
  const std::vector<Row> rows = {
      {404, false, Method::kGet,
       "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\n"
       "404 Not Found\n"},
      {404, false, Method::kHead,
       "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\n"},
      {502, true, Method::kPost,
       "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n"
       "Connection: close\r\n\r\n502 Bad Gateway\n"},
      {431, true, Method::kGet,
       "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\n"
       "Content-Length: 36\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large\n"},
      {100, false, Method::kPost, "HTTP/1.1 100 Continue\r\n\r\n"},
      {204, true, Method::kGet, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"},
      {299, false, Method::kGet,
       "HTTP/1.1 299 Unknown\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n"
       "299 Unknown\n"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.status);
    std::string out;
    appendLocalResponse(row.status, row.close, row.method, out);
    EXPECT_EQ(out, row.expected);
  }
}

TEST(ReasonPhraseTest, CoversEveryCodeTheIngressUses) {
  const std::vector<std::pair<uint16_t, std::string_view>> rows = {
      {100, "Continue"},
      {101, "Switching Protocols"},
      {200, "OK"},
      {204, "No Content"},
      {301, "Moved Permanently"},
      {302, "Found"},
      {304, "Not Modified"},
      {400, "Bad Request"},
      {403, "Forbidden"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {408, "Request Timeout"},
      {411, "Length Required"},
      {413, "Content Too Large"},
      {414, "URI Too Long"},
      {417, "Expectation Failed"},
      {421, "Misdirected Request"},
      {429, "Too Many Requests"},
      {431, "Request Header Fields Too Large"},
      {500, "Internal Server Error"},
      {501, "Not Implemented"},
      {502, "Bad Gateway"},
      {503, "Service Unavailable"},
      {504, "Gateway Timeout"},
      {505, "HTTP Version Not Supported"},
      {0, "Unknown"},
      {418, "Unknown"},
  };
  for (const auto& [status, reason] : rows) EXPECT_EQ(reasonPhrase(status), reason) << status;
}

}  // namespace
}  // namespace capstan::l7::http1
