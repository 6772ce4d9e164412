// What Capstan writes to the Kubernetes API: the one list the client's writers take their
// request paths and verbs from, and the RBAC test checks the ClusterRole against, so the two
// cannot drift apart.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace capstan::control::kube {

// One (API group, resource, verb) triple, as a ClusterRole rule names it. The core group is "".
struct ApiWrite {
  std::string group;
  std::string resource;  // "ingresses/status": a subresource as RBAC spells it
  std::string verb;

  bool operator==(const ApiWrite&) const = default;
};

// The Ingress status write-back (IngressStatusWriter): a merge patch of status.loadBalancer.
inline const ApiWrite kIngressStatusWrite{"networking.k8s.io", "ingresses/status", "patch"};

// Every write the client makes.
inline std::vector<ApiWrite> capstanApiWrites() { return {kIngressStatusWrite}; }

// The path of one object's `write` ("/apis/networking.k8s.io/v1/namespaces/shop/ingresses/web/
// status"): the group's v1 version, the core group under /api/v1.
inline std::string apiWritePath(const ApiWrite& write, std::string_view ns, std::string_view name) {
  std::string path = write.group.empty() ? "/api/v1" : "/apis/" + write.group + "/v1";
  std::string_view resource = write.resource;
  std::string_view subresource;
  if (size_t slash = resource.find('/'); slash != std::string_view::npos) {
    subresource = resource.substr(slash + 1);
    resource = resource.substr(0, slash);
  }
  if (!ns.empty()) path.append("/namespaces/").append(ns);
  path.append("/").append(resource).append("/").append(name);
  if (!subresource.empty()) path.append("/").append(subresource);
  return path;
}

}  // namespace capstan::control::kube
