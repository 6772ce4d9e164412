// LoadClients: keep-alive HTTP load from several client threads, for tests that change or break
// things under a proxy while requests flow and then count what failed. Each answer is attributed
// to the upstream named on the first line of its body (HttpUpstream's "upstream: <name>").
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/http_peers.h"

namespace capstan::support {

// Clients that send keep-alive GETs to one host in a loop from their own threads until stopped
// (or for at most 20 s / 200,000 requests each), counting answers by the upstream that gave them
// and every failure: no response, or a status other than 200.
class LoadClients {
 public:
  LoadClients(uint16_t port, std::string host, int clients) {
    for (int i = 0; i < clients; ++i) {
      threads_.emplace_back([this, port, host] { run(port, host); });
    }
  }
  ~LoadClients() { stop(); }

  void stop() {
    stopping_ = true;
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  // Blocks until `n` more requests have succeeded (or 10 s passed); false on the timeout.
  bool waitForMore(uint64_t n) {
    const uint64_t target = succeeded_ + n;
    for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
         std::chrono::steady_clock::now() < end;
         std::this_thread::sleep_for(std::chrono::milliseconds(2))) {
      if (succeeded_ >= target) return true;
    }
    return false;
  }
  uint64_t succeeded() const { return succeeded_; }
  uint64_t failed() const { return failed_; }
  std::vector<std::string> failures() const {
    std::lock_guard lock(mutex_);
    return failures_;
  }
  uint64_t answeredBy(const std::string& upstream) const {
    std::lock_guard lock(mutex_);
    auto it = byUpstream_.find(upstream);
    return it == byUpstream_.end() ? 0 : it->second;
  }

 private:
  void run(uint16_t port, const std::string& host) {
    auto client = std::make_unique<HttpClient>(port);
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (int i = 0; i < 200'000 && !stopping_ && std::chrono::steady_clock::now() < end; ++i) {
      auto response = client->request(getRequest(host, "/"));
      std::lock_guard lock(mutex_);
      if (!response || response->result_int() != 200) {
        ++failed_;
        if (failures_.size() < 10) {
          failures_.push_back(response ? response->body() : std::string("(no response)"));
        }
        client = std::make_unique<HttpClient>(port);  // a failure may have closed it
        continue;
      }
      ++succeeded_;
      const std::string& body = response->body();
      const size_t nameEnd = body.find('\n');
      ++byUpstream_[body.substr(0, nameEnd)];
      if (!response->keep_alive()) client = std::make_unique<HttpClient>(port);
    }
  }

  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> succeeded_{0};
  std::atomic<uint64_t> failed_{0};
  mutable std::mutex mutex_;
  std::map<std::string, uint64_t> byUpstream_;  // "upstream: web-1" -> answers
  std::vector<std::string> failures_;           // the first few, for the failure message
  std::vector<std::thread> threads_;
};

}  // namespace capstan::support
