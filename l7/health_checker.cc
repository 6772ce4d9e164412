#include "l7/health_checker.h"

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <utility>  // before Asio: boost/asio/awaitable.hpp (1.74) uses std::exchange

namespace capstan::l7 {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using asio::awaitable;
using boost::system::error_code;

std::vector<HealthTarget> healthTargets(const RouteTable& table) {
  std::vector<HealthTarget> out;
  for (const Backend& backend : table.backends()) {
    if (backend.healthCheck == nullptr) continue;
    for (const auto* list : {&backend.endpoints, &backend.down}) {
      for (const RouteEndpoint& endpoint : *list) {
        out.push_back({backend.servicePort, endpoint, *backend.healthCheck});
      }
    }
  }
  return out;
}

namespace {

// The status code of an HTTP/1.x status line at the start of `head`; 0 if there is none.
int statusOf(std::string_view head) {
  if (head.size() < 12 || !head.starts_with("HTTP/1.") || head[8] != ' ') return 0;
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (head[i] < '0' || head[i] > '9') return 0;
    status = status * 10 + (head[i] - '0');
  }
  return status;
}

}  // namespace

struct HealthChecker::Impl {
  // One endpoint's checks; lives as long as its loop or the map holds it.
  struct Check {
    Check(asio::io_context& io, HealthTarget t) : target(std::move(t)), timer(io) {}
    HealthTarget target;
    asio::steady_timer timer;
    bool stopped = false;
    bool down = false;
    uint32_t successes = 0;
    uint32_t failures = 0;
  };

  // One probe's socket and deadline, shared with the deadline's handler, which may run after
  // the probe finished.
  struct Probe {
    explicit Probe(asio::io_context& io) : socket(io), deadline(io) {}
    tcp::socket socket;
    asio::steady_timer deadline;
  };

  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  std::function<void()> changed;
  std::map<std::string, std::shared_ptr<Check>> checks;  // by target key; io thread only
  std::mt19937_64 random{std::random_device{}()};        // io thread only
  mutable std::mutex mutex;
  HealthReport report;  // guarded by mutex
  std::atomic<uint64_t> checksDone{0};
  std::atomic<uint64_t> checksFailed{0};
  std::atomic<uint64_t> targets{0};
  std::atomic<uint64_t> down{0};
  std::thread thread;

  // One check: a new connection, `GET path`, the status line. True for 2xx and 3xx.
  awaitable<bool> probe(const HealthTarget& target) {
    auto p = std::make_shared<Probe>(io);
    p->deadline.expires_after(target.policy.timeout);
    p->deadline.async_wait([p](error_code e) {
      error_code ignored;
      if (!e) p->socket.close(ignored);
    });
    error_code ec;
    const tcp::endpoint endpoint(asio::ip::make_address(target.endpoint.ip.toString(), ec),
                                 target.endpoint.port);
    bool ok = false;
    if (!ec) {
      co_await p->socket.async_connect(endpoint, asio::redirect_error(asio::use_awaitable, ec));
    }
    if (!ec) {
      const std::string request =
          "GET " + target.policy.path + " HTTP/1.1\r\nHost: " +
          (target.policy.host.empty() ? target.endpoint.toString() : target.policy.host) +
          "\r\nUser-Agent: capstan-health-check\r\nConnection: close\r\n\r\n";
      co_await asio::async_write(p->socket, asio::buffer(request),
                                 asio::redirect_error(asio::use_awaitable, ec));
    }
    std::string head;
    char data[512];
    for (int reads = 0; !ec && reads < 64 && head.size() < 12; ++reads) {
      const size_t n = co_await p->socket.async_read_some(
          asio::buffer(data), asio::redirect_error(asio::use_awaitable, ec));
      head.append(data, n);
    }
    const int status = statusOf(head);
    ok = status >= 200 && status < 400;
    p->deadline.cancel();
    p->socket.close(ec);
    co_return ok;
  }

  awaitable<void> loop(std::shared_ptr<Check> check) {
    // The first check at a random point of the first interval, so that many endpoints (and many
    // nodes) do not check in step.
    std::uniform_int_distribution<int64_t> offset(0, check->target.policy.interval.count());
    std::chrono::milliseconds wait(offset(random));
    for (uint64_t round = 0; round < UINT64_MAX; ++round) {
      error_code ec;
      check->timer.expires_after(wait);
      co_await check->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (check->stopped) break;
      const bool ok = co_await probe(check->target);
      if (check->stopped) break;
      record(*check, ok);
      wait = check->target.policy.interval;
    }
  }

  void record(Check& check, bool ok) {
    checksDone.fetch_add(1, std::memory_order_relaxed);
    bool flipped = false;
    if (ok) {
      ++check.successes;
      check.failures = 0;
      flipped = check.down && check.successes >= check.target.policy.healthyThreshold;
    } else {
      checksFailed.fetch_add(1, std::memory_order_relaxed);
      ++check.failures;
      check.successes = 0;
      flipped = !check.down && check.failures >= check.target.policy.unhealthyThreshold;
    }
    if (!flipped) return;
    check.down = !check.down;
    publish();
  }

  // The down set from `checks` into `report`; tells the owner.
  void publish() {
    HealthReport fresh;
    for (const auto& [key, check] : checks) {
      if (check->down) fresh.down.insert(key);
    }
    down = fresh.down.size();
    {
      std::lock_guard lock(mutex);
      if (fresh.down == report.down) return;
      report = std::move(fresh);
    }
    if (changed) changed();
  }

  void setTargets(std::vector<HealthTarget> wanted) {
    std::map<std::string, std::shared_ptr<Check>> next;
    for (HealthTarget& target : wanted) {
      std::string key = target.key();
      auto it = checks.find(key);
      if (it != checks.end() && it->second->target.policy == target.policy) {
        next.emplace(std::move(key), std::move(it->second));
        checks.erase(it);
        continue;
      }
      auto check = std::make_shared<Check>(io, std::move(target));
      asio::co_spawn(io, loop(check), asio::detached);
      next.emplace(std::move(key), std::move(check));
    }
    for (auto& [key, check] : checks) {  // no longer wanted
      check->stopped = true;
      check->timer.cancel();
    }
    checks = std::move(next);
    targets = checks.size();
    publish();
  }
};

HealthChecker::HealthChecker(std::function<void()> changed) : impl_(std::make_unique<Impl>()) {
  impl_->changed = std::move(changed);
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
}

HealthChecker::~HealthChecker() {
  impl_->io.stop();
  impl_->thread.join();
  impl_->checks.clear();
}

void HealthChecker::setTargets(std::vector<HealthTarget> targets) {
  asio::post(impl_->io, [impl = impl_.get(), targets = std::move(targets)]() mutable {
    impl->setTargets(std::move(targets));
  });
}

HealthReport HealthChecker::report() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->report;
}

HealthChecker::Stats HealthChecker::stats() const {
  return {impl_->checksDone.load(), impl_->checksFailed.load(), impl_->targets.load(),
          impl_->down.load()};
}

}  // namespace capstan::l7
