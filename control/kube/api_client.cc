#include "control/kube/api_client.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <limits>
#include <vector>

namespace capstan::control::kube {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

struct ServerUrl {
  bool tls = true;
  std::string host;        // without brackets
  std::string port;        // "443"
  std::string hostHeader;  // "host:port" as sent in Host
  std::string basePath;    // "" or "/prefix" (a server behind a path-routing proxy)
};

Result<ServerUrl> parseServer(const std::string& server) {
  ServerUrl u;
  std::string_view s = server;
  if (s.starts_with("https://")) {
    s.remove_prefix(8);
  } else if (s.starts_with("http://")) {
    u.tls = false;
    s.remove_prefix(7);
  } else {
    return Error("server " + server + ": want an http:// or https:// URL");
  }
  size_t slash = s.find('/');
  std::string_view authority = s.substr(0, slash);
  if (slash != std::string_view::npos) u.basePath = std::string(s.substr(slash));
  while (u.basePath.ends_with("/")) u.basePath.pop_back();
  u.hostHeader = std::string(authority);
  if (authority.starts_with("[")) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return Error("server " + server + ": unclosed [");
    u.host = std::string(authority.substr(1, close - 1));
    std::string_view rest = authority.substr(close + 1);
    if (rest.starts_with(":")) u.port = std::string(rest.substr(1));
  } else {
    size_t colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) u.port = std::string(authority.substr(colon + 1));
  }
  if (u.host.empty()) return Error("server " + server + ": no host");
  if (u.port.empty()) u.port = u.tls ? "443" : "80";
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(u.port.data(), u.port.data() + u.port.size(), port);
  if (ec != std::errc() || ptr != u.port.data() + u.port.size() || port == 0 || port > 65535) {
    return Error("server " + server + ": invalid port \"" + u.port + "\"");
  }
  return u;
}

std::string opensslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

std::optional<std::chrono::seconds> parseRetryAfter(std::string_view text) {
  int64_t seconds = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (ec != std::errc() || ptr != text.data() + text.size() || seconds < 0) return std::nullopt;
  return std::chrono::seconds(seconds);
}

struct Connection {
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;

  beast::tcp_stream& lowest() { return tls ? tls->next_layer() : *plain; }
};

using Request = http::request<http::string_body>;

// What one request on one connection came to.
struct Exchange {
  Result<ApiResponse> result = Error("not sent");
  bool headerReceived = false;  // false: the request may be retried on a fresh connection
  bool keepAlive = false;
};

}  // namespace

struct ApiClient::Impl {
  Impl(asio::io_context& io, const ClusterConfig& config, ApiClientOptions options, ServerUrl url)
      : io(io),
        config(config),
        options(std::move(options)),
        url(std::move(url)),
        token(config, this->options.tokenRefresh) {}

  asio::io_context& io;
  ClusterConfig config;
  ApiClientOptions options;
  ServerUrl url;
  std::optional<ssl::context> tls;
  BearerToken token;
  std::vector<std::shared_ptr<Connection>> idle;
  std::vector<std::weak_ptr<Connection>> live;  // every connection opened, to close on cancel
  uint64_t opened = 0;
  uint64_t cancelGeneration = 0;

  Error transportError(std::string_view what, const beast::error_code& ec) const {
    return Error(std::string(what) + " " + config.server + ": " + ec.message());
  }

  asio::awaitable<Result<std::shared_ptr<Connection>>> connect() {
    beast::error_code ec;
    tcp::resolver resolver(io);
    auto endpoints = co_await resolver.async_resolve(url.host, url.port,
                                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return Error("resolving " + url.host + " (" + config.server + "): " + ec.message());
    auto conn = std::make_shared<Connection>();
    if (tls) {
      conn->tls.emplace(io, *tls);
    } else {
      conn->plain.emplace(io);
    }
    std::erase_if(live, [](const auto& w) { return w.expired(); });
    live.push_back(conn);
    beast::tcp_stream& lowest = conn->lowest();
    lowest.expires_after(options.connectTimeout);
    co_await lowest.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return transportError("connecting to", ec);
    // A watch may be silent for minutes: let the kernel notice a peer that vanished.
    lowest.socket().set_option(asio::socket_base::keep_alive(true), ec);
    lowest.socket().set_option(tcp::no_delay(true), ec);
    if (conn->tls) {
      SSL* ssl = conn->tls->native_handle();
      const std::string& name = config.tlsServerName.empty() ? url.host : config.tlsServerName;
      asio::ip::make_address(name, ec);
      bool ipName = !ec;
      ec = {};
      // RFC 6066 3: SNI carries host names only, never IP literals.
      if (!ipName) SSL_set_tlsext_host_name(ssl, name.c_str());
      if (!config.insecureSkipTlsVerify) {
        // The certificate must name the server: a DNS name (RFC 6125) or an IP SAN, which is
        // what the in-cluster address 10.96.0.1 is checked against.
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
        int set = ipName ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                         : X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
        if (set != 1) co_return Error("TLS: cannot verify the server name " + name);
      }
      lowest.expires_after(options.connectTimeout);
      co_await conn->tls->async_handshake(ssl::stream_base::client,
                                          asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        std::string detail = ec.message();
        long verify = SSL_get_verify_result(ssl);
        if (verify != X509_V_OK) {
          detail += " (" + std::string(X509_verify_cert_error_string(verify)) + ")";
        }
        co_return Error("TLS handshake with " + config.server + ": " + detail);
      }
    }
    ++opened;
    co_return conn;
  }

  template <typename Stream>
  asio::awaitable<Exchange> exchange(Stream& stream, Connection& conn, const Request& request,
                                     const LineHandler* onLine,
                                     std::chrono::nanoseconds idleTimeout,
                                     const std::function<void()>* onOpen) {
    Exchange out;
    beast::error_code ec;
    beast::tcp_stream& lowest = conn.lowest();
    lowest.expires_after(options.connectTimeout);
    co_await http::async_write(stream, request, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      out.result = transportError("sending a request to", ec);
      co_return out;
    }
    http::response_parser<http::buffer_body> parser;
    parser.header_limit(64 * 1024);
    // Bounded below, differently for lists and watches. Not boost::none: Beast 1.74 compares
    // a Content-Length against the empty optional and finds every body too large.
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    lowest.expires_after(options.readTimeout);
    co_await http::async_read_header(stream, conn.buffer, parser,
                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      out.result = transportError("reading a response from", ec);
      co_return out;
    }
    out.headerReceived = true;
    auto& response = parser.get();
    ApiResponse api;
    api.status = static_cast<int>(response.result_int());
    if (auto it = response.find(http::field::retry_after); it != response.end()) {
      api.retryAfter = parseRetryAfter(std::string_view(it->value().data(), it->value().size()));
    }
    bool streaming = onLine != nullptr && api.status == 200;
    if (streaming && onOpen && *onOpen) (*onOpen)();
    std::string pending;  // streaming: bytes of the current, unfinished line
    std::vector<char> chunk(64 * 1024);
    while (!parser.is_done()) {
      response.body().data = chunk.data();
      response.body().size = chunk.size();
      lowest.expires_after(streaming ? idleTimeout : options.readTimeout);
      // read_some, not read: a watch event must be handed on when it arrives, not when 64 KiB
      // of them have.
      co_await http::async_read_some(stream, conn.buffer, parser,
                                     asio::redirect_error(asio::use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      size_t n = chunk.size() - response.body().size;
      if (ec && streaming) {
        api.streamError = transportError("reading a watch from", ec).message();
        out.result = std::move(api);
        co_return out;
      }
      if (ec) {
        out.result = transportError("reading a response from", ec);
        co_return out;
      }
      if (!streaming) {
        api.body.append(chunk.data(), n);
        if (api.body.size() > options.maxBodyBytes) {
          out.result = Error("response from " + config.server + " larger than " +
                             std::to_string(options.maxBodyBytes) + " bytes");
          co_return out;
        }
        continue;
      }
      size_t scanFrom = pending.size();
      pending.append(chunk.data(), n);
      size_t start = 0;
      for (size_t nl; (nl = pending.find('\n', scanFrom)) != std::string::npos;
           scanFrom = start = nl + 1) {
        std::string_view line(pending.data() + start, nl - start);
        if (line.ends_with('\r')) line.remove_suffix(1);
        if (line.empty()) continue;
        if (Status st = (*onLine)(line); !st.ok()) {
          out.result = st.error();
          co_return out;
        }
      }
      pending.erase(0, start);
      if (pending.size() > options.maxLineBytes) {
        out.result = Error("watch event from " + config.server + " longer than " +
                           std::to_string(options.maxLineBytes) + " bytes");
        co_return out;
      }
    }
    if (streaming && !pending.empty()) {
      if (Status st = (*onLine)(pending); !st.ok()) {
        out.result = st.error();
        co_return out;
      }
    }
    out.keepAlive = parser.keep_alive();
    out.result = std::move(api);
    co_return out;
  }

  asio::awaitable<Result<ApiResponse>> request(http::verb verb, std::string target,
                                               const LineHandler* onLine,
                                               std::chrono::nanoseconds idleTimeout,
                                               const std::function<void()>* onOpen,
                                               std::string_view contentType = {},
                                               std::string body = {}) {
    auto bearer = token.get(std::chrono::steady_clock::now());
    if (!bearer.ok()) co_return bearer.error();
    Request request{verb, url.basePath + target, 11};
    request.set(http::field::host, url.hostHeader);
    request.set(http::field::user_agent, options.userAgent);
    request.set(http::field::accept, "application/json");
    if (!bearer->empty()) request.set(http::field::authorization, "Bearer " + *bearer);
    if (verb != http::verb::get) {
      request.set(http::field::content_type, std::string(contentType));
      request.body() = std::move(body);
      request.prepare_payload();
    }
    request.keep_alive(true);
    // An idle keep-alive connection may have been closed by the server just as it is reused:
    // a request that got no answer on one is sent once more on a fresh connection, as Go's
    // net/http does for idempotent requests (a GET; the merge patches Capstan sends set a value
    // and are as safe to repeat).
    for (int attempt = 0;; ++attempt) {
      std::shared_ptr<Connection> conn;
      bool reused = !idle.empty();
      if (reused) {
        conn = std::move(idle.back());
        idle.pop_back();
      } else {
        auto fresh = co_await connect();
        if (!fresh.ok()) co_return fresh.error();
        conn = std::move(fresh).value();
      }
      uint64_t generation = cancelGeneration;
      // Not a conditional expression: GCC 12 destroys the result of a co_await inside ?:
      // twice.
      Exchange ex;
      if (conn->tls) {
        ex = co_await exchange(*conn->tls, *conn, request, onLine, idleTimeout, onOpen);
      } else {
        ex = co_await exchange(*conn->plain, *conn, request, onLine, idleTimeout, onOpen);
      }
      if (!ex.result.ok() && reused && !ex.headerReceived && attempt == 0 &&
          generation == cancelGeneration) {
        continue;
      }
      if (ex.result.ok() && ex.keepAlive && generation == cancelGeneration) {
        idle.push_back(std::move(conn));
      } else {
        beast::error_code ignored;
        conn->lowest().socket().close(ignored);
      }
      // client-go's tokenSourceTransport: a refused token makes the file be read again.
      if (ex.result.ok() && ex.result->status == 401) token.invalidate();
      co_return std::move(ex.result);
    }
  }
};

ApiClient::ApiClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ApiClient::~ApiClient() = default;

Result<std::unique_ptr<ApiClient>> ApiClient::create(asio::io_context& io,
                                                     const ClusterConfig& config,
                                                     ApiClientOptions options) {
  auto url = parseServer(config.server);
  if (!url.ok()) return url.error().withContext(config.origin);
  auto impl = std::make_unique<Impl>(io, config, std::move(options), std::move(url).value());
  if (impl->url.tls) {
    impl->tls.emplace(ssl::context::tls_client);
    ssl::context& ctx = *impl->tls;
    SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
    beast::error_code ec;
    if (config.insecureSkipTlsVerify) {
      ctx.set_verify_mode(ssl::verify_none);
    } else {
      ctx.set_verify_mode(ssl::verify_peer);
      if (config.caPem.empty()) {
        ctx.set_default_verify_paths(ec);
      } else {
        ctx.add_certificate_authority(asio::buffer(config.caPem), ec);
      }
      if (ec) {
        return Error(config.origin + ": certificate authority: " + ec.message() + " " +
                     opensslErrors());
      }
    }
    if (!config.clientCertPem.empty()) {
      ctx.use_certificate_chain(asio::buffer(config.clientCertPem), ec);
      if (ec) {
        return Error(config.origin + ": client certificate: " + ec.message() + " " +
                     opensslErrors());
      }
      ctx.use_private_key(asio::buffer(config.clientKeyPem), ssl::context::pem, ec);
      if (ec) {
        return Error(config.origin + ": client key: " + ec.message() + " " + opensslErrors());
      }
    }
  } else if (!config.clientCertPem.empty()) {
    return Error(config.origin + ": a client certificate needs an https server, not " +
                 config.server);
  }
  return std::unique_ptr<ApiClient>(new ApiClient(std::move(impl)));
}

asio::awaitable<Result<ApiResponse>> ApiClient::get(std::string target) {
  return impl_->request(http::verb::get, std::move(target), nullptr, impl_->options.readTimeout,
                        nullptr);
}

asio::awaitable<Result<ApiResponse>> ApiClient::patch(std::string target, std::string contentType,
                                                      std::string body) {
  // The strings live in this frame while the request's frame uses them.
  Result<ApiResponse> response =
      co_await impl_->request(http::verb::patch, std::move(target), nullptr,
                              impl_->options.readTimeout, nullptr, contentType, std::move(body));
  co_return response;
}

asio::awaitable<Result<ApiResponse>> ApiClient::stream(std::string target, LineHandler onLine,
                                                       std::chrono::nanoseconds idleTimeout,
                                                       std::function<void()> onOpen) {
  // The handlers live in this frame while the request's frame uses them.
  Result<ApiResponse> response =
      co_await impl_->request(http::verb::get, std::move(target), &onLine, idleTimeout, &onOpen);
  co_return response;
}

void ApiClient::cancelAll() {
  ++impl_->cancelGeneration;
  impl_->idle.clear();
  for (auto& weak : impl_->live) {
    if (auto conn = weak.lock()) {
      beast::error_code ignored;
      conn->lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
      conn->lowest().cancel();
    }
  }
  impl_->live.clear();
}

const std::string& ApiClient::server() const { return impl_->config.server; }

uint64_t ApiClient::connectionsOpened() const { return impl_->opened; }

std::string ApiClient::queryEscape(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

}  // namespace capstan::control::kube
