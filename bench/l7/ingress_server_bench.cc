// The ingress request path in one process: an IngressServer (one worker) in front of a small
// blocking HTTP/1.1 backend on 127.0.0.1 that answers every request with a 64-byte body, and a
// blocking client on keep-alive connections.
//
//  - BM_KeepAliveThroughIngress: one request and its whole answer at a time on one keep-alive
//    connection through the ingress; BM_KeepAliveDirect: the same straight to the backend, the
//    peer in the same run. The difference is the latency the proxy adds (its CPU on the request
//    path plus one more loopback hop each way).
//
// Driver modes (no Google Benchmark), for the tools that count what one request costs:
//   ingress_server_bench --requests=N [--connections=C]
//       N requests over C keep-alive connections (one after another on each), then the counters.
//       Instructions per request: valgrind --tool=callgrind --separate-threads=yes, the ingress
//       worker thread's total (thread 3: after main and the backend's acceptor) divided by N; the
//       worker runs only the request path. Syscalls per request: strace -f -c (README "Figures").
//   ingress_server_bench --idle=N
//       N connections each send one request, read the answer and stay open; prints the process's
//       resident memory before and after (the client's side of a connection costs only a file
//       descriptor in user space) and kB per idle connection.
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "l7/ingress_server.h"
#include "l7/route_table.h"
#include "tests/l7/ingress_state_builder.h"

namespace capstan::l7 {
namespace {

constexpr std::string_view kRequest =
    "GET /index.html HTTP/1.1\r\nHost: bench.example.com\r\nUser-Agent: bench\r\n"
    "Accept: */*\r\n\r\n";

int listenLoopback(uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::listen(fd, 1024) != 0) {
    std::perror("ingress_server_bench: backend listen");
    std::exit(1);
  }
  socklen_t length = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  port = ntohs(address.sin_port);
  return fd;
}

int connectLoopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    std::perror("ingress_server_bench: connect");
    std::exit(1);
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

// The end of the first HTTP message in `data` (head plus Content-Length body), or 0 when it is
// not all there yet. Only what this bench's backend sends: a Content-Length body.
size_t messageEnd(std::string_view data) {
  size_t head = data.find("\r\n\r\n");
  if (head == std::string_view::npos) return 0;
  head += 4;
  size_t length = 0;
  for (std::string_view name : {"Content-Length: ", "content-length: "}) {
    size_t at = data.substr(0, head).find(name);
    if (at == std::string_view::npos) continue;
    std::string_view digits = data.substr(at + name.size());
    std::from_chars(digits.data(), digits.data() + digits.size(), length);
  }
  return data.size() >= head + length ? head + length : 0;
}

// Sends kRequest and reads one whole answer. False when the connection failed.
bool roundTrip(int fd, std::string& buffer) {
  if (::send(fd, kRequest.data(), kRequest.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(kRequest.size())) {
    return false;
  }
  buffer.clear();
  char chunk[4096];
  for (;;) {
    ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<size_t>(n));
    if (size_t end = messageEnd(buffer); end != 0) return end == buffer.size();
  }
}

// The backend: one thread per connection, each answering every request head with a fixed
// 64-byte body, keep-alive.
class Backend {
 public:
  Backend() : listener_(listenLoopback(port_)) {
    acceptor_ = std::thread([this] {
      for (;;) {
        int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) return;  // shut down
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        std::thread(serve, fd).detach();
      }
    });
  }
  ~Backend() {
    ::shutdown(listener_, SHUT_RDWR);
    acceptor_.join();
    ::close(listener_);
  }
  uint16_t port() const { return port_; }

 private:
  static void serve(int fd) {
    static const std::string response =
        "HTTP/1.1 200 OK\r\nServer: bench\r\nContent-Type: text/html\r\nContent-Length: "
        "64\r\n\r\n" +
        std::string(64, 'x');
    std::string in;
    char chunk[4096];
    for (;;) {
      ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
      if (n <= 0) break;
      in.append(chunk, static_cast<size_t>(n));
      size_t end;
      while ((end = in.find("\r\n\r\n")) != std::string::npos) {
        in.erase(0, end + 4);
        if (::send(fd, response.data(), response.size(), MSG_NOSIGNAL) < 0) break;
      }
    }
    ::close(fd);
  }

  uint16_t port_ = 0;
  int listener_;
  std::thread acceptor_;
};

// The backend and an ingress routing bench.example.com to it.
struct Fixture {
  Fixture() {
    using test::path;
    using test::serviceBackend;
    test::TestService web{.name = "web",
                          .ports = {{.port = 80, .targetPort = backend.port()}},
                          .endpoints = {{"127.0.0.1"}}};
    Ingress ingress{.name = {"default", "bench"}};
    ingress.rules = {{.host = "bench.example.com",
                      .paths = {path(PathType::kPrefix, "/", serviceBackend("web", 80))}}};
    auto state = test::IngressStateBuilder().service(web).ingress(ingress).build();
    IngressOptions options;
    options.httpAddress =
        boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0);
    options.workers = 1;
    auto started = IngressServer::start(options, RouteTable::build(*state));
    if (!started.ok()) {
      std::fprintf(stderr, "ingress_server_bench: %s\n", started.error().message().c_str());
      std::exit(1);
    }
    server = std::move(started).value();
  }
  uint16_t ingressPort() const { return server->httpEndpoint().port(); }

  Backend backend;
  std::unique_ptr<IngressServer> server;
};

void keepAlive(benchmark::State& state, bool direct) {
  Fixture fixture;
  int fd = connectLoopback(direct ? fixture.backend.port() : fixture.ingressPort());
  std::string buffer;
  for (auto _ : state) {
    if (!roundTrip(fd, buffer)) {
      state.SkipWithError("the connection failed");
      break;
    }
  }
  ::close(fd);
  state.SetItemsProcessed(state.iterations());
}

void BM_KeepAliveThroughIngress(benchmark::State& state) { keepAlive(state, false); }
void BM_KeepAliveDirect(benchmark::State& state) { keepAlive(state, true); }
BENCHMARK(BM_KeepAliveThroughIngress)->UseRealTime();
BENCHMARK(BM_KeepAliveDirect)->UseRealTime();

long residentKb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

int runRequests(long requests, long connections) {
  Fixture fixture;
  std::string buffer;
  auto start = std::chrono::steady_clock::now();
  for (long c = 0; c < connections; ++c) {
    int fd = connectLoopback(fixture.ingressPort());
    const long mine = requests / connections + (c < requests % connections ? 1 : 0);
    for (long i = 0; i < mine; ++i) {
      if (!roundTrip(fd, buffer)) {
        std::fprintf(stderr, "ingress_server_bench: request %ld on connection %ld failed\n", i, c);
        return 1;
      }
    }
    ::close(fd);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  IngressCounters counters = fixture.server->counters();
  std::printf(
      "%ld requests on %ld connection(s) in %.3f s (%.1f us each); ingress counted %lu requests, "
      "%lu 2xx, %lu upstream connects, %lu reused\n",
      requests, connections, seconds, seconds * 1e6 / static_cast<double>(requests),
      static_cast<unsigned long>(counters.requests),
      static_cast<unsigned long>(counters.responses[2]),
      static_cast<unsigned long>(counters.upstreamConnects),
      static_cast<unsigned long>(counters.upstreamReused));
  return counters.responses[2] == static_cast<uint64_t>(requests) ? 0 : 1;
}

int runIdle(long count) {
  Fixture fixture;
  std::string buffer;
  // Warm up: the worker's pools and the backend connection exist before the baseline.
  {
    int fd = connectLoopback(fixture.ingressPort());
    roundTrip(fd, buffer);
    ::close(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const long before = residentKb();
  std::vector<int> held;
  held.reserve(static_cast<size_t>(count));
  for (long i = 0; i < count; ++i) {
    int fd = connectLoopback(fixture.ingressPort());
    if (!roundTrip(fd, buffer)) {
      std::fprintf(stderr, "ingress_server_bench: idle connection %ld failed\n", i);
      return 1;
    }
    held.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const long after = residentKb();
  std::printf("%ld idle connections: %.1f MB resident (%.1f MB before), %.2f kB per connection\n",
              count, static_cast<double>(after) / 1024, static_cast<double>(before) / 1024,
              static_cast<double>(after - before) / static_cast<double>(count));
  for (int fd : held) ::close(fd);
  return 0;
}

long flagValue(std::string_view arg, std::string_view name) {
  if (arg.substr(0, name.size()) != name) return -1;
  long value = -1;
  std::string_view digits = arg.substr(name.size());
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size() || value <= 0) {
    std::fprintf(stderr, "ingress_server_bench: %.*s wants a positive number\n",
                 static_cast<int>(name.size() - 1), name.data());
    std::exit(2);
  }
  return value;
}

}  // namespace
}  // namespace capstan::l7

int main(int argc, char** argv) {
  using namespace capstan::l7;
  long requests = -1, connections = 1, idle = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (long v = flagValue(arg, "--requests="); v > 0) requests = v;
    if (long v = flagValue(arg, "--connections="); v > 0) connections = v;
    if (long v = flagValue(arg, "--idle="); v > 0) idle = v;
  }
  if (requests > 0) return runRequests(requests, connections);
  if (idle > 0) return runIdle(idle);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
