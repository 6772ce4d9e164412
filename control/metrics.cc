#include "control/metrics.h"

#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace capstan::control {

namespace {

// kube-proxy's buckets for sync durations: 1 ms doubling 15 times.
prometheus::Histogram::BucketBoundaries syncBuckets() {
  prometheus::Histogram::BucketBoundaries b;
  double v = 0.001;
  for (int i = 0; i < 15; ++i, v *= 2) b.push_back(v);
  return b;
}

// kube-proxy's buckets for network programming latency: 0.25 s, 0.5 s, then 1..59 s, 60..115 s
// by 5, 120..300 s by 30.
prometheus::Histogram::BucketBoundaries programmingBuckets() {
  prometheus::Histogram::BucketBoundaries b{0.25, 0.5};
  for (int i = 1; i <= 59; ++i) b.push_back(i);
  for (int i = 0; i < 12; ++i) b.push_back(60 + 5 * i);
  for (int i = 0; i < 7; ++i) b.push_back(120 + 30 * i);
  return b;
}

prometheus::Histogram& histogram(prometheus::Registry& r, const std::string& name,
                                 const std::string& help,
                                 const prometheus::Histogram::BucketBoundaries& buckets) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(r).Add({}, buckets);
}

prometheus::Gauge& gauge(prometheus::Registry& r, const std::string& name,
                         const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
}

prometheus::Counter& counter(prometheus::Registry& r, const std::string& name,
                             const std::string& help, const prometheus::Labels& labels = {}) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r).Add(labels);
}

// process_* metrics as Prometheus client libraries export them, read from /proc at scrape time.
class ProcessCollector {
 public:
  std::vector<prometheus::MetricFamily> Collect() const {
    std::vector<prometheus::MetricFamily> out;
    auto add = [&](const char* name, const char* help, prometheus::MetricType type, double v) {
      prometheus::MetricFamily f;
      f.name = name;
      f.help = help;
      f.type = type;
      prometheus::ClientMetric m;
      if (type == prometheus::MetricType::Counter) {
        m.counter.value = v;
      } else {
        m.gauge.value = v;
      }
      f.metric.push_back(m);
      out.push_back(std::move(f));
    };
    std::ifstream stat("/proc/self/stat");
    std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    // Fields after the command name (which may contain spaces) start after the last ')'.
    size_t paren = content.rfind(')');
    if (paren == std::string::npos) return out;
    std::istringstream fields(content.substr(paren + 2));
    std::string field;
    std::vector<std::string> f;
    while (fields >> field) f.push_back(field);
    // f[0] is field 3 (state): utime is field 14, stime 15, starttime 22, vsize 23, rss 24.
    if (f.size() < 22) return out;
    double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    double pageSize = static_cast<double>(sysconf(_SC_PAGESIZE));
    add("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
        prometheus::MetricType::Counter, (std::stod(f[11]) + std::stod(f[12])) / ticks);
    add("process_resident_memory_bytes", "Resident memory size in bytes.",
        prometheus::MetricType::Gauge, std::stod(f[21]) * pageSize);
    add("process_virtual_memory_bytes", "Virtual memory size in bytes.",
        prometheus::MetricType::Gauge, std::stod(f[20]));
    std::ifstream uptime("/proc/uptime");
    double up = 0;
    uptime >> up;
    double bootTime = static_cast<double>(::time(nullptr)) - up;
    add("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
        prometheus::MetricType::Gauge, bootTime + std::stod(f[19]) / ticks);
    return out;
  }
};

}  // namespace

ProxyMetrics::ProxyMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      syncDuration(histogram(*registry_, "kubeproxy_sync_proxy_rules_duration_seconds",
                             "SyncProxyRules latency in seconds", syncBuckets())),
      syncFullDuration(histogram(*registry_, "kubeproxy_sync_full_proxy_rules_duration_seconds",
                                 "SyncProxyRules latency in seconds for full resyncs",
                                 syncBuckets())),
      syncPartialDuration(
          histogram(*registry_, "kubeproxy_sync_partial_proxy_rules_duration_seconds",
                    "SyncProxyRules latency in seconds for partial resyncs", syncBuckets())),
      syncLastTimestamp(gauge(*registry_, "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                              "The last time proxy rules were successfully synced")),
      syncLastQueuedTimestamp(gauge(*registry_,
                                    "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
                                    "The last time a sync of proxy rules was queued")),
      networkProgrammingDuration(
          histogram(*registry_, "kubeproxy_network_programming_duration_seconds",
                    "In Cluster Network Programming Latency in seconds", programmingBuckets())),
      endpointChangesPending(gauge(*registry_,
                                   "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
                                   "Pending proxy rules Endpoint changes")),
      endpointChangesTotal(counter(*registry_, "kubeproxy_sync_proxy_rules_endpoint_changes_total",
                                   "Cumulative proxy rules Endpoint changes")),
      serviceChangesPending(gauge(*registry_, "kubeproxy_sync_proxy_rules_service_changes_pending",
                                  "Pending proxy rules Service changes")),
      serviceChangesTotal(counter(*registry_, "kubeproxy_sync_proxy_rules_service_changes_total",
                                  "Cumulative proxy rules Service changes")),
      healthz200(counter(*registry_, "kubeproxy_proxy_healthz_total",
                         "Cumulative proxy healthz HTTP status", {{"code", "200"}})),
      healthz503(counter(*registry_, "kubeproxy_proxy_healthz_total",
                         "Cumulative proxy healthz HTTP status", {{"code", "503"}})),
      livez200(counter(*registry_, "kubeproxy_proxy_livez_total",
                       "Cumulative proxy livez HTTP status", {{"code", "200"}})),
      livez503(counter(*registry_, "kubeproxy_proxy_livez_total",
                       "Cumulative proxy livez HTTP status", {{"code", "503"}})),
      syncFailures(counter(*registry_, "capstan_sync_proxy_rules_failures_total",
                           "Syncs that failed and left the dataplane in its last good state")),
      iptablesRestoreFailures(counter(*registry_,
                                      "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
                                      "Cumulative proxy iptables restore failures")),
      iptablesPartialRestoreFailures(
          counter(*registry_, "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total",
                  "Cumulative proxy iptables failures caused by partial syncs")),
      syncRulesWritten(gauge(*registry_, "capstan_sync_proxy_rules_written",
                             "Rules, map elements or table entries the last sync wrote")),
      syncBytesWritten(gauge(*registry_, "capstan_sync_proxy_rules_bytes_written",
                             "Bytes the last sync handed to the kernel or the dataplane")),
      servicePorts(
          gauge(*registry_, "capstan_service_ports", "Service ports in the last synced state")),
      endpoints(gauge(*registry_, "capstan_endpoints",
                      "Endpoints over all service ports in the last synced state")),
      manifestInvalidObjects(gauge(*registry_, "capstan_manifest_invalid_objects",
                                   "Objects or files rejected in the current manifests")),
      manifestReloads(counter(*registry_, "capstan_manifest_reloads_total",
                              "Times the manifest files were looked at again")),
      conntrackEntriesDeleted(counter(*registry_, "capstan_conntrack_entries_deleted_total",
                                      "Stale UDP conntrack entries deleted after syncs")),
      conntrackCleanupFailures(
          counter(*registry_, "capstan_conntrack_cleanup_failures_total",
                  "Cleanups of stale UDP conntrack entries that failed, wholly or in part")) {}

std::string ProxyMetrics::render() const {
  prometheus::TextSerializer serializer;
  std::ostringstream out;
  auto families = registry_->Collect();
  auto process = ProcessCollector().Collect();
  families.insert(families.end(), process.begin(), process.end());
  for (const Collector& collect : collectors_) {
    auto more = collect();
    families.insert(families.end(), more.begin(), more.end());
  }
  serializer.Serialize(out, families);
  return out.str();
}

void ProxyMetrics::advanceTo(prometheus::Counter& counter, double total) {
  double now = counter.Value();
  if (total > now) counter.Increment(total - now);
}

}  // namespace capstan::control
