#include "control/http_session.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>

namespace capstan::control {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kTimeout = std::chrono::seconds(10);
constexpr size_t kMaxRequestBytes = 16 * 1024;

asio::ip::address unmapped(const asio::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  }
  return a;
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<const HttpRequestHandler> handler)
      : stream_(std::move(socket)), handler_(std::move(handler)) {
    beast::error_code ec;
    local_ = unmapped(stream_.socket().local_endpoint(ec).address());
  }

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
    std::optional<HttpResponse> r;
    std::string_view target(request.target().data(), request.target().size());
    target = target.substr(0, target.find('?'));
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
      r = HttpResponse{405, "text/plain; charset=utf-8", "method not allowed\n"};
    } else {
      r = (*handler_)(HttpRequestInfo{target, local_});
      if (!r) return close();
    }
    auto response = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(r->status), request.version());
    response->set(http::field::server, "capstan");
    response->set(http::field::content_type, r->contentType);
    response->set("X-Content-Type-Options", "nosniff");
    for (const auto& [name, value] : r->headers) response->set(name, value);
    response->keep_alive(request.keep_alive());
    bool head = request.method() == http::verb::head;
    response->body() = std::move(r->body);
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
  std::shared_ptr<const HttpRequestHandler> handler_;
  asio::ip::address local_;
};

}  // namespace

void serveHttpConnection(tcp::socket socket, std::shared_ptr<const HttpRequestHandler> handler) {
  std::make_shared<Session>(std::move(socket), std::move(handler))->start();
}

Result<tcp::acceptor> listenTcp(asio::io_context& io, const tcp::endpoint& endpoint,
                                const std::string& what) {
  tcp::acceptor a(io);
  beast::error_code ec;
  auto fail = [&] { return Error("cannot listen on " + what + ": " + ec.message()); };
  if (a.open(endpoint.protocol(), ec); ec) return fail();
  if (endpoint.address().is_v6() && endpoint.address().is_unspecified()) {
    a.set_option(asio::ip::v6_only(false), ec);  // best effort: IPv4 may be disabled
    ec.clear();
  }
  a.set_option(asio::socket_base::reuse_address(true), ec);
  if (a.bind(endpoint, ec); ec) return fail();
  if (a.listen(asio::socket_base::max_listen_connections, ec); ec) return fail();
  return a;
}

}  // namespace capstan::control
