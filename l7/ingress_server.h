// IngressServer: the ingress's request path. N worker threads, each with its own io_context and
// its own SO_REUSEPORT listeners (the kernel spreads connections over them), its own upstream
// connection pools, balancer and counters: nothing is shared between workers on the request
// path.
//
// Who calls it: the control thread starts it, publishes a new RouteTable after every sync that
// changes routes or endpoints (publish() posts the table to every worker; a worker uses it from
// its next request on, requests in progress finish on the table they started with — no reload,
// no dropped connection), and reads counters() for /metrics.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "l7/access_log.h"
#include "l7/balancer.h"
#include "l7/http1/message.h"
#include "l7/ingress_metrics.h"
#include "l7/route_table.h"
#include "l7/tls/certificate_set.h"
#include "l7/tls/ticket_keys.h"
#include "model/result.h"

namespace capstan::l7 {

struct IngressOptions {
  // The listeners (port 0: any free port, the same for every worker); none: no such listener.
  std::optional<boost::asio::ip::tcp::endpoint> httpAddress;
  std::optional<boost::asio::ip::tcp::endpoint> httpsAddress;
  unsigned workers = 0;  // 0: one per core
  http1::Limits limits;
  // A request head must arrive whole within headerTimeout of its first byte (slowloris).
  std::chrono::milliseconds headerTimeout{10'000};
  // A keep-alive connection may wait this long for its next request; and a body (either way)
  // may make no progress for this long.
  std::chrono::milliseconds idleTimeout{60'000};
  std::chrono::milliseconds upstreamConnectTimeout{5'000};
  // From the request sent to the response head, and between reads of the response body.
  std::chrono::milliseconds upstreamResponseTimeout{60'000};
  uint64_t maxBodyBytes = uint64_t{1} << 30;  // a larger request body: 413; 0: no limit
  uint32_t maxConnections = 100'000;          // client connections, all workers; 0: no limit
  uint32_t maxIdleUpstreamPerEndpoint = 64;   // per worker
  std::chrono::milliseconds upstreamIdleTimeout{30'000};  // pooled connections closed after
  HealthOptions health;
  // The access log; null: none. Every worker formats its own lines (l7/access_log.h).
  std::shared_ptr<AccessLogWriter> accessLog;
  AccessLogFormat accessLogFormat = AccessLogFormat::kJson;
};

// Counters summed over the workers. Monotonic except connectionsActive.
struct IngressCounters {
  uint64_t connectionsAccepted = 0;
  uint64_t connectionsRefused = 0;  // over maxConnections
  uint64_t connectionsActive = 0;
  uint64_t requests = 0;
  uint64_t responses[6] = {};  // by class: [1] 1xx ... [5] 5xx
  uint64_t badRequests = 0;    // refused by the parser (4xx/5xx and close)
  uint64_t headerTimeouts = 0;
  uint64_t idleTimeouts = 0;
  uint64_t bodyTooLarge = 0;
  uint64_t noRoute = 0;      // 404
  uint64_t noEndpoints = 0;  // 503
  uint64_t upstreamConnects = 0;
  uint64_t upstreamReused = 0;  // requests sent on a pooled connection
  uint64_t upstreamConnectFailures = 0;
  uint64_t upstreamConnectTimeouts = 0;
  uint64_t upstreamResponseTimeouts = 0;
  uint64_t upstreamBadResponses = 0;
  uint64_t upstreamRetries = 0;
  uint64_t upgrades = 0;  // tunnelled (WebSocket) connections
  uint64_t ejections = 0;
  uint64_t tableSwaps = 0;  // route tables adopted, summed over workers
  uint64_t tlsHandshakes = 0;
  uint64_t tlsHandshakeFailures = 0;  // failed or timed out (headerTimeout)
  uint64_t tlsResumed = 0;            // handshakes that resumed a session from a ticket
};

class IngressServer {
 public:
  // Binds every worker's listeners and starts the workers. Errors name the address. With an
  // HTTPS listener, `certificates` (required) is what handshakes choose from until
  // publishCertificates().
  static Result<std::unique_ptr<IngressServer>> start(
      IngressOptions options, std::shared_ptr<const RouteTable> table,
      std::shared_ptr<const tls::CertificateSet> certificates = nullptr);
  ~IngressServer();  // stops the workers and closes every connection

  IngressServer(const IngressServer&) = delete;
  IngressServer& operator=(const IngressServer&) = delete;

  // Hands `table` to every worker. Thread-safe; returns at once.
  void publish(std::shared_ptr<const RouteTable> table);
  // Hands `certificates` to every worker's TLS context: new handshakes use them, connections
  // already established keep theirs. Thread-safe. No-op without an HTTPS listener.
  void publishCertificates(std::shared_ptr<const tls::CertificateSet> certificates);

  IngressCounters counters() const;
  // Per route and per upstream, summed over the workers, for the current table. Thread-safe.
  IngressStats stats() const;

  // Graceful shutdown. beginDrain(): the listeners close (new connections are refused), idle
  // keep-alive connections close at once, requests in flight go on and their responses carry
  // "Connection: close". Thread-safe; returns at once. drained(): no client connection is left.
  // drain(timeout): both, waiting up to `timeout`, then closes whatever is left (requests still
  // in flight are cut); true when everything ended on its own. The server is of no further use
  // after a drain, but for counters and stats.
  void beginDrain();
  bool drained() const;
  bool drain(std::chrono::milliseconds timeout);
  // The bound HTTP address (the port chosen when the option said port 0).
  boost::asio::ip::tcp::endpoint httpEndpoint() const;
  boost::asio::ip::tcp::endpoint httpsEndpoint() const;
  unsigned workers() const;

  class Worker;

 private:
  IngressServer() = default;
  std::unique_ptr<IngressOptions> options_;      // workers keep a reference
  std::atomic<uint32_t> connections_{0};         // client connections open, all workers
  std::shared_ptr<tls::TicketKeys> ticketKeys_;  // shared by every worker's TLS context
  std::mutex publishMutex_;
  std::shared_ptr<const StatsLayout> layout_;  // of the last table published
  std::vector<std::unique_ptr<Worker>> workers_;
  boost::asio::ip::tcp::endpoint httpEndpoint_;
  boost::asio::ip::tcp::endpoint httpsEndpoint_;
};

}  // namespace capstan::l7
