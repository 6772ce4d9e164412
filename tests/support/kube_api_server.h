// KubeApiServer: a stand-in for the Kubernetes API server in tests, speaking its real protocol
// over real loopback sockets (127.0.0.1, a free port), plain HTTP/1.1 or HTTPS.
//
// What it serves, as kube-apiserver does:
// - discovery (/api, /apis, /api/v1, /apis/<group>/<version>) for the six resources Capstan
//   reads, so kubectl can talk to it;
// - lists (GET /api/v1/services, /api/v1/namespaces/<ns>/services, ...) with labelSelector,
//   fieldSelector, limit and continue, each page from the snapshot at the list's
//   resourceVersion; items without kind and apiVersion, like the real server's;
// - watches (?watch=true) as chunked streams of newline-delimited JSON events (ADDED, MODIFIED,
//   DELETED, BOOKMARK when allowWatchBookmarks, ERROR), starting after the requested
//   resourceVersion ("" and "0": the current objects as ADDED first), ending at timeoutSeconds;
// - PATCH of a status subresource (.../ingresses/<name>/status) with a JSON merge patch: the
//   patch's status merged into the object, a new resourceVersion, a MODIFIED event, the object
//   as the answer (404 for an object that is not there);
// - resourceVersion semantics: one counter over all objects; after compact(), a watch or a
//   continue token from an older version gets 410 Gone (an ERROR event, or the HTTP status).
// Faults on command: answers with a status (429 with Retry-After, 500), watches dropped mid-
// stream, raw lines injected into watches, being down (connections refused) for a while.
// Authentication: bearer tokens and/or TLS client certificates, checked on every request.
//
// Thread-safe: a thread accepts, a thread per connection serves; tests call it from theirs.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "control/value.h"

namespace capstan::support {

class KubeApiServer {
 public:
  struct Options {
    // HTTPS when certPem is set (the server's certificate and key, PEM).
    std::string certPem;
    std::string keyPem;
    // Client certificates signed by this CA are accepted (and required unless a token is).
    std::string clientCaPem;
    // Accepted bearer tokens; empty with no clientCaPem: no authentication.
    std::vector<std::string> tokens;
  };

  explicit KubeApiServer(Options options = {});
  ~KubeApiServer();
  KubeApiServer(const KubeApiServer&) = delete;
  KubeApiServer& operator=(const KubeApiServer&) = delete;

  uint16_t port() const { return port_; }
  std::string url() const;  // "http://127.0.0.1:PORT" or https

  // Creates or replaces an object (JSON text with kind, apiVersion and metadata; its
  // metadata.resourceVersion is set by the server) and tells the watches. Returns the new
  // resourceVersion. Throws std::runtime_error on an object it cannot place.
  uint64_t upsert(const std::string& objectJson);
  // Deletes kind ns/name (ns empty for cluster-scoped kinds); returns the new resourceVersion,
  // or 0 if there was no such object.
  uint64_t remove(const std::string& kind, const std::string& ns, const std::string& name);
  uint64_t resourceVersion() const;
  // The stored JSON of kind ns/name (with its resourceVersion); nullopt when there is none.
  std::optional<std::string> object(const std::string& kind, const std::string& ns,
                                    const std::string& name) const;
  // PATCH requests applied (answered 200).
  uint64_t patches() const;

  // Sends a BOOKMARK at the current resourceVersion to every watch that asked for bookmarks.
  void bookmark();
  // Forgets history up to now: watches and continue tokens from older versions get 410.
  void compact();
  // With true, a too-old watch is refused with HTTP 410 rather than 200 + an ERROR event.
  void setGoneAsHttpStatus(bool http);
  // Sends an ERROR event with `code` to every open watch and ends them.
  void sendWatchError(int code);
  // Sends `line` as is to every open watch of `resource` ("services", "endpointslices", ...).
  void injectWatchLine(const std::string& resource, const std::string& line);
  // Cuts every open watch connection without ending its stream.
  void dropWatches();
  // The next `count` requests (lists and watches; `watchesOnly`: only watches) are answered
  // with `status` and, if retryAfterSeconds >= 0, a Retry-After header.
  void failNext(int status, int count, int retryAfterSeconds = -1, bool watchesOnly = false);
  // The same for the next `count` PATCH requests only.
  void failNextPatches(int status, int count, int retryAfterSeconds = -1);
  // Down: the listening socket and every connection are closed (new connections are refused);
  // up again on the same port.
  void setDown(bool down);
  void setTokens(std::vector<std::string> tokens);

  struct RequestRecord {
    std::string target;
    std::string authorization;
    bool clientCertificate = false;
    int status = 0;
    std::chrono::steady_clock::time_point at;
    std::string method;  // "GET", "PATCH"
  };
  std::vector<RequestRecord> requests() const;
  size_t openWatches() const;
  // Waits (bounded) until `predicate` over the open watch count holds.
  bool waitForWatches(size_t atLeast, std::chrono::milliseconds timeout) const;

 private:
  struct Version {
    uint64_t rv = 0;
    bool deleted = false;
    std::string json;      // with metadata.resourceVersion
    std::string itemJson;  // the same without kind and apiVersion, as list items are
    std::map<std::string, std::string> labels;
    std::string type;  // Secret type, for fieldSelector type=
  };
  struct Entry {
    std::string resource;  // "services"
    std::string ns;
    std::string name;
    std::vector<Version> versions;
  };
  struct WatchLine {
    uint64_t rv = 0;
    std::string resource;  // empty: for every watch
    std::string ns;
    std::string raw;  // sent as is (injected lines, ERROR events)
    bool bookmark = false;
    bool ends = false;                     // the watch ends after this line
    std::optional<Version> before, after;  // an object change: its old and new versions
  };
  struct Connection;
  struct Request;

  void listen();
  void acceptLoop(int listenFd);
  void serve(std::shared_ptr<Connection> connection);
  void handle(Connection& c, const Request& request);
  void handleList(Connection& c, const Request& request, const std::string& resource,
                  const std::string& ns);
  void handleWatch(Connection& c, const Request& request, const std::string& resource,
                   const std::string& ns);
  void handlePatch(Connection& c, const Request& request, const std::string& rest,
                   const std::string& ns);
  // Stores `doc` (an object with kind and metadata) as the newest version of its object, with
  // the next resourceVersion, and tells the watches; returns its JSON. mu_ held.
  const std::string& storeLocked(control::Value& doc);

  Options options_;
  void* tls_ = nullptr;  // SSL_CTX*
  uint16_t port_ = 0;
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  int listenFd_ = -1;
  bool down_ = false;
  bool stopping_ = false;
  bool goneAsHttp_ = false;
  uint64_t rv_ = 1000;
  uint64_t compactedRv_ = 0;
  uint64_t epoch_ = 0;                    // bumped by dropWatches/sendWatchError to end watches
  std::map<std::string, Entry> entries_;  // key: resource/ns/name
  std::vector<WatchLine> log_;
  struct Failure {
    int status;
    int retryAfter;
    bool watchesOnly;
    bool patchesOnly;
  };
  std::vector<Failure> failures_;
  std::vector<RequestRecord> requests_;
  std::set<int> connectionFds_;
  size_t openWatches_ = 0;
  uint64_t patches_ = 0;
  std::vector<std::thread> threads_;
  std::thread acceptThread_;
};

// A CA, and certificates it signs, for TLS tests (EC P-256, valid for a day).
struct TestCertificate {
  std::string certPem;
  std::string keyPem;
};
struct TestCa {
  TestCertificate ca;
  // A server certificate for the IP addresses and DNS names in `sans` ("127.0.0.1",
  // "kubernetes.default.svc"), or a client certificate (CN `name`, O `group`).
  TestCertificate issueServer(const std::vector<std::string>& sans) const;
  TestCertificate issueClient(const std::string& name, const std::string& group) const;
};
TestCa makeTestCa(const std::string& commonName);

}  // namespace capstan::support
