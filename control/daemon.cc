#include "control/daemon.h"

#include <malloc.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <ostream>

#include "control/change_tracker.h"
#include "control/conntrack_table.h"
#include "control/ingress_controller.h"
#include "control/kube/kube_source.h"
#include "control/kube_time.h"
#include "control/logging.h"
#include "control/manifest/inotify_watcher.h"
#include "control/manifest/manifest_source.h"
#include "control/metrics.h"
#include "control/proxier_factory.h"
#include "control/proxier_health.h"
#include "control/service_health_server.h"
#include "control/status_server.h"
#include "control/sync_scheduler.h"
#include "model/proxy_state.h"

namespace capstan::control {

namespace asio = boost::asio;
using namespace std::chrono_literals;

std::string nodeName(const Config& config) {
  std::string name = config.hostnameOverride;
  if (name.empty()) {
    char buf[256] = {};
    if (::gethostname(buf, sizeof(buf) - 1) == 0) name = buf;
  }
  while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return name;
}

namespace {

int64_t wallNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

ManifestOptions manifestOptions(const Config& config) {
  ManifestOptions options;
  options.paths = config.manifests;
  options.maxFileBytes = config.manifestMaxFileBytes;
  return options;
}

TrackerOptions trackerOptions(const Config& config) {
  TrackerOptions options;
  options.nodeName = nodeName(config);
  options.ingressClass.className = config.ingressClass;
  options.defaultCertificateSecret = defaultCertificateSecret(config);
  return options;
}

void logDiagnostics(const std::vector<Diagnostic>& diagnostics) {
  for (const Diagnostic& d : diagnostics) {
    switch (d.severity) {
      case Diagnostic::Severity::kError:
        spdlog::error("{}", d.toString());
        break;
      case Diagnostic::Severity::kWarning:
        spdlog::warn("{}", d.toString());
        break;
      case Diagnostic::Severity::kIgnored:
        spdlog::debug("ignored: {}", d.toString());
        break;
    }
  }
}

size_t countErrors(const std::vector<Diagnostic>& diagnostics) {
  return static_cast<size_t>(
      std::count_if(diagnostics.begin(), diagnostics.end(),
                    [](const auto& d) { return d.severity == Diagnostic::Severity::kError; }));
}

size_t countEndpoints(const ProxyState& state) {
  size_t n = 0;
  for (const auto& port : state.servicePorts()) n += port->endpoints.size();
  return n;
}

class ControlLoop {
 public:
  ControlLoop(Config config, std::vector<std::string> args)
      : config_(std::move(config)),
        args_(std::move(args)),
        signals_(io_, SIGINT, SIGTERM, SIGHUP),
        inotifyWait_(io_),
        kubeWait_(io_),
        reloadTimer_(io_),
        rescanTimer_(io_),
        syncTimer_(io_),
        finishedTimer_(io_),
        source_(manifestOptions(config_)),
        tracker_(trackerOptions(config_)),
        scheduler_({config_.minSyncPeriod, config_.syncPeriod}),
        health_(2 * config_.syncPeriod) {}

  int run() {
    auto proxier = makeProxier(config_);
    if (!proxier.ok()) {
      spdlog::error("{}", proxier.error().message());
      return 1;
    }
    proxier_ = std::move(proxier).value();
    if (config_.ingress.enabled) {
      auto ingress = IngressController::start(config_);
      if (!ingress.ok()) {
        spdlog::error("{}", ingress.error().message());
        return 1;
      }
      ingress_ = std::move(ingress).value();
      metrics_.addCollector([ingress = ingress_.get()] { return ingress->collect(); });
    }
    startSyncCompanions();
    if (Status st = startStatusServer(); !st.ok()) {
      spdlog::error("{}", st.error().message());
      return 1;
    }
    if (usesKubeApi(config_)) {
      if (Status st = startKubeSource(); !st.ok()) {
        spdlog::error("{}", st.error().message());
        return 1;
      }
    } else {
      auto watcher = InotifyWatcher::create();
      if (!watcher.ok()) {
        spdlog::error("{}", watcher.error().message());
        return 1;
      }
      watcher_.emplace(std::move(watcher).value());
      inotifyWait_.assign(::dup(watcher_->fd()));

      spdlog::info("capstan {} starting: node {}, proxy mode {}, manifests {}", CAPSTAN_VERSION,
                   nodeName(config_), toString(config_.mode), fmt::join(config_.manifests, ","));
      reloadManifests();
      malloc_trim(0);            // the parse trees of the first load are gone: give them back
      scheduler_.requestSync();  // the first sync runs even with nothing to program
      waitForInotify();
      armRescan();
    }
    armSyncTimer();
    armFinishedCheck();
    waitForSignal();
    io_.run();
    if (kube_) kube_->stop();
    if (serviceHealth_) serviceHealth_->stop();
    statusServer_.stop();
    spdlog::info("capstan stopped");
    return 0;
  }

 private:
  // What runs beside the proxier after each successful sync: the stale conntrack cleanup (the
  // kernel modes, whose NAT lives in conntrack) and the per-Service health check node ports
  // (every mode that programs a dataplane).
  void startSyncCompanions() {
    switch (config_.mode) {
      case ProxyMode::kIptables:
      case ProxyMode::kNftables:
      case ProxyMode::kIpvs:
        conntrackTable_ = makeNetlinkConntrackTable();
        conntrackCleaner_.emplace(*conntrackTable_);
        break;
      case ProxyMode::kDpdk:
      case ProxyMode::kNone:
        break;
    }
    if (config_.mode != ProxyMode::kNone) {
      // kube-proxy's IsHealthy(): the proxier's own health, whatever the Node's state (a Node
      // being deleted fails /healthz, not the Services' checks).
      // TODO: listen on --nodeport-addresses only, as kube-proxy does; "" is every address.
      serviceHealth_ = std::make_unique<ServiceHealthServer>(
          "", [this] { return health_.livez(std::chrono::system_clock::now()).healthy; });
    }
  }

  // After a successful sync of `state`: delete the conntrack entries it left stale.
  void cleanConntrack(const std::shared_ptr<const ProxyState>& state) {
    auto start = SyncScheduler::Clock::now();
    ConntrackCleanupReport report = conntrackCleaner_->synced(state);
    if (report.filters.empty()) return;
    double ms =
        std::chrono::duration<double, std::milli>(SyncScheduler::Clock::now() - start).count();
    metrics_.conntrackEntriesDeleted.Increment(static_cast<double>(report.deleted));
    if (report.error) {
      metrics_.conntrackCleanupFailures.Increment();
      spdlog::error("generation {}: deleting stale UDP conntrack entries ({} filters) failed: {}",
                    state->generation(), report.filters.size(), report.error->message());
    } else {
      spdlog::debug(
          "generation {}: deleted {} stale UDP conntrack entries ({} filters) in {:.3f} ms",
          state->generation(), report.deleted, report.filters.size(), ms);
    }
    constexpr size_t kMaxLogged = 100;  // the first sync after start makes one per UDP frontend
    for (size_t i = 0; i < report.filters.size() && i < kMaxLogged; ++i) {
      spdlog::trace("  conntrack filter: {}", report.filters[i].toString());
    }
  }

  Status startStatusServer() {
    HttpRoutes healthRoutes{
        {"/healthz",
         [this] {
           auto now = std::chrono::system_clock::now();
           auto r = health_.healthz(now);
           if (kube_ && !r.body.empty() && r.body.back() == '}') {
             r.body.insert(r.body.size() - 1, kubeHealthFields(now));
           }
           (r.status == 200 ? metrics_.healthz200 : metrics_.healthz503).Increment();
           return HttpResponse{r.status, "application/json", r.body};
         }},
        {"/livez",
         [this] {
           auto r = health_.livez(std::chrono::system_clock::now());
           (r.status == 200 ? metrics_.livez200 : metrics_.livez503).Increment();
           return HttpResponse{r.status, "application/json", r.body};
         }},
    };
    std::string mode(toString(config_.mode));
    HttpRoutes metricsRoutes{
        {"/metrics",
         [this] {
           return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", metrics_.render()};
         }},
        {"/proxyMode",
         [mode] {
           return HttpResponse{200, "text/plain; charset=utf-8", mode};
         }},
    };
    const std::string& healthAddr = config_.healthzBindAddress;
    const std::string& metricsAddr = config_.metricsBindAddress;
    if (!healthAddr.empty() && healthAddr == metricsAddr) {
      healthRoutes.insert(metricsRoutes.begin(), metricsRoutes.end());
      metricsRoutes.clear();
    } else if (!metricsAddr.empty()) {
      // As kube-proxy's metrics server does, answer a plain liveness probe there too.
      metricsRoutes.emplace("/healthz", [] { return HttpResponse{200, "text/plain", "ok"}; });
    }
    for (auto* server : {&healthAddr, &metricsAddr}) {
      HttpRoutes& routes = server == &healthAddr ? healthRoutes : metricsRoutes;
      if (server->empty() || routes.empty()) continue;
      auto port = statusServer_.listen(*server, std::move(routes));
      if (!port.ok()) {
        return port.error().withContext(server == &healthAddr ? "--healthz-bind-address"
                                                              : "--metrics-bind-address");
      }
      spdlog::info("serving {} on {} (port {})",
                   server == &healthAddr ? "/healthz and /livez" : "/metrics", *server, *port);
    }
    statusServer_.start();
    return okStatus();
  }

  // A dataplane may end by itself (dpdk with --dpdk-exit-when-idle, a pcap run): the daemon then
  // logs what it did and exits 0. Only that one can, so no other mode wakes up for it.
  void armFinishedCheck() {
    if (!proxier_ || config_.mode != ProxyMode::kDpdk || config_.dpdk.exitWhenIdlePolls == 0) {
      return;
    }
    finishedTimer_.expires_after(200ms);
    finishedTimer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto summary = proxier_->finished()) {
        spdlog::info("{}; stopping", *summary);
        io_.stop();
        return;
      }
      armFinishedCheck();
    });
  }

  // The Kubernetes API as the source: its reflectors run on their own thread and wake this
  // one through an eventfd. No sync runs before every resource has been listed once (kube-proxy
  // waits for its informers to sync), and /healthz fails until that view is programmed.
  Status startKubeSource() {
    auto cluster =
        kube::buildClusterConfig(config_.master, config_.kubeconfig,
                                 [](std::string_view name) -> std::optional<std::string> {
                                   const char* v = std::getenv(std::string(name).c_str());
                                   if (!v) return std::nullopt;
                                   return std::string(v);
                                 });
    if (!cluster.ok()) return cluster.error();
    kube::KubeSourceOptions options;
    options.cluster = std::move(cluster).value();
    options.client.userAgent = "capstan/" CAPSTAN_VERSION;
    options.reflector.startTimeNs = wallNowNs();
    options.resources = kube::capstanResources(nodeName(config_));
    if (config_.ingress.enabled &&
        (!config_.ingress.statusAddresses.empty() || config_.ingress.statusFromNode)) {
      kube::IngressStatusOptions status;
      status.addresses = config_.ingress.statusAddresses;
      status.fromNode = config_.ingress.statusFromNode;
      status.classSelector.className = config_.ingressClass;
      options.ingressStatus = std::move(status);
    }
    auto source = kube::KubeSource::create(std::move(options));
    if (!source.ok()) return source.error();
    kube_ = std::move(source).value();
    kubeWait_.assign(::dup(kube_->wakeFd()));
    health_.setSourceReady(false);
    spdlog::info("capstan {} starting: node {}, proxy mode {}, Kubernetes API {} ({})",
                 CAPSTAN_VERSION, nodeName(config_), toString(config_.mode),
                 kube_->cluster().server, kube_->cluster().origin);
    kube_->start();
    waitForKube();
    return okStatus();
  }

  void waitForKube() {
    kubeWait_.async_wait(asio::posix::stream_descriptor::wait_read,
                         [this](const boost::system::error_code& ec) {
                           if (ec) return;
                           applyKubeBatch();
                           waitForKube();
                         });
  }

  void applyKubeBatch() {
    kube::KubeSource::Batch batch = kube_->take();
    logDiagnostics(batch.diagnostics);
    for (const ObjectEvent& event : batch.events) tracker_.apply(event);
    updateChangeMetrics();
    if (batch.becameSynced) {
      spdlog::info("Kubernetes API: every resource listed; programming the first view");
      scheduler_.requestSync();
      armSyncTimer();
      return;
    }
    if (kube_->synced()) queueSyncIfChanged();
  }

  // Changes are waiting in the tracker: the health clock starts and a sync is asked for.
  void queueSyncIfChanged() {
    if (!tracker_.hasPendingChanges()) return;
    auto now = std::chrono::system_clock::now();
    health_.queuedUpdate(now);
    metrics_.syncLastQueuedTimestamp.Set(
        std::chrono::duration<double>(now.time_since_epoch()).count());
    scheduler_.requestSync();
    armSyncTimer();
  }

  // What /healthz adds in API mode: when the API server last answered, so a node whose view
  // has gone stale (the API unreachable, the dataplane kept as it was) says how stale.
  std::string kubeHealthFields(std::chrono::system_clock::time_point now) const {
    auto contact = kube_->lastContact();
    std::string out = ", \"kubeApiSynced\": ";
    out += kube_->synced() ? "true" : "false";
    if (!contact) return out + ", \"kubeApiLastContact\": null";
    int64_t ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(contact->time_since_epoch()).count();
    double age = std::max(0.0, std::chrono::duration<double>(now - *contact).count());
    return out + ", \"kubeApiLastContact\": \"" + formatGoTime(ns) +
           "\", \"kubeApiLastContactAgeSeconds\": " + fmt::format("{:.3f}", age);
  }

  void waitForSignal() {
    signals_.async_wait([this](const boost::system::error_code& ec, int signal) {
      if (ec) return;
      if (signal == SIGHUP) {
        reloadConfig();
        waitForSignal();
        return;
      }
      // The first SIGTERM or SIGINT drains the ingress (a DaemonSet's Pod gets 30 s of grace by
      // default); a second one stops at once.
      if (ingress_ && !draining_ && config_.ingress.drainTimeout > std::chrono::nanoseconds(0)) {
        spdlog::info(
            "received signal {}, draining the ingress for up to {} ms", signal,
            std::chrono::duration_cast<std::chrono::milliseconds>(config_.ingress.drainTimeout)
                .count());
        draining_ = true;
        ingress_->server().beginDrain();
        drainDeadline_ = SyncScheduler::Clock::now() + config_.ingress.drainTimeout;
        waitForDrain();
        waitForSignal();
        return;
      }
      spdlog::info("received signal {}, stopping", signal);
      io_.stop();
    });
  }

  // Until no client connection is left or the drain timeout has passed; the ingress keeps
  // following route and endpoint changes meanwhile.
  void waitForDrain() {
    drainTimer_.expires_after(50ms);
    drainTimer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      const bool drained = ingress_->server().drained();
      if (!drained && SyncScheduler::Clock::now() < drainDeadline_) {
        waitForDrain();
        return;
      }
      if (drained) {
        spdlog::info("ingress drained, stopping");
      } else {
        spdlog::warn("ingress drain timeout: {} connections still open are closed",
                     ingress_->server().counters().connectionsActive);
      }
      io_.stop();
    });
  }

  void waitForInotify() {
    inotifyWait_.async_wait(asio::posix::stream_descriptor::wait_read,
                            [this](const boost::system::error_code& ec) {
                              if (ec) return;
                              if (watcher_->drain()) scheduleReload();
                              waitForInotify();
                            });
  }

  // Changes come in bursts (a ConfigMap update is several renames; an editor writes, renames and
  // chmods): look once, shortly after the first event.
  void scheduleReload() {
    if (reloadScheduled_) return;
    reloadScheduled_ = true;
    // Programming latency counts from the first event, not from the look after the pause.
    if (firstEventNs_ == 0) firstEventNs_ = wallNowNs();
    reloadTimer_.expires_after(100ms);
    reloadTimer_.async_wait([this](const boost::system::error_code& ec) {
      reloadScheduled_ = false;
      if (!ec) reloadManifests();
    });
  }

  // A safety net under inotify (events can be lost on overflow, and not every filesystem
  // delivers them): look again every sync period. Unchanged files are only stat()ed.
  void armRescan() {
    rescanTimer_.expires_after(config_.syncPeriod);
    rescanTimer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      reloadManifests();
      armRescan();
    });
  }

  // Watches the directories the manifests depend on; true if that set changed since last time.
  bool updateWatches(bool logProblems) {
    std::vector<std::string> dirs = source_.watchDirectories();
    std::vector<std::string> problems = watcher_->watch(dirs);
    if (logProblems) {
      for (const std::string& problem : problems) {
        spdlog::warn("{} (changes there are seen only by the periodic rescan)", problem);
      }
    }
    bool changed = dirs != watchedDirs_;
    watchedDirs_ = std::move(dirs);
    return changed;
  }

  void reloadManifests() {
    // Watch before looking, so that a file written while the others are read (a first load of
    // many megabytes takes seconds) is an event for the next look rather than missed until the
    // periodic rescan.
    updateWatches(false);
    // The initial load is not a change to programme (kube-proxy records latency only for
    // changes after it started), so its events carry no trigger time.
    auto reload = source_.reload(!initialLoadDone_ ? 0
                                 : firstEventNs_   ? firstEventNs_
                                                   : wallNowNs());
    initialLoadDone_ = true;
    firstEventNs_ = 0;
    metrics_.manifestReloads.Increment();
    logDiagnostics(reload.diagnostics);
    // What this look found may add directories (a symlink's target, a configured directory
    // that appeared): they were read before they were watched, so look once more.
    if (updateWatches(true)) scheduleReload();
    metrics_.manifestInvalidObjects.Set(
        static_cast<double>(countErrors(source_.standingDiagnostics())));
    if (reload.filesRead > 0 || !reload.events.empty()) {
      spdlog::info("manifests: read {} files, {} object changes", reload.filesRead,
                   reload.events.size());
    }
    for (const ObjectEvent& event : reload.events) tracker_.apply(event);
    updateChangeMetrics();
    queueSyncIfChanged();
  }

  void updateChangeMetrics() {
    metrics_.serviceChangesPending.Set(static_cast<double>(tracker_.pendingServiceChanges()));
    metrics_.endpointChangesPending.Set(static_cast<double>(tracker_.pendingEndpointChanges()));
    ProxyMetrics::advanceTo(metrics_.serviceChangesTotal,
                            static_cast<double>(tracker_.serviceChangesTotal()));
    ProxyMetrics::advanceTo(metrics_.endpointChangesTotal,
                            static_cast<double>(tracker_.endpointChangesTotal()));
  }

  void armSyncTimer() {
    auto at = scheduler_.nextSyncAt();
    if (!at) return;
    syncTimer_.expires_at(std::max(*at, SyncScheduler::Clock::now()));
    syncTimer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) sync();
    });
  }

  void sync() {
    auto decision = scheduler_.due(SyncScheduler::Clock::now());
    if (!decision.run) {
      armSyncTimer();
      return;
    }
    auto commit = tracker_.commit(decision.full);
    const ProxyState& state = *commit.state;
    const ChangeSet& changes = commit.changes;
    auto start = SyncScheduler::Clock::now();
    scheduler_.syncStarted(start, changes.full);
    SyncResult result = proxier_ ? proxier_->sync(state, changes)
                                 : SyncResult(SyncStats{changes.full, state.servicePorts().size()});
    auto end = SyncScheduler::Clock::now();
    double seconds = std::chrono::duration<double>(end - start).count();
    metrics_.syncDuration.Observe(seconds);
    (changes.full ? metrics_.syncFullDuration : metrics_.syncPartialDuration).Observe(seconds);
    scheduler_.syncFinished(end, result.ok());
    // The ingress follows every new state, whatever the L4 dataplane made of it.
    if (ingress_) ingress_->synced(commit.state, changes);
    if (result.ok()) {
      auto wallNow = std::chrono::system_clock::now();
      int64_t nowNs = wallNowNs();
      health_.updated(wallNow);
      if (kube_ && kube_->synced()) health_.setSourceReady(true);
      metrics_.syncLastTimestamp.Set(static_cast<double>(nowNs) / 1e9);
      for (int64_t t : commit.triggerTimesNs) {
        if (t > 0 && t <= nowNs) {
          metrics_.networkProgrammingDuration.Observe(static_cast<double>(nowNs - t) / 1e9);
        }
      }
      spdlog::debug("synced generation {} ({}, {} changed, {} removed ports) in {:.3f} ms",
                    state.generation(), changes.full ? "full" : "partial", changes.changed.size(),
                    changes.removed.size(), seconds * 1e3);
      // The same problems come back every sync until the input changes: log them when they do.
      if (result->warnings != lastWarnings_) {
        for (const std::string& warning : result->warnings) spdlog::warn("{}", warning);
        lastWarnings_ = result->warnings;
      }
      metrics_.syncRulesWritten.Set(static_cast<double>(result->rulesWritten));
      metrics_.syncBytesWritten.Set(static_cast<double>(result->bytesWritten));
      if (conntrackCleaner_) cleanConntrack(commit.state);
      if (serviceHealth_) serviceHealth_->sync(state);
    } else {
      metrics_.syncFailures.Increment();
      if (config_.mode == ProxyMode::kIptables) {
        metrics_.iptablesRestoreFailures.Increment();
        if (!changes.full) metrics_.iptablesPartialRestoreFailures.Increment();
      }
      spdlog::error("sync of generation {} failed, keeping the last good dataplane: {}",
                    state.generation(), result.error().message());
    }
    health_.setNodeEligible(state.node().eligible);
    metrics_.servicePorts.Set(static_cast<double>(state.servicePorts().size()));
    metrics_.endpoints.Set(static_cast<double>(countEndpoints(state)));
    updateChangeMetrics();
    armSyncTimer();
  }

  void reloadConfig() {
    auto parsed = parseArgs(args_);
    if (!parsed.ok()) {
      spdlog::error("SIGHUP: configuration not reloaded: {}", parsed.error().message());
      return;
    }
    Config next = parsed->config;
    spdlog::info("SIGHUP: re-read the configuration{}",
                 next.configFile.empty() ? "" : " from " + next.configFile);
    auto restartNeeded = [&](bool changed, const char* what) {
      if (changed) spdlog::warn("SIGHUP: {} changed; restart capstan to apply it", what);
    };
    restartNeeded(next.mode != config_.mode, "the proxy mode");
    restartNeeded(next.healthzBindAddress != config_.healthzBindAddress, "--healthz-bind-address");
    restartNeeded(next.metricsBindAddress != config_.metricsBindAddress, "--metrics-bind-address");
    restartNeeded(nodeName(next) != nodeName(config_), "the node name");
    restartNeeded(next.ingressClass != config_.ingressClass, "--ingress-class");
    restartNeeded(next.manifestMaxFileBytes != config_.manifestMaxFileBytes,
                  "--manifest-max-file-size");
    restartNeeded(next.dpdk != config_.dpdk, "a --dpdk-* setting");
    restartNeeded(next.ingress != config_.ingress, "an --ingress* setting");
    if (next.verbosity != config_.verbosity) setupLogging(next.verbosity);
    scheduler_.setOptions({next.minSyncPeriod, next.syncPeriod});
    health_.setTimeout(2 * next.syncPeriod);
    bool dataplaneSettings = next.masqueradeAll != config_.masqueradeAll ||
                             next.clusterCIDRs != config_.clusterCIDRs ||
                             next.nodePortAddresses != config_.nodePortAddresses;
    bool pathsChanged = next.manifests != config_.manifests;
    // Only what may change at run time is taken over.
    config_.verbosity = next.verbosity;
    config_.minSyncPeriod = next.minSyncPeriod;
    config_.syncPeriod = next.syncPeriod;
    config_.manifests = next.manifests;
    config_.masqueradeAll = next.masqueradeAll;
    config_.clusterCIDRs = next.clusterCIDRs;
    config_.nodePortAddresses = next.nodePortAddresses;
    restartNeeded(next.kubeconfig != config_.kubeconfig || next.master != config_.master,
                  "--kubeconfig or --master");
    if (pathsChanged && !kube_) {
      source_.setPaths(config_.manifests);
      reloadManifests();
    }
    // Before the API's first full list there is nothing to re-program (and no partial view may
    // be synced): the first sync is full anyway.
    if (dataplaneSettings && (!kube_ || kube_->synced())) scheduler_.requestFullSync();
    if (!kube_) armRescan();  // with the new period
    armSyncTimer();
  }

  Config config_;
  std::vector<std::string> args_;
  asio::io_context io_{1};
  asio::signal_set signals_;
  asio::posix::stream_descriptor inotifyWait_;
  asio::posix::stream_descriptor kubeWait_;
  asio::steady_timer reloadTimer_;
  asio::steady_timer rescanTimer_;
  asio::steady_timer syncTimer_;
  asio::steady_timer finishedTimer_;
  asio::steady_timer drainTimer_{io_};
  bool draining_ = false;
  SyncScheduler::Clock::time_point drainDeadline_{};
  std::vector<std::string> lastWarnings_;  // of the last successful sync
  bool reloadScheduled_ = false;
  bool initialLoadDone_ = false;
  int64_t firstEventNs_ = 0;  // wall time of the first file event since the last look
  std::vector<std::string> watchedDirs_;
  std::optional<InotifyWatcher> watcher_;
  ManifestSource source_;
  ChangeTracker tracker_;
  SyncScheduler scheduler_;
  ProxierHealth health_;
  ProxyMetrics metrics_;
  StatusServer statusServer_;
  std::unique_ptr<Proxier> proxier_;
  std::unique_ptr<IngressController> ingress_;
  // The Kubernetes API source; null when objects come from --manifests.
  std::unique_ptr<kube::KubeSource> kube_;
  std::unique_ptr<ConntrackTable> conntrackTable_;
  std::optional<StaleConntrackCleaner> conntrackCleaner_;
  // After health_, whose state its probes read: destroyed (and its thread joined) first.
  std::unique_ptr<ServiceHealthServer> serviceHealth_;
};

}  // namespace

int runDaemon(const Config& config, std::vector<std::string> args) {
  ControlLoop loop(config, std::move(args));
  return loop.run();
}

int runDryRun(const Config& config, std::ostream& out, std::ostream& err) {
  auto proxier = makeProxier(config);
  if (!proxier.ok()) {
    err << "error: " << proxier.error().message() << "\n";
    return 1;
  }
  ManifestSource source(manifestOptions(config));
  auto reload = source.reload(wallNowNs());
  size_t errors = 0;
  for (const Diagnostic& d : reload.diagnostics) {
    switch (d.severity) {
      case Diagnostic::Severity::kError:
        err << "error: " << d.toString() << "\n";
        ++errors;
        break;
      case Diagnostic::Severity::kWarning:
        err << "warning: " << d.toString() << "\n";
        break;
      case Diagnostic::Severity::kIgnored:
        err << "ignored: " << d.toString() << "\n";
        break;
    }
  }
  if (errors > 0) {
    err << errors << " error" << (errors == 1 ? "" : "s") << "; nothing would be programmed for "
        << (errors == 1 ? "it" : "them") << "\n";
    return 1;
  }
  ChangeTracker tracker(trackerOptions(config));
  for (const ObjectEvent& event : reload.events) tracker.apply(event);
  auto commit = tracker.commit(true);
  if (*proxier) {
    auto rendered = (*proxier)->render(*commit.state);
    if (!rendered.ok()) {
      err << "error: " << rendered.error().message() << "\n";
      return 1;
    }
    out << *rendered;
  } else {
    out << describeState(*commit.state);
  }
  return 0;
}

int runCleanup(const Config& config, std::ostream& err) {
  auto proxier = makeProxier(config);
  if (!proxier.ok()) {
    err << "error: " << proxier.error().message() << "\n";
    return 1;
  }
  if (!*proxier) return 0;  // mode none programs nothing
  if (Status st = (*proxier)->cleanup(); !st.ok()) {
    err << "error: " << st.error().message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace capstan::control
