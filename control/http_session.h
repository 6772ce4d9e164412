// The HTTP/1.1 side of Capstan's small probe servers: StatusServer (/healthz, /livez, /metrics)
// and ServiceHealthServer (the per-Service health check node ports). One connection at a time
// per session object, on the server's own io_context.
//
// Boost.Beast, GET and HEAD only, bounded requests and timeouts: ports that monitoring systems
// and load balancers probe must not be a way to hurt the node.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/result.h"

namespace capstan::control {

struct HttpResponse {
  int status = 200;
  std::string contentType = "text/plain; charset=utf-8";
  std::string body;
  // Sent after Server, Content-Type and X-Content-Type-Options: nosniff (always sent).
  std::vector<std::pair<std::string, std::string>> headers;
};

// What a handler knows of one request.
struct HttpRequestInfo {
  std::string_view path;  // the request target without its query string
  // The address the connection arrived at; an IPv4 client of a dual-stack socket shows as IPv4.
  boost::asio::ip::address local;
};

// Answers one GET or HEAD request; nullopt closes the connection without an answer. Called on
// the server's thread.
using HttpRequestHandler = std::function<std::optional<HttpResponse>(const HttpRequestInfo&)>;

// Serves requests on `socket` until the peer closes, an error, or a timeout (10 s per read and
// per write); headers and bodies are limited to 16 KiB each, and methods other than GET and HEAD
// get 405. Keeps `handler` alive while the connection lasts.
void serveHttpConnection(boost::asio::ip::tcp::socket socket,
                         std::shared_ptr<const HttpRequestHandler> handler);

// A listening socket on `endpoint` (port 0: any free port; the IPv6 any-address takes IPv4
// too). Errors read "cannot listen on <what>: <reason>".
Result<boost::asio::ip::tcp::acceptor> listenTcp(boost::asio::io_context& io,
                                                 const boost::asio::ip::tcp::endpoint& endpoint,
                                                 const std::string& what);

}  // namespace capstan::control
