#include "control/status_server.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>

#include "model/ip.h"

namespace capstan::control {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

Result<HostPort> parseHostPort(const std::string& text) {
  HostPort out;
  std::string_view s = text;
  std::string_view portText;
  if (s.starts_with("[")) {
    size_t close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return Error("invalid address " + text + " (want [IPv6]:port)");
    }
    out.host = std::string(s.substr(1, close - 1));
    portText = s.substr(close + 2);
  } else {
    size_t colon = s.rfind(':');
    if (colon == std::string_view::npos)
      return Error("invalid address " + text + " (want IP:port)");
    out.host = std::string(s.substr(0, colon));
    portText = s.substr(colon + 1);
  }
  if (!out.host.empty() && !IpAddress::parse(out.host)) {
    return Error("invalid address " + text + ": " + out.host + " is not an IP address");
  }
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(portText.data(), portText.data() + portText.size(), port);
  if (portText.empty() || ec != std::errc() || ptr != portText.data() + portText.size() ||
      port > 65535) {
    return Error("invalid address " + text + ": bad port");
  }
  out.port = static_cast<uint16_t>(port);
  return out;
}

namespace {

constexpr auto kTimeout = std::chrono::seconds(10);
constexpr size_t kMaxRequestBytes = 16 * 1024;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const HttpRoutes& routes)
      : stream_(std::move(socket)), routes_(routes) {}

  void start() { read(); }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(kMaxRequestBytes);
    parser_->body_limit(kMaxRequestBytes);
    stream_.expires_after(kTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) return self->close();
                       self->respond(self->parser_->release());
                     });
  }

  void respond(http::request<http::string_body> request) {
    HttpResponse r;
    std::string_view target(request.target().data(), request.target().size());
    target = target.substr(0, target.find('?'));
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
      r = {405, "text/plain; charset=utf-8", "method not allowed\n"};
    } else if (auto it = routes_.find(std::string(target)); it != routes_.end()) {
      r = it->second();
    } else {
      r = {404, "text/plain; charset=utf-8", "404 page not found\n"};
    }
    auto response = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(r.status), request.version());
    response->set(http::field::server, "capstan");
    response->set(http::field::content_type, r.contentType);
    response->set("X-Content-Type-Options", "nosniff");
    response->keep_alive(request.keep_alive());
    bool head = request.method() == http::verb::head;
    response->body() = std::move(r.body);
    response->prepare_payload();
    if (head) response->body().clear();
    stream_.expires_after(kTimeout);
    http::async_write(stream_, *response,
                      [self = shared_from_this(), response](beast::error_code ec, size_t) {
                        if (ec || !response->keep_alive()) return self->close();
                        self->read();
                      });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  const HttpRoutes& routes_;
};

struct Listener {
  tcp::acceptor acceptor;
  HttpRoutes routes;
};

}  // namespace

struct StatusServer::Impl {
  asio::io_context io{1};
  std::vector<std::unique_ptr<Listener>> listeners;

  void accept(Listener& l) {
    l.acceptor.async_accept([this, &l](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) std::make_shared<Session>(std::move(socket), l.routes)->start();
      accept(l);
    });
  }
};

StatusServer::StatusServer() : impl_(std::make_unique<Impl>()) {}

StatusServer::~StatusServer() { stop(); }

Result<uint16_t> StatusServer::listen(const std::string& address, HttpRoutes routes) {
  auto hp = parseHostPort(address);
  if (!hp.ok()) return hp.error();
  beast::error_code ec;
  asio::ip::address ip = hp->host.empty() ? asio::ip::address(asio::ip::address_v4::any())
                                          : asio::ip::make_address(hp->host, ec);
  if (ec) return Error("invalid address " + address + ": " + ec.message());
  tcp::endpoint endpoint(ip, hp->port);
  auto listener = std::make_unique<Listener>(Listener{tcp::acceptor(impl_->io), std::move(routes)});
  tcp::acceptor& a = listener->acceptor;
  if (a.open(endpoint.protocol(), ec); ec)
    return Error("cannot listen on " + address + ": " + ec.message());
  a.set_option(asio::socket_base::reuse_address(true), ec);
  if (a.bind(endpoint, ec); ec) return Error("cannot listen on " + address + ": " + ec.message());
  if (a.listen(asio::socket_base::max_listen_connections, ec); ec) {
    return Error("cannot listen on " + address + ": " + ec.message());
  }
  uint16_t port = a.local_endpoint().port();
  impl_->accept(*listener);
  impl_->listeners.push_back(std::move(listener));
  return port;
}

void StatusServer::start() {
  thread_ = std::thread([this] { impl_->io.run(); });
}

void StatusServer::stop() {
  if (!impl_) return;
  impl_->io.stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace capstan::control
