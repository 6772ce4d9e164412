// ProxyMetrics: the Prometheus metrics of the daemon, named as kube-proxy names them
// (pkg/proxy/metrics) so existing dashboards and alerts keep working, plus a few of Capstan's
// own under capstan_*. Served as text on --metrics-bind-address /metrics.
//
// Thread-safe (prometheus-cpp metrics are): the control thread writes, the status server reads.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace capstan::control {

class ProxyMetrics {
  // Declared first: the metric references below are initialised from it.
  std::shared_ptr<prometheus::Registry> registry_;

 public:
  ProxyMetrics();

  // kubeproxy_sync_proxy_rules_duration_seconds and its full/partial variants.
  prometheus::Histogram& syncDuration;
  prometheus::Histogram& syncFullDuration;
  prometheus::Histogram& syncPartialDuration;
  prometheus::Gauge& syncLastTimestamp;        // ..._last_timestamp_seconds
  prometheus::Gauge& syncLastQueuedTimestamp;  // ..._last_queued_timestamp_seconds
  prometheus::Histogram& networkProgrammingDuration;
  prometheus::Gauge& endpointChangesPending;
  prometheus::Counter& endpointChangesTotal;
  prometheus::Gauge& serviceChangesPending;
  prometheus::Counter& serviceChangesTotal;
  prometheus::Counter& healthz200;
  prometheus::Counter& healthz503;
  prometheus::Counter& livez200;
  prometheus::Counter& livez503;
  // Capstan's own.
  prometheus::Counter& syncFailures;  // capstan_sync_proxy_rules_failures_total
  // iptables mode: failed syncs (each a failed iptables-restore, or a failed `iptables -I` of a
  // jump rule, which the restore needs), as kube-proxy counts them; and those of partial syncs.
  prometheus::Counter& iptablesRestoreFailures;
  prometheus::Counter& iptablesPartialRestoreFailures;
  // What the last successful sync wrote (rules or entries, and bytes handed to the kernel).
  prometheus::Gauge& syncRulesWritten;        // capstan_sync_proxy_rules_written
  prometheus::Gauge& syncBytesWritten;        // capstan_sync_proxy_rules_bytes_written
  prometheus::Gauge& servicePorts;            // capstan_service_ports
  prometheus::Gauge& endpoints;               // capstan_endpoints
  prometheus::Gauge& manifestInvalidObjects;  // capstan_manifest_invalid_objects
  prometheus::Counter& manifestReloads;       // capstan_manifest_reloads_total
  // Stale UDP conntrack cleanup after syncs of a kernel mode (control/conntrack_table.h).
  prometheus::Counter& conntrackEntriesDeleted;   // capstan_conntrack_entries_deleted_total
  prometheus::Counter& conntrackCleanupFailures;  // capstan_conntrack_cleanup_failures_total

  // The whole exposition, Prometheus text format 0.0.4.
  std::string render() const;

  // Families made at scrape time by a part of the daemon (the ingress counters). Add before the
  // metrics server starts; `collect` is called on its thread.
  using Collector = std::function<std::vector<prometheus::MetricFamily>()>;
  void addCollector(Collector collect) { collectors_.push_back(std::move(collect)); }

 private:
  std::vector<Collector> collectors_;

 public:
  // Counters move only forwards: sets `counter` to `total` when it is larger.
  static void advanceTo(prometheus::Counter& counter, double total);
};

}  // namespace capstan::control
