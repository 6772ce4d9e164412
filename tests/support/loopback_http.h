// A minimal HTTP/1.1 client over loopback for tests: raw exchanges (to send what no real client
// would) and a GET with the reply split up. Plain sockets, bounded in time and size, no
// dependency: tests of every floor can probe the daemon's and the ingress's HTTP ports with it.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <regex>
#include <string>

namespace capstan::support {

// Sends `request` to 127.0.0.1:port and returns everything read until the peer closes, a read
// waits longer than `timeoutSeconds`, or 64 MiB arrived. Empty if the connection fails.
// A blocking TCP socket connected to 127.0.0.1:port whose reads and writes give up after
// `timeoutSeconds`; -1 if the connection fails.
inline int connectLoopback(uint16_t port, int timeoutSeconds) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{timeoutSeconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

inline std::string loopbackExchange(uint16_t port, const std::string& request,
                                    int timeoutSeconds = 2) {
  int fd = connectLoopback(port, timeoutSeconds);
  if (fd < 0) return "";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return "";
  }
  std::string raw;
  char buf[65536];
  for (int i = 0; i < 4096 && raw.size() < (size_t{64} << 20); ++i) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return raw;
}

struct HttpReply {
  int status = 0;
  std::string headers;  // the status line and header block, as sent
  std::string body;
};

// `method` `path` with Connection: close; nullopt if the connection fails, the reply is not
// HTTP/1.1, or a Content-Length does not match the body.
inline std::optional<HttpReply> httpRequest(uint16_t port, const std::string& method,
                                            const std::string& path) {
  std::string raw = loopbackExchange(
      port,
      method + " " + path +
          " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: capstan-test\r\nConnection: close\r\n\r\n");
  size_t headerEnd = raw.find("\r\n\r\n");
  if (!raw.starts_with("HTTP/1.1 ") || headerEnd == std::string::npos) return std::nullopt;
  HttpReply reply;
  reply.status = std::atoi(raw.c_str() + 9);
  reply.headers = raw.substr(0, headerEnd);
  reply.body = raw.substr(headerEnd + 4);
  std::smatch m;
  static const std::regex kLength("\r\n[Cc]ontent-[Ll]ength: *([0-9]+)");
  if (method != "HEAD" && std::regex_search(reply.headers, m, kLength) &&
      std::stoull(m[1].str()) != reply.body.size()) {
    return std::nullopt;
  }
  return reply;
}

inline std::optional<HttpReply> httpGet(uint16_t port, const std::string& path) {
  return httpRequest(port, "GET", path);
}

}  // namespace capstan::support
