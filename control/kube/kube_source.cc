#include "control/kube/kube_source.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <future>

namespace capstan::control::kube {

namespace asio = boost::asio;

KubeSource::KubeSource(KubeSourceOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<KubeSource>> KubeSource::create(KubeSourceOptions options) {
  std::unique_ptr<KubeSource> source(new KubeSource(std::move(options)));
  source->wakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (source->wakeFd_ < 0) return Error("eventfd for the Kubernetes API source failed");
  source->io_ = std::make_unique<asio::io_context>(1);
  auto client = ApiClient::create(*source->io_, source->options_.cluster, source->options_.client);
  if (!client.ok()) return client.error();
  source->client_ = std::move(client).value();
  KubeSource* self = source.get();
  for (const ResourceSpec& spec : source->options_.resources) {
    source->reflectors_.push_back(std::make_unique<Reflector>(
        *source->io_, *source->client_, spec, source->options_.reflector,
        [self](ReflectorUpdate update) {
          ObjectKind kind = update.kind;
          self->deliver(std::move(update));
          bool statusInput = kind == ObjectKind::kIngress || kind == ObjectKind::kIngressClass ||
                             kind == ObjectKind::kNode;
          if (self->statusWriter_ && statusInput) self->statusWriter_->changed();
        },
        [self](bool) {
          self->lastContactNs_.store(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                         WallClock::now().time_since_epoch())
                                         .count(),
                                     std::memory_order_relaxed);
        }));
  }
  if (const auto& status = source->options_.ingressStatus) {
    Reflector* ingresses = source->reflectorOf(ObjectKind::kIngress);
    Reflector* classes = source->reflectorOf(ObjectKind::kIngressClass);
    Reflector* nodes = source->reflectorOf(ObjectKind::kNode);
    if (!ingresses || !classes || (status->fromNode && status->addresses.empty() && !nodes)) {
      return Error("Ingress status: the Ingresses, IngressClasses and Node must be watched");
    }
    source->statusWriter_ = std::make_unique<IngressStatusWriter>(
        *source->io_, *source->client_, *ingresses, *classes,
        status->addresses.empty() ? nodes : nullptr, *status, [self](Diagnostic d) {
          ReflectorUpdate update;
          update.kind = ObjectKind::kIngress;
          update.diagnostics.push_back(std::move(d));
          self->deliver(std::move(update));
        });
  }
  return source;
}

void KubeSource::deliver(ReflectorUpdate update) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(update));
  }
  uint64_t one = 1;
  // The counter only needs to be non-zero; a full counter (never) is as good.
  (void)!::write(wakeFd_, &one, sizeof(one));
}

Reflector* KubeSource::reflectorOf(ObjectKind kind) const {
  for (const auto& reflector : reflectors_) {
    if (reflector->spec().kind == kind) return reflector.get();
  }
  return nullptr;
}

KubeSource::~KubeSource() {
  stop();
  if (wakeFd_ >= 0) ::close(wakeFd_);
}

void KubeSource::start() {
  if (started_) return;
  started_ = true;
  for (auto& reflector : reflectors_) {
    asio::co_spawn(*io_, reflector->run(), asio::detached);
  }
  if (statusWriter_) asio::co_spawn(*io_, statusWriter_->run(), asio::detached);
  thread_ = std::thread([this] { io_->run(); });
}

void KubeSource::stop() {
  if (!thread_.joinable()) return;
  // The reflectors end once their waits are woken and their connections closed; then run()
  // returns for lack of work. A reflector stuck in something uncancellable (a name lookup)
  // is not waited for long.
  asio::post(*io_, [this] {
    for (auto& reflector : reflectors_) reflector->stop();
    if (statusWriter_) statusWriter_->stop();
    client_->cancelAll();
  });
  std::promise<void> done;
  auto finished = done.get_future();
  std::thread waiter([this, &done] {
    thread_.join();
    done.set_value();
  });
  if (finished.wait_for(std::chrono::seconds(5)) != std::future_status::ready) io_->stop();
  waiter.join();
}

KubeSource::Batch KubeSource::take() {
  uint64_t counter;
  (void)!::read(wakeFd_, &counter, sizeof(counter));  // EAGAIN when already drained
  std::deque<ReflectorUpdate> updates;
  {
    std::lock_guard lock(mu_);
    updates.swap(queue_);
  }
  Batch batch;
  for (ReflectorUpdate& update : updates) {
    for (ObjectEvent& event : update.events) batch.events.push_back(std::move(event));
    for (Diagnostic& d : update.diagnostics) batch.diagnostics.push_back(std::move(d));
    if (update.listed) {
      batch.listed.push_back(update.kind);
      listedOnce_.insert(update.kind);
    }
  }
  if (!synced_ && listedOnce_.size() == reflectors_.size()) {
    synced_ = true;
    batch.becameSynced = true;
  }
  return batch;
}

std::optional<KubeSource::WallClock::time_point> KubeSource::lastContact() const {
  int64_t ns = lastContactNs_.load(std::memory_order_relaxed);
  if (ns == 0) return std::nullopt;
  return WallClock::time_point(
      std::chrono::duration_cast<WallClock::duration>(std::chrono::nanoseconds(ns)));
}

}  // namespace capstan::control::kube
