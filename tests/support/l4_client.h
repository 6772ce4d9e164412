// The client side of the L4 tests: ask a service (a ClusterIP, a NodePort, a load balancer IP)
// which echo backend answers it, over TCP or UDP, and tell how an ask failed: refused (a TCP
// RST or an ICMP unreachable: what a REJECT rule gives) or timed out (what a DROP rule gives),
// with the time it took. Also the small HTTP GET the health check node port is probed with,
// and startEchoServer() for the other end (tests/support/echo_server.cc).
//
// Every function here works in the network namespace of the calling thread: call it through
// Topology::within(ns, ...). Addresses are numeric (IPv4 or IPv6); nothing resolves names.
// Every wait is bounded by the timeout given.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "model/result.h"
#include "tests/support/loopback_http.h"
#include "tests/support/netns.h"

namespace capstan::support {

enum class Outcome {
  kAnswered,  // a backend answered; Answer::name says which
  kRefused,   // connection refused, or an ICMP unreachable/prohibited: rejected
  kTimeout,   // nothing came back in time: dropped
  kClosed,    // an established connection was closed or reset by the other side
  kError,     // anything else (a bad address, a reply that is not the echo protocol)
};

const char* toString(Outcome outcome);

// What one ask came to.
struct Answer {
  Outcome outcome = Outcome::kError;
  std::string name;                     // kAnswered: the backend's name
  std::chrono::microseconds elapsed{};  // from the first packet sent to the outcome
  std::string detail;                   // the errno text, or what was wrong

  bool ok() const { return outcome == Outcome::kAnswered; }
  // "answered by b0 in 0.4 ms", "refused (Connection refused) after 0.2 ms", ...
  std::string describe() const;
};

// Connects to address:port, reads the greeting line ("NAME\n") and closes.
Answer tcpAsk(const std::string& address, uint16_t port, std::chrono::milliseconds timeout);

// An open TCP connection to an echo backend, to talk on later (to check that an established
// connection survives a change of the dataplane). Move-only; closes on destruction.
class TcpConnection {
 public:
  TcpConnection() = default;
  TcpConnection(TcpConnection&& other) noexcept;
  TcpConnection& operator=(TcpConnection&& other) noexcept;
  TcpConnection(const TcpConnection&) = delete;
  TcpConnection& operator=(const TcpConnection&) = delete;
  ~TcpConnection();

  // How the connection was set up: its greeting (the backend's name) or why it failed.
  const Answer& greeting() const { return greeting_; }
  bool open() const { return fd_ >= 0; }

  // Sends `line` + "\n" and waits for the echo "NAME line\n"; the Answer names who echoed.
  // A reply that is not the echo of `line` is kError; a closed or reset connection kClosed.
  Answer talk(const std::string& line, std::chrono::milliseconds timeout);

 private:
  friend TcpConnection tcpHold(const std::string&, uint16_t, std::chrono::milliseconds);
  int fd_ = -1;
  Answer greeting_;
  std::string pending_;  // bytes read past the last line
};

// Connects and reads the greeting; the connection stays open (check greeting().ok()).
TcpConnection tcpHold(const std::string& address, uint16_t port, std::chrono::milliseconds timeout);

// Sends one datagram from `sourcePort` (0: any) to address:port and waits for the echo. A fixed
// source port keeps the flow (the 5-tuple) the same from one ask to the next. An ICMP port
// unreachable in return is kRefused.
Answer udpAsk(const std::string& address, uint16_t port, std::chrono::milliseconds timeout,
              uint16_t sourcePort = 0);

// GET `path` from http://address:port (HTTP/1.1, Connection: close), the whole reply read
// within `timeout`. The error says how the connection failed.
Result<HttpReply> httpAsk(const std::string& address, uint16_t port, const std::string& path,
                          std::chrono::milliseconds timeout);

// Starts capstan_test_echo named `name` in namespace `ns` of `topology`, serving TCP and UDP on
// every address of `listen` ("10.100.2.10:8080", "[fd00:100:2::10]:8080"), and waits until it
// listens.
Result<Process> startEchoServer(Topology& topology, const std::string& ns, const std::string& name,
                                const std::vector<std::string>& listen);

// Where capstan_test_echo is (the path the build gave the tests).
std::string echoServerBinary();

}  // namespace capstan::support
