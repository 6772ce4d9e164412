#include "control/ingress_controller.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <limits>
#include <tuple>

#include "control/status_server.h"
#include "l7/tls/self_signed_certificate.h"

namespace capstan::control {

namespace {

std::chrono::milliseconds millis(std::chrono::nanoseconds d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d);
}

prometheus::MetricFamily family(std::string name, std::string help, prometheus::MetricType type) {
  return {std::move(name), std::move(help), type, {}};
}

void addValue(prometheus::MetricFamily& f, double value,
              std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  if (f.type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  f.metric.push_back(std::move(metric));
}

}  // namespace

Result<l7::IngressOptions> ingressOptions(const Config& config) {
  const Config::Ingress& in = config.ingress;
  l7::IngressOptions options;
  for (auto [flag, text, endpoint] :
       {std::tuple{"--ingress-http-address", &in.httpAddress, &options.httpAddress},
        std::tuple{"--ingress-https-address", &in.httpsAddress, &options.httpsAddress}}) {
    if (text->empty()) continue;
    auto parsed = parseListenEndpoint(*text);
    if (!parsed.ok()) return parsed.error().withContext(flag);
    *endpoint = *parsed;
  }
  options.workers = in.workers;
  options.headerTimeout = millis(in.headerTimeout);
  options.idleTimeout = millis(in.idleTimeout);
  options.upstreamConnectTimeout = millis(in.upstreamConnectTimeout);
  options.upstreamResponseTimeout = millis(in.upstreamResponseTimeout);
  options.maxBodyBytes = in.maxBodyBytes;
  options.maxConnections = in.maxConnections;
  auto format = l7::parseAccessLogFormat(in.accessLogFormat);
  if (!format) {
    return Error("--ingress-access-log-format: \"" + in.accessLogFormat +
                 "\" is not a format (json or common)");
  }
  options.accessLogFormat = *format;
  return options;
}

Result<std::unique_ptr<IngressController>> IngressController::start(const Config& config) {
  // What a TLS client gets when no Ingress covers its server name: a self-signed certificate,
  // made at start-up, as ingress-nginx's "Kubernetes Ingress Controller Fake Certificate".
  auto pem = l7::tls::generateSelfSignedCertificate();
  if (!pem.ok()) return pem.error().withContext("ingress: the default certificate");
  l7::tls::CertificateSource fallback{
      "default certificate", {}, pem->certificatePem, pem->privateKeyPem};
  auto set = l7::tls::CertificateSet::build({}, fallback, std::chrono::system_clock::now());
  if (!set.ok()) return set.error().withContext("ingress: the default certificate");
  auto options = ingressOptions(config);
  if (!options.ok()) return options.error().withContext("ingress");
  if (!config.ingress.accessLog.empty()) {
    auto writer = l7::AccessLogWriter::open(config.ingress.accessLog);
    if (!writer.ok()) return writer.error().withContext("ingress: --ingress-access-log");
    options->accessLog = std::move(writer).value();
  }
  std::shared_ptr<l7::AccessLogWriter> accessLog = options->accessLog;
  auto server = l7::IngressServer::start(std::move(options).value(), nullptr, set->set);
  if (!server.ok()) return server.error().withContext("ingress");
  spdlog::info("ingress: {} workers, HTTP on {}, HTTPS on {}", (*server)->workers(),
               config.ingress.httpAddress.empty() ? "(none)" : config.ingress.httpAddress,
               config.ingress.httpsAddress.empty() ? "(none)" : config.ingress.httpsAddress);
  std::unique_ptr<IngressController> controller(
      new IngressController(std::move(server).value(), std::move(fallback), std::move(accessLog)));
  controller->defaultSecret_ = defaultCertificateSecret(config);
  controller->checker_ =
      std::make_unique<l7::HealthChecker>([c = controller.get()] { c->healthChanged(); });
  return controller;
}

void IngressController::buildCertificates(const ProxyState& state,
                                          std::vector<std::string>& problems) {
  std::vector<l7::tls::CertificateSource> sources;
  for (const auto& ingress : state.ingress().ingresses) {
    for (size_t i = 0; i < ingress->tls.size(); ++i) {
      const IngressTls& entry = ingress->tls[i];
      // No secretName: its hosts are served with the default certificate.
      if (entry.secretName.empty()) continue;
      const NamespacedName name{ingress->name.ns, entry.secretName};
      const TlsSecret* secret = state.ingress().findSecret(name);
      if (secret == nullptr) {
        problems.push_back("Ingress " + ingress->name.toString() + ": spec.tls[" +
                           std::to_string(i) + "].secretName: no kubernetes.io/tls Secret " +
                           name.toString() + "; its hosts get the default certificate");
        continue;
      }
      sources.push_back(
          {name.toString(), entry.hosts, secret->certificatePem, secret->privateKeyPem});
    }
  }
  // The default certificate: the configured Secret while it exists, else the self-signed one.
  l7::tls::CertificateSource fallback = defaultCertificate_;
  if (defaultSecret_) {
    if (const TlsSecret* secret = state.ingress().findSecret(*defaultSecret_)) {
      fallback = {defaultSecret_->toString(), {}, secret->certificatePem, secret->privateKeyPem};
    } else {
      problems.push_back("--ingress-default-certificate: no kubernetes.io/tls Secret " +
                         defaultSecret_->toString() + "; serving the self-signed certificate");
    }
  }
  const auto now = std::chrono::system_clock::now();
  auto built = l7::tls::CertificateSet::build(sources, fallback, now);
  if (!built.ok() && fallback.name != defaultCertificate_.name) {
    // The configured Secret does not load: say so, and serve the self-signed one.
    problems.push_back("--ingress-default-certificate: " + built.error().message() +
                       "; serving the self-signed certificate");
    built = l7::tls::CertificateSet::build(sources, defaultCertificate_, now);
  }
  if (!built.ok()) {
    problems.push_back("certificates: " + built.error().message());
    return;
  }
  for (const std::string& error : built->errors) problems.push_back(error);
  for (const std::string& warning : built->warnings) problems.push_back(warning);
  certificates_ = built->set->certificateCount();
  server_->publishCertificates(built->set);
}

void IngressController::synced(const std::shared_ptr<const ProxyState>& state,
                               const ChangeSet& changes) {
  // Routes name service ports; any port change may change a backend's endpoints. A build at
  // 100,000 routes takes ~65 ms (bench/l7/route_table_bench), so rebuilding on every change is
  // cheap beside the sync that caused it.
  if (!changes.full && !changes.ingressChanged && changes.changed.empty() &&
      changes.removed.empty()) {
    return;
  }
  std::vector<std::string> problems;
  {
    std::lock_guard lock(mutex_);
    state_ = state;
    problems = rebuild();
  }
  if (changes.full || changes.ingressChanged) buildCertificates(*state, problems);
  warnings_ = problems.size();
  if (problems != lastWarnings_) {
    for (const std::string& problem : problems) spdlog::warn("ingress: {}", problem);
    lastWarnings_ = std::move(problems);
  }
}

std::vector<std::string> IngressController::rebuild() {
  auto start = std::chrono::steady_clock::now();
  const l7::HealthReport report = checker_->report();
  std::shared_ptr<const l7::RouteTable> table = l7::RouteTable::build(*state_, &report);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  server_->publish(table);
  checker_->setTargets(l7::healthTargets(*table));
  routes_ = table->routes().size();
  backends_ = table->backends().size();
  builds_.fetch_add(1);
  lastBuildSeconds_ = seconds;
  spdlog::debug("ingress: generation {}: {} routes, {} backends, built in {:.3f} ms",
                state_->generation(), table->routes().size(), table->backends().size(),
                seconds * 1e3);
  return table->warnings();
}

void IngressController::healthChanged() {
  std::lock_guard lock(mutex_);
  if (!state_) return;  // no table yet: the first sync's build reads the report
  const l7::HealthReport report = checker_->report();
  spdlog::info(
      "ingress: health checks: {} endpoint(s) down{}{}", report.down.size(),
      report.down.empty() ? "" : ": ",
      report.down.empty() ? "" : *report.down.begin() + (report.down.size() > 1 ? ", ..." : ""));
  rebuild();
  healthBuilds_.fetch_add(1);  // after the publish: a test may wait for it
}

std::vector<prometheus::MetricFamily> IngressController::collect() const {
  using prometheus::MetricType;
  const l7::IngressCounters c = server_->counters();
  std::vector<prometheus::MetricFamily> out;
  auto counter = [&](const char* name, const char* help, double value) {
    out.push_back(family(name, help, MetricType::Counter));
    addValue(out.back(), value);
  };
  auto gauge = [&](const char* name, const char* help, double value) {
    out.push_back(family(name, help, MetricType::Gauge));
    addValue(out.back(), value);
  };
  auto d = [](uint64_t v) { return static_cast<double>(v); };
  counter("capstan_ingress_connections_total", "Client connections accepted",
          d(c.connectionsAccepted));
  counter("capstan_ingress_connections_refused_total",
          "Client connections closed at once: --ingress-max-connections reached",
          d(c.connectionsRefused));
  gauge("capstan_ingress_connections_active", "Client connections open", d(c.connectionsActive));
  counter("capstan_ingress_requests_total", "Requests whose head was read", d(c.requests));
  out.push_back(family("capstan_ingress_responses_total",
                       "Responses sent to clients, by status class", MetricType::Counter));
  for (int k = 1; k <= 5; ++k) {
    addValue(out.back(), d(c.responses[k]), {{"code", std::to_string(k) + "xx"}});
  }
  counter("capstan_ingress_bad_requests_total",
          "Requests refused by the HTTP parser (malformed, smuggling attempts, limits)",
          d(c.badRequests));
  out.push_back(family("capstan_ingress_timeouts_total", "Waits cut off by a timeout, by kind",
                       MetricType::Counter));
  addValue(out.back(), d(c.headerTimeouts), {{"kind", "header"}});
  addValue(out.back(), d(c.idleTimeouts), {{"kind", "idle"}});
  addValue(out.back(), d(c.upstreamConnectTimeouts), {{"kind", "upstream_connect"}});
  addValue(out.back(), d(c.upstreamResponseTimeouts), {{"kind", "upstream_response"}});
  counter("capstan_ingress_body_too_large_total", "Requests refused with 413", d(c.bodyTooLarge));
  counter("capstan_ingress_no_route_total", "Requests no rule matched (404)", d(c.noRoute));
  counter("capstan_ingress_no_endpoints_total",
          "Requests to a backend without ready endpoints (503)", d(c.noEndpoints));
  counter("capstan_ingress_upstream_connects_total", "Connections opened to endpoints",
          d(c.upstreamConnects));
  counter("capstan_ingress_upstream_reused_total",
          "Requests sent on a pooled keep-alive connection", d(c.upstreamReused));
  counter("capstan_ingress_upstream_connect_failures_total", "Connects to endpoints that failed",
          d(c.upstreamConnectFailures));
  counter("capstan_ingress_upstream_bad_responses_total",
          "Endpoint answers that were malformed or cut short (502)", d(c.upstreamBadResponses));
  counter("capstan_ingress_upstream_retries_total",
          "Requests sent again: on another endpoint after a failed connect, or on a new "
          "connection after a pooled one turned out closed",
          d(c.upstreamRetries));
  counter("capstan_ingress_upgrades_total", "Upgraded (WebSocket) connections tunnelled",
          d(c.upgrades));
  counter("capstan_ingress_endpoint_ejections_total",
          "Endpoints ejected by passive health checking (per worker)", d(c.ejections));
  gauge("capstan_ingress_routes", "Routes in the current route table", d(routes_.load()));
  gauge("capstan_ingress_backends", "Service ports the routes name", d(backends_.load()));
  gauge("capstan_ingress_route_warnings",
        "Ingress rules and TLS Secrets that could not be used as written (see the log)",
        d(warnings_.load()));
  gauge("capstan_ingress_certificates", "TLS certificates loaded, the default one included",
        d(certificates_.load()));
  counter("capstan_ingress_tls_handshakes_total", "TLS handshakes completed", d(c.tlsHandshakes));
  counter("capstan_ingress_tls_handshake_failures_total", "TLS handshakes that failed or timed out",
          d(c.tlsHandshakeFailures));
  counter("capstan_ingress_tls_resumed_total", "TLS handshakes that resumed a session (ticket)",
          d(c.tlsResumed));
  counter("capstan_ingress_route_table_builds_total", "Route tables built and published",
          d(builds_.load()));
  counter("capstan_ingress_health_rebuilds_total",
          "Route tables rebuilt because active health checks found an endpoint down or back",
          d(healthBuilds_.load()));
  const l7::HealthChecker::Stats health = checker_->stats();
  counter("capstan_ingress_health_checks_total", "Active health checks completed",
          d(health.checks));
  counter("capstan_ingress_health_check_failures_total", "Active health checks that failed",
          d(health.failures));
  gauge("capstan_ingress_health_check_targets", "Endpoints under active health checks",
        d(health.targets));
  gauge("capstan_ingress_endpoints_down", "Endpoints the active health checks found down",
        d(health.down));
  gauge("capstan_ingress_route_table_build_seconds", "Time the last route table build took",
        lastBuildSeconds_.load());
  if (accessLog_) {
    const l7::AccessLogCounters log = accessLog_->counters();
    counter("capstan_ingress_access_log_lines_total", "Access log lines written", d(log.lines));
    counter("capstan_ingress_access_log_dropped_lines_total",
            "Access log lines dropped: the writer fell behind (a slow disk, a pipe not read) or a "
            "write failed",
            d(log.droppedLines));
    counter("capstan_ingress_access_log_write_errors_total", "Access log writes that failed",
            d(log.writeErrors));
  }
  for (prometheus::MetricFamily& f : ingressStatsFamilies(server_->stats())) {
    out.push_back(std::move(f));
  }
  return out;
}

std::vector<prometheus::MetricFamily> ingressStatsFamilies(const l7::IngressStats& stats) {
  using prometheus::MetricType;
  using Labels = std::vector<prometheus::ClientMetric::Label>;
  std::vector<prometheus::MetricFamily> out;
  auto d = [](uint64_t v) { return static_cast<double>(v); };
  // The families both kinds have, each labelled by `labels` of its sample.
  auto traffic = [&](const std::string& prefix, const char* what, const char* durationName,
                     const char* durationHelp, const auto& samples, auto labelsOf) {
    const size_t first = out.size();
    out.push_back(
        family(prefix + "_requests_total", std::string("Requests ") + what, MetricType::Counter));
    out.push_back(family(prefix + "_responses_total",
                         std::string("Responses to requests ") + what + ", by status class",
                         MetricType::Counter));
    out.push_back(family(prefix + "_request_bytes_total",
                         std::string("Bytes of requests ") + what + " (head and body)",
                         MetricType::Counter));
    out.push_back(family(prefix + "_response_bytes_total",
                         std::string("Bytes of responses to requests ") + what +
                             " (head and body, as sent to the client)",
                         MetricType::Counter));
    out.push_back(family(prefix + durationName, durationHelp, MetricType::Histogram));
    for (const auto& sample : samples) {
      const Labels labels = labelsOf(sample);
      const l7::TrafficSample& t = sample.traffic;
      addValue(out[first], d(t.requests), labels);
      for (size_t k = 0; k < t.responses.size(); ++k) {
        Labels withCode = labels;
        withCode.push_back({"code", std::to_string(k + 1) + "xx"});
        addValue(out[first + 1], d(t.responses[k]), std::move(withCode));
      }
      addValue(out[first + 2], d(t.bytesIn), labels);
      addValue(out[first + 3], d(t.bytesOut), labels);
      prometheus::ClientMetric histogram;
      histogram.label = labels;
      uint64_t cumulative = 0;
      for (size_t b = 0; b < t.buckets.size(); ++b) {
        cumulative += t.buckets[b];
        histogram.histogram.bucket.push_back(
            {cumulative, b < l7::kLatencyBuckets.size() ? l7::kLatencyBuckets[b]
                                                        : std::numeric_limits<double>::infinity()});
      }
      histogram.histogram.sample_count = cumulative;
      histogram.histogram.sample_sum = static_cast<double>(t.durationNs) / 1e9;
      out[first + 4].metric.push_back(std::move(histogram));
    }
  };
  traffic("capstan_ingress_route", "matched by an Ingress rule", "_request_duration_seconds",
          "Time from a request's whole head to its response's last byte, per route", stats.routes,
          [](const l7::RouteSample& r) {
            return Labels{{"ingress", r.ingress}, {"host", r.host}, {"path", r.path}};
          });
  out.push_back(family("capstan_ingress_route_requests_in_flight",
                       "Requests of the route being served now", MetricType::Gauge));
  for (const l7::RouteSample& r : stats.routes) {
    addValue(out.back(), d(r.inFlight),
             {{"ingress", r.ingress}, {"host", r.host}, {"path", r.path}});
  }
  auto upstreamLabels = [](const l7::UpstreamSample& u) {
    return Labels{{"service", u.service}, {"port", u.port}, {"endpoint", u.endpoint}};
  };
  traffic("capstan_ingress_upstream", "sent to the endpoint", "_response_duration_seconds",
          "Time from the endpoint's choice to the response's last byte, per endpoint",
          stats.upstreams, upstreamLabels);
  out.push_back(family("capstan_ingress_upstream_connections",
                       "Connections open to the endpoint, in use and pooled", MetricType::Gauge));
  for (const l7::UpstreamSample& u : stats.upstreams) {
    addValue(out.back(), d(u.open), upstreamLabels(u));
  }
  return out;
}

}  // namespace capstan::control
