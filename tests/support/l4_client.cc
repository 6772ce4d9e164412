#include "tests/support/l4_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>

namespace capstan::support {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t len = 0;
  int family() const { return storage.ss_family; }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

std::optional<SocketAddress> parseAddress(const std::string& address, uint16_t port) {
  SocketAddress a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.len = sizeof(sockaddr_in);
    return a;
  }
  if (::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.len = sizeof(sockaddr_in6);
    return a;
  }
  return std::nullopt;
}

std::chrono::microseconds since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
}

int millisLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

// How a connect or a read error is classified: a rejection (what REJECT rules produce: a TCP
// RST, or ICMP port/host/net unreachable or administratively prohibited) or something else.
Outcome classifyErrno(int err) {
  switch (err) {
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EHOSTDOWN:
    case EACCES:
      return Outcome::kRefused;
    case ETIMEDOUT:
      return Outcome::kTimeout;
    case ECONNRESET:
    case EPIPE:
      return Outcome::kClosed;
    default:
      return Outcome::kError;
  }
}

Answer failure(Outcome outcome, Clock::time_point start, std::string detail) {
  Answer a;
  a.outcome = outcome;
  a.elapsed = since(start);
  a.detail = std::move(detail);
  return a;
}

// A non-blocking TCP connection to address:port within the deadline; -1 with `answer` saying
// why not.
int tcpConnect(const std::string& address, uint16_t port, Clock::time_point start,
               Clock::time_point deadline, Answer& answer) {
  auto target = parseAddress(address, port);
  if (!target) {
    answer = failure(Outcome::kError, start, "not a numeric IP address: " + address);
    return -1;
  }
  int fd = ::socket(target->family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    answer = failure(Outcome::kError, start, std::string("socket: ") + std::strerror(errno));
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (::connect(fd, target->get(), target->len) != 0 && errno != EINPROGRESS) {
    int err = errno;
    ::close(fd);
    answer = failure(classifyErrno(err), start, std::strerror(err));
    return -1;
  }
  for (size_t pass = 0; pass < 1000; ++pass) {
    pollfd p{fd, POLLOUT, 0};
    int n = ::poll(&p, 1, millisLeft(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      ::close(fd);
      answer = failure(Outcome::kTimeout, start, "no answer to the connection attempt");
      return -1;
    }
    if (n < 0) break;
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      ::close(fd);
      answer = failure(classifyErrno(err), start, std::strerror(err));
      return -1;
    }
    return fd;
  }
  int err = errno;
  ::close(fd);
  answer = failure(Outcome::kError, start, std::string("poll: ") + std::strerror(err));
  return -1;
}

// Reads up to and including the next "\n" (kept out of `line`), with bytes past it left in
// `pending`. kAnswered with the line, or why not.
Outcome readLine(int fd, std::string& pending, Clock::time_point deadline, std::string& line,
                 std::string& detail) {
  constexpr size_t kMaxLine = 64 * 1024;
  for (size_t pass = 0; pass < 100'000; ++pass) {
    size_t nl = pending.find('\n');
    if (nl != std::string::npos) {
      line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      return Outcome::kAnswered;
    }
    if (pending.size() > kMaxLine) {
      detail = "a line longer than 64 KiB";
      return Outcome::kError;
    }
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, millisLeft(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      detail = "no reply";
      return Outcome::kTimeout;
    }
    char buf[4096];
    ssize_t got = ::recv(fd, buf, sizeof(buf), 0);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got == 0) {
      detail = "closed by the other side";
      return Outcome::kClosed;
    }
    if (got < 0) {
      detail = std::strerror(errno);
      Outcome o = classifyErrno(errno);
      return o == Outcome::kRefused ? Outcome::kClosed : o;  // established: a reset is a close
    }
    pending.append(buf, static_cast<size_t>(got));
  }
  detail = "too many reads";
  return Outcome::kError;
}

bool sendAll(int fd, const std::string& data, Clock::time_point deadline, std::string& detail) {
  size_t sent = 0;
  for (size_t pass = 0; pass < 100'000 && sent < data.size(); ++pass) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n >= 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) {
      detail = std::strerror(errno);
      return false;
    }
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, millisLeft(deadline)) == 0) {
      detail = "send timed out";
      return false;
    }
  }
  return sent == data.size();
}

std::string millis(std::chrono::microseconds us) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f ms", static_cast<double>(us.count()) / 1000.0);
  return buf;
}

}  // namespace

const char* toString(Outcome outcome) {
  switch (outcome) {
    case Outcome::kAnswered:
      return "answered";
    case Outcome::kRefused:
      return "refused";
    case Outcome::kTimeout:
      return "timeout";
    case Outcome::kClosed:
      return "closed";
    case Outcome::kError:
      return "error";
  }
  return "?";
}

std::string Answer::describe() const {
  if (ok()) return "answered by " + name + " in " + millis(elapsed);
  return std::string(toString(outcome)) + (detail.empty() ? "" : " (" + detail + ")") + " after " +
         millis(elapsed);
}

Answer tcpAsk(const std::string& address, uint16_t port, std::chrono::milliseconds timeout) {
  TcpConnection c = tcpHold(address, port, timeout);
  return c.greeting();
}

TcpConnection tcpHold(const std::string& address, uint16_t port,
                      std::chrono::milliseconds timeout) {
  TcpConnection c;
  auto start = Clock::now();
  auto deadline = start + timeout;
  int fd = tcpConnect(address, port, start, deadline, c.greeting_);
  if (fd < 0) return c;
  std::string line, detail;
  Outcome o = readLine(fd, c.pending_, deadline, line, detail);
  c.greeting_.elapsed = since(start);
  c.greeting_.outcome = o;
  if (o != Outcome::kAnswered) {
    c.greeting_.detail = "connected, then " + detail;
    ::close(fd);
    return c;
  }
  if (line.empty() || line.find(' ') != std::string::npos) {
    c.greeting_.outcome = Outcome::kError;
    c.greeting_.detail = "not an echo greeting: \"" + line + "\"";
    ::close(fd);
    return c;
  }
  c.greeting_.name = line;
  c.fd_ = fd;
  return c;
}

TcpConnection::TcpConnection(TcpConnection&& other) noexcept
    : fd_(other.fd_), greeting_(std::move(other.greeting_)), pending_(std::move(other.pending_)) {
  other.fd_ = -1;
}

TcpConnection& TcpConnection::operator=(TcpConnection&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    greeting_ = std::move(other.greeting_);
    pending_ = std::move(other.pending_);
    other.fd_ = -1;
  }
  return *this;
}

TcpConnection::~TcpConnection() {
  if (fd_ >= 0) ::close(fd_);
}

Answer TcpConnection::talk(const std::string& line, std::chrono::milliseconds timeout) {
  auto start = Clock::now();
  auto deadline = start + timeout;
  if (fd_ < 0) return failure(Outcome::kError, start, "the connection is not open");
  if (line.find('\n') != std::string::npos) return failure(Outcome::kError, start, "a newline");
  std::string detail;
  if (!sendAll(fd_, line + "\n", deadline, detail)) {
    return failure(Outcome::kClosed, start, "send: " + detail);
  }
  std::string reply;
  Outcome o = readLine(fd_, pending_, deadline, reply, detail);
  if (o != Outcome::kAnswered) return failure(o, start, detail);
  Answer a;
  a.elapsed = since(start);
  size_t space = reply.find(' ');
  if (space == std::string::npos || reply.substr(space + 1) != line) {
    a.outcome = Outcome::kError;
    a.detail = "not the echo of \"" + line + "\": \"" + reply + "\"";
    return a;
  }
  a.outcome = Outcome::kAnswered;
  a.name = reply.substr(0, space);
  return a;
}

Answer udpAsk(const std::string& address, uint16_t port, std::chrono::milliseconds timeout,
              uint16_t sourcePort) {
  auto start = Clock::now();
  auto deadline = start + timeout;
  auto target = parseAddress(address, port);
  if (!target) return failure(Outcome::kError, start, "not a numeric IP address: " + address);
  int fd = ::socket(target->family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return failure(Outcome::kError, start, std::string("socket: ") + strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (sourcePort != 0) {
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    SocketAddress local;
    local.storage.ss_family = static_cast<sa_family_t>(target->family());
    if (target->family() == AF_INET) {
      reinterpret_cast<sockaddr_in*>(&local.storage)->sin_port = htons(sourcePort);
      local.len = sizeof(sockaddr_in);
    } else {
      reinterpret_cast<sockaddr_in6*>(&local.storage)->sin6_port = htons(sourcePort);
      local.len = sizeof(sockaddr_in6);
    }
    if (::bind(fd, local.get(), local.len) != 0) {
      return failure(Outcome::kError, start,
                     "bind to source port " + std::to_string(sourcePort) + ": " + strerror(errno));
    }
  }
  // Connected, so that an ICMP error for the flow is reported on this socket.
  if (::connect(fd, target->get(), target->len) != 0) {
    int err = errno;
    return failure(classifyErrno(err), start, std::string("connect: ") + strerror(err));
  }
  // A payload of its own, so that a late reply to an earlier ask on the same flow is not taken
  // for this one's.
  static std::atomic<uint64_t> sequence{0};
  std::string payload = "ask-" + std::to_string(::getpid()) + "-" + std::to_string(sequence++);
  if (::send(fd, payload.data(), payload.size(), 0) < 0) {
    int err = errno;
    return failure(classifyErrno(err), start, std::string("send: ") + strerror(err));
  }
  for (size_t pass = 0; pass < 10'000; ++pass) {
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, millisLeft(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return failure(Outcome::kTimeout, start, "no reply");
    char buf[65536];
    ssize_t got = ::recv(fd, buf, sizeof(buf), 0);
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      int err = errno;
      return failure(classifyErrno(err), start, strerror(err));
    }
    std::string reply(buf, static_cast<size_t>(got));
    std::string suffix = " " + payload;
    if (reply.size() > suffix.size() && reply.ends_with(suffix)) {
      Answer a;
      a.outcome = Outcome::kAnswered;
      a.name = reply.substr(0, reply.size() - suffix.size());
      a.elapsed = since(start);
      return a;
    }
    // Not the echo of this ask (a late one): keep waiting.
  }
  return failure(Outcome::kError, start, "too many stray datagrams");
}

Result<HttpReply> httpAsk(const std::string& address, uint16_t port, const std::string& path,
                          std::chrono::milliseconds timeout) {
  auto start = Clock::now();
  auto deadline = start + timeout;
  Answer connectFailure;
  int fd = tcpConnect(address, port, start, deadline, connectFailure);
  std::string where = "GET http://" + address + ":" + std::to_string(port) + path;
  if (fd < 0) return Error(where + ": " + connectFailure.describe());
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + address + ":" +
                        std::to_string(port) +
                        "\r\nUser-Agent: capstan-test\r\nConnection: close\r\n\r\n";
  std::string detail;
  if (!sendAll(fd, request, deadline, detail)) return Error(where + ": send: " + detail);
  std::string raw;
  for (size_t pass = 0; pass < 100'000 && raw.size() < (size_t{16} << 20); ++pass) {
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, millisLeft(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return Error(where + ": no complete reply within the timeout: \"" + raw + "\"");
    char buf[16384];
    ssize_t got = ::recv(fd, buf, sizeof(buf), 0);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got < 0) return Error(where + ": " + strerror(errno));
    if (got == 0) break;
    raw.append(buf, static_cast<size_t>(got));
  }
  size_t headerEnd = raw.find("\r\n\r\n");
  if (!raw.starts_with("HTTP/1.") || raw.size() < 12 || headerEnd == std::string::npos) {
    return Error(where + ": not an HTTP reply: \"" + raw + "\"");
  }
  HttpReply reply;
  reply.status = std::atoi(raw.c_str() + 9);
  reply.headers = raw.substr(0, headerEnd);
  reply.body = raw.substr(headerEnd + 4);
  return reply;
}

std::string echoServerBinary() {
#ifdef CAPSTAN_TEST_ECHO
  return CAPSTAN_TEST_ECHO;
#else
  return "";
#endif
}

Result<Process> startEchoServer(Topology& topology, const std::string& ns, const std::string& name,
                                const std::vector<std::string>& listen) {
  std::string binary = echoServerBinary();
  if (binary.empty() || ::access(binary.c_str(), X_OK) != 0) {
    return Error("capstan_test_echo is not built (looked for \"" + binary + "\")");
  }
  std::vector<std::string> argv = {binary, "--name", name};
  for (const std::string& address : listen) {
    argv.insert(argv.end(), {"--tcp", address, "--udp", address});
  }
  auto process = topology.spawn(ns, argv, "echo-" + name + ".log");
  if (!process.ok()) return process.error();
  if (!process->waitForOutput("ready\n", 5s)) {
    return Error("echo server " + name + " in " + ns + " did not start: " + process->output());
  }
  return std::move(*process);
}

}  // namespace capstan::support
