#include "control/kube/cluster_config.h"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "control/base64.h"
#include "control/document_reader.h"

namespace capstan::control::kube {

namespace {

// Credentials and CA bundles are small; anything larger is the wrong file.
constexpr size_t kMaxFileBytes = size_t{1} << 20;

Result<std::string> readSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error(path + ": cannot read: " + std::strerror(errno));
  std::string out;
  char buf[8192];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    out.append(buf, static_cast<size_t>(in.gcount()));
    if (out.size() > kMaxFileBytes) return Error(path + ": larger than 1 MiB");
  }
  return out;
}

std::string trimSpace(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
  return s.substr(start);
}

std::string dirName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// client-go's ResolvePaths: file references in a kubeconfig are relative to its directory.
std::string resolvePath(const std::string& kubeconfig, const std::string& file) {
  if (file.empty() || file[0] == '/') return file;
  return dirName(kubeconfig) + "/" + file;
}

// "host:port" without a scheme is https, as client-go's DefaultServerURL makes it.
Result<std::string> normalizeServer(std::string server, const std::string& what) {
  if (server.empty()) return Error(what + ": required");
  if (!server.starts_with("http://") && !server.starts_with("https://")) {
    if (server.find("://") != std::string::npos) {
      return Error(what + ": unsupported scheme in \"" + server + "\" (want http or https)");
    }
    server = "https://" + server;
  }
  while (server.ends_with("/")) server.pop_back();
  return server;
}

// One named entry of a kubeconfig list (clusters, contexts, users): its inner mapping.
struct Named {
  const Value* value = nullptr;  // the inner mapping ("cluster:", "context:", "user:")
  std::string field;             // "clusters[1].cluster", for messages
};

Result<Named> findNamed(const Value& doc, const std::string& list, const std::string& inner,
                        const std::string& name, const std::string& path) {
  const Value* items = doc.find(list);
  if (!items || items->isNull()) {
    return Error(path + ": " + list + ": no entry named \"" + name + "\" (the list is empty)");
  }
  if (!items->isArray()) return Error(path + ": " + list + ": expected a list");
  for (size_t i = 0; i < items->asArray().size(); ++i) {
    const Value& item = items->asArray()[i];
    std::string field = list + "[" + std::to_string(i) + "]";
    if (!item.isObject()) return Error(path + ": " + field + ": expected a mapping");
    const Value* n = item.find("name");
    if (!n || !n->isString()) return Error(path + ": " + field + ".name: expected a string");
    if (n->asString() != name) continue;
    const Value* v = item.find(inner);
    if (v && !v->isNull() && !v->isObject()) {
      return Error(path + ": " + field + "." + inner + ": expected a mapping");
    }
    return Named{v && v->isObject() ? v : nullptr, field + "." + inner};
  }
  return Error(path + ": " + list + ": no entry named \"" + name + "\"");
}

class FieldReader {
 public:
  FieldReader(const Named& named, const std::string& path) : named_(named), path_(path) {}

  Result<std::string> str(std::string_view key) const {
    const Value* v = named_.value ? named_.value->find(key) : nullptr;
    if (!v || v->isNull()) return std::string();
    if (!v->isString()) {
      return Error(where(key) + ": expected a string, got " + std::string(v->typeName()));
    }
    return v->asString();
  }
  Result<bool> boolean(std::string_view key) const {
    const Value* v = named_.value ? named_.value->find(key) : nullptr;
    if (!v || v->isNull()) return false;
    if (v->type() != Value::Type::kBool) {
      return Error(where(key) + ": expected true or false, got " + std::string(v->typeName()));
    }
    return v->asBool();
  }
  bool has(std::string_view key) const {
    const Value* v = named_.value ? named_.value->find(key) : nullptr;
    return v && !v->isNull();
  }
  // The PEM text of `dataKey` (base64) or of the file `fileKey` names; data wins, as in
  // client-go (the *-data field is what `kubectl config view --flatten` writes).
  Result<std::string> pem(std::string_view dataKey, std::string_view fileKey) const {
    auto data = str(dataKey);
    if (!data.ok()) return data.error();
    if (!data->empty()) {
      auto decoded = decodeBase64(*data);
      if (!decoded) return Error(where(dataKey) + ": not valid base64");
      return *decoded;
    }
    auto file = str(fileKey);
    if (!file.ok()) return file.error();
    if (file->empty()) return std::string();
    auto content = readSmallFile(resolvePath(path_, *file));
    if (!content.ok()) return content.error().withContext(where(fileKey));
    return std::move(content).value();
  }
  std::string where(std::string_view key) const {
    return path_ + ": " + named_.field + "." + std::string(key);
  }

 private:
  const Named& named_;
  const std::string& path_;
};

#define CAPSTAN_KUBE_TRY(lhs, expr)  \
  do {                               \
    auto r_ = (expr);                \
    if (!r_.ok()) return r_.error(); \
    lhs = std::move(r_).value();     \
  } while (0)

}  // namespace

Result<ClusterConfig> inClusterConfig(
    const std::function<std::optional<std::string>(std::string_view)>& getenv,
    std::string_view dir) {
  auto host = getenv("KUBERNETES_SERVICE_HOST");
  auto port = getenv("KUBERNETES_SERVICE_PORT");
  if (!host || host->empty() || !port || port->empty()) {
    // client-go's ErrNotInCluster.
    return Error(
        "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
        "KUBERNETES_SERVICE_PORT must be defined (or give --kubeconfig or --master)");
  }
  ClusterConfig c;
  c.origin = "in-cluster";
  // net.JoinHostPort: an IPv6 service address goes in brackets.
  bool v6 = host->find(':') != std::string::npos;
  c.server = "https://" + (v6 ? "[" + *host + "]" : *host) + ":" + *port;
  std::string base(dir);
  auto ca = readSmallFile(base + "/ca.crt");
  if (!ca.ok()) return ca.error().withContext("in-cluster configuration");
  c.caPem = std::move(ca).value();
  // rest.InClusterConfig reads the token once to fail early; BearerToken re-reads it later.
  c.tokenFile = base + "/token";
  auto token = readSmallFile(c.tokenFile);
  if (!token.ok()) return token.error().withContext("in-cluster configuration");
  if (trimSpace(*token).empty()) {
    return Error("in-cluster configuration: " + c.tokenFile + ": empty token");
  }
  c.token = trimSpace(std::move(token).value());
  if (auto ns = readSmallFile(base + "/namespace"); ns.ok()) c.ns = trimSpace(*ns);
  return c;
}

Result<ClusterConfig> parseKubeconfig(std::string_view text, const std::string& path) {
  std::optional<Value> doc;
  Status st = readYamlDocuments(text, [&](Value v, size_t) -> Status {
    if (doc) return Error("one document expected, found several");
    doc = std::move(v);
    return okStatus();
  });
  if (!st.ok()) return st.error().withContext(path);
  if (!doc || !doc->isObject()) return Error(path + ": expected a kubeconfig mapping");

  const Value* current = doc->find("current-context");
  if (!current || !current->isString() || current->asString().empty()) {
    return Error(path + ": current-context: not set (choose one with kubectl config use-context)");
  }
  Named context;
  CAPSTAN_KUBE_TRY(context, findNamed(*doc, "contexts", "context", current->asString(), path));
  FieldReader ctx(context, path);
  std::string clusterName, userName;
  ClusterConfig c;
  c.origin = path;
  CAPSTAN_KUBE_TRY(clusterName, ctx.str("cluster"));
  CAPSTAN_KUBE_TRY(userName, ctx.str("user"));
  CAPSTAN_KUBE_TRY(c.ns, ctx.str("namespace"));
  if (clusterName.empty()) return Error(ctx.where("cluster") + ": required");

  Named cluster;
  CAPSTAN_KUBE_TRY(cluster, findNamed(*doc, "clusters", "cluster", clusterName, path));
  FieldReader cl(cluster, path);
  std::string server;
  CAPSTAN_KUBE_TRY(server, cl.str("server"));
  CAPSTAN_KUBE_TRY(c.server, normalizeServer(server, cl.where("server")));
  CAPSTAN_KUBE_TRY(c.insecureSkipTlsVerify, cl.boolean("insecure-skip-tls-verify"));
  CAPSTAN_KUBE_TRY(c.tlsServerName, cl.str("tls-server-name"));
  CAPSTAN_KUBE_TRY(c.caPem, cl.pem("certificate-authority-data", "certificate-authority"));
  if (c.insecureSkipTlsVerify && !c.caPem.empty()) {
    // client-go refuses the combination too (rest.TLSConfigFor).
    return Error(cl.where("insecure-skip-tls-verify") +
                 ": cannot be combined with certificate-authority(-data)");
  }

  if (!userName.empty()) {
    Named user;
    CAPSTAN_KUBE_TRY(user, findNamed(*doc, "users", "user", userName, path));
    FieldReader u(user, path);
    for (const char* unsupported : {"exec", "auth-provider", "username", "as"}) {
      if (u.has(unsupported)) {
        return Error(u.where(unsupported) +
                     ": not supported by Capstan (use a token, tokenFile or client certificate)");
      }
    }
    CAPSTAN_KUBE_TRY(c.clientCertPem, u.pem("client-certificate-data", "client-certificate"));
    CAPSTAN_KUBE_TRY(c.clientKeyPem, u.pem("client-key-data", "client-key"));
    if (c.clientCertPem.empty() != c.clientKeyPem.empty()) {
      return Error(u.where(c.clientCertPem.empty() ? "client-certificate" : "client-key") +
                   ": required with " +
                   (c.clientCertPem.empty() ? "client-key" : "client-certificate"));
    }
    CAPSTAN_KUBE_TRY(c.token, u.str("token"));
    std::string tokenFile;
    CAPSTAN_KUBE_TRY(tokenFile, u.str("tokenFile"));
    c.tokenFile = resolvePath(path, tokenFile);
  }
  return c;
}

Result<ClusterConfig> loadKubeconfig(const std::string& path) {
  auto text = readSmallFile(path);
  if (!text.ok()) return text.error();
  return parseKubeconfig(*text, path);
}

Result<ClusterConfig> buildClusterConfig(
    const std::string& master, const std::string& kubeconfig,
    const std::function<std::optional<std::string>(std::string_view)>& getenv) {
  if (!kubeconfig.empty()) {
    auto c = loadKubeconfig(kubeconfig);
    if (!c.ok()) return c.error().withContext("--kubeconfig");
    if (!master.empty()) CAPSTAN_KUBE_TRY(c->server, normalizeServer(master, "--master"));
    return c;
  }
  if (!master.empty()) {
    ClusterConfig c;
    c.origin = "--master";
    CAPSTAN_KUBE_TRY(c.server, normalizeServer(master, "--master"));
    return c;
  }
  return inClusterConfig(getenv);
}

#undef CAPSTAN_KUBE_TRY

BearerToken::BearerToken(const ClusterConfig& config, std::chrono::nanoseconds refreshPeriod)
    : static_(config.token), file_(config.tokenFile), period_(refreshPeriod) {}

Result<std::string> BearerToken::get(Clock::time_point now) {
  std::lock_guard lock(mu_);
  if (file_.empty()) return static_;
  if (readAt_ && now - *readAt_ < period_) return cached_;
  auto content = readSmallFile(file_);
  readAt_ = now;  // a failing file is retried a period later, not on every request
  if (content.ok() && !trimSpace(*content).empty()) {
    cached_ = trimSpace(std::move(content).value());
    return cached_;
  }
  if (!cached_.empty()) return cached_;  // keep the last token that was read
  if (!static_.empty()) return static_;
  if (!content.ok()) return content.error().withContext("bearer token");
  return Error("bearer token: " + file_ + ": empty");
}

void BearerToken::invalidate() {
  std::lock_guard lock(mu_);
  readAt_.reset();
}

}  // namespace capstan::control::kube
