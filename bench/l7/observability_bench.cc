// What observing a request costs the ingress worker: the access log line and the per-route and
// per-upstream statistics (l7/access_log.h, l7/ingress_metrics.h), beside the peers one would
// otherwise use, in the same run:
//
//  - BM_CapstanFormatJson: one JSON access log line (a typical GET through a route to an
//    upstream, a browser User-Agent) appended to a reused buffer.
//    BM_NlohmannJsonLine: the same fields in an nlohmann::json object, dump()ed — the peer.
//  - BM_CapstanFormatCommon: the same entry in the common (combined) format.
//  - BM_CapstanLogThroughWriter: format and hand over to a real AccessLogWriter writing to
//    /dev/null (the handover every 32 KiB included).
//  - BM_CapstanRecordRequest: the stats of one request, route and upstream (RequestRecorder
//    begin, route, upstream, bytes, status, end; access log off).
//    BM_PrometheusCppRecordRequest: the same counters, gauges and histograms kept with
//    prometheus-cpp (the /metrics library of the daemon) — the peer.
//  - BM_CapstanRecordAndLogRequest: stats and the JSON line (head fields copied, as a worker
//    does with the log on).
//
// Goal: well under a microsecond per request for both together, so that observing is noise beside
// proxying (a proxied request costs the worker tens of microseconds), and no allocation in
// the stats path.
#include <benchmark/benchmark.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "bench/support/recording_reporter.h"
#include "l7/access_log.h"
#include "l7/ingress_metrics.h"

namespace capstan::l7 {
namespace {

using bench::RecordingReporter;
using namespace std::chrono_literals;

constexpr std::string_view kUserAgent =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
    "Safari/537.36";

AccessLogEntry typicalEntry() {
  AccessLogEntry e;
  e.time = std::chrono::system_clock::now();
  e.client = "10.244.1.17";
  e.method = "GET";
  e.target = "/api/v1/users/4711?page=2";
  e.status = 200;
  e.bytesSent = 1523;
  e.duration = 1'834'000ns;
  e.upstream = "10.244.2.31:8080";
  e.upstreamTime = 1'702'000ns;
  e.host = "shop.example.com";
  e.route = "shop/storefront";
  e.requestId = "5f0c2a9e1b7d43c80000000000001234";
  e.userAgent = kUserAgent;
  e.referer = "https://shop.example.com/";
  return e;
}

template <AccessLogFormat kFormat>
void BM_CapstanFormat(benchmark::State& state) {
  AccessLogFormatter formatter(kFormat);
  const AccessLogEntry entry = typicalEntry();
  std::string out;
  out.reserve(kAccessLogBatchBytes + 1024);
  for (auto _ : state) {
    formatter.append(entry, out);
    if (out.size() >= kAccessLogBatchBytes) out.clear();
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
void BM_CapstanFormatJson(benchmark::State& state) {
  BM_CapstanFormat<AccessLogFormat::kJson>(state);
}
void BM_CapstanFormatCommon(benchmark::State& state) {
  BM_CapstanFormat<AccessLogFormat::kCommon>(state);
}
BENCHMARK(BM_CapstanFormatJson);
BENCHMARK(BM_CapstanFormatCommon);

void BM_NlohmannJsonLine(benchmark::State& state) {
  const AccessLogEntry e = typicalEntry();
  std::string out;
  out.reserve(kAccessLogBatchBytes + 1024);
  for (auto _ : state) {
    nlohmann::json j;
    j["time"] = "2025-01-02T03:04:05.678Z";
    j["client"] = e.client;
    j["method"] = e.method;
    j["target"] = e.target;
    j["protocol"] = "HTTP/1.1";
    j["status"] = e.status;
    j["bytes_sent"] = e.bytesSent;
    j["request_time"] = std::chrono::duration<double>(e.duration).count();
    j["upstream"] = e.upstream;
    j["upstream_time"] = std::chrono::duration<double>(e.upstreamTime).count();
    j["host"] = e.host;
    j["route"] = e.route;
    j["request_id"] = e.requestId;
    j["user_agent"] = e.userAgent;
    j["referer"] = e.referer;
    // Invalid UTF-8 replaced, as Capstan's formatter never fails on hostile bytes either.
    out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    out += '\n';
    if (out.size() >= kAccessLogBatchBytes) out.clear();
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NlohmannJsonLine);

void BM_CapstanLogThroughWriter(benchmark::State& state) {
  auto writer = AccessLogWriter::open("/dev/null");
  if (!writer.ok()) {
    state.SkipWithError(writer.error().message().c_str());
    return;
  }
  AccessLogBuffer buffer(*writer, AccessLogFormat::kJson);
  const AccessLogEntry entry = typicalEntry();
  for (auto _ : state) buffer.log(entry);
  buffer.flush();
  state.counters["dropped"] = static_cast<double>((*writer)->counters().droppedLines);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CapstanLogThroughWriter);

void BM_CapstanRecordRequest(benchmark::State& state) {
  RouteStats route;
  UpstreamStats upstream;
  RequestRecorder recorder;
  AccessLogBuffer off(nullptr, AccessLogFormat::kJson);
  auto now = std::chrono::steady_clock::now();
  for (auto _ : state) {
    recorder.begin(now, false);
    recorder.received(210);
    recorder.route(&route);
    recorder.upstream(&upstream, now);
    recorder.status(200);
    recorder.sent(1523);
    now += 1834us;  // a varying duration, so that requests fall in different buckets
    recorder.end(now, "10.244.1.17", off);
  }
  benchmark::DoNotOptimize(route.traffic.requests.get());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CapstanRecordRequest);

void BM_PrometheusCppRecordRequest(benchmark::State& state) {
  prometheus::Registry registry;
  const prometheus::Histogram::BucketBoundaries buckets(kLatencyBuckets.begin(),
                                                        kLatencyBuckets.end());
  auto& requests = prometheus::BuildCounter().Name("requests_total").Register(registry);
  auto& responses = prometheus::BuildCounter().Name("responses_total").Register(registry);
  auto& bytesIn = prometheus::BuildCounter().Name("request_bytes_total").Register(registry);
  auto& bytesOut = prometheus::BuildCounter().Name("response_bytes_total").Register(registry);
  auto& inFlight = prometheus::BuildGauge().Name("in_flight").Register(registry);
  auto& duration = prometheus::BuildHistogram().Name("duration_seconds").Register(registry);
  const std::map<std::string, std::string> routeLabels = {
      {"ingress", "shop/storefront"}, {"host", "shop.example.com"}, {"path", "/api"}};
  const std::map<std::string, std::string> upstreamLabels = {
      {"service", "shop/api"}, {"port", "http"}, {"endpoint", "10.244.2.31:8080"}};
  // Handles resolved once, as a proxy would keep them per route and endpoint.
  struct Handles {
    prometheus::Counter* requests;
    prometheus::Counter* responses2xx;
    prometheus::Counter* bytesIn;
    prometheus::Counter* bytesOut;
    prometheus::Gauge* inFlight;
    prometheus::Histogram* duration;
  };
  auto handles = [&](const std::map<std::string, std::string>& labels) {
    auto withCode = labels;
    withCode["code"] = "2xx";
    return Handles{&requests.Add(labels), &responses.Add(withCode), &bytesIn.Add(labels),
                   &bytesOut.Add(labels), &inFlight.Add(labels),    &duration.Add(labels, buckets)};
  };
  Handles route = handles(routeLabels);
  Handles upstream = handles(upstreamLabels);
  double seconds = 0;
  for (auto _ : state) {
    seconds += 0.001834;
    if (seconds > 12) seconds = 0;
    for (Handles* h : {&route, &upstream}) {
      h->inFlight->Increment();
      h->requests->Increment();
      h->responses2xx->Increment();
      h->bytesIn->Increment(210);
      h->bytesOut->Increment(1523);
      h->duration->Observe(seconds);
      h->inFlight->Decrement();
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PrometheusCppRecordRequest);

void BM_CapstanRecordAndLogRequest(benchmark::State& state) {
  const RouteLabels routeLabels{"shop/storefront", "shop.example.com", "/api"};
  const UpstreamLabels upstreamLabels{"shop/api", "http", "10.244.2.31:8080"};
  RouteStats route;
  route.labels = &routeLabels;
  UpstreamStats upstream;
  upstream.labels = &upstreamLabels;
  RequestRecorder recorder;
  auto writer = AccessLogWriter::open("/dev/null");
  if (!writer.ok()) {
    state.SkipWithError(writer.error().message().c_str());
    return;
  }
  AccessLogBuffer log(*writer, AccessLogFormat::kJson);
  auto now = std::chrono::steady_clock::now();
  for (auto _ : state) {
    recorder.begin(now, true);
    recorder.head("GET", "/api/v1/users/4711?page=2", 1, "shop.example.com", kUserAgent,
                  "https://shop.example.com/", "");
    recorder.received(210);
    recorder.route(&route);
    recorder.generatedRequestId("5f0c2a9e1b7d43c80000000000001234");
    recorder.upstream(&upstream, now);
    recorder.status(200);
    recorder.sent(1523);
    now += 1834us;
    recorder.end(now, "10.244.1.17", log);
  }
  log.flush();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CapstanRecordAndLogRequest);

// Ratios on CPU time: single-threaded benchmarks on a shared machine.
void printRatio(const RecordingReporter& r, const char* what, const std::string& capstan,
                const std::string& peer, const char* peerName) {
  const double a = r.times(capstan).cpu, b = r.times(peer).cpu;
  if (a == 0 || b == 0) return;
  std::printf("  %-22s Capstan %7.1f ns  vs %s %7.1f ns  -> Capstan/%s %.3f (%.1fx faster)\n", what,
              a * 1e9, peerName, b * 1e9, peerName, a / b, b / a);
}

}  // namespace
}  // namespace capstan::l7

int main(int argc, char** argv) {
  using namespace capstan::l7;
  const bool color = capstan::bench::consoleColor(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RecordingReporter reporter(color);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::printf("\nSame run, same request. Ratios of CPU time per request:\n");
  printRatio(reporter, "JSON access log line", "BM_CapstanFormatJson", "BM_NlohmannJsonLine",
             "nlohmann");
  printRatio(reporter, "route+upstream stats", "BM_CapstanRecordRequest",
             "BM_PrometheusCppRecordRequest", "prometheus-cpp");
  benchmark::Shutdown();
  return 0;
}
