// KubeSource: the Kubernetes API as a source of ObjectEvents, beside the manifest source.
//
// Runs one Reflector per resource (Services, EndpointSlices, Ingresses, IngressClasses, TLS
// Secrets, this node's Node), and the IngressStatusWriter when asked for, on a thread of its own
// with one io_context, and hands what they
// produce to the control thread through a queue: the control thread waits for wakeFd() to be
// readable (an eventfd, as it waits for inotify) and calls take().
//
// Readiness follows kube-proxy, which does not sync before its informers have synced: synced()
// turns true once take() has returned the first full list of every resource, so a sync never
// programs a partial view. While the server is unreachable nothing is delivered and the view
// (and so the dataplane) stays as it was; lastContact() says since when.
//
// Thread-safety: create(), start(), take(), synced() and stop() on the control thread;
// lastContact() and wakeFd() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "control/kube/api_client.h"
#include "control/kube/cluster_config.h"
#include "control/kube/ingress_status_writer.h"
#include "control/kube/reflector.h"
#include "control/source.h"

namespace capstan::control::kube {

struct KubeSourceOptions {
  ClusterConfig cluster;
  ApiClientOptions client;
  ReflectorOptions reflector;
  // What to watch; capstanResources(nodeName) in the daemon.
  std::vector<ResourceSpec> resources;
  // Write the Ingresses' status back (--ingress-status-address, --ingress-status-from-node);
  // needs the Ingress and IngressClass resources (and the Node for fromNode) among `resources`.
  std::optional<IngressStatusOptions> ingressStatus;
};

class KubeSource {
 public:
  using WallClock = std::chrono::system_clock;

  // Builds the client (TLS context, credentials); starts nothing.
  static Result<std::unique_ptr<KubeSource>> create(KubeSourceOptions options);
  ~KubeSource();
  KubeSource(const KubeSource&) = delete;
  KubeSource& operator=(const KubeSource&) = delete;

  // Starts the thread: every reflector lists, then watches.
  void start();
  // Ends the reflectors, closes the connections and joins the thread. Idempotent.
  void stop();

  // Readable while take() has something to return.
  int wakeFd() const { return wakeFd_; }

  struct Batch {
    std::vector<ObjectEvent> events;  // in the order the reflectors produced them
    std::vector<Diagnostic> diagnostics;
    // The resources whose full list completes in this batch (first list or relist).
    std::vector<ObjectKind> listed;
    bool becameSynced = false;  // this batch completed the first list of the last resource
  };
  // Everything produced since the last call.
  Batch take();

  // True once take() has delivered the first full list of every resource.
  bool synced() const { return synced_; }

  // When the API server last answered (a list page, a watch opened, a watch event or
  // bookmark); nullopt before it ever has.
  std::optional<WallClock::time_point> lastContact() const;

  const ClusterConfig& cluster() const { return options_.cluster; }

 private:
  explicit KubeSource(KubeSourceOptions options);
  // Queues `update` for take() and wakes the control thread (the io_context's thread).
  void deliver(ReflectorUpdate update);
  Reflector* reflectorOf(ObjectKind kind) const;

  KubeSourceOptions options_;
  int wakeFd_ = -1;
  // The io_context before what runs on it, so that it is destroyed last.
  std::unique_ptr<boost::asio::io_context> io_;
  std::unique_ptr<ApiClient> client_;
  std::vector<std::unique_ptr<Reflector>> reflectors_;
  std::unique_ptr<IngressStatusWriter> statusWriter_;  // with options_.ingressStatus
  std::thread thread_;
  bool started_ = false;

  mutable std::mutex mu_;
  std::deque<ReflectorUpdate> queue_;
  std::atomic<int64_t> lastContactNs_{0};

  std::set<ObjectKind> listedOnce_;  // control thread
  bool synced_ = false;
};

}  // namespace capstan::control::kube
