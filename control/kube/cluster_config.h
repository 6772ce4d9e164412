// ClusterConfig: where the Kubernetes API server is and how to authenticate to it, from the
// service account of an in-cluster Pod or from a kubeconfig file (client-go's rest.Config, the
// part of it Capstan uses).
//
// The daemon builds one at start-up (--kubeconfig, --master, or in-cluster when
// KUBERNETES_SERVICE_HOST is set) and hands it to ApiClient. Errors name the file and the field:
//   /etc/capstan/kubeconfig: users[0].user.client-key-data: not valid base64
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "model/result.h"

namespace capstan::control::kube {

struct ClusterConfig {
  // "https://10.96.0.1:443", "http://127.0.0.1:8080" (no path: Capstan needs none).
  std::string server;
  // PEM CA bundle the server's certificate must chain to. Empty with https: the system's
  // default trust store.
  std::string caPem;
  bool insecureSkipTlsVerify = false;
  // Name to verify the server's certificate against (and send as SNI) when not the server's
  // host (kubeconfig's tls-server-name).
  std::string tlsServerName;
  std::string clientCertPem;  // client certificate authentication, with clientKeyPem
  std::string clientKeyPem;
  std::string token;      // a static bearer token
  std::string tokenFile;  // a bearer token re-read as it rotates (wins over `token`)
  std::string ns;         // the service account's or the context's namespace; may be empty
  std::string origin;     // "in-cluster" or the kubeconfig's path, for messages
};

// The service account files of an in-cluster Pod (client-go rest.InClusterConfig).
inline constexpr std::string_view kServiceAccountDir =
    "/var/run/secrets/kubernetes.io/serviceaccount";

// rest.InClusterConfig: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, the CA in
// `dir`/ca.crt, the token in `dir`/token (re-read as it rotates), the namespace in
// `dir`/namespace. `getenv` is the environment (std::getenv in the daemon, a map in tests).
Result<ClusterConfig> inClusterConfig(
    const std::function<std::optional<std::string>(std::string_view)>& getenv,
    std::string_view dir = kServiceAccountDir);

// A kubeconfig file's current context: its cluster's server, certificate-authority(-data),
// insecure-skip-tls-verify and tls-server-name; its user's client-certificate(-data),
// client-key(-data), token and tokenFile. Relative file paths are relative to the kubeconfig's
// directory (client-go's ResolvePaths). `path` is only used for messages and relative paths.
Result<ClusterConfig> parseKubeconfig(std::string_view text, const std::string& path);
Result<ClusterConfig> loadKubeconfig(const std::string& path);

// clientcmd.BuildConfigFromFlags(master, kubeconfig), as kube-proxy calls it: the kubeconfig
// when given (its server replaced by `master` when that is given too), `master` alone (no
// credentials, e.g. http://127.0.0.1:8080), else the in-cluster configuration.
Result<ClusterConfig> buildClusterConfig(
    const std::string& master, const std::string& kubeconfig,
    const std::function<std::optional<std::string>(std::string_view)>& getenv);

// The bearer token to send, re-reading a token file as client-go's cachingTokenSource does
// (transport/token_source.go: at most once a minute, and at once after a 401, since a rotated
// token may have been refused). Thread-safe.
class BearerToken {
 public:
  using Clock = std::chrono::steady_clock;

  explicit BearerToken(const ClusterConfig& config,
                       std::chrono::nanoseconds refreshPeriod = std::chrono::minutes(1));

  // The token to send now; empty for none. A file that cannot be read keeps the last token
  // (and the error is returned once the file has never been read).
  Result<std::string> get(Clock::time_point now);
  // The server refused the token: read the file again on the next get().
  void invalidate();

 private:
  std::mutex mu_;
  std::string static_;
  std::string file_;
  std::chrono::nanoseconds period_;
  std::string cached_;
  std::optional<Clock::time_point> readAt_;
};

}  // namespace capstan::control::kube
