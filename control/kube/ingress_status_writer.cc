#include "control/kube/ingress_status_writer.h"

#include <algorithm>
#include <boost/asio.hpp>

#include "control/document_reader.h"
#include "control/json_text.h"
#include "control/kube/api_access.h"

namespace capstan::control::kube {

namespace asio = boost::asio;

namespace {

const std::string* stringIn(const Value* object, std::string_view key) {
  const Value* v = object ? object->find(key) : nullptr;
  return v && v->isString() ? &v->asString() : nullptr;
}

std::optional<NamespacedName> nameOf(const Value& object) {
  const Value* meta = object.find("metadata");
  const std::string* ns = stringIn(meta, "namespace");
  const std::string* name = stringIn(meta, "name");
  if (!name || name->empty()) return std::nullopt;
  return NamespacedName{ns ? *ns : std::string("default"), *name};
}

void sortUnique(std::vector<LoadBalancerIngress>& list) {
  std::sort(list.begin(), list.end());
  list.erase(std::unique(list.begin(), list.end()), list.end());
}

uint64_t seedOf(uint64_t seed) {
  return seed ? seed : (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
}

}  // namespace

LoadBalancerIngress loadBalancerIngressOf(std::string_view address) {
  if (IpAddress::parse(address)) return {std::string(address), ""};
  return {"", std::string(address)};
}

std::vector<LoadBalancerIngress> loadBalancerStatusOf(const Value& ingress) {
  std::vector<LoadBalancerIngress> out;
  const Value* status = ingress.find("status");
  const Value* lb = status ? status->find("loadBalancer") : nullptr;
  const Value* list = lb ? lb->find("ingress") : nullptr;
  if (!list || !list->isArray()) return out;
  for (const Value& entry : list->asArray()) {
    LoadBalancerIngress e;
    if (const std::string* ip = stringIn(&entry, "ip")) e.ip = *ip;
    if (const std::string* host = stringIn(&entry, "hostname")) e.hostname = *host;
    if (!e.ip.empty() || !e.hostname.empty()) out.push_back(std::move(e));
  }
  sortUnique(out);
  return out;
}

std::optional<std::string> nodeStatusAddress(const Value& node) {
  const Value* status = node.find("status");
  const Value* addresses = status ? status->find("addresses") : nullptr;
  if (!addresses || !addresses->isArray()) return std::nullopt;
  // ingress-nginx (internal/k8s/main.go GetNodeIPOrName): ExternalIP wins over InternalIP.
  for (std::string_view wanted : {"ExternalIP", "InternalIP"}) {
    for (const Value& a : addresses->asArray()) {
      const std::string* type = stringIn(&a, "type");
      const std::string* address = stringIn(&a, "address");
      if (type && *type == wanted && address && IpAddress::parse(*address)) return *address;
    }
  }
  return std::nullopt;
}

std::string loadBalancerStatusPatch(const std::vector<LoadBalancerIngress>& ingress) {
  // A JSON merge patch (RFC 7386) replaces an array whole: the list is exactly this one.
  std::string out = R"({"status":{"loadBalancer":{"ingress":[)";
  for (size_t i = 0; i < ingress.size(); ++i) {
    if (i) out += ',';
    out += ingress[i].ip.empty() ? R"({"hostname":)" : R"({"ip":)";
    appendJsonString(out, ingress[i].ip.empty() ? ingress[i].hostname : ingress[i].ip);
    out += '}';
  }
  out += "]}}}";
  return out;
}

std::optional<std::vector<LoadBalancerIngress>> wantedLoadBalancerStatus(
    const IngressStatusOptions& options, const std::vector<LoadBalancerIngress>& current,
    const std::optional<std::string>& nodeAddress) {
  std::vector<LoadBalancerIngress> wanted;
  if (!options.addresses.empty()) {
    for (const std::string& a : options.addresses) wanted.push_back(loadBalancerIngressOf(a));
  } else if (options.fromNode && nodeAddress) {
    wanted = current;
    wanted.push_back(loadBalancerIngressOf(*nodeAddress));
  } else {
    return std::nullopt;
  }
  sortUnique(wanted);
  return wanted;
}

IngressStatusWriter::IngressStatusWriter(asio::io_context& io, ApiClient& client,
                                         Reflector& ingresses, Reflector& classes, Reflector* nodes,
                                         IngressStatusOptions options, Report report)
    : client_(client),
      ingresses_(ingresses),
      classes_(classes),
      nodes_(nodes),
      options_(std::move(options)),
      report_(std::move(report)),
      backoff_(options_.backoffInitial, options_.backoffMax, options_.backoffReset,
               seedOf(options_.seed)),
      wake_(io),
      retry_(io) {
  ingresses_.observeObjects([this](std::string_view type, const Value& object) {
    auto name = nameOf(object);
    if (!name) return;
    if (type == "DELETED") {
      status_.erase(*name);
      gone_.erase(*name);
      return;
    }
    // A change of the status alone is no change to the decoded Ingress, and the reflector
    // reports none: this is where a status someone else wrote is noticed.
    auto status = loadBalancerStatusOf(object);
    bool wasGone = gone_.erase(*name) > 0;
    auto [it, added] = status_.try_emplace(*name, status);
    if (added || wasGone || it->second != status) {
      it->second = std::move(status);
      changed();
    }
  });
  if (nodes_) {
    nodes_->observeObjects([this](std::string_view type, const Value& object) {
      auto address = type == "DELETED" ? std::nullopt : nodeStatusAddress(object);
      if (address != nodeAddress_) {
        nodeAddress_ = std::move(address);
        changed();
      }
    });
  }
}

void IngressStatusWriter::changed() {
  pending_ = true;
  wake_.cancel();
}

void IngressStatusWriter::stop() {
  stopped_ = true;
  wake_.cancel();
  retry_.cancel();
}

bool IngressStatusWriter::ready() const {
  // A partial view could judge an Ingress's class wrongly (its default IngressClass not seen yet).
  return ingresses_.stats().lists > 0 && classes_.stats().lists > 0 &&
         (!nodes_ || nodes_->stats().lists > 0);
}

asio::awaitable<void> IngressStatusWriter::run() {
  while (!stopped_) {
    boost::system::error_code ec;
    if (!pending_ || !ready()) {
      wake_.expires_at(asio::steady_timer::time_point::max());
      co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    } else {
      pending_ = false;
      bool ok = co_await writeDifferences();
      if (!ok && !stopped_) {
        // Everything not yet written is looked at again after the wait.
        pending_ = true;
        std::chrono::nanoseconds d = backoff_.next(Backoff::Clock::now());
        if (auto after = std::exchange(retryAfter_, std::nullopt)) {
          d = std::max<std::chrono::nanoseconds>(
              d, std::min<std::chrono::nanoseconds>(*after, options_.maxRetryAfter));
        }
        retry_.expires_after(d);
        co_await retry_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
    }
  }
}

asio::awaitable<bool> IngressStatusWriter::writeDifferences() {
  std::vector<IngressClass> classes;
  for (const auto& [key, object] : classes_.objects()) {
    classes.push_back(*std::get<std::shared_ptr<const IngressClass>>(object));
  }
  // What to write, decided before the first co_await: the reflectors change their maps while a
  // patch is on its way (and call changed(), so a later pass sees those changes).
  std::vector<std::pair<NamespacedName, std::vector<LoadBalancerIngress>>> writes;
  for (const auto& [key, object] : ingresses_.objects()) {
    const Ingress& ingress = *std::get<std::shared_ptr<const Ingress>>(object);
    if (!servesIngress(ingress, classes, options_.classSelector)) continue;
    auto current = status_.find(key.name);
    if (current == status_.end() || gone_.count(key.name)) continue;
    auto wanted = wantedLoadBalancerStatus(options_, current->second, nodeAddress_);
    if (wanted && *wanted != current->second) writes.emplace_back(key.name, std::move(*wanted));
  }
  bool allWritten = true;
  for (auto& [name, wanted] : writes) {
    if (stopped_) break;
    std::string target = apiWritePath(kIngressStatusWrite, name.ns, name.name);
    ++stats_.patches;
    auto response = co_await client_.patch(target, "application/merge-patch+json",
                                           loadBalancerStatusPatch(wanted));
    if (response.ok() && response->status == 200) {
      ++stats_.written;
      // The answer is the patched object; until its watch event arrives, it is what the Ingress
      // has, so a pass before then does not write it again.
      std::vector<LoadBalancerIngress> now = wanted;
      (void)readJsonDocuments(response->body, [&](Value v, size_t) -> Status {
        if (v.isObject()) now = loadBalancerStatusOf(v);
        return okStatus();
      });
      if (status_.count(name)) status_[name] = std::move(now);
    } else if (response.ok() && response->status == 404) {
      // Deleted since its last event; its DELETED event is on its way.
      ++stats_.notFound;
      gone_.insert(name);
    } else {
      // The others are still written; this one again after the backoff.
      ++stats_.failures;
      allWritten = false;
      std::string why =
          response.ok() ? "HTTP " + std::to_string(response->status) : response.error().message();
      if (response.ok() && response->retryAfter) retryAfter_ = response->retryAfter;
      if (report_) {
        report_({Diagnostic::Severity::kWarning, "", 0,
                 "Ingress " + name.ns + "/" + name.name + ": writing status.loadBalancer (" +
                     kIngressStatusWrite.verb + " " + target + "): " + why + " (retrying)"});
      }
    }
  }
  co_return allWritten;
}

}  // namespace capstan::control::kube
