#include "control/status_server.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <charconv>

#include "model/ip.h"

namespace capstan::control {

namespace asio = boost::asio;
namespace beast = boost::beast;
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

struct Listener {
  tcp::acceptor acceptor;
  std::shared_ptr<const HttpRequestHandler> handler;
};

}  // namespace

struct StatusServer::Impl {
  asio::io_context io{1};
  std::vector<std::unique_ptr<Listener>> listeners;

  void accept(Listener& l) {
    l.acceptor.async_accept([this, &l](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) serveHttpConnection(std::move(socket), l.handler);
      accept(l);
    });
  }
};

StatusServer::StatusServer() : impl_(std::make_unique<Impl>()) {}

StatusServer::~StatusServer() { stop(); }

Result<tcp::endpoint> parseListenEndpoint(const std::string& text) {
  auto hp = parseHostPort(text);
  if (!hp.ok()) return hp.error();
  beast::error_code ec;
  asio::ip::address ip = hp->host.empty() ? asio::ip::address(asio::ip::address_v4::any())
                                          : asio::ip::make_address(hp->host, ec);
  if (ec) return Error("invalid address " + text + ": " + ec.message());
  return tcp::endpoint(ip, hp->port);
}

Result<uint16_t> StatusServer::listen(const std::string& address, HttpRoutes routes) {
  auto endpoint = parseListenEndpoint(address);
  if (!endpoint.ok()) return endpoint.error();
  auto acceptor = listenTcp(impl_->io, *endpoint, address);
  if (!acceptor.ok()) return acceptor.error();
  auto handler = std::make_shared<const HttpRequestHandler>(
      [routes = std::move(routes)](const HttpRequestInfo& request) -> std::optional<HttpResponse> {
        if (auto it = routes.find(std::string(request.path)); it != routes.end()) {
          return it->second();
        }
        return HttpResponse{404, "text/plain; charset=utf-8", "404 page not found\n"};
      });
  auto listener =
      std::make_unique<Listener>(Listener{std::move(acceptor).value(), std::move(handler)});
  tcp::acceptor& a = listener->acceptor;
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
