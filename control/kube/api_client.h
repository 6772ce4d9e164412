// ApiClient: HTTP/1.1 requests to the Kubernetes API server, plain or over TLS, on one io_context.
//
// What the reflectors and the status writer need and no more: a GET whose whole body is returned
// (list pages), a GET whose body is a stream of newline-delimited JSON (watches, chunked), and a
// PATCH (Ingress status). Connections are kept
// alive and reused between requests; a watch holds its connection while it lasts (HTTP/1.1
// cannot share it), so there is one connection per running watch plus the idle ones.
//
// TLS through OpenSSL (boost::asio::ssl): the server's certificate must chain to the configured
// CA and name the server's host (or tls-server-name) unless insecure-skip-tls-verify; the client
// authenticates with a certificate or a bearer token (re-read from its file as it rotates).
//
// Used by the reflectors and the status writer on the KubeSource's thread. Not thread-safe: every
// call, including cancelAll(), on the io_context's thread.
#pragma once

// clang-format off
#include <utility>  // first: Boost 1.74's awaitable.hpp uses std::exchange without it
// clang-format on

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "control/kube/cluster_config.h"
#include "model/result.h"

namespace capstan::control::kube {

struct ApiClientOptions {
  // Connecting, the TLS handshake, and writing a request, each.
  std::chrono::nanoseconds connectTimeout = std::chrono::seconds(10);
  // The longest wait for the next bytes of a response (a list page, a watch's headers).
  std::chrono::nanoseconds readTimeout = std::chrono::seconds(60);
  // A list page larger than this is refused (500 Services take about 1 MB).
  size_t maxBodyBytes = size_t{256} << 20;
  // One watch event (one line) larger than this ends the watch with an error.
  size_t maxLineBytes = size_t{64} << 20;
  // How often a token file is re-read (client-go: a minute).
  std::chrono::nanoseconds tokenRefresh = std::chrono::minutes(1);
  std::string userAgent = "capstan";
};

struct ApiResponse {
  int status = 0;
  std::string body;  // for stream(): only when the status is not 200
  // Retry-After in seconds (RFC 9110 10.2.3; like client-go, only the delay-seconds form).
  std::optional<std::chrono::seconds> retryAfter;
  // stream() only: a 200 stream that ended by a transport failure (the connection dropped, the
  // idle timeout) rather than by the server ending it; what that failure was.
  std::string streamError;
};

// A line of a watch stream (without its newline); returning an error ends the stream with it.
using LineHandler = std::function<Status(std::string_view line)>;

class ApiClient {
 public:
  // Builds the TLS context (CA, client certificate) once; errors name the certificate or key.
  static Result<std::unique_ptr<ApiClient>> create(boost::asio::io_context& io,
                                                   const ClusterConfig& config,
                                                   ApiClientOptions options = {});
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  // GET `target` ("/api/v1/services?limit=500"). Any HTTP status is a response; errors are
  // transport failures ("connecting to https://10.96.0.1:443: Connection refused").
  boost::asio::awaitable<Result<ApiResponse>> get(std::string target);

  // PATCH `target` with `body` of `contentType` ("application/merge-patch+json"); the response
  // as get() returns it (the patched object on 200).
  boost::asio::awaitable<Result<ApiResponse>> patch(std::string target, std::string contentType,
                                                    std::string body);

  // GET a streamed body: on a 200 response `onOpen` is called, then the body is handed to
  // `onLine` line by line until the server ends it, or the connection drops or stays silent for
  // `idleTimeout` (status 200 with streamError set). Other statuses are returned with their
  // body, as get() does.
  boost::asio::awaitable<Result<ApiResponse>> stream(std::string target, LineHandler onLine,
                                                     std::chrono::nanoseconds idleTimeout,
                                                     std::function<void()> onOpen = {});

  // Closes every connection: calls in progress end with an error, and later calls open new
  // connections. For shutdown and for tests that cut the line.
  void cancelAll();

  const std::string& server() const;
  // Connections opened so far (tests check keep-alive with it).
  uint64_t connectionsOpened() const;

  // The query-string escaping of Go's url.QueryEscape, for selectors and continue tokens.
  static std::string queryEscape(std::string_view text);

 private:
  struct Impl;
  explicit ApiClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace capstan::control::kube
