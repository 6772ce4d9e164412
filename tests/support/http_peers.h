// The two HTTP peers of an ingress under test, both written with Boost.Beast so that each side
// of every test is an HTTP implementation independent of Capstan's own.
//
// HttpUpstream: a small HTTP/1.1 server.
// It listens on a loopback address (any of 127.0.0.0/8, so several upstreams can share a port
// number and look like several endpoints), answers each request on its own thread per
// connection, keeps connections alive as the client asks, and replies with a plain-text body that
// names itself and describes the request:
//
//   upstream: <name>
//   method: GET
//   target: /a/b?c
//   body-bytes: 0
//   header: host: example.com
//   header: x-forwarded-for: 127.0.0.1
//   ...
//
// Special targets change the answer, for the cases the tests need:
//   /echo          the request body is the response body
//   /chunked       the body is sent chunked, in three chunks
//   /until-close   HTTP/1.0-style body delimited by closing the connection
//   /status/NNN    answers status NNN
//   /sleep/MS      waits MS milliseconds first
//   /close         answers, then closes the connection (no keep-alive)
//   /big/N         a body of N bytes ('x'), with Content-Length
//   /websocket     101 Switching Protocols, then echoes every byte back
//   /die-before-head       closes the connection without answering
//   /die-mid-body/N        promises N bytes (Content-Length), sends N/2, then resets (RST)
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace capstan::support {

class HttpUpstream {
 public:
  // Listens on `address` (e.g. "127.0.0.2"), port `port` (0: any free port).
  HttpUpstream(std::string name, std::string address, uint16_t port = 0);
  ~HttpUpstream();  // stops accepting, closes every connection, joins every thread

  HttpUpstream(const HttpUpstream&) = delete;
  HttpUpstream& operator=(const HttpUpstream&) = delete;

  uint16_t port() const;
  const std::string& address() const;
  uint64_t requests() const;     // requests answered
  uint64_t connections() const;  // connections accepted
  // Closes every open connection now (as an upstream's idle timeout would) without stopping.
  void closeConnections();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One upstream per name on 127.0.0.<firstHost>, <firstHost + 1>, ..., all on the same port
// number: several endpoints of one Service, as the ingress sees them.
std::vector<std::unique_ptr<HttpUpstream>> upstreamsOnOnePort(const std::vector<std::string>& names,
                                                              int firstHost = 2);

// HttpClient: one client connection to 127.0.0.1:port. Every call is bounded by `timeout`; a call
// that times out closes the connection and reports failure.
class HttpClient {
 public:
  using Response = boost::beast::http::response<boost::beast::http::string_body>;

  explicit HttpClient(uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  bool connected() const { return socket_.is_open(); }

  // Sends raw bytes (one or several requests, or a hostile one).
  bool send(const std::string& raw);
  // Reads one response (a 1xx too); nullopt on a timeout, a close or a malformed response.
  // `headRequest`: the response is to a HEAD (no body follows).
  std::optional<Response> read(bool headRequest = false);
  // send() then read().
  std::optional<Response> request(const std::string& raw);
  // Whether the server closes the connection within the timeout (reading and dropping what
  // comes before the close).
  bool closedByPeer();

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_{io_};
  boost::beast::flat_buffer buffer_;
  std::chrono::milliseconds timeout_;
};

// "GET <target> HTTP/1.1" with Host and any extra header lines ("Name: value\r\n" each).
std::string getRequest(const std::string& host, const std::string& target,
                       const std::string& extraHeaders = "");

}  // namespace capstan::support
