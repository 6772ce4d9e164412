// The HTTP/1.1 codec on the ingress's request path: parsing a request head (a browser's GET, a
// small curl GET, a POST), a response head, decoding a chunked body, writing the upstream head.
// The peer is Boost.Beast's parser (request_parser / response_parser with empty_body), given the
// same bytes in the same run; main() prints Capstan/Beast ratios after the run.
//
// What each side does per iteration: Capstan parses into a RequestHead whose header list is
// reused (as an ingress worker does across requests); Beast constructs a parser and parses into
// its message (that is how Beast is used: a parser serves one message), which includes storing
// the fields it found.
#include <benchmark/benchmark.h>

#include <boost/beast/http.hpp>
#include <cstdio>
#include <string>
#include <string_view>

#include "bench/support/recording_reporter.h"
#include "l7/http1/chunked.h"
#include "l7/http1/forward.h"
#include "l7/http1/message.h"

namespace capstan::l7::http1 {
namespace {

namespace beast = boost::beast;

// Firefox's navigation request: 12 fields, 598 bytes.
constexpr std::string_view kBrowserGet =
    "GET /products/shoes/running?color=blue&size=42&sort=price HTTP/1.1\r\n"
    "Host: shop.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;"
    "q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Referer: https://shop.example.com/products/shoes\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=3f9a1c2e7b8d4f60a5e1c3b9d7f2a4e6; theme=dark; cart=17\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "\r\n";

constexpr std::string_view kCurlGet =
    "GET /healthz HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: curl/8.5.0\r\n"
    "Accept: */*\r\n\r\n";

constexpr std::string_view kPost =
    "POST /api/v1/orders HTTP/1.1\r\n"
    "Host: api.example.com\r\n"
    "User-Agent: python-requests/2.31.0\r\n"
    "Accept-Encoding: gzip, deflate\r\n"
    "Accept: application/json\r\n"
    "Connection: keep-alive\r\n"
    "Content-Type: application/json\r\n"
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dQw4w9WgXcQ\r\n"
    "Content-Length: 348\r\n"
    "\r\n";

constexpr std::string_view kResponse =
    "HTTP/1.1 200 OK\r\n"
    "Date: Tue, 24 Nov 2026 23:29:20 GMT\r\n"
    "Server: nginx/1.25.3\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "Content-Length: 15324\r\n"
    "Connection: keep-alive\r\n"
    "Cache-Control: private, max-age=0\r\n"
    "ETag: \"5e8f-1a2b3c4d\"\r\n"
    "Vary: Accept-Encoding\r\n"
    "\r\n";

void BM_CapstanParseRequest(benchmark::State& state, std::string_view bytes) {
  RequestHead head;
  ParseError error;
  const Limits limits;
  for (auto _ : state) {
    const ParseStatus s = parseRequestHead(bytes, limits, head, error);
    if (s != ParseStatus::kComplete) state.SkipWithError("not parsed");
    benchmark::DoNotOptimize(head.headLength);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes.size()));
}

void BM_BeastParseRequest(benchmark::State& state, std::string_view bytes) {
  for (auto _ : state) {
    beast::http::request_parser<beast::http::empty_body> parser;
    beast::error_code ec;
    const size_t n = parser.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
    if (ec || !parser.is_header_done()) state.SkipWithError("not parsed");
    benchmark::DoNotOptimize(n);
    benchmark::DoNotOptimize(parser.get().method());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes.size()));
}

void BM_CapstanParseResponse(benchmark::State& state) {
  ResponseHead head;
  ParseError error;
  const Limits limits;
  for (auto _ : state) {
    if (parseResponseHead(kResponse, limits, Method::kGet, head, error) != ParseStatus::kComplete) {
      state.SkipWithError("not parsed");
    }
    benchmark::DoNotOptimize(head.contentLength);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kResponse.size()));
}

void BM_BeastParseResponse(benchmark::State& state) {
  for (auto _ : state) {
    beast::http::response_parser<beast::http::empty_body> parser;
    beast::error_code ec;
    const size_t n = parser.put(boost::asio::buffer(kResponse.data(), kResponse.size()), ec);
    if (ec || !parser.is_header_done()) state.SkipWithError("not parsed");
    benchmark::DoNotOptimize(n);
    benchmark::DoNotOptimize(parser.content_length());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kResponse.size()));
}

// A 64 KiB body in 8 KiB chunks, delivered whole: the decoder's framing cost per body byte.
void BM_CapstanChunkedDecode(benchmark::State& state) {
  constexpr size_t kBody = 64 * 1024;
  constexpr size_t kChunk = 8 * 1024;
  std::string encoded;
  for (size_t sent = 0; sent < kBody; sent += kChunk) {
    appendChunkHeader(kChunk, encoded);
    encoded.append(kChunk, 'x');
    encoded.append("\r\n");
  }
  encoded.append(kLastChunk);
  ChunkedDecoder decoder;
  for (auto _ : state) {
    decoder.reset();
    std::string_view rest = encoded;
    size_t bytes = 0;
    ParseError error;
    while (true) {
      ChunkedDecoder::Step step;
      const ParseStatus s = decoder.decode(rest, step, error);
      bytes += step.data.size();
      rest.remove_prefix(step.consumed);
      if (s != ParseStatus::kIncomplete) break;
    }
    if (bytes != kBody) state.SkipWithError("body not decoded");
    benchmark::DoNotOptimize(bytes);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBody));
}

void BM_CapstanAppendUpstreamRequestHead(benchmark::State& state) {
  RequestHead head;
  ParseError error;
  if (parseRequestHead(kBrowserGet, Limits{}, head, error) != ParseStatus::kComplete) {
    state.SkipWithError("not parsed");
    return;
  }
  const RequestForwarding forwarding{"203.0.113.7", "https", "9f86d081884c7d65"};
  std::string out;
  for (auto _ : state) {
    out.clear();
    appendUpstreamRequestHead(head, forwarding, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * out.size()));
}

BENCHMARK_CAPTURE(BM_CapstanParseRequest, browser_get, kBrowserGet);
BENCHMARK_CAPTURE(BM_BeastParseRequest, browser_get, kBrowserGet);
BENCHMARK_CAPTURE(BM_CapstanParseRequest, curl_get, kCurlGet);
BENCHMARK_CAPTURE(BM_BeastParseRequest, curl_get, kCurlGet);
BENCHMARK_CAPTURE(BM_CapstanParseRequest, post_content_length, kPost);
BENCHMARK_CAPTURE(BM_BeastParseRequest, post_content_length, kPost);
BENCHMARK(BM_CapstanParseResponse);
BENCHMARK(BM_BeastParseResponse);
BENCHMARK(BM_CapstanChunkedDecode);
BENCHMARK(BM_CapstanAppendUpstreamRequestHead);

// --- Ratios -----------------------------------------------------------------------------------

using bench::RecordingReporter;

// Ratios on CPU time: single-threaded benchmarks on a shared machine, where wall time also
// counts the waits for a core.
void printRatio(const RecordingReporter& r, const char* what, const std::string& capstan,
                const std::string& beast) {
  const double a = r.times(capstan).cpu, b = r.times(beast).cpu;
  if (a == 0 || b == 0) return;
  std::printf("  %-28s Capstan %8.1f ns  vs Beast %8.1f ns  -> Capstan/Beast %.3f (%.1fx faster)\n",
              what, a * 1e9, b * 1e9, a / b, b / a);
}

}  // namespace
}  // namespace capstan::l7::http1

int main(int argc, char** argv) {
  using namespace capstan::l7::http1;
  const bool color = capstan::bench::consoleColor(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RecordingReporter reporter(color);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::printf(
      "\nSame run, same bytes. Capstan parses into a reused RequestHead; Beast constructs a\n"
      "parser (empty_body) per message and stores its fields. Ratios of CPU time per head:\n");
  for (const char* c : {"browser_get", "curl_get", "post_content_length"}) {
    printRatio(reporter, c, std::string("BM_CapstanParseRequest/") + c,
               std::string("BM_BeastParseRequest/") + c);
  }
  printRatio(reporter, "response head", "BM_CapstanParseResponse", "BM_BeastParseResponse");
  benchmark::Shutdown();
  return 0;
}
