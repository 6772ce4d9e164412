// ObjectDecoder: Kubernetes objects (parsed JSON or YAML) into model values.
//
// The one decoder of the project: the manifest source uses it today and the API watch will use it
// unchanged. It validates what the API server validates for the fields Capstan uses, so a
// manifest that kubectl would refuse is refused here too, with every faulty field named:
//   Service default/web: spec.ports[1].port: must be between 1 and 65535, got 70000
// Fields Capstan does not use are ignored, as the API server's non-strict decoding does.
#pragma once

#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "control/value.h"
#include "model/endpoint.h"
#include "model/ingress.h"
#include "model/node.h"
#include "model/service.h"

namespace capstan::control {

enum class ObjectKind : uint8_t {
  kService,
  kEndpointSlice,
  kIngress,
  kIngressClass,
  kSecret,
  kNode
};

std::string_view toString(ObjectKind kind);  // "Service", "EndpointSlice", ...

struct ObjectKey {
  ObjectKind kind = ObjectKind::kService;
  NamespacedName name;  // ns empty for cluster-scoped kinds (Node, IngressClass)

  // "Service default/web", "Node node-a".
  std::string toString() const;
  auto operator<=>(const ObjectKey&) const = default;
  bool operator==(const ObjectKey&) const = default;
};

using KubeObject =
    std::variant<std::shared_ptr<const Service>, std::shared_ptr<const EndpointSlice>,
                 std::shared_ptr<const Ingress>, std::shared_ptr<const IngressClass>,
                 std::shared_ptr<const TlsSecret>, std::shared_ptr<const NodeInfo>>;

// RFC 1123 subdomain (a Kubernetes object name, a host name): labels of [a-z0-9-] joined by '.',
// at most 253 characters.
bool isDns1123Subdomain(std::string_view s);

// Deep equality of two objects of the same kind (false across kinds).
bool sameObject(const KubeObject& a, const KubeObject& b);

struct Decoded {
  enum class Outcome : uint8_t {
    kOk,       // `object` holds the value
    kIgnored,  // a valid object Capstan has no use for (a Deployment, an Opaque Secret, ...)
    kInvalid,  // rejected: `message` says which fields and why
  };
  Outcome outcome = Outcome::kInvalid;
  // The object's identity, whenever its kind and name could be read (also for invalid objects,
  // so a source can keep the last good version of exactly that object).
  std::optional<ObjectKey> key;
  KubeObject object;
  // For kIgnored and kInvalid: "Service default/web: spec.ports[0].port: must be ...".
  std::string message;
  uint32_t line = 0;  // source line of the first faulty field (YAML), 0 if unknown
};

struct DecoderOptions {
  // Namespace of namespaced objects that name none (kubectl apply uses the context's namespace;
  // manifests fed to Capstan use this one).
  std::string defaultNamespace = "default";
};

class ObjectDecoder {
 public:
  explicit ObjectDecoder(DecoderOptions options = {}) : options_(std::move(options)) {}

  // One document: a single object, or a List (kind "List" or "<Kind>List" with `items`), which
  // yields one entry per item.
  std::vector<Decoded> decodeDocument(const Value& document) const;

  Decoded decodeObject(const Value& object) const;

 private:
  DecoderOptions options_;
};

}  // namespace capstan::control
