#include "l7/http1/message.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <new>
#include <optional>
#include <string>
#include <vector>

// Counts allocations so that a test can prove parsing allocates nothing once the header list has
// grown (replaces the global operator new of this test binary; counting only). GCC, seeing the
// replacement inlined, takes the malloc/free pairs for a mismatch with new/delete.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
namespace {
size_t gAllocations = 0;
}  // namespace

void* operator new(size_t size) {
  ++gAllocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace capstan::l7::http1 {
namespace {

using std::string_literals::operator""s;

// Every view the parser hands back must point into the input.
bool inside(std::string_view input, std::string_view view) {
  if (view.empty()) return true;
  return view.data() >= input.data() && view.data() + view.size() <= input.data() + input.size();
}

void expectViewsInside(std::string_view input, const RequestHead& head) {
  for (std::string_view v : {head.methodText, head.target, head.host, head.upgradeProtocol}) {
    EXPECT_TRUE(inside(input, v)) << v;
  }
  // path and pathAndQuery are inside the input, or the static "/" and "*" for the target forms
  // that have no path of their own.
  for (std::string_view v : {head.path, head.pathAndQuery}) {
    EXPECT_TRUE(inside(input, v) || v == "/" || v == "*") << v;
  }
  for (const Header& h : head.headers) {
    EXPECT_TRUE(inside(input, h.name)) << h.name;
    EXPECT_TRUE(inside(input, h.value)) << h.value;
  }
}

// --- Hostile requests: each is refused with its status -------------------------------------

struct HostileRow {
  const char* name;
  std::string input;
  uint16_t status;
  std::string_view reason;  // a part of ParseError::reason
};

std::string post(std::string fields) {
  return "POST /upload HTTP/1.1\r\nHost: example.com\r\n" + fields + "\r\n";
}
std::string get(std::string fields) {
  return "GET / HTTP/1.1\r\nHost: example.com\r\n" + fields + "\r\n";
}

const std::vector<HostileRow>& hostileRows() {
  static const std::vector<HostileRow> rows = {
      // Framing (RFC 9112 6.1, 6.3; RFC 9110 8.6).
      {"CL then TE", post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), 400,
       "both Content-Length and Transfer-Encoding"},
      {"TE then CL", post("Transfer-Encoding: chunked\r\nContent-Length: 0\r\n"), 400,
       "both Content-Length and Transfer-Encoding"},
      {"CL list differing", post("Content-Length: 1, 2\r\n"), 400, "invalid Content-Length"},
      {"CL lines differing", post("Content-Length: 1\r\nContent-Length: 2\r\n"), 400,
       "invalid Content-Length"},
      {"CL plus sign", post("Content-Length: +5\r\n"), 400, "invalid Content-Length"},
      {"CL hex", post("Content-Length: 0x5\r\n"), 400, "invalid Content-Length"},
      {"CL negative", post("Content-Length: -1\r\n"), 400, "invalid Content-Length"},
      {"CL overflow by one", post("Content-Length: 18446744073709551616\r\n"), 400,
       "invalid Content-Length"},
      {"CL huge", post("Content-Length: 99999999999999999999999999999\r\n"), 400,
       "invalid Content-Length"},
      {"CL empty", post("Content-Length: \r\n"), 400, "invalid Content-Length"},
      {"CL empty list element", post("Content-Length: 5,\r\n"), 400, "invalid Content-Length"},
      {"CL two numbers", post("Content-Length: 5 5\r\n"), 400, "invalid Content-Length"},
      {"CL decimal point", post("Content-Length: 5.0\r\n"), 400, "invalid Content-Length"},
      {"TE chunked then gzip", post("Transfer-Encoding: chunked, gzip\r\n"), 400,
       "not the last transfer coding"},
      {"TE gzip only", post("Transfer-Encoding: gzip\r\n"), 400, "not the last transfer coding"},
      {"TE empty", post("Transfer-Encoding: \r\n"), 400, "not the last transfer coding"},
      {"TE lookalike", post("Transfer-Encoding: xchunked\r\n"), 400,
       "not the last transfer coding"},
      {"TE gzip then chunked", post("Transfer-Encoding: gzip, chunked\r\n"), 501,
       "unsupported transfer coding"},
      {"TE lines gzip then chunked",
       post("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"), 501,
       "unsupported transfer coding"},
      {"TE chunked twice", post("Transfer-Encoding: chunked, chunked\r\n"), 400, "twice"},
      {"TE chunked twice in lines",
       post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), 400, "twice"},
      {"TE chunked with parameter", post("Transfer-Encoding: chunked;q=1\r\n"), 400,
       "invalid Transfer-Encoding"},
      {"TE quoted", post("Transfer-Encoding: \"chunked\"\r\n"), 400, "invalid Transfer-Encoding"},
      {"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
       "Transfer-Encoding in HTTP/1.0"},
      {"TE and CL in HTTP/1.0",
       "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400,
       "HTTP/1.0"},
      // Field lines (RFC 9112 5, RFC 9110 5.5).
      {"obs-fold", get("X-A: b\r\n c\r\n"), 400, "obs-fold"},
      {"obs-fold with tab", get("X-A: b\r\n\tc\r\n"), 400, "obs-fold"},
      {"space before first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, "obs-fold"},
      {"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400,
       "whitespace between field name and colon"},
      {"tab before colon", "GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", 400,
       "whitespace between field name and colon"},
      {"space before colon of CL", post("Content-Length : 5\r\n"), 400,
       "whitespace between field name and colon"},
      {"bare CR in value", get("X-A: b\rc\r\n"), 400, "bare CR"},
      {"bare CR ending a value", get("X-A: b\rX-B: c\r\n"), 400, "bare CR"},
      {"bare CR ending the head", "GET / HTTP/1.1\r\nHost: a\r\n\rX", 400, "bare CR"},
      {"NUL in value", get("X-A: b\0c\r\n"s), 400, "invalid character in field value"},
      {"control in value", get("X-A: b\x01\r\n"), 400, "invalid character in field value"},
      {"DEL in value", get("X-A: b\x7f\r\n"), 400, "invalid character in field value"},
      {"invalid field name", get("X(A): b\r\n"), 400, "invalid field name"},
      {"non-ASCII field name", get("X-\xc3\xa9: b\r\n"), 400, "invalid field name"},
      {"empty field name", get(": b\r\n"), 400, "empty field name"},
      {"line without colon", get("Foo\r\n"), 400, "invalid field name"},
      // Host (RFC 9112 3.2, RFC 9110 7.2).
      {"missing Host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, "missing Host"},
      {"missing Host absolute-form", "GET http://a/ HTTP/1.1\r\n\r\n", 400, "missing Host"},
      {"two Host", get("Host: other.com\r\n"), 400, "more than one Host"},
      {"Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid Host"},
      {"Host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "invalid Host"},
      {"Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, "invalid Host"},
      {"Host unclosed IP literal", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, "invalid Host"},
      {"Host port not digits", "GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", 400, "invalid Host"},
      {"Host bad percent", "GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", 400, "invalid Host"},
      {"Host obs-text", "GET / HTTP/1.1\r\nHost: \xff\r\n\r\n", 400, "invalid Host"},
      // Request line (RFC 9112 3).
      {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "unsupported HTTP version"},
      {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "unsupported HTTP version"},
      {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, "unsupported HTTP version"},
      {"HTTP/0.9 version", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505, "unsupported HTTP version"},
      {"HTTP/0.9 no version", "GET /\r\n\r\n", 400, "invalid character in request target"},
      {"lower-case http", "GET / http/1.1\r\nHost: a\r\n\r\n", 400, "malformed HTTP version"},
      {"version two digits", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400, "malformed start line"},
      {"trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "malformed start line"},
      {"double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "empty request target"},
      {"tab separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed method"},
      {"empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed method"},
      {"method not a token", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed method"},
      {"bare CR in request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400,
       "invalid character in request target"},
      {"bare CR ending request line", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400, "bare CR"},
      {"bare CR before request line", "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bare CR"},
      {"space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed HTTP version"},
      {"control in target", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400,
       "invalid character in request target"},
      {"NUL in target", "GET /a\0 HTTP/1.1\r\nHost: a\r\n\r\n"s, 400,
       "invalid character in request target"},
      {"fragment in target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400,
       "invalid character in request target"},
      {"obs-text in target", "GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n", 400,
       "invalid character in request target"},
      // Target forms (RFC 9112 3.2).
      {"relative target", "GET a HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid request target"},
      {"asterisk without OPTIONS", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400,
       "asterisk-form without OPTIONS"},
      {"CONNECT origin-form", "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 400,
       "CONNECT without authority-form"},
      {"CONNECT without port", "CONNECT a.com HTTP/1.1\r\nHost: a.com\r\n\r\n", 400,
       "invalid authority-form target"},
      {"authority-form without CONNECT", "GET a.com:443 HTTP/1.1\r\nHost: a.com\r\n\r\n", 400,
       "invalid request target"},
      {"ftp scheme", "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid request target"},
      {"userinfo", "GET http://u:p@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "userinfo"},
      {"empty authority", "GET http:///a HTTP/1.1\r\nHost: a\r\n\r\n", 400,
       "invalid authority in request target"},
      {"port-only authority", "GET http://:80/a HTTP/1.1\r\nHost: a\r\n\r\n", 400,
       "invalid authority in request target"},
      {"query without path", "GET http://a?q HTTP/1.1\r\nHost: a\r\n\r\n", 400,
       "query but no path"},
      // Expect and Connection (RFC 9110 10.1.1, 7.6.1).
      {"unknown expectation", get("Expect: 200-ok\r\n"), 417, "unsupported expectation"},
      {"Connection not tokens", get("Connection: a b\r\n"), 400, "invalid Connection"},
  };
  return rows;
}

TEST(ParseRequestHeadTest, RefusesHostileRequestsWithTheirStatus) {
  for (const HostileRow& row : hostileRows()) {
    SCOPED_TRACE(row.name);
    RequestHead head;
    ParseError error;
    const ParseStatus s = parseRequestHead(row.input, Limits{}, head, error);
    EXPECT_EQ(s, ParseStatus::kError);
    if (s != ParseStatus::kError) continue;
    EXPECT_EQ(error.status, row.status);
    EXPECT_NE(error.reason.find(row.reason), std::string_view::npos) << error.reason;
  }
}

// A prefix of a hostile request is never accepted: it is incomplete, or already refused with
// the same status (the parser never waits for bytes that cannot make the head acceptable).
TEST(ParseRequestHeadTest, PrefixesOfHostileRequestsAreIncompleteOrRefusedAlike) {
  for (const HostileRow& row : hostileRows()) {
    SCOPED_TRACE(row.name);
    for (size_t i = 0; i < row.input.size(); ++i) {
      RequestHead head;
      ParseError error;
      const ParseStatus s =
          parseRequestHead(std::string_view(row.input).substr(0, i), Limits{}, head, error);
      ASSERT_NE(s, ParseStatus::kComplete) << "prefix " << i;
      if (s == ParseStatus::kError) {
        ASSERT_EQ(error.status, row.status) << "prefix " << i;
      }
    }
  }
}

// --- Limits -------------------------------------------------------------------------------------

TEST(ParseRequestHeadTest, RequestLineOverTheLimitIs414) {
  Limits limits;
  limits.maxRequestLine = 64;
  const std::string exact = "GET /" + std::string(64 - 14, 'a') + " HTTP/1.1";
  ASSERT_EQ(exact.size(), 64u);
  RequestHead head;
  ParseError error;
  EXPECT_EQ(parseRequestHead(exact + "\r\nHost: a\r\n\r\n", limits, head, error),
            ParseStatus::kComplete);
  const std::string over = "GET /" + std::string(64 - 13, 'a') + " HTTP/1.1";
  EXPECT_EQ(parseRequestHead(over + "\r\nHost: a\r\n\r\n", limits, head, error),
            ParseStatus::kError);
  EXPECT_EQ(error.status, 414);
  // Without its end: refused as soon as the line is past the limit.
  const std::string longTarget = "GET /" + std::string(200, 'a');
  EXPECT_EQ(parseRequestHead(longTarget, limits, head, error), ParseStatus::kError);
  EXPECT_EQ(error.status, 414);
  EXPECT_EQ(parseRequestHead(longTarget.substr(0, 60), limits, head, error),
            ParseStatus::kIncomplete);
  // The default limit: 8 KiB.
  const std::string huge = "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_EQ(parseRequestHead(huge, Limits{}, head, error), ParseStatus::kError);
  EXPECT_EQ(error.status, 414);
}

TEST(ParseRequestHeadTest, HeadOverTheLimitIs431) {
  RequestHead head;
  ParseError error;
  // One big field: complete, and without its end.
  const std::string big = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(40000, 'x');
  EXPECT_EQ(parseRequestHead(big + "\r\n\r\n", Limits{}, head, error), ParseStatus::kError);
  EXPECT_EQ(error.status, 431);
  EXPECT_EQ(parseRequestHead(big, Limits{}, head, error), ParseStatus::kError);
  EXPECT_EQ(error.status, 431);
  // Exactly at the limit is accepted; one byte more is not.
  Limits limits;
  const std::string base = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
  const std::string atLimit = base + std::string(100 - base.size() - 4, 'v') + "\r\n\r\n";
  ASSERT_EQ(atLimit.size(), 100u);
  limits.maxHeadBytes = 100;
  EXPECT_EQ(parseRequestHead(atLimit, limits, head, error), ParseStatus::kComplete);
  limits.maxHeadBytes = 99;
  EXPECT_EQ(parseRequestHead(atLimit, limits, head, error), ParseStatus::kError);
  EXPECT_EQ(error.status, 431);
  // Empty lines before the request line count too.
  EXPECT_EQ(parseRequestHead(std::string(40000, '\n'), Limits{}, head, error), ParseStatus::kError);
  EXPECT_EQ(error.status, 431);
}

TEST(ParseRequestHeadTest, MoreThanMaxHeadersIs431) {
  auto withFields = [](size_t n) {
    std::string s = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (size_t i = 1; i < n; ++i) s += "X-" + std::to_string(i) + ": v\r\n";
    return s + "\r\n";
  };
  RequestHead head;
  ParseError error;
  EXPECT_EQ(parseRequestHead(withFields(100), Limits{}, head, error), ParseStatus::kComplete);
  EXPECT_EQ(head.headers.size(), 100u);
  EXPECT_EQ(parseRequestHead(withFields(101), Limits{}, head, error), ParseStatus::kError);
  EXPECT_EQ(error.status, 431);
  EXPECT_EQ(error.reason, "too many header fields");
}

// --- Valid requests: the parsed fields --------------------------------------------------------

struct ValidRow {
  const char* name;
  std::string input;
  Method method = Method::kGet;
  std::string_view methodText = "GET";
  std::string_view target = "/";
  std::string_view path = "/";
  std::string_view pathAndQuery = "/";
  uint8_t minorVersion = 1;
  std::string_view host = "example.com";
  BodyKind body = BodyKind::kNone;
  uint64_t contentLength = 0;
  bool keepAlive = true;
  bool expectContinue = false;
  bool upgrade = false;
  std::string_view upgradeProtocol = {};
  size_t headerCount = 1;
  std::optional<size_t> headLength = {};  // default: the whole input
};

const std::vector<ValidRow>& validRows() {
  static const std::vector<ValidRow> rows = {
      {.name = "curl GET",
       .input = "GET /index.html?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: "
                "curl/8.5.0\r\nAccept: */*\r\n\r\n",
       .target = "/index.html?x=1&y=%20",
       .path = "/index.html",
       .pathAndQuery = "/index.html?x=1&y=%20",
       .headerCount = 3},
      {.name = "absolute-form",
       .input = "GET http://Example.com:8080/a/b?c=d HTTP/1.1\r\nHost: other.org\r\n\r\n",
       .target = "http://Example.com:8080/a/b?c=d",
       .path = "/a/b",
       .pathAndQuery = "/a/b?c=d",
       .host = "Example.com:8080"},
      {.name = "absolute-form https upper-case scheme, no path",
       .input = "GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
       .target = "HTTPS://example.com"},
      {.name = "OPTIONS *",
       .input = "OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n",
       .method = Method::kOptions,
       .methodText = "OPTIONS",
       .target = "*",
       .pathAndQuery = "*"},
      {.name = "OPTIONS absolute-form without path goes on as *",
       .input = "OPTIONS http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
       .method = Method::kOptions,
       .methodText = "OPTIONS",
       .target = "http://example.com",
       .pathAndQuery = "*"},
      {.name = "CONNECT authority-form",
       .input = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
       .method = Method::kConnect,
       .methodText = "CONNECT",
       .target = "example.com:443",
       .path = "",
       .pathAndQuery = "example.com:443",
       .host = "example.com:443"},
      {.name = "HTTP/1.0 without Host closes",
       .input = "GET /old HTTP/1.0\r\n\r\n",
       .target = "/old",
       .path = "/old",
       .pathAndQuery = "/old",
       .minorVersion = 0,
       .host = "",
       .keepAlive = false,
       .headerCount = 0},
      {.name = "HTTP/1.0 keep-alive",
       .input = "GET / HTTP/1.0\r\nHost: example.com\r\nConnection: Keep-Alive\r\n\r\n",
       .minorVersion = 0,
       .headerCount = 2},
      {.name = "HTTP/1.0 keep-alive and close",
       .input = "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\nHost: example.com\r\n\r\n",
       .minorVersion = 0,
       .keepAlive = false,
       .headerCount = 2},
      {.name = "HTTP/1.1 close",
       .input = "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: CLOSE\r\n\r\n",
       .keepAlive = false,
       .headerCount = 2},
      {.name = "HTTP/1.1 close in a second Connection line",
       .input = "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive\r\n"
                "Connection: ,close\r\n\r\n",
       .keepAlive = false,
       .headerCount = 3},
      {.name = "POST Content-Length",
       .input = "POST /form HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\n",
       .method = Method::kPost,
       .methodText = "POST",
       .target = "/form",
       .path = "/form",
       .pathAndQuery = "/form",
       .body = BodyKind::kContentLength,
       .contentLength = 5,
       .headerCount = 2},
      {.name = "identical Content-Length repeats",
       .input = "PUT / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 42, 42\r\n"
                "Content-Length: 42\r\n\r\n",
       .method = Method::kPut,
       .methodText = "PUT",
       .body = BodyKind::kContentLength,
       .contentLength = 42,
       .headerCount = 3},
      {.name = "Content-Length leading zeros and the maximum",
       .input = "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0018446744073709551615"
                "\r\n\r\n",
       .method = Method::kPost,
       .methodText = "POST",
       .body = BodyKind::kContentLength,
       .contentLength = UINT64_MAX,
       .headerCount = 2},
      {.name = "Content-Length 0",
       .input = "DELETE /x HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n",
       .method = Method::kDelete,
       .methodText = "DELETE",
       .target = "/x",
       .path = "/x",
       .pathAndQuery = "/x",
       .body = BodyKind::kContentLength,
       .headerCount = 2},
      {.name = "chunked, any case, empty list elements",
       .input = "PATCH / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: , Chunked\r\n\r\n",
       .method = Method::kPatch,
       .methodText = "PATCH",
       .body = BodyKind::kChunked,
       .headerCount = 2},
      {.name = "Expect 100-continue",
       .input = "POST / HTTP/1.1\r\nHost: example.com\r\nExpect: 100-Continue\r\n"
                "Content-Length: 1000\r\n\r\n",
       .method = Method::kPost,
       .methodText = "POST",
       .body = BodyKind::kContentLength,
       .contentLength = 1000,
       .expectContinue = true,
       .headerCount = 3},
      {.name = "Expect in HTTP/1.0 is ignored",
       .input = "POST / HTTP/1.0\r\nHost: example.com\r\nExpect: 100-continue\r\n"
                "Content-Length: 1\r\n\r\n",
       .method = Method::kPost,
       .methodText = "POST",
       .minorVersion = 0,
       .body = BodyKind::kContentLength,
       .contentLength = 1,
       .keepAlive = false,
       .headerCount = 3},
      {.name = "websocket upgrade",
       .input = "GET /chat HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, Upgrade\r\n"
                "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
       .target = "/chat",
       .path = "/chat",
       .pathAndQuery = "/chat",
       .upgrade = true,
       .upgradeProtocol = "websocket",
       .headerCount = 5},
      {.name = "Upgrade without Connection: upgrade",
       .input = "GET / HTTP/1.1\r\nHost: example.com\r\nUpgrade: h2c\r\n\r\n",
       .headerCount = 2},
      {.name = "Upgrade in HTTP/1.0 is ignored",
       .input = "GET / HTTP/1.0\r\nHost: example.com\r\nConnection: upgrade\r\n"
                "Upgrade: websocket\r\n\r\n",
       .minorVersion = 0,
       .keepAlive = false,
       .headerCount = 3},
      {.name = "bare LF line ends",
       .input = "GET /lf HTTP/1.1\nHost: example.com\nAccept: */*\n\n",
       .target = "/lf",
       .path = "/lf",
       .pathAndQuery = "/lf",
       .headerCount = 2},
      {.name = "empty lines before the request line",
       .input = "\r\n\nGET / HTTP/1.1\r\nHost: example.com\r\n\r\n"},
      {.name = "OWS, HTAB and obs-text in values",
       .input = "GET / HTTP/1.1\r\nHost:\texample.com \t\r\nX-A:  a\tb \xe9\xff  \r\nX-Empty:"
                "\r\nX-Spaces:    \r\n\r\n",
       .headerCount = 4},
      {.name = "IPv6 Host with port",
       .input = "GET / HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n",
       .host = "[2001:db8::1]:8080"},
      {.name = "IPv4 Host with port",
       .input = "GET / HTTP/1.1\r\nHost: 10.0.0.1:80\r\n\r\n",
       .host = "10.0.0.1:80"},
      {.name = "empty Host (RFC 9110 7.2)", .input = "GET / HTTP/1.1\r\nHost:\r\n\r\n", .host = ""},
      {.name = "reg-name with sub-delims and percent",
       .input = "GET / HTTP/1.1\r\nHost: a-b_c~d!$&'()*+,;=%41.example\r\n\r\n",
       .host = "a-b_c~d!$&'()*+,;=%41.example"},
      {.name = "methods are case-sensitive",
       .input = "get / HTTP/1.1\r\nHost: example.com\r\n\r\n",
       .method = Method::kOther,
       .methodText = "get"},
      {.name = "extension method",
       .input = "PROPFIND /dav/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
       .method = Method::kOther,
       .methodText = "PROPFIND",
       .target = "/dav/",
       .path = "/dav/",
       .pathAndQuery = "/dav/"},
      {.name = "HEAD",
       .input = "HEAD / HTTP/1.1\r\nHost: example.com\r\n\r\n",
       .method = Method::kHead,
       .methodText = "HEAD"},
      {.name = "TRACE",
       .input = "TRACE / HTTP/1.1\r\nHost: example.com\r\n\r\n",
       .method = Method::kTrace,
       .methodText = "TRACE"},
      {.name = "every tchar in a field name",
       .input = "GET / HTTP/1.1\r\nHost: example.com\r\nX-!#$%&'*+.^_`|~09: v\r\n\r\n",
       .headerCount = 2},
      {.name = "every VCHAR but # in the target",
       .input =
           "GET /!\"$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~ HTTP/1.1\r\nHost: example.com\r\n\r\n",
       .target = "/!\"$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~",
       .path = "/!\"$%&'()*+,-./09:;<=>",
       .pathAndQuery = "/!\"$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~"},
      {.name = "body bytes after the head are not the head's",
       .input = "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\nabc",
       .method = Method::kPost,
       .methodText = "POST",
       .body = BodyKind::kContentLength,
       .contentLength = 3,
       .headerCount = 2,
       .headLength = 57},
  };
  return rows;
}

void expectRow(const ValidRow& row, const RequestHead& head) {
  EXPECT_EQ(head.method, row.method);
  EXPECT_EQ(head.methodText, row.methodText);
  EXPECT_EQ(head.target, row.target);
  EXPECT_EQ(head.path, row.path);
  EXPECT_EQ(head.pathAndQuery, row.pathAndQuery);
  EXPECT_EQ(head.minorVersion, row.minorVersion);
  EXPECT_EQ(head.host, row.host);
  EXPECT_EQ(head.body, row.body);
  EXPECT_EQ(head.contentLength, row.contentLength);
  EXPECT_EQ(head.keepAlive, row.keepAlive);
  EXPECT_EQ(head.expectContinue, row.expectContinue);
  EXPECT_EQ(head.upgrade, row.upgrade);
  EXPECT_EQ(head.upgradeProtocol, row.upgradeProtocol);
  EXPECT_EQ(head.headers.size(), row.headerCount);
  EXPECT_EQ(head.headLength, row.headLength.value_or(row.input.size()));
}

TEST(ParseRequestHeadTest, ParsesValidRequests) {
  for (const ValidRow& row : validRows()) {
    SCOPED_TRACE(row.name);
    RequestHead head;
    ParseError error;
    const ParseStatus s = parseRequestHead(row.input, Limits{}, head, error);
    EXPECT_EQ(s, ParseStatus::kComplete) << error.reason;
    if (s != ParseStatus::kComplete) continue;
    expectRow(row, head);
    expectViewsInside(row.input, head);
  }
}

// The head arrives in two pieces split at every byte: incomplete until the last byte, then the
// same result as whole.
TEST(ParseRequestHeadTest, ValidRequestsSplitAtEveryByteAreIncompleteThenComplete) {
  for (const ValidRow& row : validRows()) {
    SCOPED_TRACE(row.name);
    const size_t headLength = row.headLength.value_or(row.input.size());
    RequestHead head;
    ParseError error;
    for (size_t i = 0; i < headLength; ++i) {
      ASSERT_EQ(parseRequestHead(std::string_view(row.input).substr(0, i), Limits{}, head, error),
                ParseStatus::kIncomplete)
          << "split at " << i << ": " << error.reason;
    }
    ASSERT_EQ(parseRequestHead(row.input, Limits{}, head, error), ParseStatus::kComplete);
    expectRow(row, head);
  }
}

TEST(ParseRequestHeadTest, FieldValuesAreTrimmedAndNamesKeptAsSent) {
  const std::string input =
      "GET / HTTP/1.1\r\nhOsT:  example.com\t\r\nX-A:  a\tb \xe9  \r\nX-Empty:\r\n\r\n";
  RequestHead head;
  ParseError error;
  ASSERT_EQ(parseRequestHead(input, Limits{}, head, error), ParseStatus::kComplete);
  ASSERT_EQ(head.headers.size(), 3u);
  EXPECT_EQ(head.headers[0].name, "hOsT");
  EXPECT_EQ(head.headers[0].value, "example.com");
  EXPECT_EQ(head.headers[1].value, "a\tb \xe9");
  EXPECT_EQ(head.headers[2].value, "");
  EXPECT_EQ(findHeader(head.headers, "x-a"), "a\tb \xe9");
  EXPECT_EQ(findHeader(head.headers, "HOST"), "example.com");
  EXPECT_EQ(findHeader(head.headers, "missing"), "");
}

TEST(ParseRequestHeadTest, PipelinedHeadsParseOneAfterTheOther) {
  const std::string first = "GET /one HTTP/1.1\r\nHost: a.example\r\n\r\n";
  const std::string second = "POST /two HTTP/1.1\r\nHost: b.example\r\nContent-Length: 2\r\n\r\n";
  const std::string input = first + second + "hi";
  RequestHead head;
  ParseError error;
  ASSERT_EQ(parseRequestHead(input, Limits{}, head, error), ParseStatus::kComplete);
  EXPECT_EQ(head.headLength, first.size());
  EXPECT_EQ(head.path, "/one");
  EXPECT_EQ(head.host, "a.example");
  EXPECT_EQ(head.body, BodyKind::kNone);
  const std::string_view rest = std::string_view(input).substr(head.headLength);
  ASSERT_EQ(parseRequestHead(rest, Limits{}, head, error), ParseStatus::kComplete);
  EXPECT_EQ(head.headLength, second.size());
  EXPECT_EQ(head.path, "/two");
  EXPECT_EQ(head.host, "b.example");
  EXPECT_EQ(head.contentLength, 2u);
  EXPECT_EQ(rest.substr(head.headLength), "hi");
}

TEST(ParseRequestHeadTest, AllocatesNothingOnceTheHeaderListHasGrown) {
  const std::string input =
      "GET /a HTTP/1.1\r\nHost: example.com\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
  RequestHead head;
  ParseError error;
  ASSERT_EQ(parseRequestHead(input, Limits{}, head, error), ParseStatus::kComplete);
  const Header* storage = head.headers.data();
  const size_t before = gAllocations;
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(parseRequestHead(input, Limits{}, head, error), ParseStatus::kComplete);
  }
  EXPECT_EQ(gAllocations, before);
  EXPECT_EQ(head.headers.data(), storage);
  // And the counter does count: growing the list allocates.
  RequestHead fresh;
  ASSERT_EQ(parseRequestHead(input, Limits{}, fresh, error), ParseStatus::kComplete);
  EXPECT_GT(gAllocations, before);
}

TEST(EqualsIgnoreCaseTest, ComparesAsciiOnly) {
  EXPECT_TRUE(equalsIgnoreCase("Content-Length", "content-LENGTH"));
  EXPECT_FALSE(equalsIgnoreCase("Content-Length", "Content-Lengt"));
  EXPECT_FALSE(equalsIgnoreCase("a", "b"));
  // Not a letter: '@' and '`' differ by 0x20 but are not each other's case.
  EXPECT_FALSE(equalsIgnoreCase("@", "`"));
  EXPECT_FALSE(equalsIgnoreCase("\xc9", "\xe9"));
}

// --- Responses ------------------------------------------------------------------------------

struct ResponseRow {
  const char* name;
  std::string input;
  Method requestMethod = Method::kGet;
  uint16_t status = 200;
  std::string_view reason = "OK";
  BodyKind body = BodyKind::kNone;
  uint64_t contentLength = 0;
  bool keepAlive = true;
  uint8_t minorVersion = 1;
};

const std::vector<ResponseRow>& responseRows() {
  static const std::vector<ResponseRow> rows = {
      {.name = "Content-Length",
       .input = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\n",
       .body = BodyKind::kContentLength,
       .contentLength = 5},
      {.name = "HEAD has no body whatever the fields say",
       .input = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
       .requestMethod = Method::kHead,
       .contentLength = 5},
      {.name = "HEAD with chunked",
       .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
       .requestMethod = Method::kHead},
      {.name = "100 Continue",
       .input = "HTTP/1.1 100 Continue\r\n\r\n",
       .status = 100,
       .reason = "Continue"},
      {.name = "103 Early Hints",
       .input = "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
       .status = 103,
       .reason = "Early Hints"},
      {.name = "101 Switching Protocols",
       .input = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket"
                "\r\n\r\n",
       .status = 101,
       .reason = "Switching Protocols"},
      {.name = "204",
       .input = "HTTP/1.1 204 No Content\r\n\r\n",
       .status = 204,
       .reason = "No Content"},
      {.name = "304 with Content-Length",
       .input = "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n",
       .status = 304,
       .reason = "Not Modified",
       .contentLength = 100},
      {.name = "2xx to CONNECT",
       .input = "HTTP/1.1 200 Connection established\r\n\r\n",
       .requestMethod = Method::kConnect,
       .reason = "Connection established"},
      {.name = "chunked",
       .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
       .body = BodyKind::kChunked},
      {.name = "gzip then chunked",
       .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
       .body = BodyKind::kChunked},
      {.name = "until close",
       .input = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n",
       .body = BodyKind::kUntilClose,
       .keepAlive = false},
      {.name = "Content-Length and Transfer-Encoding: chunked wins, no reuse",
       .input = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n",
       .body = BodyKind::kChunked,
       .keepAlive = false},
      {.name = "Transfer-Encoding without chunked last",
       .input = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
       .body = BodyKind::kUntilClose,
       .keepAlive = false},
      {.name = "HTTP/1.0 closes by default",
       .input = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
       .body = BodyKind::kContentLength,
       .keepAlive = false,
       .minorVersion = 0},
      {.name = "HTTP/1.0 keep-alive",
       .input = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
       .body = BodyKind::kContentLength,
       .minorVersion = 0},
      {.name = "Connection: close",
       .input = "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 9\r\n\r\n",
       .status = 404,
       .reason = "Not Found",
       .body = BodyKind::kContentLength,
       .contentLength = 9,
       .keepAlive = false},
      {.name = "no reason, no space",
       .input = "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
       .reason = "",
       .body = BodyKind::kContentLength},
      {.name = "empty reason",
       .input = "HTTP/1.1 500 \nContent-Length: 0\n\n",
       .status = 500,
       .reason = "",
       .body = BodyKind::kContentLength},
  };
  return rows;
}

TEST(ParseResponseHeadTest, ParsesResponses) {
  for (const ResponseRow& row : responseRows()) {
    SCOPED_TRACE(row.name);
    ResponseHead head;
    ParseError error;
    ASSERT_EQ(parseResponseHead(row.input, Limits{}, row.requestMethod, head, error),
              ParseStatus::kComplete)
        << error.reason;
    EXPECT_EQ(head.status, row.status);
    EXPECT_EQ(head.reason, row.reason);
    EXPECT_EQ(head.body, row.body);
    EXPECT_EQ(head.contentLength, row.contentLength);
    EXPECT_EQ(head.keepAlive, row.keepAlive);
    EXPECT_EQ(head.minorVersion, row.minorVersion);
    EXPECT_EQ(head.headLength, row.input.size());
    for (size_t i = 0; i < row.input.size(); ++i) {
      ASSERT_EQ(parseResponseHead(std::string_view(row.input).substr(0, i), Limits{},
                                  row.requestMethod, head, error),
                ParseStatus::kIncomplete)
          << "split at " << i;
    }
  }
}

TEST(ParseResponseHeadTest, RefusesMalformedResponsesWith502) {
  const std::vector<std::pair<const char*, std::string>> rows = {
      {"HTTP/2", "HTTP/2 200 OK\r\n\r\n"},
      {"HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n"},
      {"not HTTP", "ICY 200 OK\r\n\r\n"},
      {"two-digit status", "HTTP/1.1 20 OK\r\n\r\n"},
      {"status below 100", "HTTP/1.1 099 Odd\r\n\r\n"},
      {"no space after version", "HTTP/1.1200 OK\r\n\r\n"},
      {"bare CR in reason", "HTTP/1.1 200 O\rK\r\n\r\n"},
      {"control in reason", "HTTP/1.1 200 O\x01K\r\n\r\n"},
      {"differing Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n"},
      {"invalid Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n"},
      {"chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"},
      {"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"},
      {"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n"},
      {"NUL in value", "HTTP/1.1 200 OK\r\nX: a\0\r\n\r\n"s},
  };
  for (const auto& [name, input] : rows) {
    SCOPED_TRACE(name);
    ResponseHead head;
    ParseError error;
    ASSERT_EQ(parseResponseHead(input, Limits{}, Method::kGet, head, error), ParseStatus::kError);
    EXPECT_EQ(error.status, 502);
    EXPECT_FALSE(error.reason.empty());
  }
  ResponseHead head;
  ParseError error;
  const std::string big = "HTTP/1.1 200 OK\r\nX: " + std::string(40000, 'x');
  EXPECT_EQ(parseResponseHead(big, Limits{}, Method::kGet, head, error), ParseStatus::kError);
  EXPECT_EQ(error.status, 502);
}

TEST(ParseResponseHeadTest, AResponseHostFieldIsJustAField) {
  ResponseHead head;
  ParseError error;
  ASSERT_EQ(parseResponseHead("HTTP/1.1 200 OK\r\nHost: a b\r\nHost: c\r\nContent-Length: 0"
                              "\r\n\r\n",
                              Limits{}, Method::kGet, head, error),
            ParseStatus::kComplete);
  EXPECT_EQ(head.headers.size(), 3u);
}

}  // namespace
}  // namespace capstan::l7::http1
