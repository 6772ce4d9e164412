// capstan_test_echo: the backend of the L4 flow tests. It tells who answered, so a test can see
// which endpoint a flow reached.
//
//   capstan_test_echo --name NAME [--tcp ADDR:PORT]... [--udp ADDR:PORT]...
//
// ADDR is an IPv4 address or a bracketed IPv6 one ([fd00:100:2::10]:8080, [::]:8080); no
// names are resolved. TCP: on accept it writes "NAME\n", then answers every line it receives
// with "NAME <line>\n", so a test can hold a connection and keep talking on it. UDP: every
// datagram is answered to its sender with "NAME <datagram>", from the address it was sent to.
// Once every socket listens it prints "ready" on stdout. SIGTERM or SIGINT: exit 0.
//
// One thread, epoll, non-blocking sockets; replies are written at once (TCP_NODELAY), and a
// connection that sends a line longer than 64 KiB or stops reading its replies is closed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

constexpr size_t kMaxLine = 64 * 1024;
constexpr size_t kMaxPendingOutput = 1024 * 1024;
constexpr size_t kMaxConnections = 20000;

struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
  std::string text;
};

std::optional<Endpoint> parseEndpoint(const std::string& text) {
  std::string host, port;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p < 0 || p > 65535) return std::nullopt;
  Endpoint e;
  e.text = text;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&e.addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&e.addr);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(p));
    e.len = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(p));
    e.len = sizeof(sockaddr_in6);
  } else {
    return std::nullopt;
  }
  return e;
}

int openSocket(const Endpoint& e, int type) {
  int family = e.addr.ss_family;
  int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (type == SOCK_DGRAM) {
    // To answer from the address a datagram was sent to, even on a wildcard socket.
    if (family == AF_INET) {
      ::setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
    } else {
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
    }
  }
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&e.addr), e.len) != 0 ||
      (type == SOCK_STREAM && ::listen(fd, 1024) != 0)) {
    int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

struct Connection {
  std::string in;
  std::string out;
  bool wantWrite = false;
};

class EchoServer {
 public:
  explicit EchoServer(std::string name) : name_(std::move(name)) {}

  bool setUp(const std::vector<Endpoint>& tcp, const std::vector<Endpoint>& udp) {
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) return fail("epoll_create1");
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (::sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) return fail("sigprocmask");
    signalFd_ = ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signalFd_ < 0 || !watch(signalFd_, EPOLLIN)) return fail("signalfd");
    ::signal(SIGPIPE, SIG_IGN);
    for (const Endpoint& e : tcp) {
      int fd = openSocket(e, SOCK_STREAM);
      if (fd < 0 || !watch(fd, EPOLLIN)) return fail("tcp " + e.text);
      listeners_.push_back(fd);
    }
    for (const Endpoint& e : udp) {
      int fd = openSocket(e, SOCK_DGRAM);
      if (fd < 0 || !watch(fd, EPOLLIN)) return fail("udp " + e.text);
      datagrams_.push_back(fd);
    }
    return true;
  }

  int run() {
    std::printf("ready\n");
    std::fflush(stdout);
    epoll_event events[256];
    for (;;) {
      int n = ::epoll_wait(epoll_, events, 256, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        std::perror("capstan_test_echo: epoll_wait");
        return 1;
      }
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == signalFd_) return 0;
        if (isListener(fd)) {
          acceptAll(fd);
        } else if (isDatagram(fd)) {
          answerDatagrams(fd);
        } else {
          serveConnection(fd, events[i].events);
        }
      }
    }
  }

 private:
  bool fail(const std::string& what) {
    std::fprintf(stderr, "capstan_test_echo: %s: %s\n", what.c_str(), std::strerror(errno));
    return false;
  }

  bool watch(int fd, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    return ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) == 0;
  }

  bool isListener(int fd) const {
    for (int l : listeners_) {
      if (l == fd) return true;
    }
    return false;
  }
  bool isDatagram(int fd) const {
    for (int d : datagrams_) {
      if (d == fd) return true;
    }
    return false;
  }

  void acceptAll(int listener) {
    for (size_t i = 0; i < 1024; ++i) {
      int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) fail("accept");
        return;
      }
      if (connections_.size() >= kMaxConnections || !watch(fd, EPOLLIN)) {
        ::close(fd);
        continue;
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      Connection& c = connections_[fd];
      c.out = name_ + "\n";
      if (!flush(fd, c)) closeConnection(fd);
    }
  }

  // Writes what is pending; false if the connection is broken.
  bool flush(int fd, Connection& c) {
    while (!c.out.empty()) {
      ssize_t n = ::send(fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return false;
      }
      c.out.erase(0, static_cast<size_t>(n));
    }
    bool want = !c.out.empty();
    if (want != c.wantWrite) {
      epoll_event ev{};
      ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
      ev.data.fd = fd;
      if (::epoll_ctl(epoll_, EPOLL_CTL_MOD, fd, &ev) != 0) return false;
      c.wantWrite = want;
    }
    return c.out.size() <= kMaxPendingOutput;
  }

  void serveConnection(int fd, uint32_t events) {
    auto it = connections_.find(fd);
    if (it == connections_.end()) return;
    Connection& c = it->second;
    if (events & EPOLLOUT) {
      if (!flush(fd, c)) return closeConnection(fd);
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    char buf[16384];
    for (size_t i = 0; i < 64; ++i) {  // then let other sockets have a turn
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n <= 0) {
        flush(fd, c);  // best effort: what was answered before the peer closed
        return closeConnection(fd);
      }
      c.in.append(buf, static_cast<size_t>(n));
      size_t start = 0;
      for (size_t nl; (nl = c.in.find('\n', start)) != std::string::npos; start = nl + 1) {
        c.out += name_ + " " + c.in.substr(start, nl - start) + "\n";
      }
      c.in.erase(0, start);
      if (c.in.size() > kMaxLine || !flush(fd, c)) return closeConnection(fd);
    }
  }

  void closeConnection(int fd) {
    ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    connections_.erase(fd);
  }

  void answerDatagrams(int fd) {
    char buf[65536];
    char control[256];
    for (size_t i = 0; i < 256; ++i) {
      sockaddr_storage peer{};
      iovec iov{buf, sizeof(buf)};
      msghdr msg{};
      msg.msg_name = &peer;
      msg.msg_namelen = sizeof(peer);
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      ssize_t n = ::recvmsg(fd, &msg, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;  // EAGAIN, or an ICMP error queued for an earlier reply: nothing to answer
      }
      std::string reply = name_ + " " + std::string(buf, static_cast<size_t>(n));
      // Reply from the address the datagram was sent to: the same pktinfo, minus the
      // interface, as the only control message.
      char replyControl[CMSG_SPACE(sizeof(in6_pktinfo))] = {};
      msghdr out{};
      iovec outIov{reply.data(), reply.size()};
      out.msg_name = &peer;
      out.msg_namelen = msg.msg_namelen;
      out.msg_iov = &outIov;
      out.msg_iovlen = 1;
      for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
          in_pktinfo info;
          std::memcpy(&info, CMSG_DATA(cm), sizeof(info));
          in_pktinfo src{};
          src.ipi_spec_dst = info.ipi_addr;
          out.msg_control = replyControl;
          out.msg_controllen = CMSG_SPACE(sizeof(src));
          cmsghdr* oc = CMSG_FIRSTHDR(&out);
          oc->cmsg_level = IPPROTO_IP;
          oc->cmsg_type = IP_PKTINFO;
          oc->cmsg_len = CMSG_LEN(sizeof(src));
          std::memcpy(CMSG_DATA(oc), &src, sizeof(src));
        } else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
          in6_pktinfo info;
          std::memcpy(&info, CMSG_DATA(cm), sizeof(info));
          in6_pktinfo src{};
          src.ipi6_addr = info.ipi6_addr;
          out.msg_control = replyControl;
          out.msg_controllen = CMSG_SPACE(sizeof(src));
          cmsghdr* oc = CMSG_FIRSTHDR(&out);
          oc->cmsg_level = IPPROTO_IPV6;
          oc->cmsg_type = IPV6_PKTINFO;
          oc->cmsg_len = CMSG_LEN(sizeof(src));
          std::memcpy(CMSG_DATA(oc), &src, sizeof(src));
        }
      }
      ::sendmsg(fd, &out, MSG_DONTWAIT);  // a reply that does not fit now is lost, as UDP may
    }
  }

  std::string name_;
  int epoll_ = -1;
  int signalFd_ = -1;
  std::vector<int> listeners_;
  std::vector<int> datagrams_;
  std::unordered_map<int, Connection> connections_;
};

int usage(const char* message) {
  std::fprintf(stderr,
               "capstan_test_echo: %s\nusage: capstan_test_echo --name NAME [--tcp ADDR:PORT]... "
               "[--udp ADDR:PORT]...\n",
               message);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string name;
  std::vector<Endpoint> tcp, udp;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) return usage(("missing value after " + flag).c_str());
    std::string value = argv[++i];
    if (flag == "--name") {
      name = value;
    } else if (flag == "--tcp" || flag == "--udp") {
      auto e = parseEndpoint(value);
      if (!e) return usage(("not ADDR:PORT or [ADDR]:PORT: " + value).c_str());
      (flag == "--tcp" ? tcp : udp).push_back(*e);
    } else {
      return usage(("unknown flag " + flag).c_str());
    }
  }
  if (name.empty() || name.find('\n') != std::string::npos) return usage("--name is required");
  if (tcp.empty() && udp.empty()) return usage("nothing to serve: give --tcp or --udp");
  EchoServer server(name);
  if (!server.setUp(tcp, udp)) return 1;
  return server.run();
}
