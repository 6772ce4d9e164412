#include "l7/ingress_server.h"

#include <array>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <optional>
#include <random>
#include <thread>
#include <type_traits>
#include <utility>  // before Asio: boost/asio/awaitable.hpp (1.74) uses std::exchange

#include "l7/byte_buffer.h"
#include "l7/http1/chunked.h"
#include "l7/http1/forward.h"
#include "l7/tls/server_context.h"
#include "l7/upstream_pool.h"

namespace capstan::l7 {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
// Coroutines and completion tokens bound to the io_context's own executor type: with Asio's
// default (the polymorphic any_io_executor) every suspension and resumption copied, moved and
// destroyed type-erased executors.
using Executor = asio::io_context::executor_type;
template <class T>
using awaitable = asio::awaitable<T, Executor>;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
using TlsStream = asio::ssl::stream<tcp::socket>;
using namespace std::chrono_literals;

namespace {

constexpr asio::use_awaitable_t<Executor> kUseAwaitable;
constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kKeptBufferBytes = 4 * 1024;   // larger scratch strings are freed between requests
constexpr size_t kMaxSpareRequestBuffers = 64;  // per worker
constexpr std::string_view k100Continue = "HTTP/1.1 100 Continue\r\n\r\n";

enum Counter : size_t {
  kConnectionsAccepted,
  kConnectionsRefused,
  kRequests,
  kResponses1xx,  // ... through kResponses1xx + 4 for 5xx
  kResponses5xx = kResponses1xx + 4,
  kBadRequests,
  kHeaderTimeouts,
  kIdleTimeouts,
  kBodyTooLarge,
  kNoRoute,
  kNoEndpoints,
  kUpstreamConnects,
  kUpstreamReused,
  kUpstreamConnectFailures,
  kUpstreamConnectTimeouts,
  kUpstreamResponseTimeouts,
  kUpstreamBadResponses,
  kUpstreamRetries,
  kUpgrades,
  kTableSwaps,
  kEjections,
  kTlsHandshakes,
  kTlsHandshakeFailures,
  kTlsResumed,
  kCounterCount,
};

// What the connection is waiting for: decides which timeout applies and what expiry closes.
enum class Phase : uint8_t {
  kClientIdle,        // between requests: idleTimeout, closes the client
  kClientHead,        // a head has started: headerTimeout, closes the client
  kClientBody,        // reading a request body: idleTimeout, closes both
  kClientWrite,       // writing to the client: idleTimeout, closes both
  kUpstreamConnect,   // upstreamConnectTimeout, closes the upstream (504)
  kUpstreamResponse,  // upstreamResponseTimeout, closes the upstream (504 if nothing was sent)
  kTunnel,            // an upgraded connection: idleTimeout without traffic, closes both
  kClosing,           // TLS close_notify exchange: kTlsShutdownTimeout, closes the client
};

// How long a closing TLS connection waits for the client's close_notify: a client that sends
// none (most browsers just close) must not hold the connection for the idle timeout.
constexpr std::chrono::milliseconds kTlsShutdownTimeout{1000};

// The heap parts of a connection's per-request state: the read buffer, the parsed heads' field
// lists, the heads and bodies it writes. A connection waiting for its next request parks them
// with its worker, and takes a parked set back when a request arrives: an idle keep-alive
// connection holds none, and a busy one reuses capacity grown by earlier requests.
struct RequestBuffers {
  ByteBuffer in;
  std::vector<http1::Header> requestHeaders;
  std::vector<http1::Header> responseHeaders;
  std::string upstreamHead;
  std::string out;
  std::string body;
  std::string local;
};

// How often a worker hands its access log lines to the writer when its buffer is not full.
constexpr std::chrono::milliseconds kAccessLogFlushPeriod{100};

// A client connection as the worker's drain sees it. Linked into the worker's list for its whole
// life (worker thread only).
struct DrainableSession {
  DrainableSession* prev = nullptr;
  DrainableSession* next = nullptr;
  // Closes the connection now if it is between requests (or `all`: whatever it is doing).
  virtual void closeForDrain(bool all) = 0;

 protected:
  ~DrainableSession() = default;
};

}  // namespace

class IngressServer::Worker {
 public:
  Worker(const IngressOptions& options, std::atomic<uint32_t>& connections, uint64_t seed)
      : options(options),
        accessLog(options.accessLog, options.accessLogFormat),
        // One thread runs this io_context and only it touches its sockets and timers (others
        // only post()): the reactor's per-socket locks can go, the scheduler's stays.
        io(std::make_unique<asio::io_context>(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO)),
        balancer(options.health, seed),
        pool(options.maxIdleUpstreamPerEndpoint),
        connections(connections),
        requestIdPrefix(std::mt19937_64(seed ^ 0x5eed)()) {}

  ~Worker() {
    stop();
    // Acceptors and pooled sockets go before the io_context; pending coroutine frames (sessions)
    // are destroyed with it, while the balancer and counters they touch still exist.
    http.reset();
    https.reset();
    pool.clear();
    io.reset();
    tls.reset();
  }

  void stop() {
    io->stop();
    if (thread.joinable()) thread.join();
  }

  void add(Counter counter, uint64_t n = 1) {
    // Written by this worker's thread only: no read-modify-write atomic needed.
    counters[counter].store(counters[counter].load(std::memory_order_relaxed) + n,
                            std::memory_order_relaxed);
  }
  uint64_t get(Counter counter) const { return counters[counter].load(std::memory_order_relaxed); }

  // 32 hex digits: a per-worker random prefix and a counter. Unique per process run and cheap.
  std::string_view nextRequestId() {
    uint64_t words[2] = {requestIdPrefix, ++requestIdCounter};
    char* p = requestId.data();
    for (uint64_t word : words) {
      for (int shift = 60; shift >= 0; shift -= 4) *p++ = "0123456789abcdef"[(word >> shift) & 15];
    }
    return {requestId.data(), requestId.size()};
  }

  void link(DrainableSession* session) {
    session->next = sessions;
    if (sessions) sessions->prev = session;
    sessions = session;
  }
  void unlink(DrainableSession* session) {
    if (session->prev) session->prev->next = session->next;
    if (session->next) session->next->prev = session->prev;
    if (sessions == session) sessions = session->next;
  }
  // Worker thread: stops accepting and closes the connections between requests (`all`: every
  // connection).
  void drain(bool all) {
    draining = true;
    error_code ignored;
    if (http) http->close(ignored);
    if (https) https->close(ignored);
    for (DrainableSession* s = sessions; s != nullptr;) {
      DrainableSession* next = s->next;  // a close may end the session before the loop moves on
      s->closeForDrain(all);
      s = next;
    }
  }

  awaitable<void> acceptLoop(tcp::acceptor& acceptor, bool tls);
  awaitable<void> flushAccessLogLoop();
  awaitable<void> reapLoop();
  awaitable<void> rotateTicketKeys(std::shared_ptr<tls::TicketKeys> keys);

  const IngressOptions& options;
  // Before io: sessions and pooled connections, destroyed with it, still report to them.
  WorkerStats stats;
  AccessLogBuffer accessLog;
  DrainableSession* sessions = nullptr;
  bool draining = false;
  std::unique_ptr<asio::io_context> io;
  std::optional<tcp::acceptor> http;
  std::optional<tcp::acceptor> https;
  // After io (sessions' SSL objects point into it): reset() below destroys them first.
  std::unique_ptr<tls::ServerContext> tls;
  Balancer balancer;
  UpstreamPool pool;
  std::atomic<uint32_t>& connections;
  std::array<std::atomic<uint64_t>, kCounterCount> counters{};
  uint64_t requestIdPrefix;
  uint64_t requestIdCounter = 0;
  std::array<char, 32> requestId{};
  std::vector<RequestBuffers> spareBuffers;  // parked by idle connections, most recent last
  std::thread thread;
};

namespace {

using Worker = IngressServer::Worker;

// Plain TCP sockets (client and upstream) are in non-blocking mode: the request path reads and
// writes them directly when they are ready, and goes through the scheduler only to wait. An
// Asio async operation costs a handler, a post and a trip through the run loop even when its
// speculative syscall succeeds; most writes and the read after a readiness wait need no wait.
template <class Stream>
constexpr bool kPlain = std::is_same_v<Stream, tcp::socket>;

// The read of what the stream has into `buffer`, waiting until it has something; the caller
// commits what it returns: `buffer.commit(co_await readInto(stream, buffer, ec))`. Not a
// coroutine itself: on the request path, a coroutine frame per read costs more than the read.
template <class Stream>
awaitable<size_t> readInto(Stream& stream, ByteBuffer& buffer, error_code& ec) {
  size_t room = 0;
  char* p = buffer.prepare(kReadChunk, room);
  return stream.async_read_some(asio::buffer(p, room), asio::redirect_error(kUseAwaitable, ec));
}

template <class Stream>
awaitable<std::pair<error_code, size_t>> readSome(Stream& stream, ByteBuffer& buffer) {
  error_code ec;
  const size_t n = co_await readInto(stream, buffer, ec);
  buffer.commit(n);
  co_return std::pair{ec, n};
}

// Reads what a plain socket has now into `buffer`, without waiting: would_block when nothing.
size_t readNow(tcp::socket& socket, ByteBuffer& buffer, error_code& ec) {
  size_t room = 0;
  char* p = buffer.prepare(kReadChunk, room);
  size_t n = socket.read_some(asio::buffer(p, room), ec);
  buffer.commit(n);
  return n;
}

// What is left of a sequence of at most two buffers once its first `n` bytes went out.
template <class Buffers>
std::array<asio::const_buffer, 2> remainderAfter(const Buffers& buffers, size_t n) {
  std::array<asio::const_buffer, 2> rest{};
  size_t i = 0;
  for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers);
       ++it) {
    asio::const_buffer buffer = *it;
    const size_t skip = std::min(n, buffer.size());
    buffer += skip;
    n -= skip;
    if (buffer.size() > 0) rest.at(i++) = buffer;
  }
  return rest;
}

// Writes what a plain socket takes now: true when that was all of `buffers` or the write failed
// (`ec`), false when the rest, remainderAfter(buffers, written), must wait for room. A TLS
// stream always waits. On the request path, where a response usually fits the socket buffer:
//   if (!writeNow(s, b, written, ec)) ec = co_await writeAll(s, remainderAfter(b, written));
// saves the coroutine frame writeAll would cost.
template <class Stream, class Buffers>
bool writeNow(Stream& stream, const Buffers& buffers, size_t& written, error_code& ec) {
  written = 0;
  if constexpr (kPlain<Stream>) {
    written = asio::write(stream, buffers, ec);
    if (ec != asio::error::would_block) return true;
    ec.clear();
  }
  return false;
}

// Writes `buffers` whole: at once when the socket takes them, else waiting for room.
template <class Stream, class Buffers>
awaitable<error_code> writeAll(Stream& stream, const Buffers& buffers) {
  error_code ec;
  size_t written = 0;
  if (!writeNow(stream, buffers, written, ec)) {
    co_await asio::async_write(stream, remainderAfter(buffers, written),
                               asio::redirect_error(kUseAwaitable, ec));
  }
  co_return ec;
}

// What the proxy keeps of a request once its head has been re-serialized (the parsed head points
// into the read buffer, which moves on).
struct RequestSummary {
  http1::Method method = http1::Method::kGet;
  uint8_t minorVersion = 1;
  bool keepAlive = true;
  bool expectContinue = false;
  bool upgrade = false;
  http1::BodyKind body = http1::BodyKind::kNone;
  uint64_t contentLength = 0;

  bool hasBody() const {
    return body == http1::BodyKind::kChunked ||
           (body == http1::BodyKind::kContentLength && contentLength > 0);
  }
  // RFC 9110 9.2.2: idempotent methods may be repeated after a connection failure.
  bool idempotent() const {
    using http1::Method;
    return method == Method::kGet || method == Method::kHead || method == Method::kOptions ||
           method == Method::kTrace || method == Method::kPut || method == Method::kDelete;
  }
};

asio::ip::address toAsioAddress(const IpAddress& ip) {
  if (ip.isV4()) return asio::ip::address_v4(ip.v4Value());
  return asio::ip::address_v6(ip.bytes());
}

// One client connection, from its first byte to its close: reads requests in order (pipelined
// ones too), proxies each to an upstream chosen by the route table and the balancer, and relays
// the answer. A watchdog timer beside it enforces the deadline of whatever the connection
// waits for.
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>>, DrainableSession {
 public:
  Session(Worker& worker, Stream stream, IpAddress clientIp, bool tls)
      : worker_(worker),
        options_(worker.options),
        client_(std::move(stream)),
        timer_(*worker.io),
        clientIp_(clientIp),
        clientAddress_(clientIp.toString()),
        tls_(tls) {
    worker_.link(this);
  }

  ~Session() {
    worker_.unlink(this);
    worker_.connections.fetch_sub(1, std::memory_order_relaxed);
  }

  void closeForDrain(bool all) override {
    // Between requests: nothing has been read of a next one (a request whose first bytes raced
    // the drain is lost, as with any server closing an idle keep-alive connection).
    const bool idle = (phase_ == Phase::kClientIdle || phase_ == Phase::kClientHead) && in_.empty();
    if (all || idle) {
      error_code ignored;
      client_.lowest_layer().close(ignored);
      if (all && upstream_) upstream_->socket.close(ignored);
    }
  }

  static void start(std::shared_ptr<Session> self) {
    self->armWatchdog(self);
    asio::co_spawn(*self->worker_.io, self->run(self), asio::detached);
  }

 private:
  void setPhase(Phase phase) {
    phase_ = phase;
    std::chrono::milliseconds timeout = options_.idleTimeout;
    switch (phase) {
      case Phase::kClientHead:
        timeout = options_.headerTimeout;
        break;
      case Phase::kUpstreamConnect:
        timeout = options_.upstreamConnectTimeout;
        break;
      case Phase::kUpstreamResponse:
        timeout = options_.upstreamResponseTimeout;
        break;
      case Phase::kClosing:
        timeout = kTlsShutdownTimeout;
        break;
      default:
        break;
    }
    Clock::time_point deadline = Clock::now() + timeout;
    // An earlier deadline than the watchdog sleeps to: wake it to re-arm.
    if (deadline < deadline_) timer_.cancel();
    deadline_ = deadline;
  }

  // The watchdog is a plain completion handler, not a coroutine: a connection keeps one small
  // timer operation pending instead of a coroutine frame and its spawn state (idle memory).
  void armWatchdog(std::shared_ptr<Session> self) {
    timer_.expires_at(deadline_);
    timer_.async_wait([self = std::move(self)](error_code) mutable {
      Session& session = *self;
      session.watchdog(std::move(self));
    });
  }

  void watchdog(std::shared_ptr<Session> self) {
    if (done_) return;
    // Not moved later (nor woken to re-arm): the deadline has passed.
    if (Clock::now() >= deadline_) {
      expired_ = phase_;
      error_code ignored;
      switch (phase_) {
        case Phase::kUpstreamConnect:
        case Phase::kUpstreamResponse:
          if (upstream_) upstream_->socket.close(ignored);
          break;
        default:
          client_.lowest_layer().close(ignored);
          if (upstream_) upstream_->socket.close(ignored);
          break;
      }
      deadline_ = Clock::time_point::max();
    }
    armWatchdog(std::move(self));
  }

  awaitable<void> run(std::shared_ptr<Session> self) {
    co_await serve();
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      // RFC 8446 6.1: close_notify before closing, so that the client can tell the end of the
      // connection from a truncation (OpenSSL 3 will not resume a session that ended without
      // one). Not after a timeout or an error: the connection is gone or not worth the wait.
      if (!expired_ && client_.lowest_layer().is_open() && handshakeDone_) {
        setPhase(Phase::kClosing);
        error_code ec;
        co_await client_.async_shutdown(asio::redirect_error(kUseAwaitable, ec));
      }
    }
    done_ = true;
    timer_.cancel();
    error_code ignored;
    client_.lowest_layer().close(ignored);
    (void)self;
  }

  // Counts and returns the expiry that ended a wait, if any.
  bool timedOut(Phase phase) const { return expired_ && *expired_ == phase; }

  awaitable<void> serve() {
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      setPhase(Phase::kClientHead);  // the handshake has headerTimeout, as a head does
      error_code ec;
      co_await client_.async_handshake(asio::ssl::stream_base::server,
                                       asio::redirect_error(kUseAwaitable, ec));
      if (ec) {
        worker_.add(kTlsHandshakeFailures);
        co_return;
      }
      worker_.add(kTlsHandshakes);
      handshakeDone_ = true;
      if (tls::ServerContext::handshakeInfo(client_.native_handle()).resumed) {
        worker_.add(kTlsResumed);
      }
    }
    bool first = true;
    for (;;) {
      // The head. The first request has headerTimeout from the connection's start; later ones
      // may wait idleTimeout for their first byte, then headerTimeout for the rest.
      setPhase(first || !in_.empty() ? Phase::kClientHead : Phase::kClientIdle);
      http1::ParseError parseError;
      http1::ParseStatus status;
      if (in_.empty()) co_await waitIdle();
      for (;;) {
        status = http1::parseRequestHead(in_.data(), options_.limits, request_, parseError);
        if (status != http1::ParseStatus::kIncomplete) break;
        if (!in_.empty() && phase_ == Phase::kClientIdle) setPhase(Phase::kClientHead);
        auto [ec, n] = co_await readSome(client_, in_);
        if (ec) {
          if (timedOut(Phase::kClientHead)) worker_.add(kHeaderTimeouts);
          if (timedOut(Phase::kClientIdle)) worker_.add(kIdleTimeouts);
          co_return;
        }
      }
      worker_.add(kRequests);
      beginRequest(status == http1::ParseStatus::kComplete);
      if (status == http1::ParseStatus::kError) {
        worker_.add(kBadRequests);
        co_await answerLocal(parseError.status, true, http1::Method::kGet);
        endRequest();
        co_return;
      }
      const bool keepOpen = co_await handleRequest();
      endRequest();
      if (!keepOpen || worker_.draining) co_return;
      first = false;
    }
  }

  // Access log and stats: the head is in request_ (`parsed`) or was refused.
  void beginRequest(bool parsed) {
    const bool logged = worker_.accessLog.enabled();
    recorder_.begin(Clock::now(), logged);
    if (!logged || !parsed) return;
    std::string_view userAgent, referer, requestId;
    for (const http1::Header& h : request_.headers) {
      if (http1::equalsIgnoreCase(h.name, "user-agent")) {
        userAgent = h.value;
      } else if (http1::equalsIgnoreCase(h.name, "referer")) {
        referer = h.value;
      } else if (requestId.empty() && http1::equalsIgnoreCase(h.name, "x-request-id")) {
        requestId = h.value;
      }
    }
    recorder_.head(request_.methodText, request_.target, request_.minorVersion, request_.host,
                   userAgent, referer, requestId);
  }
  void endRequest() { recorder_.end(Clock::now(), clientAddress_, worker_.accessLog); }

  template <class Buffers>
  awaitable<error_code> writeClient(const Buffers& buffers) {
    recorder_.sent(asio::buffer_size(buffers));
    return writeAll(client_, buffers);
  }

  // Between requests on a keep-alive connection: park the request buffers with the worker and
  // wait for the socket to become readable before taking a set back, so that an idle connection
  // holds no buffer (10,000 idle connections: see bench/macro/ingress_http). With TLS,
  // decrypted bytes may already wait inside the stream, so only the buffers are trimmed.
  awaitable<void> waitIdle() {
    if (in_.capacity() > kReadChunk) in_.release();
    for (std::string* buffer : {&upstreamHead_, &out_, &body_, &local_}) {
      if (buffer->capacity() > kKeptBufferBytes) std::string().swap(*buffer);
    }
    if constexpr (kPlain<Stream>) {
      std::vector<RequestBuffers>& spare = worker_.spareBuffers;
      if (spare.size() < kMaxSpareRequestBuffers) {
        exchangeBuffers(spare.emplace_back());
      } else {
        RequestBuffers dropped;
        exchangeBuffers(dropped);
      }
      error_code ec;
      co_await client_.async_wait(tcp::socket::wait_read, asio::redirect_error(kUseAwaitable, ec));
      if (!spare.empty()) {
        exchangeBuffers(spare.back());
        spare.pop_back();
      }
      // Readable: the read needs no wait (an error or end of stream is seen by the next read,
      // which the caller makes when nothing arrived).
      if (!ec) readNow(client_, in_, ec);
    } else {
      in_.release();
    }
  }

  // Swaps this connection's request buffers (in_ empty) with `other`.
  void exchangeBuffers(RequestBuffers& other) {
    in_.swap(other.in);
    request_.headers.swap(other.requestHeaders);
    response_.headers.swap(other.responseHeaders);
    upstreamHead_.swap(other.upstreamHead);
    out_.swap(other.out);
    body_.swap(other.body);
    local_.swap(other.local);
  }

  // One request whose head is in request_. False: close the client connection.
  awaitable<bool> handleRequest() {
    RequestSummary summary{request_.method,         request_.minorVersion, request_.keepAlive,
                           request_.expectContinue, request_.upgrade,      request_.body,
                           request_.contentLength};
    if (worker_.draining) summary.keepAlive = false;  // "Connection: close" during a drain
    recorder_.received(request_.headLength);
    // A request refused before its body was read: the body would be taken for the next request.
    const bool closeIfRefused = summary.hasBody() || !summary.keepAlive;
    if (summary.method == http1::Method::kConnect) {
      co_return co_await answerLocal(405, true, summary.method);
    }
    if (options_.maxBodyBytes != 0 && summary.body == http1::BodyKind::kContentLength &&
        summary.contentLength > options_.maxBodyBytes) {
      worker_.add(kBodyTooLarge);
      co_return co_await answerLocal(413, true, summary.method);
    }
    // The table in use for this request, kept alive until it ends whatever gets published.
    std::shared_ptr<const RouteTable> table = worker_.balancer.table();
    const Route* route = table ? table->match(request_.host, request_.path) : nullptr;
    if (route != nullptr) recorder_.route(worker_.stats.route(*route));
    if (route == nullptr) {
      worker_.add(kNoRoute);
      in_.consume(request_.headLength);
      co_return co_await answerLocal(404, closeIfRefused, summary.method);
    }
    if (route->backend->endpoints.empty()) {
      worker_.add(kNoEndpoints);
      in_.consume(request_.headLength);
      co_return co_await answerLocal(503, closeIfRefused, summary.method);
    }
    upstreamHead_.clear();
    const std::string_view requestId = worker_.nextRequestId();
    recorder_.generatedRequestId(requestId);
    http1::appendUpstreamRequestHead(request_, {clientAddress_, tls_ ? "https" : "http", requestId},
                                     upstreamHead_);
    std::optional<uint64_t> hashKey;
    if (route->loadBalance) {
      hashKey = requestHashKey(*route->loadBalance, request_.headers, clientIp_);
    }
    in_.consume(request_.headLength);  // request_ is not to be read from here on
    co_return co_await proxy(*table, *route, summary, hashKey);
  }

  // Writes an answer of the ingress itself. False when the connection is to close.
  awaitable<bool> answerLocal(uint16_t status, bool close, http1::Method method) {
    close = close || worker_.draining;
    local_.clear();
    http1::appendLocalResponse(status, close, method, local_);
    countResponse(status);
    setPhase(Phase::kClientWrite);
    error_code ec = co_await writeClient(asio::buffer(local_));
    co_return !ec && !close;
  }

  void countResponse(uint16_t status) {
    recorder_.status(status);
    if (status >= 100 && status < 600)
      worker_.add(static_cast<Counter>(kResponses1xx + status / 100 - 1));
  }

  // An idle pooled connection to `endpoint` in upstream_; false when the pool has none.
  bool takePooled(const RouteEndpoint& endpoint) {
    upstream_ = worker_.pool.take(endpoint, Clock::now());
    if (!upstream_) return false;
    reused_ = true;
    worker_.add(kUpstreamReused);
    return true;
  }

  // A connection to `endpoint`: from the pool, or a new one. Null when the connect failed.
  awaitable<bool> connectUpstream(const RouteEndpoint& endpoint, bool allowPooled) {
    if (allowPooled && takePooled(endpoint)) co_return true;
    reused_ = false;
    worker_.add(kUpstreamConnects);
    upstream_ = std::make_unique<UpstreamConnection>(tcp::socket(*worker_.io), endpoint);
    setPhase(Phase::kUpstreamConnect);
    tcp::endpoint target(toAsioAddress(endpoint.ip), endpoint.port);
    error_code ec;
    co_await upstream_->socket.async_connect(target, asio::redirect_error(kUseAwaitable, ec));
    if (ec) {
      worker_.add(timedOut(Phase::kUpstreamConnect) ? kUpstreamConnectTimeouts
                                                    : kUpstreamConnectFailures);
      upstream_.reset();
      co_return false;
    }
    upstream_->socket.set_option(tcp::no_delay(true), ec);
    upstream_->socket.non_blocking(true, ec);  // see kPlain
    upstream_->gauge.attach(recorder_.upstreamStats());
    co_return true;
  }

  // Proxies one request to the route's backend and relays the answer. False: close the client.
  awaitable<bool> proxy(const RouteTable& table, const Route& route, const RequestSummary& request,
                        std::optional<uint64_t> hashKey) {
    const Backend& backend = *route.backend;
    Balancer& balancer = worker_.balancer;
    expired_.reset();
    const Clock::time_point now = Clock::now();
    uint32_t endpoint = balancer.pick(route, hashKey, now);
    recorder_.upstream(worker_.stats.upstream(&table, backend, endpoint), now);
    Balancer::Lease lease = balancer.started(backend, endpoint);
    // Connect; a failed connect is tried once more on another endpoint (nothing was sent).
    bool connected = takePooled(backend.endpoints[endpoint]);
    if (!connected) connected = co_await connectUpstream(backend.endpoints[endpoint], false);
    if (!connected && backend.endpoints.size() > 1) {
      finish(std::move(lease), Balancer::Outcome::kFailure, Clock::now());
      worker_.add(kUpstreamRetries);
      expired_.reset();
      const Clock::time_point retryNow = Clock::now();
      endpoint = balancer.pick(route, hashKey, retryNow, endpoint);
      recorder_.upstream(worker_.stats.upstream(&table, backend, endpoint), retryNow);
      lease = balancer.started(backend, endpoint);
      connected = co_await connectUpstream(backend.endpoints[endpoint], true);
    }
    if (!connected) {
      finish(std::move(lease), Balancer::Outcome::kFailure, Clock::now());
      const bool timeout = timedOut(Phase::kUpstreamConnect);
      co_return co_await answerLocal(timeout ? 504 : 502, request.hasBody() || !request.keepAlive,
                                     request.method);
    }

    // The request: head and body. A request without a body on a reused connection that dies
    // before any answer is repeated once on a new connection (the upstream closed it idle).
    bool bodySent = false;
    for (int attempt = 0;; ++attempt) {
      error_code ec;
      if (request.hasBody()) {
        ec = co_await sendRequest(request, bodySent);
      } else {
        clientFailed_ = false;
        size_t written = 0;
        const auto head = asio::buffer(upstreamHead_);
        if (!writeNow(upstream_->socket, head, written, ec)) {
          ec = co_await writeAll(upstream_->socket, remainderAfter(head, written));
        }
      }
      if (ec && !bodySent && request.body == http1::BodyKind::kNone && reused_ && attempt == 0) {
        if (co_await retryOnNewConnection()) continue;
      }
      if (ec) {
        // The client side failed (or timed out) while sending its body, or the upstream refused
        // the request bytes.
        finish(std::move(lease), Balancer::Outcome::kNotCounted, Clock::now());
        upstream_.reset();
        if (clientFailed_) co_return false;
        co_return co_await answerLocal(502, true, request.method);
      }
      // The response head (1xx other than 101 skipped: the ingress answered 100-continue itself).
      setPhase(Phase::kUpstreamResponse);
      http1::ParseStatus status = http1::ParseStatus::kIncomplete;
      http1::ParseError parseError;
      bool retry = false;
      for (;;) {
        status = http1::parseResponseHead(upstream_->in.data(), options_.limits, request.method,
                                          response_, parseError);
        if (status == http1::ParseStatus::kComplete && response_.status >= 100 &&
            response_.status < 200 && response_.status != 101) {
          upstream_->in.consume(response_.headLength);
          continue;
        }
        if (status != http1::ParseStatus::kIncomplete) break;
        error_code readError;
        upstream_->in.commit(co_await readInto(upstream_->socket, upstream_->in, readError));
        if (readError) {
          if (reused_ && attempt == 0 && upstream_->in.empty() &&
              !timedOut(Phase::kUpstreamResponse) && request.idempotent() &&
              request.body == http1::BodyKind::kNone) {
            retry = true;
          }
          break;
        }
      }
      if (retry && co_await retryOnNewConnection()) continue;
      if (status != http1::ParseStatus::kComplete) {
        const bool timeout = timedOut(Phase::kUpstreamResponse);
        worker_.add(timeout ? kUpstreamResponseTimeouts : kUpstreamBadResponses);
        finish(std::move(lease), Balancer::Outcome::kFailure, Clock::now());
        upstream_.reset();
        // The whole request went upstream, so the client's next request starts cleanly: its
        // connection stays open as it asked.
        co_return co_await answerLocal(timeout ? 504 : 502, !request.keepAlive, request.method);
      }
      break;
    }

    const uint16_t status = response_.status;
    countResponse(status);
    finish(std::move(lease),
           status >= 500 ? Balancer::Outcome::kFailure : Balancer::Outcome::kSuccess, Clock::now());
    if (status == 101) co_return co_await tunnel(request);
    co_return co_await relayResponse(request);
  }

  void finish(Balancer::Lease lease, Balancer::Outcome outcome, Clock::time_point now) {
    if (worker_.balancer.finished(std::move(lease), outcome, now)) worker_.add(kEjections);
  }

  awaitable<bool> retryOnNewConnection() {
    worker_.add(kUpstreamRetries);
    RouteEndpoint endpoint = upstream_->endpoint;
    upstream_.reset();
    expired_.reset();
    co_return co_await connectUpstream(endpoint, false);
  }

  // Sends the request head and body upstream (the head alone proxy() writes itself). Sets
  // bodySent once body bytes read from the client after the head have gone out (they cannot be
  // sent again); clientFailed_ when the client side failed.
  awaitable<error_code> sendRequest(const RequestSummary& request, bool& bodySent) {
    clientFailed_ = false;
    if (request.body == http1::BodyKind::kContentLength) {
      uint64_t remaining = request.contentLength;
      size_t now = static_cast<size_t>(std::min<uint64_t>(remaining, in_.size()));
      std::array<asio::const_buffer, 2> first{asio::buffer(upstreamHead_),
                                              asio::buffer(in_.data().data(), now)};
      if (error_code ec = co_await writeAll(upstream_->socket, first)) co_return ec;
      in_.consume(now);
      recorder_.received(now);
      remaining -= now;
      bodySent = true;
      if (remaining > 0) co_await maybeContinue(request);
      while (remaining > 0) {
        setPhase(Phase::kClientBody);
        auto [ec, n] = co_await readSome(client_, in_);
        if (ec) {
          clientFailed_ = true;
          co_return ec;
        }
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(remaining, in_.size()));
        if (error_code w =
                co_await writeAll(upstream_->socket, asio::buffer(in_.data().data(), chunk))) {
          co_return w;
        }
        in_.consume(chunk);
        recorder_.received(chunk);
        remaining -= chunk;
      }
      co_return error_code();
    }
    // Chunked: decoded here, re-chunked upstream (the peer's framing never passes through).
    http1::ChunkedDecoder decoder(options_.maxBodyBytes == 0 ? UINT64_MAX : options_.maxBodyBytes);
    bool headSent = false;
    bool continued = false;
    for (;;) {
      body_.clear();
      if (!headSent) body_.append(upstreamHead_);
      http1::ParseStatus status = http1::ParseStatus::kIncomplete;
      http1::ParseError parseError;
      while (!in_.empty()) {
        http1::ChunkedDecoder::Step step;
        status = decoder.decode(in_.data(), step, parseError);
        if (status == http1::ParseStatus::kError) break;
        if (!step.data.empty()) {
          http1::appendChunkHeader(step.data.size(), body_);
          body_.append(step.data);
          body_.append("\r\n");
        }
        in_.consume(step.consumed);
        recorder_.received(step.consumed);
        if (status == http1::ParseStatus::kComplete) {
          body_.append(http1::kLastChunk);
          break;
        }
        if (step.consumed == 0) break;
      }
      if (status == http1::ParseStatus::kError) {
        clientFailed_ = true;
        if (parseError.status == 413) worker_.add(kBodyTooLarge);
        worker_.add(kBadRequests);
        // The upstream got a partial body: it is closed unread.
        co_await answerLocal(parseError.status, true, request.method);
        co_return asio::error::invalid_argument;
      }
      if (!body_.empty()) {
        if (error_code ec = co_await writeAll(upstream_->socket, asio::buffer(body_))) co_return ec;
        if (headSent) bodySent = true;
        headSent = true;
      }
      if (status == http1::ParseStatus::kComplete) co_return error_code();
      bodySent = true;
      if (!continued) {
        co_await maybeContinue(request);
        continued = true;
      }
      setPhase(Phase::kClientBody);
      auto [ec, n] = co_await readSome(client_, in_);
      if (ec) {
        clientFailed_ = true;
        co_return ec;
      }
    }
  }

  // RFC 9110 10.1.1: a client that sent Expect: 100-continue waits for it before the body.
  awaitable<void> maybeContinue(const RequestSummary& request) {
    if (request.expectContinue && request.minorVersion != 0 && !continueSent_) {
      continueSent_ = true;
      setPhase(Phase::kClientWrite);
      error_code ec = co_await writeAll(client_, asio::buffer(k100Continue));
      if (ec) clientFailed_ = true;
    }
  }

  // Relays the response whose head is in response_ and the rest in upstream_->in.
  awaitable<bool> relayResponse(const RequestSummary& request) {
    continueSent_ = false;
    bool clientKeepAlive = request.keepAlive && !worker_.draining;
    out_.clear();
    http1::ClientBodyFraming framing = http1::appendClientResponseHead(
        response_, {request.minorVersion, !clientKeepAlive, request.method}, out_);
    if (framing == http1::ClientBodyFraming::kUntilClose) clientKeepAlive = false;
    const http1::BodyKind upstreamBody = response_.body;
    const uint64_t contentLength = response_.contentLength;
    bool upstreamReusable = response_.keepAlive;
    upstream_->in.consume(response_.headLength);

    bool complete = false;  // the upstream's body ended where its framing says
    if (upstreamBody == http1::BodyKind::kNone) {
      complete = true;
      setPhase(Phase::kClientWrite);
      recorder_.sent(out_.size());
      error_code ec;
      size_t written = 0;
      if (!writeNow(client_, asio::buffer(out_), written, ec)) {
        ec = co_await writeAll(client_, remainderAfter(asio::buffer(out_), written));
      }
      if (ec) co_return false;
    } else if (upstreamBody == http1::BodyKind::kContentLength) {
      uint64_t remaining = contentLength;
      bool headWritten = false;
      for (;;) {
        size_t now = static_cast<size_t>(std::min<uint64_t>(remaining, upstream_->in.size()));
        std::array<asio::const_buffer, 2> buffers{
            asio::buffer(out_.data(), headWritten ? 0 : out_.size()),
            asio::buffer(upstream_->in.data().data(), now)};
        setPhase(Phase::kClientWrite);
        recorder_.sent(asio::buffer_size(buffers));
        error_code writeError;
        size_t written = 0;
        if (!writeNow(client_, buffers, written, writeError)) {
          writeError = co_await writeAll(client_, remainderAfter(buffers, written));
        }
        if (writeError) co_return false;
        headWritten = true;
        upstream_->in.consume(now);
        remaining -= now;
        if (remaining == 0) {
          complete = true;
          break;
        }
        setPhase(Phase::kUpstreamResponse);
        auto [ec, n] = co_await readSome(upstream_->socket, upstream_->in);
        if (ec) break;  // truncated: the client cannot get a whole answer; close it
      }
    } else {
      // Chunked or until-close upstream body: decoded and written in the client's framing.
      http1::ChunkedDecoder decoder;
      bool headWritten = false;
      for (;;) {
        body_.clear();
        if (!headWritten) body_.append(out_);
        bool ended = false;
        bool broken = false;
        if (upstreamBody == http1::BodyKind::kChunked) {
          while (!upstream_->in.empty()) {
            http1::ChunkedDecoder::Step step;
            http1::ParseError parseError;
            auto status = decoder.decode(upstream_->in.data(), step, parseError);
            if (status == http1::ParseStatus::kError) {
              broken = true;
              break;
            }
            appendBody(step.data, framing);
            upstream_->in.consume(step.consumed);
            if (status == http1::ParseStatus::kComplete) {
              ended = true;
              break;
            }
            if (step.consumed == 0) break;
          }
        } else {
          appendBody(upstream_->in.data(), framing);
          upstream_->in.clear();
        }
        if (ended && framing == http1::ClientBodyFraming::kChunked) body_.append(http1::kLastChunk);
        if (!body_.empty()) {
          setPhase(Phase::kClientWrite);
          if (co_await writeClient(asio::buffer(body_))) co_return false;
          headWritten = true;
        }
        if (ended || broken) {
          complete = ended;
          break;
        }
        setPhase(Phase::kUpstreamResponse);
        auto [ec, n] = co_await readSome(upstream_->socket, upstream_->in);
        if (ec) {
          if (upstreamBody == http1::BodyKind::kUntilClose && ec == asio::error::eof) {
            if (framing == http1::ClientBodyFraming::kChunked) {
              setPhase(Phase::kClientWrite);
              if (co_await writeClient(asio::buffer(http1::kLastChunk))) co_return false;
              complete = true;
            } else {
              complete = true;
            }
          }
          upstreamReusable = false;
          break;
        }
      }
    }
    if (!complete) {
      upstream_.reset();
      co_return false;
    }
    if (upstreamReusable && upstream_->in.empty()) {
      worker_.pool.put(std::move(upstream_), Clock::now());
    }
    upstream_.reset();
    co_return clientKeepAlive;
  }

  void appendBody(std::string_view data, http1::ClientBodyFraming framing) {
    if (data.empty()) return;
    if (framing == http1::ClientBodyFraming::kChunked) {
      http1::appendChunkHeader(data.size(), body_);
      body_.append(data);
      body_.append("\r\n");
    } else {
      body_.append(data);
    }
  }

  // 101 Switching Protocols: the head goes to the client, then bytes flow both ways untouched
  // until either side closes. The connection is never reused afterwards.
  awaitable<bool> tunnel(const RequestSummary& request) {
    worker_.add(kUpgrades);
    out_.clear();
    http1::appendClientResponseHead(response_, {request.minorVersion, false, request.method}, out_);
    upstream_->in.consume(response_.headLength);
    out_.append(upstream_->in.data());
    upstream_->in.clear();
    setPhase(Phase::kClientWrite);
    if (co_await writeClient(asio::buffer(out_))) co_return false;
    if (!in_.empty()) {
      if (co_await writeAll(upstream_->socket, asio::buffer(in_.data()))) co_return false;
      in_.clear();
    }
    setPhase(Phase::kTunnel);
    auto self = this->shared_from_this();
    asio::co_spawn(*worker_.io, pumpFromUpstream(self), asio::detached);
    co_await pump(client_, upstream_->socket, in_);
    co_return false;
  }

  awaitable<void> pumpFromUpstream(std::shared_ptr<Session> self) {
    co_await pump(upstream_->socket, client_, upstream_->in);
    (void)self;
  }

  template <class From, class To>
  awaitable<void> pump(From& from, To& to, ByteBuffer& buffer) {
    for (;;) {
      auto [ec, n] = co_await readSome(from, buffer);
      if (ec) break;
      setPhase(Phase::kTunnel);
      if (co_await writeAll(to, asio::buffer(buffer.data()))) break;
      buffer.clear();
    }
    error_code ignored;
    client_.lowest_layer().close(ignored);
    if (upstream_) upstream_->socket.close(ignored);
  }

  Worker& worker_;
  const IngressOptions& options_;
  Stream client_;
  asio::steady_timer timer_;
  Clock::time_point deadline_ = Clock::time_point::max();
  Phase phase_ = Phase::kClientHead;
  std::optional<Phase> expired_;
  bool done_ = false;
  bool handshakeDone_ = false;
  IpAddress clientIp_;
  std::string clientAddress_;
  bool tls_;
  bool reused_ = false;
  bool clientFailed_ = false;
  bool continueSent_ = false;
  ByteBuffer in_;
  http1::RequestHead request_;
  http1::ResponseHead response_;
  std::unique_ptr<UpstreamConnection> upstream_;
  RequestRecorder recorder_;
  std::string upstreamHead_;
  std::string out_;
  std::string body_;
  std::string local_;
};

IpAddress toIpAddress(const asio::ip::address& address) {
  if (address.is_v4()) return IpAddress::v4(address.to_v4().to_uint());
  const auto v6 = address.to_v6();
  if (v6.is_v4_mapped()) {
    return IpAddress::v4(asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_uint());
  }
  return IpAddress::v6(v6.to_bytes());
}

}  // namespace

awaitable<void> IngressServer::Worker::acceptLoop(tcp::acceptor& acceptor, bool tlsListener) {
  asio::steady_timer backoff(*io);
  for (;;) {
    error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(kUseAwaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      // EMFILE and friends: wait a little instead of spinning on the error.
      backoff.expires_after(std::chrono::milliseconds(10));
      co_await backoff.async_wait(asio::redirect_error(kUseAwaitable, ec));
      continue;
    }
    const uint32_t active = connections.fetch_add(1, std::memory_order_relaxed);
    if (options.maxConnections != 0 && active >= options.maxConnections) {
      connections.fetch_sub(1, std::memory_order_relaxed);
      add(kConnectionsRefused);
      socket.close(ec);
      continue;
    }
    add(kConnectionsAccepted);
    socket.set_option(tcp::no_delay(true), ec);
    tcp::endpoint remote = socket.remote_endpoint(ec);
    const IpAddress client = ec ? IpAddress() : toIpAddress(remote.address());
    if (tlsListener) {
      auto session = std::make_shared<Session<TlsStream>>(
          *this, TlsStream(std::move(socket), tls->asioContext()), client, true);
      Session<TlsStream>::start(std::move(session));
    } else {
      socket.non_blocking(true, ec);  // see kPlain
      auto session =
          std::make_shared<Session<tcp::socket>>(*this, std::move(socket), client, false);
      Session<tcp::socket>::start(std::move(session));
    }
  }
}

awaitable<void> IngressServer::Worker::rotateTicketKeys(std::shared_ptr<tls::TicketKeys> keys) {
  asio::steady_timer timer(*io);
  for (;;) {
    timer.expires_after(tls::kTicketKeyRotationPeriod);
    error_code ec;
    co_await timer.async_wait(asio::redirect_error(kUseAwaitable, ec));
    if (ec) co_return;
    (void)keys->rotate();  // a failure keeps the current key, which still works
  }
}

awaitable<void> IngressServer::Worker::reapLoop() {
  asio::steady_timer timer(*io);
  const auto period = std::max(std::chrono::milliseconds(100), options.upstreamIdleTimeout / 4);
  for (;;) {
    timer.expires_after(period);
    error_code ec;
    co_await timer.async_wait(asio::redirect_error(kUseAwaitable, ec));
    if (ec) co_return;
    pool.closeIdleSince(Clock::now() - options.upstreamIdleTimeout);
    stats.reap();
  }
}

awaitable<void> IngressServer::Worker::flushAccessLogLoop() {
  asio::steady_timer timer(*io);
  for (;;) {
    timer.expires_after(kAccessLogFlushPeriod);
    error_code ec;
    co_await timer.async_wait(asio::redirect_error(kUseAwaitable, ec));
    if (ec) co_return;
    accessLog.flush();
  }
}

namespace {

Result<tcp::acceptor> listenReusePort(asio::io_context& io, const tcp::endpoint& endpoint) {
  tcp::acceptor acceptor(io);
  error_code ec;
  auto fail = [&] {
    return Error("cannot listen on " + endpoint.address().to_string() + ":" +
                 std::to_string(endpoint.port()) + ": " + ec.message());
  };
  if (acceptor.open(endpoint.protocol(), ec); ec) return fail();
  if (endpoint.address().is_v6() && endpoint.address().is_unspecified()) {
    acceptor.set_option(asio::ip::v6_only(false), ec);
    ec.clear();
  }
  acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  // Every worker listens on the same port; the kernel spreads new connections over them.
  int one = 1;
  if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
    ec = error_code(errno, boost::system::system_category());
    return fail();
  }
  if (acceptor.bind(endpoint, ec); ec) return fail();
  if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) return fail();
  return acceptor;
}

}  // namespace

Result<std::unique_ptr<IngressServer>> IngressServer::start(
    IngressOptions options, std::shared_ptr<const RouteTable> table,
    std::shared_ptr<const tls::CertificateSet> certificates) {
  std::unique_ptr<IngressServer> server(new IngressServer());
  server->options_ = std::make_unique<IngressOptions>(std::move(options));
  const IngressOptions& opts = *server->options_;
  const std::optional<tcp::endpoint>& http = opts.httpAddress;
  const std::optional<tcp::endpoint>& https = opts.httpsAddress;
  if (https) {
    if (!certificates) return Error("an HTTPS listener needs certificates");
    auto keys = tls::TicketKeys::create();
    if (!keys.ok()) return keys.error().withContext("TLS session ticket keys");
    server->ticketKeys_ = std::move(keys).value();
  }
  const unsigned workers =
      opts.workers != 0 ? opts.workers : std::max(1u, std::thread::hardware_concurrency());
  server->layout_ = StatsLayout::build(table.get(), nullptr);
  std::random_device random;
  for (unsigned i = 0; i < workers; ++i) {
    auto worker =
        std::make_unique<Worker>(opts, server->connections_, (uint64_t{random()} << 32) ^ random());
    worker->balancer.setTable(table);
    worker->stats.setLayout(server->layout_);
    // Port 0: the first worker's port, so that every worker shares it (SO_REUSEPORT).
    if (http) {
      auto acceptor = listenReusePort(*worker->io, i == 0 ? *http : server->httpEndpoint_);
      if (!acceptor.ok()) return acceptor.error();
      if (i == 0) server->httpEndpoint_ = acceptor->local_endpoint();
      worker->http.emplace(std::move(acceptor).value());
    }
    if (https) {
      auto context = tls::ServerContext::create({}, certificates, server->ticketKeys_);
      if (!context.ok()) return context.error().withContext("TLS");
      worker->tls = std::move(context).value();
      auto acceptor = listenReusePort(*worker->io, i == 0 ? *https : server->httpsEndpoint_);
      if (!acceptor.ok()) return acceptor.error();
      if (i == 0) server->httpsEndpoint_ = acceptor->local_endpoint();
      worker->https.emplace(std::move(acceptor).value());
    }
    server->workers_.push_back(std::move(worker));
  }
  for (auto& worker : server->workers_) {
    Worker* w = worker.get();
    if (w->http) asio::co_spawn(*w->io, w->acceptLoop(*w->http, false), asio::detached);
    if (w->https) asio::co_spawn(*w->io, w->acceptLoop(*w->https, true), asio::detached);
    asio::co_spawn(*w->io, w->reapLoop(), asio::detached);
    if (w->accessLog.enabled()) asio::co_spawn(*w->io, w->flushAccessLogLoop(), asio::detached);
  }
  if (server->ticketKeys_) {
    Worker* first = server->workers_.front().get();
    asio::co_spawn(*first->io, first->rotateTicketKeys(server->ticketKeys_), asio::detached);
  }
  for (auto& worker : server->workers_) {
    Worker* w = worker.get();
    w->thread = std::thread([w] { w->io->run(); });
  }
  return server;
}

IngressServer::~IngressServer() {
  for (auto& worker : workers_) worker->stop();
  workers_.clear();
}

void IngressServer::publish(std::shared_ptr<const RouteTable> table) {
  // Which stats the table has is worked out here, once, not by every worker. Under the lock so
  // that every worker gets the tables in the same order.
  std::lock_guard lock(publishMutex_);
  layout_ = StatsLayout::build(table.get(), layout_.get());
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    asio::post(*w->io, [w, table, layout = layout_] {
      w->balancer.setTable(table);
      w->stats.setLayout(layout);
      w->add(kTableSwaps);
    });
  }
}

void IngressServer::publishCertificates(std::shared_ptr<const tls::CertificateSet> certificates) {
  if (!certificates) return;
  for (auto& worker : workers_) {
    if (worker->tls) worker->tls->publish(certificates);
  }
}

IngressCounters IngressServer::counters() const {
  IngressCounters out;
  for (const auto& w : workers_) {
    out.connectionsAccepted += w->get(kConnectionsAccepted);
    out.connectionsRefused += w->get(kConnectionsRefused);
    out.requests += w->get(kRequests);
    for (size_t c = 0; c < 5; ++c)
      out.responses[c + 1] += w->get(static_cast<Counter>(kResponses1xx + c));
    out.badRequests += w->get(kBadRequests);
    out.headerTimeouts += w->get(kHeaderTimeouts);
    out.idleTimeouts += w->get(kIdleTimeouts);
    out.bodyTooLarge += w->get(kBodyTooLarge);
    out.noRoute += w->get(kNoRoute);
    out.noEndpoints += w->get(kNoEndpoints);
    out.upstreamConnects += w->get(kUpstreamConnects);
    out.upstreamReused += w->get(kUpstreamReused);
    out.upstreamConnectFailures += w->get(kUpstreamConnectFailures);
    out.upstreamConnectTimeouts += w->get(kUpstreamConnectTimeouts);
    out.upstreamResponseTimeouts += w->get(kUpstreamResponseTimeouts);
    out.upstreamBadResponses += w->get(kUpstreamBadResponses);
    out.upstreamRetries += w->get(kUpstreamRetries);
    out.upgrades += w->get(kUpgrades);
    out.tableSwaps += w->get(kTableSwaps);
    out.ejections += w->get(kEjections);
    out.tlsHandshakes += w->get(kTlsHandshakes);
    out.tlsHandshakeFailures += w->get(kTlsHandshakeFailures);
    out.tlsResumed += w->get(kTlsResumed);
  }
  out.connectionsActive = connections_.load(std::memory_order_relaxed);
  return out;
}

IngressStats IngressServer::stats() const {
  std::map<RouteLabels, RouteSample> routes;
  std::map<UpstreamLabels, UpstreamSample> upstreams;
  for (const auto& w : workers_) w->stats.collect(routes, upstreams);
  return mergeStats(std::move(routes), std::move(upstreams));
}

void IngressServer::beginDrain() {
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    asio::post(*w->io, [w] { w->drain(false); });
  }
}

bool IngressServer::drained() const { return connections_.load(std::memory_order_relaxed) == 0; }

bool IngressServer::drain(std::chrono::milliseconds timeout) {
  beginDrain();
  const auto deadline = Clock::now() + timeout;
  while (!drained() && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
  if (drained()) return true;
  // Out of time: what is left is cut, and its sessions given a moment to end.
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    asio::post(*w->io, [w] { w->drain(true); });
  }
  const auto cutDeadline = Clock::now() + 1s;
  while (!drained() && Clock::now() < cutDeadline) std::this_thread::sleep_for(10ms);
  return false;
}

boost::asio::ip::tcp::endpoint IngressServer::httpEndpoint() const { return httpEndpoint_; }
boost::asio::ip::tcp::endpoint IngressServer::httpsEndpoint() const { return httpsEndpoint_; }
unsigned IngressServer::workers() const { return static_cast<unsigned>(workers_.size()); }

}  // namespace capstan::l7
