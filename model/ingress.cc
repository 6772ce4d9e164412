#include "model/ingress.h"

#include <algorithm>

namespace capstan {

std::string_view toString(PathType type) {
  switch (type) {
    case PathType::kExact:
      return "Exact";
    case PathType::kPrefix:
      return "Prefix";
    case PathType::kImplementationSpecific:
      return "ImplementationSpecific";
  }
  return "?";
}

bool servesIngress(const Ingress& ingress, const std::vector<IngressClass>& classes,
                   const IngressClassSelector& selector) {
  if (ingress.ingressClassName) return *ingress.ingressClassName == selector.className;
  if (!ingress.classAnnotation.empty()) return ingress.classAnnotation == selector.className;
  return std::any_of(classes.begin(), classes.end(), [&](const IngressClass& c) {
    return c.isDefault && (c.name == selector.className || c.controller == selector.controller);
  });
}

const TlsSecret* IngressState::findSecret(const NamespacedName& name) const {
  auto it = std::lower_bound(secrets.begin(), secrets.end(), name,
                             [](const std::shared_ptr<const TlsSecret>& s,
                                const NamespacedName& n) { return s->name < n; });
  if (it == secrets.end() || (*it)->name != name) return nullptr;
  return it->get();
}

namespace {
template <typename T>
bool samePointees(const std::vector<std::shared_ptr<const T>>& a,
                  const std::vector<std::shared_ptr<const T>>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const auto& x, const auto& y) { return x == y || *x == *y; });
}
}  // namespace

bool IngressState::operator==(const IngressState& other) const {
  return samePointees(ingresses, other.ingresses) && samePointees(secrets, other.secrets);
}

}  // namespace capstan
