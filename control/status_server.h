// StatusServer: the small HTTP server behind --healthz-bind-address (/healthz, /livez) and
// --metrics-bind-address (/metrics, /proxyMode), on a thread of its own so it answers while the
// control thread is in a long sync.
//
// The HTTP exchange itself (Boost.Beast, GET and HEAD only, bounded requests and timeouts) is
// control/http_session.h, shared with ServiceHealthServer.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "control/http_session.h"
#include "model/result.h"

namespace capstan::control {

// Called on the server thread for a request to its path (the query string is ignored).
using HttpHandler = std::function<HttpResponse()>;
using HttpRoutes = std::map<std::string, HttpHandler>;

struct HostPort {
  std::string host;  // an IP address; empty for "all addresses"
  uint16_t port = 0;
};

// "0.0.0.0:10256", "[::]:10256", "127.0.0.1:0" (any free port), ":10256".
Result<HostPort> parseHostPort(const std::string& text);
// The same as the endpoint to listen on (an empty host: every IPv4 address).
Result<boost::asio::ip::tcp::endpoint> parseListenEndpoint(const std::string& text);

class StatusServer {
 public:
  StatusServer();
  ~StatusServer();
  StatusServer(const StatusServer&) = delete;
  StatusServer& operator=(const StatusServer&) = delete;

  // Binds `address` and serves `routes` there once started; returns the bound port (useful with
  // port 0). Call before start().
  Result<uint16_t> listen(const std::string& address, HttpRoutes routes);

  void start();
  // Stops accepting, closes connections and joins the thread. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
};

}  // namespace capstan::control
