#include "tests/support/kube_api_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "control/document_reader.h"
#include "control/json_text.h"
#include "tests/support/value_json.h"

namespace capstan::support {

using control::Value;

namespace {

struct ResourceInfo {
  std::string_view kind;
  std::string_view resource;
  std::string_view groupVersion;  // "v1", "discovery.k8s.io/v1"
  bool namespaced;
  std::string_view shortName;
};

constexpr ResourceInfo kResources[] = {
    {"Service", "services", "v1", true, "svc"},
    {"EndpointSlice", "endpointslices", "discovery.k8s.io/v1", true, ""},
    {"Ingress", "ingresses", "networking.k8s.io/v1", true, "ing"},
    {"IngressClass", "ingressclasses", "networking.k8s.io/v1", false, ""},
    {"Secret", "secrets", "v1", true, ""},
    {"Node", "nodes", "v1", false, "no"},
};

const ResourceInfo* byKind(std::string_view kind) {
  for (const auto& r : kResources) {
    if (r.kind == kind) return &r;
  }
  return nullptr;
}
const ResourceInfo* byResource(std::string_view resource) {
  for (const auto& r : kResources) {
    if (r.resource == resource) return &r;
  }
  return nullptr;
}

std::string stringField(const Value& v, std::string_view a, std::string_view b = {}) {
  const Value* f = v.find(a);
  if (f && !b.empty()) f = f->find(b);
  return f && f->isString() ? f->asString() : std::string();
}

std::string statusJson(int code, std::string_view reason, std::string_view message) {
  std::string out =
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":)";
  control::appendJsonString(out, message);
  out += R"(,"reason":)";
  control::appendJsonString(out, reason);
  out += ",\"code\":" + std::to_string(code) + "}";
  return out;
}

std::string reasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 410:
      return "Gone";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
  }
  return "Status";
}

std::string urlDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// labels.Parse's subset kube-proxy and tests use: "!k", "k", "k=v", "k==v", "k!=v", comma-joined.
bool labelsMatch(const std::string& selector, const std::map<std::string, std::string>& labels) {
  size_t start = 0;
  while (start < selector.size()) {
    size_t comma = selector.find(',', start);
    std::string term =
        selector.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? selector.size() : comma + 1;
    if (term.empty()) continue;
    if (term[0] == '!') {
      if (labels.count(term.substr(1))) return false;
    } else if (size_t ne = term.find("!="); ne != std::string::npos) {
      auto it = labels.find(term.substr(0, ne));
      if (it != labels.end() && it->second == term.substr(ne + 2)) return false;
    } else if (size_t eq = term.find('='); eq != std::string::npos) {
      size_t vs = term.compare(eq, 2, "==") == 0 ? eq + 2 : eq + 1;
      auto it = labels.find(term.substr(0, eq));
      if (it == labels.end() || it->second != term.substr(vs)) return false;
    } else if (!labels.count(term)) {
      return false;
    }
  }
  return true;
}

// RFC 7386 JSON merge patch: objects merge member by member, null deletes, the rest replaces.
void mergePatch(Value& target, const Value& patch) {
  if (!patch.isObject()) {
    target = patch;
    return;
  }
  if (!target.isObject()) target = Value(Value::Object{});
  auto& members = target.mutableObject();
  for (const auto& [key, value] : patch.asObject()) {
    auto it = std::find_if(members.begin(), members.end(),
                           [&](const Value::Member& m) { return m.first == key; });
    if (value.isNull()) {
      if (it != members.end()) members.erase(it);
    } else if (it != members.end()) {
      mergePatch(it->second, value);
    } else {
      members.emplace_back(key, Value());
      mergePatch(members.back().second, value);
    }
  }
}

std::optional<Value> parseJson(std::string_view text) {
  std::optional<Value> doc;
  auto st = control::readJsonDocuments(text, [&](Value v, size_t) -> Status {
    doc = std::move(v);
    return okStatus();
  });
  if (!st.ok() || !doc || !doc->isObject()) return std::nullopt;
  return doc;
}

}  // namespace

struct KubeApiServer::Request {
  std::string method;
  std::string body;
  std::string target;
  std::string path;
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // lower-case names
  bool param(const std::string& k) const { return query.count(k) > 0; }
  std::string get(const std::string& k) const {
    auto it = query.find(k);
    return it == query.end() ? std::string() : it->second;
  }
};

struct KubeApiServer::Connection {
  int fd = -1;
  SSL* ssl = nullptr;
  std::string in;
  bool clientCert = false;

  ~Connection() {
    if (ssl) SSL_free(ssl);
    if (fd >= 0) ::close(fd);
  }
  bool write(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ssl ? SSL_write(ssl, data.data(), static_cast<int>(data.size()))
                      : ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        if (!ssl && n < 0 && errno == EINTR) continue;
        return false;
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  bool readMore() {
    char buf[16384];
    ssize_t n = ssl ? SSL_read(ssl, buf, sizeof(buf)) : ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    in.append(buf, static_cast<size_t>(n));
    return true;
  }
  bool readRequest(Request& r) {
    size_t end;
    while ((end = in.find("\r\n\r\n")) == std::string::npos) {
      if (in.size() > 65536 || !readMore()) return false;
    }
    std::string head = in.substr(0, end);
    in.erase(0, end + 4);
    size_t lineEnd = head.find("\r\n");
    std::string first = head.substr(0, lineEnd);
    size_t sp1 = first.find(' '), sp2 = first.rfind(' ');
    if (sp1 == std::string::npos || sp2 <= sp1) return false;
    r.method = first.substr(0, sp1);
    r.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t q = r.target.find('?');
    r.path = r.target.substr(0, q);
    if (q != std::string::npos) {
      std::string qs = r.target.substr(q + 1);
      size_t start = 0;
      while (start <= qs.size()) {
        size_t amp = qs.find('&', start);
        std::string kv =
            qs.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
        size_t eq = kv.find('=');
        if (!kv.empty()) {
          r.query[urlDecode(kv.substr(0, eq))] =
              eq == std::string::npos ? "" : urlDecode(kv.substr(eq + 1));
        }
        if (amp == std::string::npos) break;
        start = amp + 1;
      }
    }
    size_t pos = lineEnd == std::string::npos ? head.size() : lineEnd + 2;
    while (pos < head.size()) {
      size_t next = head.find("\r\n", pos);
      std::string line =
          head.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
      pos = next == std::string::npos ? head.size() : next + 2;
      size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(), ::tolower);
      size_t vs = line.find_first_not_of(' ', colon + 1);
      r.headers[name] = vs == std::string::npos ? "" : line.substr(vs);
    }
    if (auto it = r.headers.find("content-length"); it != r.headers.end()) {
      size_t length = std::stoul(it->second);
      if (length > (size_t{64} << 20)) return false;
      while (in.size() < length) {
        if (!readMore()) return false;
      }
      r.body = in.substr(0, length);
      in.erase(0, length);
    }
    return true;
  }
  bool respond(int status, std::string_view contentType, std::string_view body,
               const std::string& extraHeaders = "") {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reasonPhrase(status) +
                      "\r\nContent-Type: " + std::string(contentType) +
                      "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extraHeaders +
                      "\r\n";
    out.append(body);
    return write(out);
  }
  bool chunk(std::string_view data) {
    char size[32];
    std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
    std::string out = size;
    out.append(data).append("\r\n");
    return write(out);
  }
};

KubeApiServer::KubeApiServer(Options options) : options_(std::move(options)) {
  // OpenSSL writes with write(2): a client that hangs up must not kill the test with SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  if (!options_.certPem.empty()) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    auto loadPem = [](const std::string& pem, auto fn) {
      BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
      auto* obj = fn(bio);
      BIO_free(bio);
      return obj;
    };
    X509* cert = loadPem(options_.certPem,
                         [](BIO* b) { return PEM_read_bio_X509(b, nullptr, nullptr, nullptr); });
    EVP_PKEY* key = loadPem(options_.keyPem, [](BIO* b) {
      return PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    });
    if (!cert || !key || SSL_CTX_use_certificate(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, key) != 1) {
      throw std::runtime_error("KubeApiServer: bad server certificate or key");
    }
    X509_free(cert);
    EVP_PKEY_free(key);
    if (!options_.clientCaPem.empty()) {
      X509* ca = loadPem(options_.clientCaPem,
                         [](BIO* b) { return PEM_read_bio_X509(b, nullptr, nullptr, nullptr); });
      X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca);
      X509_free(ca);
      // Ask for a certificate; requests without one are judged by their token.
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    }
    tls_ = ctx;
  }
  listen();
}

KubeApiServer::~KubeApiServer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (listenFd_ >= 0) ::shutdown(listenFd_, SHUT_RDWR);
    for (int fd : connectionFds_) ::shutdown(fd, SHUT_RDWR);
  }
  changed_.notify_all();
  if (acceptThread_.joinable()) acceptThread_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
  if (listenFd_ >= 0) ::close(listenFd_);
  if (tls_) SSL_CTX_free(static_cast<SSL_CTX*>(tls_));
}

std::string KubeApiServer::url() const {
  return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
}

void KubeApiServer::listen() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 128)) {
    ::close(fd);
    throw std::runtime_error(std::string("KubeApiServer: cannot listen: ") + strerror(errno));
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  listenFd_ = fd;
  acceptThread_ = std::thread([this, fd] { acceptLoop(fd); });
}

void KubeApiServer::acceptLoop(int listenFd) {
  for (;;) {
    int fd = ::accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // shut down
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto c = std::make_shared<Connection>();
    c->fd = fd;
    std::lock_guard lock(mu_);
    if (stopping_ || down_) {
      continue;  // c closes it
    }
    connectionFds_.insert(fd);
    threads_.emplace_back([this, c] { serve(c); });
  }
}

void KubeApiServer::serve(std::shared_ptr<Connection> c) {
  if (tls_) {
    c->ssl = SSL_new(static_cast<SSL_CTX*>(tls_));
    SSL_set_fd(c->ssl, c->fd);
    if (SSL_accept(c->ssl) != 1) {
      ERR_clear_error();
    } else {
      X509* peer = SSL_get1_peer_certificate(c->ssl);
      c->clientCert = peer && SSL_get_verify_result(c->ssl) == X509_V_OK;
      if (peer) X509_free(peer);
    }
  }
  Request r;
  while ((!tls_ || SSL_is_init_finished(c->ssl)) && c->readRequest(r)) {
    handle(*c, r);
    if (r.headers["connection"] == "close") break;
    r = Request();
  }
  std::lock_guard lock(mu_);
  connectionFds_.erase(c->fd);
  ::shutdown(c->fd, SHUT_RDWR);
}

void KubeApiServer::handle(Connection& c, const Request& r) {
  RequestRecord record{r.target, "", c.clientCert, 0, std::chrono::steady_clock::now(), r.method};
  if (auto it = r.headers.find("authorization"); it != r.headers.end()) {
    record.authorization = it->second;
  }
  bool isWatch = r.get("watch") == "true" || r.get("watch") == "1";
  std::optional<Failure> failure;
  bool authorized = true;
  {
    std::lock_guard lock(mu_);
    if (!options_.tokens.empty() || !options_.clientCaPem.empty()) {
      bool tokenOk = record.authorization.starts_with("Bearer ") &&
                     std::find(options_.tokens.begin(), options_.tokens.end(),
                               record.authorization.substr(7)) != options_.tokens.end();
      authorized = tokenOk || c.clientCert;
    }
    bool discovery =
        r.path == "/api" || r.path == "/apis" || r.path == "/version" || r.path == "/api/v1" ||
        (r.path.starts_with("/apis/") && std::count(r.path.begin(), r.path.end(), '/') == 3);
    bool isPatch = r.method == "PATCH";
    if (authorized && !failures_.empty() && !discovery &&
        (isWatch || !failures_.front().watchesOnly) &&
        (isPatch || !failures_.front().patchesOnly)) {
      failure = failures_.front();
      failures_.erase(failures_.begin());
    }
    record.status = !authorized ? 401 : failure ? failure->status : 200;
    requests_.push_back(record);
  }
  changed_.notify_all();
  if (!authorized) {
    c.respond(401, "application/json", statusJson(401, "Unauthorized", "Unauthorized"));
    return;
  }
  if (failure) {
    std::string extra;
    if (failure->retryAfter >= 0)
      extra = "Retry-After: " + std::to_string(failure->retryAfter) + "\r\n";
    c.respond(
        failure->status, "application/json",
        statusJson(failure->status, failure->status == 429 ? "TooManyRequests" : "InternalError",
                   "injected failure"),
        extra);
    return;
  }
  // Discovery.
  if (r.path == "/api") {
    c.respond(
        200, "application/json",
        R"({"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1:)" +
            std::to_string(port_) + "\"}]}");
    return;
  }
  if (r.path == "/apis") {
    std::string groups;
    for (std::string_view g : {"discovery.k8s.io", "networking.k8s.io"}) {
      if (!groups.empty()) groups += ',';
      std::string gv = std::string(g) + "/v1";
      groups += R"({"name":")" + std::string(g) + R"(","versions":[{"groupVersion":")" + gv +
                R"(","version":"v1"}],"preferredVersion":{"groupVersion":")" + gv +
                R"(","version":"v1"}})";
    }
    c.respond(200, "application/json",
              R"({"kind":"APIGroupList","apiVersion":"v1","groups":[)" + groups + "]}");
    return;
  }
  for (std::string gv : {"v1", "discovery.k8s.io/v1", "networking.k8s.io/v1"}) {
    std::string prefix = gv == "v1" ? "/api/v1" : "/apis/" + gv;
    if (r.path == prefix) {
      std::string resources;
      for (const auto& info : kResources) {
        if (info.groupVersion != gv) continue;
        if (!resources.empty()) resources += ',';
        std::string singular(info.kind);
        std::transform(singular.begin(), singular.end(), singular.begin(), ::tolower);
        resources +=
            R"({"name":")" + std::string(info.resource) + R"(","singularName":")" + singular +
            R"(","namespaced":)" + (info.namespaced ? "true" : "false") + R"(,"kind":")" +
            std::string(info.kind) + R"(","verbs":["get","list","watch"])" +
            (info.shortName.empty() ? std::string()
                                    : R"(,"shortNames":[")" + std::string(info.shortName) + "\"]") +
            "}";
      }
      c.respond(200, "application/json",
                R"({"kind":"APIResourceList","apiVersion":"v1","groupVersion":")" + gv +
                    R"(","resources":[)" + resources + "]}");
      return;
    }
    if (!r.path.starts_with(prefix + "/")) continue;
    std::string rest = r.path.substr(prefix.size() + 1);
    std::string ns;
    if (rest.starts_with("namespaces/")) {
      size_t slash = rest.find('/', 11);
      if (slash == std::string::npos) break;
      ns = rest.substr(11, slash - 11);
      rest = rest.substr(slash + 1);
    }
    if (r.method == "PATCH") {
      handlePatch(c, r, rest, ns);
      return;
    }
    const ResourceInfo* info = byResource(rest);
    if (!info || info->groupVersion != gv) break;
    if (isWatch) {
      handleWatch(c, r, rest, ns);
    } else {
      handleList(c, r, rest, ns);
    }
    return;
  }
  c.respond(404, "application/json",
            statusJson(404, "NotFound", "the server could not find the requested resource"));
}

uint64_t KubeApiServer::upsert(const std::string& objectJson) {
  std::optional<Value> doc = parseJson(objectJson);
  if (!doc) throw std::runtime_error("KubeApiServer::upsert: not a JSON object");
  const ResourceInfo* info = byKind(stringField(*doc, "kind"));
  if (!info) throw std::runtime_error("KubeApiServer::upsert: unknown kind");
  std::lock_guard lock(mu_);
  storeLocked(*doc);
  return rv_;
}

const std::string& KubeApiServer::storeLocked(Value& doc) {
  const ResourceInfo* info = byKind(stringField(doc, "kind"));
  std::string ns = info->namespaced ? stringField(doc, "metadata", "namespace") : "";
  if (info->namespaced && ns.empty()) ns = "default";
  std::string name = stringField(doc, "metadata", "name");
  Version v;
  if (const Value* labels = doc.find("metadata") ? doc.find("metadata")->find("labels") : nullptr;
      labels && labels->isObject()) {
    for (const auto& [k, lv] : labels->asObject()) {
      if (lv.isString()) v.labels[k] = lv.asString();
    }
  }
  v.type = stringField(doc, "type");
  v.rv = ++rv_;
  for (auto& [key, member] : doc.mutableObject()) {
    if (key != "metadata" || !member.isObject()) continue;
    auto& meta = member.mutableObject();
    std::erase_if(meta, [](const auto& m) { return m.first == "resourceVersion"; });
    meta.emplace_back("resourceVersion", Value(std::to_string(v.rv)));
    if (info->namespaced && std::none_of(meta.begin(), meta.end(),
                                         [](const auto& m) { return m.first == "namespace"; })) {
      meta.emplace_back("namespace", Value(ns));
    }
  }
  appendJson(doc, v.json);
  // List items carry neither kind nor apiVersion, as the API server's do; encoded once here.
  v.itemJson = "{";
  for (const auto& [key, member] : doc.asObject()) {
    if (key == "kind" || key == "apiVersion") continue;
    if (v.itemJson.size() > 1) v.itemJson += ',';
    control::appendJsonString(v.itemJson, key);
    v.itemJson += ':';
    appendJson(member, v.itemJson);
  }
  v.itemJson += '}';
  Entry& entry = entries_[std::string(info->resource) + "/" + ns + "/" + name];
  entry.resource = info->resource;
  entry.ns = ns;
  entry.name = name;
  WatchLine line;
  line.rv = v.rv;
  line.resource = entry.resource;
  line.ns = ns;
  if (!entry.versions.empty() && !entry.versions.back().deleted)
    line.before = entry.versions.back();
  line.after = v;
  entry.versions.push_back(std::move(v));
  log_.push_back(std::move(line));
  changed_.notify_all();
  return entry.versions.back().json;
}

void KubeApiServer::handlePatch(Connection& c, const Request& r, const std::string& rest,
                                const std::string& ns) {
  // Only what Capstan writes: PATCH <resource>/<name>/status with a JSON merge patch. As the
  // API server's status subresource does, only the patch's status is applied.
  size_t slash = rest.find('/');
  size_t second = slash == std::string::npos ? slash : rest.find('/', slash + 1);
  std::string resource = rest.substr(0, slash);
  if (second == std::string::npos || rest.substr(second + 1) != "status" || !byResource(resource)) {
    c.respond(405, "application/json",
              statusJson(405, "MethodNotAllowed", "PATCH is served for <resource>/<name>/status"));
    return;
  }
  std::string name = rest.substr(slash + 1, second - slash - 1);
  if (auto it = r.headers.find("content-type");
      it == r.headers.end() || it->second != "application/merge-patch+json") {
    c.respond(415, "application/json",
              statusJson(415, "UnsupportedMediaType",
                         "the body of the request was in an unknown "
                         "format - accepted media types include: "
                         "application/merge-patch+json"));
    return;
  }
  std::optional<Value> patch = parseJson(r.body);
  if (!patch) {
    c.respond(400, "application/json", statusJson(400, "BadRequest", "invalid JSON patch"));
    return;
  }
  std::string json;
  bool found = false;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(resource + "/" + ns + "/" + name);
    if (it == entries_.end() || it->second.versions.back().deleted) {
      json = statusJson(404, "NotFound", resource + " \"" + name + "\" not found");
    } else {
      std::optional<Value> doc = parseJson(it->second.versions.back().json);
      const Value* status = patch->find("status");
      if (status) {
        for (auto& [key, member] : doc->mutableObject()) {
          if (key == "status") mergePatch(member, *status);
        }
        if (!doc->find("status")) {
          doc->mutableObject().emplace_back("status", Value());
          mergePatch(doc->mutableObject().back().second, *status);
        }
      }
      json = storeLocked(*doc);
      found = true;
      ++patches_;
    }
  }
  c.respond(found ? 200 : 404, "application/json", json);
}

uint64_t KubeApiServer::remove(const std::string& kind, const std::string& ns,
                               const std::string& name) {
  const ResourceInfo* info = byKind(kind);
  if (!info) return 0;
  std::lock_guard lock(mu_);
  auto it = entries_.find(std::string(info->resource) + "/" + ns + "/" + name);
  if (it == entries_.end() || it->second.versions.back().deleted) return 0;
  Version gone = it->second.versions.back();
  Version tomb;
  tomb.rv = ++rv_;
  tomb.deleted = true;
  it->second.versions.push_back(tomb);
  WatchLine line;
  line.rv = tomb.rv;
  line.resource = it->second.resource;
  line.ns = ns;
  line.before = gone;
  log_.push_back(std::move(line));
  changed_.notify_all();
  return rv_;
}

uint64_t KubeApiServer::resourceVersion() const {
  std::lock_guard lock(mu_);
  return rv_;
}

void KubeApiServer::bookmark() {
  std::lock_guard lock(mu_);
  WatchLine line;
  line.rv = rv_;
  line.bookmark = true;
  log_.push_back(std::move(line));
  changed_.notify_all();
}

void KubeApiServer::compact() {
  std::lock_guard lock(mu_);
  compactedRv_ = rv_;
}

void KubeApiServer::setGoneAsHttpStatus(bool http) {
  std::lock_guard lock(mu_);
  goneAsHttp_ = http;
}

void KubeApiServer::sendWatchError(int code) {
  std::lock_guard lock(mu_);
  WatchLine line;
  line.rv = rv_;
  line.raw = R"({"type":"ERROR","object":)" +
             statusJson(code, code == 410 ? "Expired" : "InternalError",
                        code == 410 ? "too old resource version" : "injected error") +
             "}";
  line.ends = true;
  log_.push_back(std::move(line));
  changed_.notify_all();
}

void KubeApiServer::injectWatchLine(const std::string& resource, const std::string& line) {
  std::lock_guard lock(mu_);
  WatchLine w;
  w.rv = rv_;
  w.resource = resource;
  w.raw = line;
  log_.push_back(std::move(w));
  changed_.notify_all();
}

void KubeApiServer::dropWatches() {
  std::lock_guard lock(mu_);
  ++epoch_;
  changed_.notify_all();
}

void KubeApiServer::failNext(int status, int count, int retryAfterSeconds, bool watchesOnly) {
  std::lock_guard lock(mu_);
  for (int i = 0; i < count; ++i) {
    failures_.push_back({status, retryAfterSeconds, watchesOnly, false});
  }
}

void KubeApiServer::failNextPatches(int status, int count, int retryAfterSeconds) {
  std::lock_guard lock(mu_);
  for (int i = 0; i < count; ++i) failures_.push_back({status, retryAfterSeconds, false, true});
}

std::optional<std::string> KubeApiServer::object(const std::string& kind, const std::string& ns,
                                                 const std::string& name) const {
  const ResourceInfo* info = byKind(kind);
  if (!info) return std::nullopt;
  std::lock_guard lock(mu_);
  auto it = entries_.find(std::string(info->resource) + "/" + ns + "/" + name);
  if (it == entries_.end() || it->second.versions.back().deleted) return std::nullopt;
  return it->second.versions.back().json;
}

uint64_t KubeApiServer::patches() const {
  std::lock_guard lock(mu_);
  return patches_;
}

void KubeApiServer::setDown(bool down) {
  std::unique_lock lock(mu_);
  if (down == down_) return;
  down_ = down;
  if (down) {
    ::shutdown(listenFd_, SHUT_RDWR);
    for (int fd : connectionFds_) ::shutdown(fd, SHUT_RDWR);
    ++epoch_;
    changed_.notify_all();
    lock.unlock();
    acceptThread_.join();
    lock.lock();
    ::close(listenFd_);
    listenFd_ = -1;
  } else {
    listen();
  }
}

void KubeApiServer::setTokens(std::vector<std::string> tokens) {
  std::lock_guard lock(mu_);
  options_.tokens = std::move(tokens);
}

std::vector<KubeApiServer::RequestRecord> KubeApiServer::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

size_t KubeApiServer::openWatches() const {
  std::lock_guard lock(mu_);
  return openWatches_;
}

bool KubeApiServer::waitForWatches(size_t atLeast, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return changed_.wait_for(lock, timeout, [&] { return openWatches_ >= atLeast; });
}

void KubeApiServer::handleList(Connection& c, const Request& r, const std::string& resource,
                               const std::string& ns) {
  const ResourceInfo* info = byResource(resource);
  std::string labelSelector = r.get("labelSelector");
  std::string fieldSelector = r.get("fieldSelector");
  size_t limit = r.param("limit") ? std::stoul(r.get("limit")) : 0;
  std::string body;
  {
    std::lock_guard lock(mu_);
    uint64_t listRv = rv_;
    std::string after;  // the last key of the previous page
    std::string cont = r.get("continue");
    if (!cont.empty()) {
      size_t colon = cont.find(':');
      listRv = std::stoull(cont.substr(0, colon));
      after = cont.substr(colon + 1);
      if (listRv < compactedRv_) {
        c.respond(410, "application/json",
                  statusJson(410, "Expired",
                             "The provided continue parameter is too old to display a "
                             "consistent list result. You can start a new list without the "
                             "continue parameter."));
        return;
      }
    } else if (std::string rv = r.get("resourceVersion"); !rv.empty() && rv != "0") {
      if (std::stoull(rv) > rv_) {
        c.respond(504, "application/json",
                  statusJson(504, "Timeout", "Too large resource version"));
        return;
      }
    }
    std::string items;
    size_t count = 0;
    std::string lastKey;
    bool more = false;
    size_t remaining = 0;
    // Keys are "resource/ns/name": a resource's entries are one range, a page starts after the
    // last key of the previous one.
    auto from = after.empty() ? entries_.lower_bound(resource + "/") : entries_.upper_bound(after);
    for (auto it = from; it != entries_.end() && it->second.resource == resource; ++it) {
      const auto& [key, entry] = *it;
      if (!ns.empty() && entry.ns != ns) continue;
      // The version current at listRv.
      const Version* v = nullptr;
      for (const Version& candidate : entry.versions) {
        if (candidate.rv <= listRv) v = &candidate;
      }
      if (!v || v->deleted || !labelsMatch(labelSelector, v->labels)) continue;
      if (!fieldSelector.empty()) {
        size_t eq = fieldSelector.find('=');
        std::string field = fieldSelector.substr(0, eq), value = fieldSelector.substr(eq + 1);
        std::string actual = field == "metadata.name"        ? entry.name
                             : field == "metadata.namespace" ? entry.ns
                             : field == "type"               ? v->type
                                                             : "";
        if (actual != value) continue;
      }
      if (limit && count == limit) {
        more = true;
        ++remaining;
        continue;
      }
      if (count++) items += ',';
      items += v->itemJson;
      lastKey = key;
    }
    body = R"({"kind":")" + std::string(info->kind) + R"(List","apiVersion":")" +
           std::string(info->groupVersion) + R"(","metadata":{"resourceVersion":")" +
           std::to_string(listRv) + "\"";
    if (more) {
      body += R"(,"continue":)" + control::jsonString(std::to_string(listRv) + ":" + lastKey) +
              ",\"remainingItemCount\":" + std::to_string(remaining);
    }
    body += R"(},"items":[)" + items + "]}";
  }
  c.respond(200, "application/json", body);
}

void KubeApiServer::handleWatch(Connection& c, const Request& r, const std::string& resource,
                                const std::string& ns) {
  const ResourceInfo* info = byResource(resource);
  std::string labelSelector = r.get("labelSelector");
  std::string fieldSelector = r.get("fieldSelector");
  bool bookmarks = r.get("allowWatchBookmarks") == "true";
  int timeoutSeconds = r.param("timeoutSeconds") ? std::stoi(r.get("timeoutSeconds")) : 1800;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeoutSeconds);
  std::string rvText = r.get("resourceVersion");
  auto matches = [&](const std::string& entryNs, const std::string& name, const Version& v) {
    if (!ns.empty() && entryNs != ns) return false;
    if (!labelsMatch(labelSelector, v.labels)) return false;
    if (fieldSelector.empty()) return true;
    size_t eq = fieldSelector.find('=');
    std::string field = fieldSelector.substr(0, eq), value = fieldSelector.substr(eq + 1);
    std::string actual = field == "metadata.name"        ? name
                         : field == "metadata.namespace" ? entryNs
                         : field == "type"               ? v.type
                                                         : "";
    return actual == value;
  };
  auto nameOf = [](const Version& v) {
    std::optional<Value> doc;
    (void)control::readJsonDocuments(v.json, [&](Value value, size_t) -> Status {
      doc = std::move(value);
      return okStatus();
    });
    return doc ? stringField(*doc, "metadata", "name") : std::string();
  };
  std::vector<std::string> initial;
  size_t position = 0;
  uint64_t epoch = 0;
  {
    std::lock_guard lock(mu_);
    uint64_t from = rv_;
    if (!rvText.empty() && rvText != "0") {
      from = std::stoull(rvText);
      if (from < compactedRv_) {
        std::string status = statusJson(
            410, "Expired",
            "too old resource version: " + rvText + " (" + std::to_string(compactedRv_) + ")");
        if (goneAsHttp_) {
          c.respond(410, "application/json", status);
        } else if (c.write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n")) {
          if (c.chunk(R"({"type":"ERROR","object":)" + status + "}\n")) c.write("0\r\n\r\n");
        }
        return;
      }
    } else {
      // "" and "0": the current state as ADDED events, then changes.
      for (const auto& [key, entry] : entries_) {
        if (entry.resource != resource || entry.versions.back().deleted) continue;
        const Version& v = entry.versions.back();
        if (matches(entry.ns, entry.name, v)) {
          initial.push_back(R"({"type":"ADDED","object":)" + v.json + "}");
        }
      }
    }
    // Lines after `from`: the log is in resourceVersion order.
    position = static_cast<size_t>(
        std::upper_bound(log_.begin(), log_.end(), from,
                         [](uint64_t rv, const WatchLine& l) { return rv < l.rv; }) -
        log_.begin());
    epoch = epoch_;
    ++openWatches_;
  }
  changed_.notify_all();
  auto closeWatch = [&] {
    std::lock_guard lock(mu_);
    --openWatches_;
  };
  if (!c.write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
               "Transfer-Encoding: chunked\r\n\r\n")) {
    closeWatch();
    return;
  }
  for (const std::string& line : initial) {
    if (!c.chunk(line + "\n")) {
      closeWatch();
      return;
    }
  }
  for (;;) {
    std::vector<std::string> out;
    bool ends = false;
    bool dropped = false;
    {
      std::unique_lock lock(mu_);
      changed_.wait_until(lock, deadline,
                          [&] { return stopping_ || epoch_ != epoch || position < log_.size(); });
      if (stopping_ || epoch_ != epoch) {
        dropped = true;
      } else if (position == log_.size()) {
        ends = true;  // timeoutSeconds reached
      }
      for (; !dropped && position < log_.size() && !ends; ++position) {
        const WatchLine& l = log_[position];
        if (!l.resource.empty() && l.resource != resource) continue;
        if (!l.raw.empty()) {
          out.push_back(l.raw);
          ends = l.ends;
          continue;
        }
        if (l.bookmark) {
          if (bookmarks) {
            out.push_back(R"({"type":"BOOKMARK","object":{"kind":")" + std::string(info->kind) +
                          R"(","apiVersion":")" + std::string(info->groupVersion) +
                          R"(","metadata":{"resourceVersion":")" + std::to_string(l.rv) + "\"}}}");
          }
          continue;
        }
        // Selector semantics of the watch cache: a change into or out of the selection is
        // an ADDED or a DELETED for this watcher.
        std::string name = nameOf(l.after ? *l.after : *l.before);
        bool was = l.before && matches(l.ns, name, *l.before);
        bool is = l.after && matches(l.ns, name, *l.after);
        if (!was && !is) continue;
        std::string type = was && is ? "MODIFIED" : is ? "ADDED" : "DELETED";
        const std::string& json = is ? l.after->json : l.before->json;
        std::string object = json;
        if (!is) {
          // A deleted object is sent in its last state, at the deletion's resourceVersion.
          std::string from = "\"resourceVersion\":\"" + std::to_string(l.before->rv) + "\"";
          if (size_t at = object.find(from); at != std::string::npos) {
            object.replace(at, from.size(), "\"resourceVersion\":\"" + std::to_string(l.rv) + "\"");
          }
        }
        out.push_back(R"({"type":")" + type + R"(","object":)" + object + "}");
      }
    }
    if (dropped) {
      // Cut without the last chunk: the client sees the connection end mid-stream.
      ::shutdown(c.fd, SHUT_RDWR);
      closeWatch();
      return;
    }
    for (const std::string& line : out) {
      if (!c.chunk(line + "\n")) {
        closeWatch();
        return;
      }
    }
    if (ends || std::chrono::steady_clock::now() >= deadline) {
      c.write("0\r\n\r\n");
      closeWatch();
      return;
    }
  }
}

// --- test certificates -------------------------------------------------------------------------

namespace {

std::string pemOf(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

std::string pemOf(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

void addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

TestCertificate issue(const std::string& subjectCn, const std::string& org, X509* issuer,
                      EVP_PKEY* issuerKey, bool isCa, const std::string& san,
                      const std::string& extendedUsage) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(cert), ++serial);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(subjectCn.c_str()), -1, -1, 0);
  if (!org.empty()) {
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(org.c_str()), -1, -1, 0);
  }
  X509* signer = issuer ? issuer : cert;
  X509_set_issuer_name(cert, X509_get_subject_name(signer));
  addExtension(cert, signer, NID_basic_constraints, isCa ? "critical,CA:TRUE" : "CA:FALSE");
  addExtension(cert, signer, NID_key_usage,
               isCa ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  if (!extendedUsage.empty()) addExtension(cert, signer, NID_ext_key_usage, extendedUsage);
  if (!san.empty()) addExtension(cert, signer, NID_subject_alt_name, san);
  X509_sign(cert, issuer ? issuerKey : key, EVP_sha256());
  TestCertificate out{pemOf(cert), pemOf(key)};
  X509_free(cert);
  EVP_PKEY_free(key);
  return out;
}

struct Loaded {
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;
  explicit Loaded(const TestCertificate& c) {
    BIO* b = BIO_new_mem_buf(c.certPem.data(), static_cast<int>(c.certPem.size()));
    cert = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    b = BIO_new_mem_buf(c.keyPem.data(), static_cast<int>(c.keyPem.size()));
    key = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
  }
  ~Loaded() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};

}  // namespace

TestCa makeTestCa(const std::string& commonName) {
  return TestCa{issue(commonName, "", nullptr, nullptr, true, "", "")};
}

TestCertificate TestCa::issueServer(const std::vector<std::string>& sans) const {
  Loaded ca(this->ca);
  std::string san;
  for (const std::string& s : sans) {
    if (!san.empty()) san += ',';
    bool ip = s.find_first_not_of("0123456789.:") == std::string::npos;
    san += (ip ? "IP:" : "DNS:") + s;
  }
  return issue(sans.empty() ? "server" : sans.front(), "", ca.cert, ca.key, false, san,
               "serverAuth");
}

TestCertificate TestCa::issueClient(const std::string& name, const std::string& group) const {
  Loaded ca(this->ca);
  return issue(name, group, ca.cert, ca.key, false, "", "clientAuth");
}

}  // namespace capstan::support
