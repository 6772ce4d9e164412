// networking.k8s.io/v1 Ingress and IngressClass, kubernetes.io/tls Secrets, and the ingress part
// of a ProxyState: the Ingresses Capstan serves with the certificates they name.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/service.h"

namespace capstan {

enum class PathType : uint8_t { kExact, kPrefix, kImplementationSpecific };

std::string_view toString(PathType type);

struct IngressServiceBackend {
  std::string name;         // a Service in the Ingress's namespace
  uint16_t portNumber = 0;  // exactly one of portNumber and portName is set
  std::string portName;

  bool operator==(const IngressServiceBackend&) const = default;
};

struct IngressBackend {
  std::optional<IngressServiceBackend> service;
  // A `resource` backend (TypedLocalObjectReference): recorded, never routed to by Capstan.
  std::string resourceKind;
  std::string resourceName;

  bool operator==(const IngressBackend&) const = default;
};

struct IngressPath {
  std::string path;  // starts with '/' for Exact and Prefix
  PathType pathType = PathType::kPrefix;
  IngressBackend backend;

  bool operator==(const IngressPath&) const = default;
};

struct IngressRule {
  std::string host;  // empty: every host; "*.example.com": exactly one label in place of '*'
  std::vector<IngressPath> paths;

  bool operator==(const IngressRule&) const = default;
};

struct IngressTls {
  std::vector<std::string> hosts;
  std::string secretName;

  bool operator==(const IngressTls&) const = default;
};

struct Ingress {
  NamespacedName name;
  std::optional<std::string> ingressClassName;  // spec.ingressClassName
  std::string classAnnotation;                  // legacy kubernetes.io/ingress.class
  std::optional<IngressBackend> defaultBackend;
  std::vector<IngressRule> rules;
  std::vector<IngressTls> tls;
  std::map<std::string, std::string> annotations;

  bool operator==(const Ingress&) const = default;
};

struct IngressClass {
  std::string name;
  std::string controller;  // spec.controller
  bool isDefault = false;  // annotation ingressclass.kubernetes.io/is-default-class: "true"

  bool operator==(const IngressClass&) const = default;
};

// A Secret of type kubernetes.io/tls: PEM certificate chain and private key.
struct TlsSecret {
  NamespacedName name;
  std::string certificatePem;
  std::string privateKeyPem;

  bool operator==(const TlsSecret&) const = default;
};

// Which ingress class Capstan serves: --ingress-class, and the controller name its IngressClass
// objects carry.
struct IngressClassSelector {
  std::string className = "capstan";
  std::string controller = "capstan.io/ingress-controller";
};

// Whether Capstan serves `ingress`: its spec.ingressClassName is Capstan's class; or it has none,
// and either its legacy kubernetes.io/ingress.class annotation names Capstan's class, or (with
// no annotation) the cluster's default IngressClass is Capstan's (by name or controller).
bool servesIngress(const Ingress& ingress, const std::vector<IngressClass>& classes,
                   const IngressClassSelector& selector);

struct IngressState {
  std::vector<std::shared_ptr<const Ingress>> ingresses;  // those Capstan serves, sorted by name
  std::vector<std::shared_ptr<const TlsSecret>> secrets;  // those their spec.tls names, sorted

  const TlsSecret* findSecret(const NamespacedName& name) const;
  bool operator==(const IngressState& other) const;
};

}  // namespace capstan
