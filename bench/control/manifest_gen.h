// ManifestGenerator: realistic, deterministic Kubernetes manifests for load benchmarks and tests.
//
// N Services and their N EndpointSlices (E endpoints each), shaped as `kubectl get -o yaml` and
// `kubectl get -o json` print them: server-set metadata (uid, resourceVersion,
// creationTimestamp, ownerReferences), ClusterIP and NodePort Services with one or two named
// ports, selectors, and slices whose endpoints carry conditions, nodeName, zone, targetRef and,
// for Services in topology-aware mode, zone hints. Every figure derives from the object's index,
// so the same spec always gives the same bytes.
//
// Used by bench/control/load_bench.cc (in memory) and by bench/macro/manifest_gen_main.cc, which
// writes the files the daemon_load macro benchmark feeds to `capstan`. Header-only and free of
// benchmark headers so tests can use it too.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "control/json_text.h"

namespace capstan::bench {

// A JSON-like tree the generator builds and both emitters print, so the YAML and the JSON of an
// object always hold the same content. Both emitters print map keys sorted, as kubectl does
// (it prints objects through unstructured maps, for -o yaml and -o json alike).
class ManifestNode {
 public:
  enum class Kind : uint8_t { kString, kInt, kBool, kMap, kList };
  using Member = std::pair<std::string, ManifestNode>;

  static ManifestNode str(std::string s) {
    ManifestNode n(Kind::kString);
    n.text_ = std::move(s);
    return n;
  }
  static ManifestNode num(int64_t v) {
    ManifestNode n(Kind::kInt);
    n.int_ = v;
    return n;
  }
  static ManifestNode boolean(bool v) {
    ManifestNode n(Kind::kBool);
    n.int_ = v ? 1 : 0;
    return n;
  }
  static ManifestNode map() { return ManifestNode(Kind::kMap); }
  static ManifestNode list() { return ManifestNode(Kind::kList); }

  // Appends a member (maps) or an item (lists); returns *this for chaining.
  ManifestNode& set(std::string key, ManifestNode value) {
    members_.emplace_back(std::move(key), std::move(value));
    return *this;
  }
  ManifestNode& set(std::string key, std::string value) { return set(std::move(key), str(value)); }
  ManifestNode& set(std::string key, const char* value) { return set(std::move(key), str(value)); }
  ManifestNode& add(ManifestNode item) {
    items_.push_back(std::move(item));
    return *this;
  }

  Kind kind() const { return kind_; }
  const std::string& text() const { return text_; }
  int64_t intValue() const { return int_; }
  bool boolValue() const { return int_ != 0; }
  const std::vector<Member>& members() const { return members_; }
  const std::vector<ManifestNode>& items() const { return items_; }

 private:
  explicit ManifestNode(Kind kind) : kind_(kind) {}

  Kind kind_;
  std::string text_;
  int64_t int_ = 0;
  std::vector<Member> members_;
  std::vector<ManifestNode> items_;
};

// --- Emitters ---------------------------------------------------------------------------------

namespace manifest_detail {

inline bool isDigit(char c) { return c >= '0' && c <= '9'; }

// Whether a YAML plain scalar would read back as something other than this string (a number, a
// bool, null, a timestamp) or not parse at all; go-yaml quotes exactly such strings.
inline bool yamlNeedsQuotes(std::string_view s) {
  if (s.empty()) return true;
  static constexpr std::string_view kWords[] = {
      "true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL", "~",
      "yes",  "Yes",  "YES",  "no",    "No",    "NO",    "on",   "On",   "ON",   "off",
      "Off",  "OFF",  "y",    "Y",     "n",     "N",     ".inf", ".nan", "<<"};
  for (std::string_view w : kWords) {
    if (s == w) return true;
  }
  if (std::string_view("-?:,[]{}#&*!|>'\"%@`").find(s.front()) != std::string_view::npos) {
    return true;
  }
  if (s.front() == ' ' || s.back() == ' ' || s.back() == ':') return true;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) return true;
    if (c == ':' && i + 1 < s.size() && s[i + 1] == ' ') return true;
    if (c == '#' && i > 0 && s[i - 1] == ' ') return true;
  }
  // Numbers in the forms YAML 1.1 or 1.2 resolve (1, 1_000, 1.5, .5, 1e3, 0x1f, 0o17, 0b101)
  // and timestamps (2025-06-01T08:00:00Z).
  std::string_view t = s;
  if (t.front() == '+' || t.front() == '-') t.remove_prefix(1);
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'o' || t[1] == 'b')) {
    bool digits = std::all_of(t.begin() + 2, t.end(), [](char c) {
      return isDigit(c) || c == '_' || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    });
    if (digits) return true;
  }
  size_t i = 0, digits = 0, dots = 0;
  for (; i < t.size() && (isDigit(t[i]) || t[i] == '_' || t[i] == '.'); ++i) {
    if (t[i] == '.') ++dots;
    if (isDigit(t[i])) ++digits;
  }
  if (digits > 0 && dots <= 1) {
    if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
      ++i;
      if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
      size_t expDigits = 0;
      for (; i < t.size() && isDigit(t[i]); ++i) ++expDigits;
      if (expDigits == 0) i = 0;
    }
    if (i == t.size()) return true;
  }
  if (t.size() >= 10 && isDigit(t[0]) && isDigit(t[1]) && isDigit(t[2]) && isDigit(t[3]) &&
      t[4] == '-') {
    return true;
  }
  return false;
}

inline void appendQuoted(std::string& out, std::string_view s) {
  control::appendJsonString(out, s);
}

inline void appendYamlScalar(std::string& out, const ManifestNode& n) {
  switch (n.kind()) {
    case ManifestNode::Kind::kString:
      if (yamlNeedsQuotes(n.text())) {
        appendQuoted(out, n.text());
      } else {
        out += n.text();
      }
      break;
    case ManifestNode::Kind::kInt:
      out += std::to_string(n.intValue());
      break;
    case ManifestNode::Kind::kBool:
      out += n.boolValue() ? "true" : "false";
      break;
    case ManifestNode::Kind::kMap:
      out += "{}";  // only reached for empty maps
      break;
    case ManifestNode::Kind::kList:
      out += "[]";  // only reached for empty lists
      break;
  }
}

inline bool isBlock(const ManifestNode& n) {
  return (n.kind() == ManifestNode::Kind::kMap && !n.members().empty()) ||
         (n.kind() == ManifestNode::Kind::kList && !n.items().empty());
}

inline std::vector<const ManifestNode::Member*> sortedMembers(const ManifestNode& n) {
  std::vector<const ManifestNode::Member*> sorted;
  sorted.reserve(n.members().size());
  for (const auto& m : n.members()) sorted.push_back(&m);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto* a, const auto* b) { return a->first < b->first; });
  return sorted;
}

void appendYamlBlock(std::string& out, const ManifestNode& n, size_t indent, bool inlineFirst);

// A map's members at `indent`; with `inlineFirst` the first one continues the current line
// (after "- ").
inline void appendYamlMap(std::string& out, const ManifestNode& n, size_t indent,
                          bool inlineFirst) {
  bool first = true;
  for (const ManifestNode::Member* m : sortedMembers(n)) {
    if (!(first && inlineFirst)) out.append(indent, ' ');
    first = false;
    if (yamlNeedsQuotes(m->first)) {
      appendQuoted(out, m->first);
    } else {
      out += m->first;
    }
    out += ':';
    const ManifestNode& v = m->second;
    if (!isBlock(v)) {
      out += ' ';
      appendYamlScalar(out, v);
      out += '\n';
    } else if (v.kind() == ManifestNode::Kind::kMap) {
      out += '\n';
      appendYamlMap(out, v, indent + 2, false);
    } else {
      // go-yaml (and so kubectl) writes a list under a key at the key's own indentation.
      out += '\n';
      appendYamlBlock(out, v, indent, false);
    }
  }
}

inline void appendYamlBlock(std::string& out, const ManifestNode& n, size_t indent,
                            bool inlineFirst) {
  if (n.kind() == ManifestNode::Kind::kMap) {
    appendYamlMap(out, n, indent, inlineFirst);
    return;
  }
  bool first = true;
  for (const ManifestNode& item : n.items()) {
    if (!(first && inlineFirst)) out.append(indent, ' ');
    first = false;
    out += "- ";
    if (isBlock(item)) {
      appendYamlBlock(out, item, indent + 2, true);
    } else {
      appendYamlScalar(out, item);
      out += '\n';
    }
  }
}

// `step` 0 prints compact JSON (one line); otherwise nested values are indented by `step` spaces
// below `indent` (kubectl -o json uses 4).
inline void appendJson(std::string& out, const ManifestNode& n, size_t indent, size_t step) {
  auto newline = [&](size_t at) {
    if (step == 0) return;
    out += '\n';
    out.append(at, ' ');
  };
  switch (n.kind()) {
    case ManifestNode::Kind::kString:
      appendQuoted(out, n.text());
      return;
    case ManifestNode::Kind::kInt:
      out += std::to_string(n.intValue());
      return;
    case ManifestNode::Kind::kBool:
      out += n.boolValue() ? "true" : "false";
      return;
    case ManifestNode::Kind::kMap: {
      if (n.members().empty()) {
        out += "{}";
        return;
      }
      out += '{';
      bool first = true;
      for (const ManifestNode::Member* m : sortedMembers(n)) {
        if (!first) out += ',';
        first = false;
        newline(indent + step);
        appendQuoted(out, m->first);
        out += step == 0 ? ":" : ": ";
        appendJson(out, m->second, indent + step, step);
      }
      newline(indent);
      out += '}';
      return;
    }
    case ManifestNode::Kind::kList: {
      if (n.items().empty()) {
        out += "[]";
        return;
      }
      out += '[';
      bool first = true;
      for (const ManifestNode& item : n.items()) {
        if (!first) out += ',';
        first = false;
        newline(indent + step);
        appendJson(out, item, indent + step, step);
      }
      newline(indent);
      out += ']';
      return;
    }
  }
}

// SplitMix64: a good 64-bit mix of the index, for uids and name suffixes.
inline uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

inline std::string zeroPad(uint64_t v, int width) {
  std::string s = std::to_string(v);
  if (static_cast<int>(s.size()) < width) s.insert(0, static_cast<size_t>(width) - s.size(), '0');
  return s;
}

// The alphabet of Kubernetes' generated name suffixes (k8s.io/apimachinery/pkg/util/rand).
inline std::string nameSuffix(uint64_t seed, size_t length) {
  static constexpr std::string_view kAlphabet = "bcdfghjklmnpqrstvwxz2456789";
  std::string out;
  uint64_t h = mix(seed);
  for (size_t i = 0; i < length; ++i) {
    if (i % 12 == 11) h = mix(h);
    out += kAlphabet[h % kAlphabet.size()];
    h /= kAlphabet.size();
  }
  return out;
}

inline std::string uid(uint64_t seed) {
  uint64_t a = mix(seed ^ 0x5555), b = mix(seed ^ 0xaaaa);
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%08x-%04x-4%03x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xfff),
                static_cast<unsigned>(0x8000 | (b >> 48 & 0x3fff)),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

inline std::string ipv4(uint32_t v) {
  return std::to_string(v >> 24) + "." + std::to_string((v >> 16) & 255) + "." +
         std::to_string((v >> 8) & 255) + "." + std::to_string(v & 255);
}

// An RFC 3339 time `seconds` after 2025-06-01T00:00:00Z (days wrap within a 28-day month).
inline std::string timestamp(uint64_t seconds) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "2025-06-%02uT%02u:%02u:%02uZ",
                static_cast<unsigned>(1 + seconds / 86400 % 28),
                static_cast<unsigned>(seconds / 3600 % 24),
                static_cast<unsigned>(seconds / 60 % 60), static_cast<unsigned>(seconds % 60));
  return buf;
}

}  // namespace manifest_detail

// YAML of one object (a document without "---"), keys sorted as kubectl prints them.
inline std::string toYaml(const ManifestNode& object) {
  std::string out;
  manifest_detail::appendYamlBlock(out, object, 0, false);
  return out;
}

// JSON of one object: `indent` 4 is kubectl's -o json, 0 is compact (one line).
inline std::string toJson(const ManifestNode& object, size_t indent = 4) {
  std::string out;
  manifest_detail::appendJson(out, object, 0, indent);
  return out;
}

// --- The generator ----------------------------------------------------------------------------

struct ManifestSpec {
  size_t services = 10'000;
  size_t endpointsPerSlice = 10;
  size_t namespaces = 100;
  size_t nodes = 100;  // node-001..; three zones
};

enum class ManifestFormat {
  kYaml,        // "---"-separated documents, one object each
  kJsonList,    // one `kind: List` document, as `kubectl get -o json` prints several objects
  kJsonStream,  // one object after the other (kubectl's per-object JSON, concatenated)
};

class ManifestGenerator {
 public:
  explicit ManifestGenerator(ManifestSpec spec = {}) : spec_(spec) {}

  const ManifestSpec& spec() const { return spec_; }

  // Objects are numbered as `kubectl get services,endpointslices -A` lists them: the Services
  // (0..N-1), then their EndpointSlices (N..2N-1).
  size_t objectCount() const { return 2 * spec_.services; }
  ManifestNode object(size_t k) const {
    return k < spec_.services ? service(k) : endpointSlice(k - spec_.services);
  }

  // What `capstan` should program for the whole set: one ServicePort per port of every Service,
  // and every endpoint of a Service's slice for each of its ports.
  size_t servicePortCount() const {
    size_t n = 0;
    for (size_t i = 0; i < spec_.services; ++i) n += portCount(i);
    return n;
  }
  size_t endpointCount() const { return servicePortCount() * spec_.endpointsPerSlice; }

  // Service i: ClusterIP, every 10th NodePort, every 3rd with a second (metrics or grpc) port.
  static size_t portCount(size_t i) { return i % 3 == 0 ? 2 : 1; }
  static bool isNodePort(size_t i) { return i % 10 == 0; }

  std::string serviceName(size_t i) const {
    static constexpr std::string_view kApps[] = {"web",    "api",     "checkout",  "cart",
                                                 "auth",   "search",  "payments",  "catalog",
                                                 "orders", "billing", "inventory", "reviews"};
    return std::string(kApps[i % std::size(kApps)]) + "-" + manifest_detail::zeroPad(i, 5);
  }
  std::string namespaceName(size_t i) const {
    return "team-" + manifest_detail::zeroPad(i % spec_.namespaces, 3);
  }
  std::string sliceName(size_t i) const {
    return serviceName(i) + "-" + manifest_detail::nameSuffix(i * 2 + 1, 5);
  }

  ManifestNode service(size_t i) const {
    using namespace manifest_detail;
    const std::string name = serviceName(i);
    const std::string ns = namespaceName(i);
    const std::string ip = ipv4(kServiceBase + 10 + static_cast<uint32_t>(i));

    ManifestNode labels = ManifestNode::map();
    labels.set("app", name).set("app.kubernetes.io/part-of", ns);
    ManifestNode metadata = ManifestNode::map();
    metadata.set("name", name)
        .set("namespace", ns)
        .set("uid", uid(i * 4))
        .set("resourceVersion", std::to_string(100'000 + i * 3))
        .set("creationTimestamp", timestamp(i * 7))
        .set("labels", std::move(labels));
    if (topologyAware(i)) {
      metadata.set("annotations",
                   ManifestNode::map().set("service.kubernetes.io/topology-mode", "Auto"));
    }

    ManifestNode ports = ManifestNode::list();
    for (size_t p = 0; p < portCount(i); ++p) {
      ManifestNode port = ManifestNode::map();
      port.set("name", portName(i, p))
          .set("protocol", "TCP")
          .set("port", ManifestNode::num(servicePort(i, p)));
      // Named target ports are common for http (the container's port name), numbers otherwise.
      if (p == 0 && i % 2 == 0) {
        port.set("targetPort", "http");
      } else {
        port.set("targetPort", ManifestNode::num(targetPort(i, p)));
      }
      if (isNodePort(i)) {
        port.set("nodePort", ManifestNode::num(30000 + (i / 10 * 2 + p) % 2768));
      }
      ports.add(std::move(port));
    }
    ManifestNode spec = ManifestNode::map();
    spec.set("ports", std::move(ports))
        .set("selector", ManifestNode::map().set("app", name))
        .set("clusterIP", ip)
        .set("clusterIPs", ManifestNode::list().add(ManifestNode::str(ip)))
        .set("type", isNodePort(i) ? "NodePort" : "ClusterIP");
    if (i % 20 == 7) {
      spec.set("sessionAffinity", "ClientIP")
          .set(
              "sessionAffinityConfig",
              ManifestNode::map().set(
                  "clientIP", ManifestNode::map().set("timeoutSeconds", ManifestNode::num(10800))));
    } else {
      spec.set("sessionAffinity", "None");
    }
    if (isNodePort(i)) {
      bool local = i % 20 == 10;
      spec.set("externalTrafficPolicy", local ? "Local" : "Cluster");
      // The API server allocates a health check port for externalTrafficPolicy: Local.
      if (local) spec.set("healthCheckNodePort", ManifestNode::num(30000 + (2000 + i / 20) % 2768));
    }
    spec.set("ipFamilies", ManifestNode::list().add(ManifestNode::str("IPv4")))
        .set("ipFamilyPolicy", "SingleStack")
        .set("internalTrafficPolicy", "Cluster");

    return ManifestNode::map()
        .set("apiVersion", "v1")
        .set("kind", "Service")
        .set("metadata", std::move(metadata))
        .set("spec", std::move(spec))
        .set("status", ManifestNode::map().set("loadBalancer", ManifestNode::map()));
  }

  // The EndpointSlice of Service i. `revision` > 0 gives a later version of the same slice: one
  // endpoint (which one turns with the revision) flips its readiness, as a pod's probe would.
  ManifestNode endpointSlice(size_t i, size_t revision = 0) const {
    using namespace manifest_detail;
    const std::string service = serviceName(i);
    const std::string ns = namespaceName(i);
    const size_t e = spec_.endpointsPerSlice;
    const std::string replicaSet = service + "-" + nameSuffix(i * 2 + 2, 10);

    ManifestNode metadata = ManifestNode::map();
    metadata.set("name", sliceName(i))
        .set("generateName", service + "-")
        .set("namespace", ns)
        .set("uid", uid(i * 4 + 1))
        .set("resourceVersion", std::to_string(100'001 + i * 3 + revision * 1'000'000))
        .set("generation", ManifestNode::num(static_cast<int64_t>(1 + revision)))
        .set("creationTimestamp", timestamp(i * 7 + 1))
        .set("labels",
             ManifestNode::map()
                 .set("app", service)
                 .set("endpointslice.kubernetes.io/managed-by", "endpointslice-controller.k8s.io")
                 .set("kubernetes.io/service-name", service))
        .set("annotations",
             ManifestNode::map().set("endpoints.kubernetes.io/last-change-trigger-time",
                                     timestamp(i * 7 + 2 + revision * 60)))
        .set("ownerReferences",
             ManifestNode::list().add(ManifestNode::map()
                                          .set("apiVersion", "v1")
                                          .set("kind", "Service")
                                          .set("name", service)
                                          .set("uid", uid(i * 4))
                                          .set("controller", ManifestNode::boolean(true))
                                          .set("blockOwnerDeletion", ManifestNode::boolean(true))));

    ManifestNode endpoints = ManifestNode::list();
    for (size_t j = 0; j < e; ++j) {
      const size_t k = i * e + j;  // the endpoint's global index
      // Consecutive endpoints go to consecutive nodes; each node's pods take addresses .2 to
      // .251 of /24 blocks of its own (its podCIDR).
      const size_t node = k % spec_.nodes;
      const size_t slot = k / spec_.nodes;
      const uint32_t block = static_cast<uint32_t>(slot / 250 * spec_.nodes + node);
      bool ready = k % 37 != 5;
      bool terminating = k % 53 == 11;
      if (revision > 0 && j == revision % e) ready = !ready;
      ManifestNode ep = ManifestNode::map();
      ep.set("addresses", ManifestNode::list().add(ManifestNode::str(ipv4(
                              kPodBase + block * 256 + 2 + static_cast<uint32_t>(slot % 250)))))
          .set("conditions", ManifestNode::map()
                                 .set("ready", ManifestNode::boolean(ready && !terminating))
                                 .set("serving", ManifestNode::boolean(ready))
                                 .set("terminating", ManifestNode::boolean(terminating)))
          .set("nodeName", nodeName(node))
          .set("targetRef", ManifestNode::map()
                                .set("kind", "Pod")
                                .set("name", replicaSet + "-" + nameSuffix(k * 2 + 3, 5))
                                .set("namespace", ns)
                                .set("uid", uid(k * 4 + 2)))
          .set("zone", zoneName(node));
      if (topologyAware(i)) {
        ep.set("hints",
               ManifestNode::map().set("forZones", ManifestNode::list().add(ManifestNode::map().set(
                                                       "name", zoneName(node)))));
      }
      endpoints.add(std::move(ep));
    }

    ManifestNode ports = ManifestNode::list();
    for (size_t p = 0; p < portCount(i); ++p) {
      ports.add(ManifestNode::map()
                    .set("name", portName(i, p))
                    .set("port", ManifestNode::num(targetPort(i, p)))
                    .set("protocol", "TCP"));
    }
    return ManifestNode::map()
        .set("addressType", "IPv4")
        .set("apiVersion", "discovery.k8s.io/v1")
        .set("endpoints", std::move(endpoints))
        .set("kind", "EndpointSlice")
        .set("metadata", std::move(metadata))
        .set("ports", std::move(ports));
  }

  // Objects [begin, end) in one of the formats. JSON is kubectl's (4-space indent) unless
  // `compactJson`, which prints one object per line as the API server's watch stream does.
  std::string render(ManifestFormat format, size_t begin, size_t end,
                     bool compactJson = false) const {
    std::string out;
    const size_t step = compactJson ? 0 : 4;
    switch (format) {
      case ManifestFormat::kYaml:
        for (size_t k = begin; k < end; ++k) {
          if (k != begin) out += "---\n";
          manifest_detail::appendYamlBlock(out, object(k), 0, false);
        }
        break;
      case ManifestFormat::kJsonStream:
        for (size_t k = begin; k < end; ++k) {
          manifest_detail::appendJson(out, object(k), 0, step);
          out += '\n';
        }
        break;
      case ManifestFormat::kJsonList: {
        const std::string nl = compactJson ? "" : "\n";
        const std::string in1(step, ' ');
        out += "{" + nl + in1 + "\"apiVersion\":" + (compactJson ? "" : " ") + "\"v1\"," + nl +
               in1 + "\"items\":" + (compactJson ? "" : " ") + "[";
        for (size_t k = begin; k < end; ++k) {
          if (k != begin) out += ',';
          out += nl;
          out.append(2 * step, ' ');
          manifest_detail::appendJson(out, object(k), 2 * step, step);
        }
        if (end > begin) out += nl + in1;
        out += "]," + nl + in1 + "\"kind\":" + (compactJson ? "" : " ") + "\"List\"," + nl + in1 +
               "\"metadata\":" + (compactJson ? "" : " ") + "{" + nl;
        if (!compactJson) out.append(2 * step, ' ');
        out += "\"resourceVersion\":" + std::string(compactJson ? "" : " ") + "\"\"" + nl + in1 +
               "}" + nl + "}\n";
        break;
      }
    }
    return out;
  }
  std::string render(ManifestFormat format, bool compactJson = false) const {
    return render(format, 0, objectCount(), compactJson);
  }

 private:
  static constexpr uint32_t kServiceBase = (10u << 24) | (96u << 16);  // 10.96.0.0/12
  static constexpr uint32_t kPodBase = (10u << 24) | (128u << 16);     // 10.128.0.0/9

  static bool topologyAware(size_t i) { return i % 25 == 3; }
  static std::string portName(size_t i, size_t p) {
    if (p == 0) return i % 4 == 1 ? "https" : "http";
    return i % 2 == 0 ? "metrics" : "grpc";
  }
  static int64_t servicePort(size_t i, size_t p) {
    if (p == 0) return i % 4 == 1 ? 443 : 80;
    return i % 2 == 0 ? 9090 : 9000;
  }
  static int64_t targetPort(size_t i, size_t p) {
    if (p == 0) return i % 4 == 1 ? 8443 : 8080;
    return i % 2 == 0 ? 9090 : 9000;
  }
  std::string nodeName(size_t node) const {
    return "node-" + manifest_detail::zeroPad(node + 1, 3);
  }
  static std::string zoneName(size_t node) {
    return std::string("zone-") + static_cast<char>('a' + node % 3);
  }

  ManifestSpec spec_;
};

}  // namespace capstan::bench
