#include "control/kube/reflector.h"

#include <boost/asio.hpp>
#include <optional>
#include <set>

#include "control/document_reader.h"

namespace capstan::control::kube {

namespace asio = boost::asio;
using namespace std::chrono_literals;

std::vector<ResourceSpec> capstanResources(const std::string& nodeName) {
  std::string proxy(kProxyLabelSelector);
  return {
      {ObjectKind::kService, "/api/v1/services", proxy, ""},
      {ObjectKind::kEndpointSlice, "/apis/discovery.k8s.io/v1/endpointslices", proxy, ""},
      {ObjectKind::kIngress, "/apis/networking.k8s.io/v1/ingresses", "", ""},
      {ObjectKind::kIngressClass, "/apis/networking.k8s.io/v1/ingressclasses", "", ""},
      // Only TLS Secrets: the others are none of Capstan's business (and the API server
      // supports this field selector for Secrets).
      {ObjectKind::kSecret, "/api/v1/secrets", "", "type=kubernetes.io/tls"},
      {ObjectKind::kNode, "/api/v1/nodes", "", "metadata.name=" + nodeName},
  };
}

Backoff::Backoff(std::chrono::nanoseconds initial, std::chrono::nanoseconds max,
                 std::chrono::nanoseconds resetAfter, uint64_t seed)
    : initial_(initial), max_(max), resetAfter_(resetAfter), current_(initial), random_(seed) {}

std::chrono::nanoseconds Backoff::next(Clock::time_point now) {
  if (last_ && now - *last_ > resetAfter_) current_ = initial_;
  last_ = now;
  std::chrono::nanoseconds d = current_;
  current_ = std::min(current_ * 2, max_);
  // wait.Jitter(d, 1.0): d + rand[0,1) * d, so that nodes restarted together spread out.
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  return d + std::chrono::nanoseconds(static_cast<int64_t>(unit(random_) * double(d.count())));
}

namespace {

uint64_t seedOf(uint64_t seed) {
  return seed ? seed : (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
}

std::string stringAt(const Value* object, std::string_view a, std::string_view b) {
  const Value* v = object ? object->find(a) : nullptr;
  v = v ? v->find(b) : nullptr;
  return v && v->isString() ? v->asString() : std::string();
}

// The message of a metav1.Status body, if the body is one.
std::string statusMessage(const std::string& body) {
  std::string message;
  if (body.empty() || body.front() != '{') return message;
  (void)readJsonDocuments(body, [&](Value v, size_t) -> Status {
    if (const Value* m = v.find("message"); m && m->isString()) message = m->asString();
    return okStatus();
  });
  return message;
}

}  // namespace

Reflector::Reflector(asio::io_context& io, ApiClient& client, ResourceSpec spec,
                     ReflectorOptions options, Sink sink, ContactHandler onContact)
    : io_(io),
      client_(client),
      spec_(std::move(spec)),
      options_(options),
      sink_(std::move(sink)),
      onContact_(std::move(onContact)),
      backoff_(options.backoffInitial, options.backoffMax, options.backoffReset,
               seedOf(options.seed)),
      random_(seedOf(options.seed) + 1),
      timer_(io) {}

void Reflector::stop() {
  stopped_ = true;
  timer_.cancel();
}

asio::awaitable<void> Reflector::run() {
  Next next = Next::kRelist;
  while (!stopped_) {
    switch (next) {
      case Next::kRelist:
      case Next::kRelistLatest:
        next = co_await list();
        break;
      case Next::kWatch:
        next = co_await watch();
        break;
      case Next::kBackoffWatch:
        co_await backoff(std::exchange(pendingRetryAfter_, std::nullopt));
        next = Next::kWatch;
        break;
      case Next::kBackoffRelist:
        co_await backoff(std::exchange(pendingRetryAfter_, std::nullopt));
        next = Next::kRelist;
        break;
      case Next::kStop:
        co_return;
    }
  }
}

asio::awaitable<void> Reflector::wait(std::chrono::nanoseconds delay) {
  timer_.expires_after(delay);
  boost::system::error_code ec;
  co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

asio::awaitable<void> Reflector::backoff(std::optional<std::chrono::seconds> retryAfter) {
  std::chrono::nanoseconds d = backoff_.next(Backoff::Clock::now());
  // client-go's rest client waits out Retry-After (request.go checkWait); never retry sooner.
  if (retryAfter) {
    d = std::max<std::chrono::nanoseconds>(
        d, std::min<std::chrono::nanoseconds>(*retryAfter, options_.maxRetryAfter));
  }
  ++stats_.backoffs;
  stats_.lastBackoff = d;
  co_await wait(d);
}

std::string Reflector::query(bool forWatch) const {
  std::string q;
  auto add = [&](std::string_view key, std::string_view value) {
    q += q.empty() ? '?' : '&';
    q.append(key).append("=").append(ApiClient::queryEscape(value));
  };
  if (!spec_.labelSelector.empty()) add("labelSelector", spec_.labelSelector);
  if (!spec_.fieldSelector.empty()) add("fieldSelector", spec_.fieldSelector);
  if (forWatch) {
    add("watch", "true");
    add("resourceVersion", resourceVersion_);
    add("allowWatchBookmarks", "true");
  }
  return q;
}

void Reflector::report(std::vector<Diagnostic> diagnostics) {
  if (diagnostics.empty()) return;
  ReflectorUpdate update;
  update.kind = spec_.kind;
  update.diagnostics = std::move(diagnostics);
  sink_(std::move(update));
}

int64_t Reflector::triggerTime(const KubeObject& object) const {
  if (const auto* slice = std::get_if<std::shared_ptr<const EndpointSlice>>(&object)) {
    // kube-proxy (endpointslicecache.go) counts only changes made after its tracker started:
    // a slice last changed an hour ago says nothing about how fast this proxy programs.
    int64_t t = (*slice)->lastChangeTriggerTimeNs;
    if (t > options_.startTimeNs) return t;
  }
  return 0;
}

Reflector::Failure Reflector::classify(const Result<ApiResponse>& response, bool watching,
                                       std::vector<Diagnostic>& diagnostics) {
  std::string what = std::string(toString(spec_.kind)) + (watching ? " watch" : " list");
  Failure f;
  if (!response.ok()) {
    diagnostics.push_back({Diagnostic::Severity::kWarning, "", 0,
                           what + ": " + response.error().message() + " (retrying)"});
    f.next = watching ? Next::kBackoffWatch : Next::kBackoffRelist;
    return f;
  }
  int status = response->status;
  std::string message = statusMessage(response->body);
  std::string text = what + ": HTTP " + std::to_string(status) +
                     (message.empty() ? std::string() : " (" + message + ")");
  if (status == 410) {
    // The resourceVersion is older than the server keeps: only a list of the latest state
    // can resume (client-go: isExpiredError -> relist with resourceVersion "").
    latestNeeded_ = true;
    ++stats_.relistsGone;
    diagnostics.push_back(
        {Diagnostic::Severity::kWarning, "", 0, text + "; listing the latest state again"});
    f.next = Next::kRelistLatest;
    return f;
  }
  f.retryAfter = response->retryAfter;
  if (status == 429 || status >= 500) {
    diagnostics.push_back({Diagnostic::Severity::kWarning, "", 0, text + " (retrying)"});
    f.next = watching ? Next::kBackoffWatch : Next::kBackoffRelist;
    return f;
  }
  // 401/403 (credentials, RBAC), 400, 404: nothing to resume from; list again after a pause,
  // the way client-go's ListAndWatch starts over.
  diagnostics.push_back({Diagnostic::Severity::kError, "", 0, text});
  f.next = Next::kBackoffRelist;
  return f;
}

asio::awaitable<Reflector::Next> Reflector::list() {
  // client-go's relistResourceVersion: "0" (any state the server has cached) the first time,
  // the last seen version after, and "" (the latest, from storage) once that one has expired.
  std::string rv = latestNeeded_ ? "" : resourceVersion_.empty() ? "0" : resourceVersion_;
  std::map<ObjectKey, KubeObject> fresh;
  std::set<ObjectKey> invalid;
  std::vector<Diagnostic> diagnostics;
  std::string continueToken;
  std::string listRv;
  bool paginate = options_.pageSize > 0;
  for (uint32_t page = 0;; ++page) {
    std::string target = spec_.path + query(false);
    char sep = target.find('?') == std::string::npos ? '?' : '&';
    if (paginate) {
      target += sep + std::string("limit=") + std::to_string(options_.pageSize);
      sep = '&';
    }
    if (!continueToken.empty()) {
      // The API server refuses a resourceVersion beside a continue token: the token holds it.
      target += sep + std::string("continue=") + ApiClient::queryEscape(continueToken);
    } else if (!rv.empty()) {
      target += sep + std::string("resourceVersion=") + ApiClient::queryEscape(rv);
    }
    ++stats_.listRequests;
    auto response = co_await client_.get(target);
    if (stopped_) co_return Next::kStop;
    if (response.ok() && response->status == 410 && !continueToken.empty()) {
      // client-go's pager (FullListIfExpired): the continue token expired while paging; one
      // unpaginated list at the requested version instead.
      diagnostics.push_back({Diagnostic::Severity::kWarning, "", 0,
                             std::string(toString(spec_.kind)) +
                                 " list: continue token expired; listing again unpaginated"});
      paginate = false;
      continueToken.clear();
      fresh.clear();
      invalid.clear();
      continue;
    }
    if (!response.ok() || response->status != 200) {
      Failure f = classify(response, false, diagnostics);
      pendingRetryAfter_ = f.retryAfter;
      report(std::move(diagnostics));
      co_return f.next;
    }
    if (onContact_) onContact_(false);
    continueToken.clear();
    Status parsed = readJsonDocuments(response->body, [&](Value document, size_t) -> Status {
      const Value* meta = document.find("metadata");
      listRv = stringAt(&document, "metadata", "resourceVersion");
      if (const Value* c = meta ? meta->find("continue") : nullptr; c && c->isString()) {
        continueToken = c->asString();
      }
      if (const Value* items = document.find("items"); observer_ && items && items->isArray()) {
        for (const Value& item : items->asArray()) observer_("LIST", item);
      }
      for (Decoded& d : decoder_.decodeDocument(document)) {
        switch (d.outcome) {
          case Decoded::Outcome::kOk:
            fresh[*d.key] = std::move(d.object);
            break;
          case Decoded::Outcome::kIgnored:
            diagnostics.push_back({Diagnostic::Severity::kIgnored, "", 0, d.message});
            break;
          case Decoded::Outcome::kInvalid:
            if (d.key) {
              invalid.insert(*d.key);
              if (objects_.count(*d.key)) d.message += " (keeping its last good version)";
            }
            diagnostics.push_back({Diagnostic::Severity::kError, "", 0, d.message});
            break;
        }
      }
      return okStatus();
    });
    if (!parsed.ok()) {
      diagnostics.push_back(
          {Diagnostic::Severity::kError, "", 0,
           std::string(toString(spec_.kind)) + " list: " + parsed.error().message()});
      report(std::move(diagnostics));
      co_return Next::kBackoffRelist;
    }
    if (continueToken.empty()) break;
  }
  for (const ObjectKey& key : invalid) {
    if (fresh.count(key)) continue;
    if (auto it = objects_.find(key); it != objects_.end()) fresh[key] = it->second;
  }
  // The difference from the previous view (DeltaFIFO.Replace's job in client-go).
  ReflectorUpdate update;
  update.kind = spec_.kind;
  update.listed = true;
  auto oldIt = objects_.begin();
  auto newIt = fresh.begin();
  while (oldIt != objects_.end() || newIt != fresh.end()) {
    if (newIt == fresh.end() || (oldIt != objects_.end() && oldIt->first < newIt->first)) {
      update.events.push_back(
          {ObjectEvent::Type::kDelete, oldIt->first, {}, triggerTime(oldIt->second)});
      ++oldIt;
    } else if (oldIt == objects_.end() || newIt->first < oldIt->first) {
      update.events.push_back(
          {ObjectEvent::Type::kUpsert, newIt->first, newIt->second, triggerTime(newIt->second)});
      ++newIt;
    } else {
      if (!sameObject(oldIt->second, newIt->second)) {
        update.events.push_back(
            {ObjectEvent::Type::kUpsert, newIt->first, newIt->second, triggerTime(newIt->second)});
      }
      ++oldIt;
      ++newIt;
    }
  }
  objects_ = std::move(fresh);
  resourceVersion_ = listRv;
  latestNeeded_ = false;
  ++stats_.lists;
  update.diagnostics = std::move(diagnostics);
  sink_(std::move(update));
  co_return Next::kWatch;
}

std::optional<Reflector::Next> Reflector::handleWatchLine(std::string_view line,
                                                          ReflectorUpdate& update) {
  std::string what = std::string(toString(spec_.kind)) + " watch";
  auto skip = [&](std::string message) -> std::optional<Next> {
    update.diagnostics.push_back(
        {Diagnostic::Severity::kError, "", 0, what + ": " + message + "; event skipped"});
    return std::nullopt;
  };
  std::optional<Value> event;
  Status st = readJsonDocuments(line, [&](Value v, size_t) -> Status {
    if (event) return Error("more than one JSON document on one line");
    event = std::move(v);
    return okStatus();
  });
  if (!st.ok()) return skip(st.error().message());
  if (!event || !event->isObject()) return skip("an event must be a JSON object");
  const Value* type = event->find("type");
  const Value* object = event->find("object");
  if (!type || !type->isString()) return skip("type: expected a string");
  if (!object || !object->isObject()) return skip("object: expected an object");
  const std::string& t = type->asString();
  if (t == "ERROR") {
    // A metav1.Status: 410 (Expired/Gone) means the resourceVersion is no longer served.
    const Value* code = object->find("code");
    int64_t c = code && code->type() == Value::Type::kInt ? code->asInt() : 0;
    const Value* m = object->find("message");
    std::string message = m && m->isString() ? m->asString() : "";
    if (c == 410) {
      latestNeeded_ = true;
      ++stats_.relistsGone;
      update.diagnostics.push_back(
          {Diagnostic::Severity::kWarning, "", 0,
           what + ": ERROR 410 (" + message + "); listing the latest state again"});
      return Next::kRelistLatest;
    }
    update.diagnostics.push_back({Diagnostic::Severity::kWarning, "", 0,
                                  what + ": ERROR " + std::to_string(c) + " (" + message + ")"});
    return c == 429 || c >= 500 ? Next::kBackoffWatch : Next::kBackoffRelist;
  }
  std::string rv = stringAt(object, "metadata", "resourceVersion");
  if (t == "BOOKMARK") {
    if (!rv.empty()) resourceVersion_ = rv;
    return std::nullopt;
  }
  if (t != "ADDED" && t != "MODIFIED" && t != "DELETED") {
    return skip("unknown event type \"" + t + "\"");
  }
  if (observer_) observer_(t, *object);
  Decoded d = decoder_.decodeObject(*object);
  if (!rv.empty()) resourceVersion_ = rv;
  if (t == "DELETED") {
    if (!d.key) return skip(d.message.empty() ? "DELETED object without a name" : d.message);
    if (auto it = objects_.find(*d.key); it != objects_.end()) {
      int64_t trigger = triggerTime(d.outcome == Decoded::Outcome::kOk ? d.object : it->second);
      update.events.push_back({ObjectEvent::Type::kDelete, *d.key, {}, trigger});
      objects_.erase(it);
    }
    return std::nullopt;
  }
  switch (d.outcome) {
    case Decoded::Outcome::kOk: {
      auto it = objects_.find(*d.key);
      if (it != objects_.end() && sameObject(it->second, d.object)) break;
      update.events.push_back(
          {ObjectEvent::Type::kUpsert, *d.key, d.object, triggerTime(d.object)});
      objects_[*d.key] = std::move(d.object);
      break;
    }
    case Decoded::Outcome::kIgnored:
      update.diagnostics.push_back({Diagnostic::Severity::kIgnored, "", 0, d.message});
      // Changed into something Capstan does not use (another proxy's label, an Opaque type):
      // for Capstan it is gone.
      if (d.key && objects_.erase(*d.key)) {
        update.events.push_back({ObjectEvent::Type::kDelete, *d.key, {}, 0});
      }
      break;
    case Decoded::Outcome::kInvalid:
      if (d.key && objects_.count(*d.key)) d.message += " (keeping its last good version)";
      update.diagnostics.push_back({Diagnostic::Severity::kError, "", 0, d.message});
      break;
  }
  return std::nullopt;
}

asio::awaitable<Reflector::Next> Reflector::watch() {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  auto timeout = std::chrono::seconds(
      static_cast<int64_t>(double(options_.minWatchTimeout.count()) * (1.0 + unit(random_))));
  std::string target = spec_.path + query(true) +
                       "&timeoutSeconds=" + std::to_string(std::max<int64_t>(timeout.count(), 1));
  ++stats_.watches;
  auto start = std::chrono::steady_clock::now();
  size_t lines = 0;
  std::optional<Next> ended;
  LineHandler onLine = [&](std::string_view line) -> Status {
    ++lines;
    if (onContact_) onContact_(true);
    ReflectorUpdate update;
    update.kind = spec_.kind;
    ended = handleWatchLine(line, update);
    if (!update.events.empty() || !update.diagnostics.empty()) sink_(std::move(update));
    if (ended || stopped_) return Error("watch ended by an ERROR event");
    return okStatus();
  };
  auto response = co_await client_.stream(std::move(target), std::move(onLine),
                                          timeout + options_.watchGrace, [&] {
                                            if (onContact_) onContact_(true);
                                          });
  if (stopped_) co_return Next::kStop;
  if (ended) co_return *ended;
  if (!response.ok() || response->status != 200) {
    std::vector<Diagnostic> diagnostics;
    Failure f = classify(response, true, diagnostics);
    pendingRetryAfter_ = f.retryAfter;
    report(std::move(diagnostics));
    co_return f.next;
  }
  if (!response->streamError.empty()) {
    report({{Diagnostic::Severity::kWarning, "", 0,
             std::string(toString(spec_.kind)) + " watch: " + response->streamError +
                 "; resuming from resourceVersion " + resourceVersion_}});
  }
  // client-go: a watch that closes within a second without an event ("very short watch") is
  // retried after a backoff, so a server that accepts and drops at once is not hammered.
  if (lines == 0 && std::chrono::steady_clock::now() - start < 1s) co_return Next::kBackoffWatch;
  co_return Next::kWatch;
}

}  // namespace capstan::control::kube
