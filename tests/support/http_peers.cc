#include "tests/support/http_peers.h"

#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <list>
#include <mutex>
#include <set>
#include <thread>
#include <utility>  // before Asio (Boost 1.74's awaitable.hpp uses std::exchange)

namespace capstan::support {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

struct HttpUpstream::Impl {
  std::string name;
  std::string address;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  uint16_t port = 0;
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> connections{0};
  std::mutex mutex;
  std::set<int> open;  // fds of live connections
  std::list<std::thread> threads;
  std::thread acceptThread;

  void acceptLoop() {
    while (!stopping) {
      boost::system::error_code ec;
      tcp::socket socket(io);
      acceptor.accept(socket, ec);
      if (ec || stopping) break;
      ++connections;
      std::lock_guard lock(mutex);
      open.insert(socket.native_handle());
      threads.emplace_back([this, s = std::move(socket)]() mutable { serve(std::move(s)); });
    }
  }

  std::string describe(const http::request<http::string_body>& request) const {
    std::string out = "upstream: " + name + "\n";
    out += "method: " + std::string(request.method_string()) + "\n";
    out += "target: " + std::string(request.target()) + "\n";
    out += "body-bytes: " + std::to_string(request.body().size()) + "\n";
    for (const auto& field : request) {
      std::string fieldName(field.name_string());
      for (char& c : fieldName) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out += "header: " + fieldName + ": " + std::string(field.value()) + "\n";
    }
    return out;
  }

  void serve(tcp::socket socket) {
    const int fd = socket.native_handle();
    boost::beast::flat_buffer buffer;
    boost::system::error_code ec;
    for (int served = 0; served < 100000 && !stopping; ++served) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(64u << 20);
      http::read(socket, buffer, parser, ec);
      if (ec) break;
      http::request<http::string_body> request = parser.release();
      ++requests;
      std::string target(request.target());
      std::string body = describe(request);
      if (target.starts_with("/sleep/")) {
        std::this_thread::sleep_for(std::chrono::milliseconds(std::stoi(target.substr(7))));
      }
      if (target == "/websocket") {
        asio::write(
            socket,
            asio::buffer(std::string("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                     "Connection: Upgrade\r\n\r\n")),
            ec);
        // Bytes the client sent after its head are already in `buffer`.
        if (buffer.size() > 0) {
          asio::write(socket, buffer.data(), ec);
          buffer.consume(buffer.size());
        }
        char data[4096];
        for (int i = 0; i < 100000 && !ec; ++i) {
          size_t n = socket.read_some(asio::buffer(data), ec);
          if (ec) break;
          asio::write(socket, asio::buffer(data, n), ec);
        }
        break;
      }
      if (target == "/die-before-head") break;  // closes without a byte of answer
      if (target.starts_with("/die-mid-body/")) {
        // Promises N bytes, sends half of them, and resets the connection.
        const size_t n = std::stoull(target.substr(14));
        asio::write(socket,
                    asio::buffer("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(n) +
                                 "\r\n\r\n" + std::string(n / 2, 'x')),
                    ec);
        socket.set_option(asio::socket_base::linger(true, 0), ec);
        break;
      }
      if (target == "/until-close") {
        asio::write(socket,
                    asio::buffer("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body), ec);
        break;
      }
      if (target == "/chunked") {
        std::string raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        size_t third = body.size() / 3;
        for (std::string piece :
             {body.substr(0, third), body.substr(third, third), body.substr(2 * third)}) {
          char size[32];
          std::snprintf(size, sizeof(size), "%zx\r\n", piece.size());
          raw += size + piece + "\r\n";
        }
        raw += "0\r\n\r\n";
        asio::write(socket, asio::buffer(raw), ec);
        if (ec || !request.keep_alive()) break;
        continue;
      }
      http::response<http::string_body> response;
      response.version(11);
      response.result(http::status::ok);
      response.set(http::field::content_type, "text/plain");
      if (target.starts_with("/status/")) {
        response.result(static_cast<unsigned>(std::stoi(target.substr(8))));
      }
      if (target == "/echo") body = request.body();
      if (target.starts_with("/big/")) body.assign(std::stoull(target.substr(5)), 'x');
      response.body() = std::move(body);
      const bool close = target == "/close" || !request.keep_alive();
      response.keep_alive(!close);
      response.prepare_payload();
      http::write(socket, response, ec);
      if (ec || close) break;
    }
    std::lock_guard lock(mutex);
    open.erase(fd);
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }
};

HttpUpstream::HttpUpstream(std::string name, std::string address, uint16_t port)
    : impl_(std::make_unique<Impl>()) {
  impl_->name = std::move(name);
  impl_->address = std::move(address);
  tcp::endpoint endpoint(asio::ip::make_address(impl_->address), port);
  impl_->acceptor.open(endpoint.protocol());
  impl_->acceptor.set_option(asio::socket_base::reuse_address(true));
  impl_->acceptor.bind(endpoint);
  impl_->acceptor.listen();
  impl_->port = impl_->acceptor.local_endpoint().port();
  impl_->acceptThread = std::thread([impl = impl_.get()] { impl->acceptLoop(); });
}

HttpUpstream::~HttpUpstream() {
  impl_->stopping = true;
  ::shutdown(impl_->acceptor.native_handle(), SHUT_RDWR);  // wakes the blocked accept()
  impl_->acceptThread.join();
  closeConnections();
  std::list<std::thread> threads;
  {
    std::lock_guard lock(impl_->mutex);
    threads.swap(impl_->threads);
  }
  for (std::thread& t : threads) t.join();
}

uint16_t HttpUpstream::port() const { return impl_->port; }
const std::string& HttpUpstream::address() const { return impl_->address; }
uint64_t HttpUpstream::requests() const { return impl_->requests; }
uint64_t HttpUpstream::connections() const { return impl_->connections; }

void HttpUpstream::closeConnections() {
  std::lock_guard lock(impl_->mutex);
  for (int fd : impl_->open) ::shutdown(fd, SHUT_RDWR);
}

HttpClient::HttpClient(uint16_t port, std::chrono::milliseconds timeout) : timeout_(timeout) {
  boost::system::error_code ec;
  socket_.async_connect(tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), port),
                        [&](boost::system::error_code e) { ec = e; });
  io_.run_for(timeout_);
  if (!io_.stopped() || ec) socket_.close(ec);
  io_.restart();
}

bool HttpClient::send(const std::string& raw) {
  if (!socket_.is_open()) return false;
  boost::system::error_code ec = asio::error::timed_out;
  asio::async_write(socket_, asio::buffer(raw),
                    [&](boost::system::error_code e, size_t) { ec = e; });
  io_.run_for(timeout_);
  io_.restart();
  if (ec) socket_.close(ec);
  return socket_.is_open();
}

std::optional<HttpClient::Response> HttpClient::read(bool headRequest) {
  if (!socket_.is_open()) return std::nullopt;
  http::response_parser<http::string_body> parser;
  parser.body_limit(256u << 20);
  parser.skip(headRequest);
  boost::system::error_code ec = asio::error::timed_out;
  http::async_read(socket_, buffer_, parser, [&](boost::system::error_code e, size_t) { ec = e; });
  io_.run_for(timeout_);
  io_.restart();
  if (ec) {
    socket_.close(ec);
    return std::nullopt;
  }
  return parser.release();
}

std::optional<HttpClient::Response> HttpClient::request(const std::string& raw) {
  if (!send(raw)) return std::nullopt;
  return read(raw.starts_with("HEAD "));
}

bool HttpClient::closedByPeer() {
  if (!socket_.is_open()) return true;
  buffer_.consume(buffer_.size());
  char data[4096];
  boost::system::error_code ec = asio::error::timed_out;
  std::function<void()> readMore;
  readMore = [&] {
    socket_.async_read_some(asio::buffer(data), [&](boost::system::error_code e, size_t) {
      ec = e;
      if (!e) readMore();
    });
  };
  readMore();
  io_.run_for(timeout_);
  io_.restart();
  const bool closed = ec == asio::error::eof || ec == asio::error::connection_reset;
  socket_.close(ec);
  return closed;
}

std::vector<std::unique_ptr<HttpUpstream>> upstreamsOnOnePort(const std::vector<std::string>& names,
                                                              int firstHost) {
  std::vector<std::unique_ptr<HttpUpstream>> out;
  for (size_t i = 0; i < names.size(); ++i) {
    out.push_back(std::make_unique<HttpUpstream>(
        names[i], "127.0.0." + std::to_string(firstHost + static_cast<int>(i)),
        i == 0 ? 0 : out[0]->port()));
  }
  return out;
}

std::string getRequest(const std::string& host, const std::string& target,
                       const std::string& extraHeaders) {
  return "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + extraHeaders + "\r\n";
}

}  // namespace capstan::support
