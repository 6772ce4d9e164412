#include "control/decoder.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "control/base64.h"
#include "control/kube_time.h"

namespace capstan::control {

std::string_view toString(ObjectKind kind) {
  switch (kind) {
    case ObjectKind::kService:
      return "Service";
    case ObjectKind::kEndpointSlice:
      return "EndpointSlice";
    case ObjectKind::kIngress:
      return "Ingress";
    case ObjectKind::kIngressClass:
      return "IngressClass";
    case ObjectKind::kSecret:
      return "Secret";
    case ObjectKind::kNode:
      return "Node";
  }
  return "?";
}

std::string ObjectKey::toString() const {
  std::string out(control::toString(kind));
  out += ' ';
  if (!name.ns.empty()) out += name.ns + "/";
  out += name.name;
  return out;
}

bool sameObject(const KubeObject& a, const KubeObject& b) {
  if (a.index() != b.index()) return false;
  return std::visit(
      [&](const auto& pa) {
        const auto& pb = std::get<std::decay_t<decltype(pa)>>(b);
        return pa == pb || (pa && pb && *pa == *pb);
      },
      a);
}

namespace {

// ---------------------------------------------------------------------------------------------
// Field: a position in the document, for reading values and naming them in errors.
// Parents are referenced, not copied, so the path is only built when an error needs it; the
// rvalue overloads are deleted so a Field can never outlive the parent it points to.

class Field {
 public:
  explicit Field(const Value& root) : value_(&root) {}
  Field(const Value* value, const Field* parent, std::string_view key)
      : value_(value), parent_(parent), key_(key) {}
  Field(const Value* value, const Field* parent, size_t index)
      : value_(value), parent_(parent), index_(index) {}

  const Value* get() const { return value_; }
  const Value& operator*() const { return *value_; }
  const Value* operator->() const { return value_; }
  bool present() const { return value_ != nullptr && !value_->isNull(); }

  Field operator[](std::string_view key) const& {
    return Field(value_ ? value_->find(key) : nullptr, this, key);
  }
  Field operator[](std::string_view key) const&& = delete;
  Field at(size_t index) const& { return Field(&value_->asArray()[index], this, index); }
  Field at(size_t index) const&& = delete;

  std::string path() const {
    std::string out;
    appendPath(out);
    return out;
  }
  uint32_t line() const {
    for (const Field* f = this; f; f = f->parent_) {
      if (f->value_ && f->value_->line()) return f->value_->line();
    }
    return 0;
  }

 private:
  void appendPath(std::string& out) const {
    if (!parent_) return;
    parent_->appendPath(out);
    if (index_ != kNoIndex) {
      out += "[" + std::to_string(index_) + "]";
    } else {
      if (!out.empty()) out += '.';
      out += key_;
    }
  }

  static constexpr size_t kNoIndex = static_cast<size_t>(-1);
  const Value* value_;
  const Field* parent_ = nullptr;
  std::string_view key_;
  size_t index_ = kNoIndex;
};

class Errors {
 public:
  void add(const Field& field, std::string message) {
    if (items_.empty()) firstLine_ = field.line();
    std::string path = field.path();
    items_.push_back(path.empty() ? std::move(message) : path + ": " + message);
  }
  bool empty() const { return items_.empty(); }
  uint32_t firstLine() const { return firstLine_; }
  std::string join() const {
    std::string out;
    for (const auto& item : items_) {
      if (!out.empty()) out += "; ";
      out += item;
    }
    return out;
  }

 private:
  std::vector<std::string> items_;
  uint32_t firstLine_ = 0;
};

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 80)) {
    if (static_cast<unsigned char>(c) < 0x20 || c == '"' || c == '\\' ||
        static_cast<unsigned char>(c) >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  if (s.size() > 80) out += "...";
  return out + "\"";
}

void typeError(const Field& f, Errors& e, std::string_view expected) {
  e.add(f, "expected " + std::string(expected) + ", got " + std::string(f->typeName()));
}

std::optional<std::string> optString(const Field& f, Errors& e) {
  if (!f.present()) return std::nullopt;
  if (!f->isString()) {
    typeError(f, e, "a string");
    return std::nullopt;
  }
  return f->asString();
}

std::optional<std::string> reqString(const Field& f, Errors& e) {
  if (!f.present()) {
    e.add(f, "required");
    return std::nullopt;
  }
  auto s = optString(f, e);
  if (s && s->empty()) {
    e.add(f, "required (must not be empty)");
    return std::nullopt;
  }
  return s;
}

std::optional<int64_t> optInt(const Field& f, Errors& e, int64_t min, int64_t max) {
  if (!f.present()) return std::nullopt;
  int64_t v;
  if (f->type() == Value::Type::kInt) {
    v = f->asInt();
  } else if (f->type() == Value::Type::kFloat && std::isfinite(f->asFloat()) &&
             f->asFloat() == std::floor(f->asFloat()) && std::fabs(f->asFloat()) < 9e15) {
    // JSON has one number type; 80.0 is the integer 80 (as encoding/json decodes it).
    v = static_cast<int64_t>(f->asFloat());
  } else {
    typeError(f, e, "an integer");
    return std::nullopt;
  }
  if (v < min || v > max) {
    e.add(f, "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
                 std::to_string(v));
    return std::nullopt;
  }
  return v;
}

std::optional<bool> optBool(const Field& f, Errors& e) {
  if (!f.present()) return std::nullopt;
  if (f->type() != Value::Type::kBool) {
    typeError(f, e, "a boolean");
    return std::nullopt;
  }
  return f->asBool();
}

// The list at `f`, or nullptr when absent (or wrong, which is reported).
const Value::Array* optArray(const Field& f, Errors& e) {
  if (!f.present()) return nullptr;
  if (!f->isArray()) {
    typeError(f, e, "a list");
    return nullptr;
  }
  return &f->asArray();
}

// Whether `f` is an object (true) or absent (false); anything else is reported.
bool optObject(const Field& f, Errors& e) {
  if (!f.present()) return false;
  if (!f->isObject()) {
    typeError(f, e, "an object");
    return false;
  }
  return true;
}

std::map<std::string, std::string> stringMap(const Field& f, Errors& e) {
  std::map<std::string, std::string> out;
  if (!optObject(f, e)) return out;
  for (const auto& [key, value] : f->asObject()) {
    Field item(&value, &f, std::string_view(key));
    if (value.isNull()) {
      out[key] = "";
    } else if (auto s = optString(item, e)) {
      out[key] = *s;
    }
  }
  return out;
}

template <typename T>
std::optional<T> enumValue(const Field& f, Errors& e,
                           std::initializer_list<std::pair<std::string_view, T>> values) {
  auto s = optString(f, e);
  if (!s) return std::nullopt;
  for (const auto& [name, value] : values) {
    if (*s == name) return value;
  }
  std::string supported;
  for (const auto& [name, value] : values) {
    if (!supported.empty()) supported += ", ";
    supported += name;
  }
  e.add(f, "unsupported value " + quote(*s) + " (supported: " + supported + ")");
  return std::nullopt;
}

// --- Kubernetes name rules (k8s.io/apimachinery/pkg/util/validation) -------------------------

bool isAlnumLower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// RFC 1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters.
bool isDns1123Label(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (!isAlnumLower(s.front()) || !isAlnumLower(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return isAlnumLower(c) || c == '-'; });
}

// RFC 1035 label: an RFC 1123 label that starts with a letter.
bool isDns1035Label(std::string_view s) {
  return isDns1123Label(s) && s.front() >= 'a' && s.front() <= 'z';
}

}  // namespace

bool isDns1123Subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view label = s.substr(start, dot == std::string_view::npos ? s.npos : dot - start);
    if (!isDns1123Label(label)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

namespace {

// IANA service name (a named port): at most 15 of [-a-z0-9], at least one letter, no hyphen at
// either end and no two in a row.
bool isIanaSvcName(std::string_view s) {
  if (s.empty() || s.size() > 15 || s.front() == '-' || s.back() == '-') return false;
  if (s.find("--") != std::string_view::npos) return false;
  bool letter = false;
  for (char c : s) {
    if (!isAlnumLower(c) && c != '-') return false;
    letter |= c >= 'a' && c <= 'z';
  }
  return letter;
}

// Ingress host: a DNS subdomain, optionally with "*." in front (one wildcard label); never an IP.
bool isIngressHost(std::string_view s) {
  if (s.starts_with("*.")) s.remove_prefix(2);
  return isDns1123Subdomain(s);
}

// --- Decoding helpers shared by the kinds -----------------------------------------------------

struct Meta {
  std::string name;
  std::string ns;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  bool deleting = false;
};

enum class NameRule { kDns1035Label, kDns1123Subdomain };

Meta decodeMeta(const Field& root, Errors& e, bool namespaced, NameRule rule,
                const std::string& defaultNamespace) {
  Meta meta;
  Field m = root["metadata"];
  if (!m.present()) {
    e.add(m, "required");
    return meta;
  }
  if (!optObject(m, e)) return meta;
  Field name = m["name"];
  if (auto s = reqString(name, e)) {
    bool ok = rule == NameRule::kDns1035Label ? isDns1035Label(*s) : isDns1123Subdomain(*s);
    if (ok) {
      meta.name = *s;
    } else {
      e.add(name, "invalid name " + quote(*s) +
                      (rule == NameRule::kDns1035Label
                           ? " (must be a DNS-1035 label: lower-case letters, digits and '-', "
                             "starting with a letter, at most 63 characters)"
                           : " (must be a DNS-1123 subdomain: lower-case letters, digits, '-' "
                             "and '.', at most 253 characters)"));
    }
  }
  if (namespaced) {
    Field ns = m["namespace"];
    auto s = optString(ns, e);
    if (s && !s->empty()) {
      if (isDns1123Label(*s)) {
        meta.ns = *s;
      } else {
        e.add(ns, "invalid namespace " + quote(*s) + " (must be a DNS-1123 label)");
      }
    } else if (!ns.present() || s) {
      meta.ns = defaultNamespace;  // absent or "": not a namespace of the wrong type
    }
  }
  Field labels = m["labels"];
  meta.labels = stringMap(labels, e);
  Field annotations = m["annotations"];
  meta.annotations = stringMap(annotations, e);
  Field deletion = m["deletionTimestamp"];
  meta.deleting = deletion.present();
  return meta;
}

std::string label(const Meta& meta, const std::string& key) {
  auto it = meta.labels.find(key);
  return it == meta.labels.end() ? std::string() : it->second;
}

std::optional<IpAddress> ipField(const Field& f, Errors& e) {
  auto s = optString(f, e);
  if (!s) return std::nullopt;
  auto ip = IpAddress::parse(*s);
  if (!ip) e.add(f, "invalid IP address " + quote(*s));
  return ip;
}

std::optional<Protocol> protocolField(const Field& f, Errors& e) {
  if (!f.present()) return Protocol::kTCP;
  return enumValue<Protocol>(
      f, e, {{"TCP", Protocol::kTCP}, {"UDP", Protocol::kUDP}, {"SCTP", Protocol::kSCTP}});
}

// --- Service ----------------------------------------------------------------------------------

void decodeServicePorts(const Field& spec, Service& svc, Errors& e) {
  Field portsField = spec["ports"];
  const Value::Array* ports = optArray(portsField, e);
  bool portsOptional = svc.type == ServiceType::kExternalName || svc.headless;
  if (!ports || ports->empty()) {
    // A `ports` of the wrong type has been reported already.
    bool wrongType = portsField.present() && !ports;
    if (!portsOptional && !wrongType) {
      e.add(portsField, "required (a Service needs at least one port)");
    }
    return;
  }
  bool needNames = ports->size() > 1;
  std::set<std::string> names;
  std::set<std::pair<uint16_t, Protocol>> seen;
  std::set<std::pair<uint16_t, Protocol>> seenNodePorts;
  for (size_t i = 0; i < ports->size(); ++i) {
    Field p = portsField.at(i);
    if (!optObject(p, e)) {
      if (!p.present()) e.add(p, "expected an object, got null");
      continue;
    }
    ServicePortSpec port;
    Field name = p["name"];
    if (auto s = optString(name, e)) {
      // validateServicePort: an empty name is "required" (below), never a duplicate.
      if (!s->empty() && !isDns1123Label(*s)) {
        e.add(name, "invalid port name " + quote(*s) + " (must be a DNS-1123 label)");
      } else if (!s->empty() && !names.insert(*s).second) {
        e.add(name, "duplicate port name " + quote(*s));
      }
      port.name = *s;
    }
    if (needNames && port.name.empty() && !(name.present() && !name->isString())) {
      e.add(name, "required when a Service has several ports");
    }
    Field protocol = p["protocol"];
    if (auto proto = protocolField(protocol, e)) port.protocol = *proto;
    Field number = p["port"];
    if (!number.present()) {
      e.add(number, "required");
    } else if (auto v = optInt(number, e, 1, 65535)) {
      port.port = static_cast<uint16_t>(*v);
      if (!seen.insert({port.port, port.protocol}).second) {
        e.add(number, "duplicate port " + std::to_string(port.port) + "/" +
                          std::string(toString(port.protocol)));
      }
    }
    Field target = p["targetPort"];
    port.targetPort = int32_t{port.port};
    // SetDefaults_Service: a targetPort of 0 or "" defaults to the port.
    if (target.present() && !(target->isString() && target->asString().empty())) {
      if (target->isString()) {
        const std::string& s = target->asString();
        int32_t asNumber = 0;
        auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), asNumber);
        if (ec == std::errc() && ptr == s.data() + s.size()) {
          // targetPort: "8080" is the string "8080", which the API server rejects as a port
          // name (an IANA name needs a letter); so do we.
          e.add(target, "invalid port name " + quote(s) +
                            " (a number must not be quoted; a name needs a letter)");
        } else if (!isIanaSvcName(s)) {
          e.add(target, "invalid port name " + quote(s) +
                            " (an IANA service name: at most 15 lower-case letters, digits and "
                            "'-', with at least one letter)");
        } else {
          port.targetPort = s;
        }
      } else if (auto v = optInt(target, e, 0, 65535)) {
        if (*v != 0) port.targetPort = static_cast<int32_t>(*v);
      }
    }
    Field nodePort = p["nodePort"];
    if (auto v = optInt(nodePort, e, 0, 65535); v && *v != 0) {
      if (svc.type != ServiceType::kNodePort && svc.type != ServiceType::kLoadBalancer) {
        e.add(nodePort, "may only be set when type is NodePort or LoadBalancer");
      } else if (!seenNodePorts.insert({static_cast<uint16_t>(*v), port.protocol}).second) {
        e.add(nodePort, "duplicate nodePort " + std::to_string(*v));
      } else {
        port.nodePort = static_cast<uint16_t>(*v);
      }
    }
    Field appProtocol = p["appProtocol"];
    if (auto s = optString(appProtocol, e)) port.appProtocol = *s;
    svc.ports.push_back(std::move(port));
  }
}

void decodeClusterIPs(const Field& spec, Service& svc, Errors& e) {
  Field single = spec["clusterIP"];
  Field multi = spec["clusterIPs"];
  std::optional<std::string> first = optString(single, e);
  std::vector<std::string> all;
  if (const Value::Array* list = optArray(multi, e)) {
    for (size_t i = 0; i < list->size(); ++i) {
      Field item = multi.at(i);
      if (auto s = optString(item, e)) all.push_back(*s);
    }
    if (all.size() > 2) e.add(multi, "at most two entries (one per IP family)");
    if (first && !first->empty() && !all.empty() && all.front() != *first) {
      e.add(multi,
            "first entry " + quote(all.front()) + " must match spec.clusterIP " + quote(*first));
    }
  }
  if (all.empty() && first && !first->empty()) all.push_back(*first);
  if (!all.empty() && all.front() == "None") {
    if (all.size() > 1) e.add(multi, "a headless Service has exactly one entry, \"None\"");
    // ValidateService: "may not be set to 'None' for NodePort (LoadBalancer) services".
    if (svc.type == ServiceType::kNodePort || svc.type == ServiceType::kLoadBalancer) {
      e.add(first && !first->empty() ? single : multi,
            "may not be set to \"None\" for " + std::string(toString(svc.type)) + " Services");
    }
    svc.headless = true;
    return;
  }
  for (size_t i = 0; i < all.size(); ++i) {
    auto ip = IpAddress::parse(all[i]);
    const Field& at = (i == 0 && first && !first->empty()) ? single : multi;
    if (!ip) {
      e.add(at, "invalid IP address " + quote(all[i]));
    } else if (ip->isUnspecified()) {
      e.add(at, "must not be the unspecified address " + quote(all[i]));
    } else if (!svc.clusterIPs.empty() && svc.clusterIPs.front().family() == ip->family()) {
      e.add(multi, "both entries are " + std::string(toString(ip->family())) +
                       "; a dual-stack Service has one of each family");
    } else {
      svc.clusterIPs.push_back(*ip);
    }
  }
}

Decoded decodeService(const Field& root, const Meta& meta, Errors& e) {
  auto svc = std::make_shared<Service>();
  svc->name = {meta.ns, meta.name};
  Field spec = root["spec"];
  if (!spec.present()) {
    e.add(spec, "required");
  } else if (optObject(spec, e)) {
    Field type = spec["type"];
    if (type.present()) {
      if (auto t = enumValue<ServiceType>(type, e,
                                          {{"ClusterIP", ServiceType::kClusterIP},
                                           {"NodePort", ServiceType::kNodePort},
                                           {"LoadBalancer", ServiceType::kLoadBalancer},
                                           {"ExternalName", ServiceType::kExternalName}})) {
        svc->type = *t;
      }
    }
    if (svc->type == ServiceType::kExternalName) {
      Field externalName = spec["externalName"];
      if (auto s = reqString(externalName, e)) svc->externalName = *s;
      // ValidateService: clusterIP "may not be set for ExternalName services".
      Field clusterIP = spec["clusterIP"];
      if (auto s = optString(clusterIP, e); s && !s->empty()) {
        e.add(clusterIP, "may not be set for ExternalName Services");
      }
    } else {
      decodeClusterIPs(spec, *svc, e);
    }
    decodeServicePorts(spec, *svc, e);

    Field externalIPs = spec["externalIPs"];
    if (const Value::Array* list = optArray(externalIPs, e)) {
      for (size_t i = 0; i < list->size(); ++i) {
        Field item = externalIPs.at(i);
        if (auto ip = ipField(item, e)) {
          if (ip->isUnspecified()) {
            e.add(item, "must not be the unspecified address");
          } else {
            svc->externalIPs.push_back(*ip);
          }
        }
      }
    }
    Field ranges = spec["loadBalancerSourceRanges"];
    if (const Value::Array* list = optArray(ranges, e)) {
      // ValidateService: "may only be used when `type` is 'LoadBalancer'".
      if (!list->empty() && svc->type != ServiceType::kLoadBalancer) {
        e.add(ranges, "may only be used when type is LoadBalancer");
      }
      for (size_t i = 0; i < list->size(); ++i) {
        Field item = ranges.at(i);
        auto s = optString(item, e);
        if (!s) continue;
        // kube-proxy trims the ranges before parsing them.
        std::string_view text = *s;
        while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
        while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
        if (auto cidr = Cidr::parse(text)) {
          svc->loadBalancerSourceRanges.push_back(*cidr);
        } else {
          e.add(item, "invalid CIDR " + quote(*s));
        }
      }
    }
    Field affinity = spec["sessionAffinity"];
    if (affinity.present()) {
      if (auto a = enumValue<SessionAffinity>(
              affinity, e,
              {{"None", SessionAffinity::kNone}, {"ClientIP", SessionAffinity::kClientIP}})) {
        svc->sessionAffinity = *a;
      }
    }
    Field affinityConfig = spec["sessionAffinityConfig"];
    if (optObject(affinityConfig, e)) {
      Field clientIP = affinityConfig["clientIP"];
      if (optObject(clientIP, e)) {
        Field timeout = clientIP["timeoutSeconds"];
        if (auto t = optInt(timeout, e, 1, 86400)) {
          svc->affinityTimeoutSeconds = static_cast<uint32_t>(*t);
        }
      }
    }
    std::initializer_list<std::pair<std::string_view, TrafficPolicy>> policies = {
        {"Cluster", TrafficPolicy::kCluster}, {"Local", TrafficPolicy::kLocal}};
    Field etp = spec["externalTrafficPolicy"];
    if (etp.present()) {
      if (auto p = enumValue<TrafficPolicy>(etp, e, policies)) svc->externalTrafficPolicy = *p;
    }
    Field itp = spec["internalTrafficPolicy"];
    if (itp.present()) {
      if (auto p = enumValue<TrafficPolicy>(itp, e, policies)) svc->internalTrafficPolicy = *p;
    }
    Field hc = spec["healthCheckNodePort"];
    if (auto v = optInt(hc, e, 0, 65535)) svc->healthCheckNodePort = static_cast<uint16_t>(*v);
    Field td = spec["trafficDistribution"];
    if (td.present()) {
      if (auto d = enumValue<TrafficDistribution>(
              td, e,
              {{"PreferClose", TrafficDistribution::kPreferClose},
               {"PreferSameZone", TrafficDistribution::kPreferSameZone},
               {"PreferSameNode", TrafficDistribution::kPreferSameNode}})) {
        svc->trafficDistribution = *d;
      }
    }
  }

  Field status = root["status"];
  if (optObject(status, e)) {
    Field lb = status["loadBalancer"];
    if (optObject(lb, e)) {
      Field ingress = lb["ingress"];
      if (const Value::Array* list = optArray(ingress, e)) {
        for (size_t i = 0; i < list->size(); ++i) {
          Field item = ingress.at(i);
          if (!optObject(item, e)) continue;
          Field ipMode = item["ipMode"];
          bool proxyMode = false;
          if (ipMode.present()) {
            if (auto m = enumValue<bool>(ipMode, e, {{"VIP", false}, {"Proxy", true}})) {
              proxyMode = *m;
            }
          }
          Field ipField_ = item["ip"];
          if (auto ip = ipField(ipField_, e); ip && !proxyMode) {
            svc->loadBalancerIPs.push_back(*ip);
          }
        }
      }
    }
  }

  for (const char* key :
       {"service.kubernetes.io/topology-mode", "service.kubernetes.io/topology-aware-hints"}) {
    if (auto it = meta.annotations.find(key); it != meta.annotations.end()) {
      svc->topologyMode = it->second;
      break;
    }
  }
  Decoded out;
  out.outcome = Decoded::Outcome::kOk;
  out.object = std::shared_ptr<const Service>(std::move(svc));
  return out;
}

// --- EndpointSlice ----------------------------------------------------------------------------

void decodeHints(const Field& list, std::vector<std::string>& out, Errors& e) {
  if (const Value::Array* items = optArray(list, e)) {
    for (size_t i = 0; i < items->size(); ++i) {
      Field item = list.at(i);
      if (!optObject(item, e)) continue;
      Field name = item["name"];
      if (auto s = reqString(name, e)) out.push_back(*s);
    }
  }
}

Decoded decodeEndpointSlice(const Field& root, const Meta& meta, Errors& e) {
  auto slice = std::make_shared<EndpointSlice>();
  slice->name = {meta.ns, meta.name};
  slice->serviceName = label(meta, "kubernetes.io/service-name");

  Field addressType = root["addressType"];
  bool knownType = false;  // without it, addresses cannot be checked against the family
  if (!addressType.present()) {
    e.add(addressType, "required");
  } else if (auto t = enumValue<AddressType>(addressType, e,
                                             {{"IPv4", AddressType::kIPv4},
                                              {"IPv6", AddressType::kIPv6},
                                              {"FQDN", AddressType::kFQDN}})) {
    slice->addressType = *t;
    knownType = true;
  }

  Field endpoints = root["endpoints"];
  if (const Value::Array* list = optArray(endpoints, e)) {
    slice->endpoints.reserve(list->size());
    for (size_t i = 0; i < list->size(); ++i) {
      Field ep = endpoints.at(i);
      if (!optObject(ep, e)) continue;
      EndpointSliceEndpoint out;
      Field addresses = ep["addresses"];
      const Value::Array* addrs = optArray(addresses, e);
      if (!addrs || addrs->empty()) {
        if (!addresses.present() || addrs) e.add(addresses, "required (at least one address)");
      } else if (addrs->size() > 100) {
        e.add(addresses, "at most 100 addresses");
      } else if (slice->addressType != AddressType::kFQDN) {
        for (size_t j = 0; j < addrs->size(); ++j) {
          Field a = addresses.at(j);
          auto ip = ipField(a, e);
          if (!ip) continue;
          IpFamily want = slice->addressType == AddressType::kIPv4 ? IpFamily::kV4 : IpFamily::kV6;
          if (knownType && ip->family() != want) {
            e.add(a, "address " + ip->toString() + " is not " + std::string(toString(want)) +
                         " (the slice's addressType)");
            continue;
          }
          out.addresses.push_back(*ip);
        }
      }
      Field conditions = ep["conditions"];
      if (optObject(conditions, e)) {
        Field ready = conditions["ready"];
        Field serving = conditions["serving"];
        Field terminating = conditions["terminating"];
        out.conditions.ready = optBool(ready, e);
        out.conditions.serving = optBool(serving, e);
        out.conditions.terminating = optBool(terminating, e);
      }
      Field hostname = ep["hostname"];
      Field nodeName = ep["nodeName"];
      Field zone = ep["zone"];
      if (auto s = optString(hostname, e)) out.hostname = *s;
      if (auto s = optString(nodeName, e)) out.nodeName = *s;
      if (auto s = optString(zone, e)) out.zone = *s;
      Field hints = ep["hints"];
      if (optObject(hints, e)) {
        Field forZones = hints["forZones"];
        Field forNodes = hints["forNodes"];
        decodeHints(forZones, out.zoneHints, e);
        decodeHints(forNodes, out.nodeHints, e);
      }
      slice->endpoints.push_back(std::move(out));
    }
  }

  Field ports = root["ports"];
  if (const Value::Array* list = optArray(ports, e)) {
    std::set<std::string> names;
    for (size_t i = 0; i < list->size(); ++i) {
      Field p = ports.at(i);
      if (!optObject(p, e)) continue;
      EndpointSlicePort port;
      Field name = p["name"];
      if (auto s = optString(name, e)) {
        if (!s->empty() && !isDns1123Label(*s)) {
          e.add(name, "invalid port name " + quote(*s) + " (must be a DNS-1123 label)");
        }
        port.name = *s;
      }
      if (!names.insert(port.name).second) e.add(name, "duplicate port name " + quote(port.name));
      Field protocol = p["protocol"];
      if (auto proto = protocolField(protocol, e)) port.protocol = *proto;
      Field number = p["port"];
      if (auto v = optInt(number, e, 1, 65535)) port.port = static_cast<uint16_t>(*v);
      Field appProtocol = p["appProtocol"];
      if (auto s = optString(appProtocol, e)) port.appProtocol = *s;
      slice->ports.push_back(std::move(port));
    }
  }

  if (auto it = meta.annotations.find("endpoints.kubernetes.io/last-change-trigger-time");
      it != meta.annotations.end()) {
    // A malformed annotation only costs the latency metric its sample, as in kube-proxy.
    if (auto ns = parseRfc3339(it->second)) slice->lastChangeTriggerTimeNs = *ns;
  }

  Decoded out;
  if (slice->serviceName.empty()) {
    out.outcome = Decoded::Outcome::kIgnored;
    out.message = "no kubernetes.io/service-name label: not part of any Service";
    return out;
  }
  out.outcome = Decoded::Outcome::kOk;
  out.object = std::shared_ptr<const EndpointSlice>(std::move(slice));
  return out;
}

// --- Ingress, IngressClass, Secret, Node ------------------------------------------------------

std::optional<IngressBackend> decodeIngressBackend(const Field& f, Errors& e) {
  if (!optObject(f, e)) {
    if (!f.present()) e.add(f, "required");
    return std::nullopt;
  }
  IngressBackend backend;
  Field service = f["service"];
  Field resource = f["resource"];
  if (service.present() == resource.present()) {
    e.add(f, "exactly one of service and resource is required");
    return std::nullopt;
  }
  if (optObject(resource, e)) {
    Field kind = resource["kind"];
    Field name = resource["name"];
    if (auto s = reqString(kind, e)) backend.resourceKind = *s;
    if (auto s = reqString(name, e)) backend.resourceName = *s;
    return backend;
  }
  if (!optObject(service, e)) return std::nullopt;
  IngressServiceBackend svc;
  Field name = service["name"];
  if (auto s = reqString(name, e)) {
    if (isDns1035Label(*s)) {
      svc.name = *s;
    } else {
      e.add(name, "invalid Service name " + quote(*s) + " (must be a DNS-1035 label)");
    }
  }
  Field port = service["port"];
  if (!optObject(port, e)) {
    if (!port.present()) e.add(port, "required");
  } else {
    Field number = port["number"];
    Field portName = port["name"];
    if (number.present() == portName.present()) {
      e.add(port, "exactly one of number and name is required");
    } else if (auto v = optInt(number, e, 1, 65535)) {
      svc.portNumber = static_cast<uint16_t>(*v);
    } else if (auto s = optString(portName, e)) {
      // validateIngressBackend: IsValidPortName, the IANA form a Service's targetPort takes.
      if (isIanaSvcName(*s)) {
        svc.portName = *s;
      } else {
        e.add(portName, "invalid port name " + quote(*s) +
                            " (an IANA service name: at most 15 lower-case letters, digits and "
                            "'-', with at least one letter)");
      }
    }
  }
  backend.service = std::move(svc);
  return backend;
}

// validateHTTPIngressPath: Exact and Prefix paths are absolute and free of the sequences that
// would make matching depend on how a proxy normalises them; an ImplementationSpecific path may be
// empty (Capstan reads it as "/"), otherwise it is absolute too.
void decodeIngressPath(const Field& f, std::optional<PathType> type, std::string& path, Errors& e) {
  bool strict = type == PathType::kExact || type == PathType::kPrefix;
  if (path.empty()) {
    if (strict) {
      e.add(f, "required for pathType " + std::string(toString(*type)) +
                   " (an absolute path, starting with '/')");
    }
    path = "/";
    return;
  }
  if (path.front() != '/') {
    e.add(f, "must be an absolute path (start with '/'), got " + quote(path));
    return;
  }
  if (!strict) return;
  for (std::string_view seq : {"//", "/./", "/../", "%2f", "%2F"}) {
    if (path.find(seq) != std::string::npos) {
      e.add(f, "must not contain '" + std::string(seq) + "', got " + quote(path));
    }
  }
  for (std::string_view suffix : {"/..", "/."}) {
    if (std::string_view(path).ends_with(suffix)) {
      e.add(f, "cannot end with '" + std::string(suffix) + "', got " + quote(path));
    }
  }
}

Decoded decodeIngress(const Field& root, const Meta& meta, Errors& e) {
  auto ing = std::make_shared<Ingress>();
  ing->name = {meta.ns, meta.name};
  ing->annotations = meta.annotations;
  if (auto it = meta.annotations.find("kubernetes.io/ingress.class");
      it != meta.annotations.end()) {
    ing->classAnnotation = it->second;
  }
  Field spec = root["spec"];
  if (!spec.present()) {
    e.add(spec, "required");
  } else if (optObject(spec, e)) {
    Field className = spec["ingressClassName"];
    if (auto s = optString(className, e)) ing->ingressClassName = *s;
    Field defaultBackend = spec["defaultBackend"];
    if (defaultBackend.present()) ing->defaultBackend = decodeIngressBackend(defaultBackend, e);

    Field tls = spec["tls"];
    if (const Value::Array* list = optArray(tls, e)) {
      for (size_t i = 0; i < list->size(); ++i) {
        Field t = tls.at(i);
        if (!optObject(t, e)) continue;
        IngressTls entry;
        Field hosts = t["hosts"];
        if (const Value::Array* hl = optArray(hosts, e)) {
          for (size_t j = 0; j < hl->size(); ++j) {
            Field h = hosts.at(j);
            if (auto s = optString(h, e)) {
              if (isIngressHost(*s)) {
                entry.hosts.push_back(*s);
              } else {
                e.add(h, "invalid host " + quote(*s));
              }
            }
          }
        }
        Field secretName = t["secretName"];
        if (auto s = optString(secretName, e)) entry.secretName = *s;
        ing->tls.push_back(std::move(entry));
      }
    }

    Field rules = spec["rules"];
    if (const Value::Array* list = optArray(rules, e)) {
      for (size_t i = 0; i < list->size(); ++i) {
        Field r = rules.at(i);
        if (!optObject(r, e)) continue;
        IngressRule rule;
        Field host = r["host"];
        // validateIngressRules: an empty host is no host (every host matches).
        if (auto s = optString(host, e); s && !s->empty()) {
          if (IpAddress::parse(*s)) {
            e.add(host, "must be a DNS name, not an IP address");
          } else if (!isIngressHost(*s)) {
            e.add(host, "invalid host " + quote(*s) +
                            " (a DNS-1123 subdomain, optionally starting with \"*.\")");
          } else {
            rule.host = *s;
          }
        }
        Field http = r["http"];
        if (optObject(http, e)) {
          Field paths = http["paths"];
          const Value::Array* pl = optArray(paths, e);
          if (!pl || pl->empty()) e.add(paths, "required (at least one path)");
          for (size_t j = 0; pl && j < pl->size(); ++j) {
            Field p = paths.at(j);
            if (!optObject(p, e)) continue;
            IngressPath path;
            Field pathType = p["pathType"];
            std::optional<PathType> type;
            if (!pathType.present()) {
              e.add(pathType, "required");
            } else {
              type = enumValue<PathType>(
                  pathType, e,
                  {{"Exact", PathType::kExact},
                   {"Prefix", PathType::kPrefix},
                   {"ImplementationSpecific", PathType::kImplementationSpecific}});
              if (type) path.pathType = *type;
            }
            Field pathText = p["path"];
            if (auto s = optString(pathText, e)) path.path = *s;
            decodeIngressPath(pathText, type, path.path, e);
            Field backend = p["backend"];
            if (auto b = decodeIngressBackend(backend, e)) path.backend = std::move(*b);
            rule.paths.push_back(std::move(path));
          }
        }
        ing->rules.push_back(std::move(rule));
      }
    }
    // ValidateIngressSpec asks for the fields, not for valid ones: a faulty defaultBackend or a
    // `rules` of the wrong type has its own error already.
    const Value* rulesValue = rules.get();
    bool haveRules = rules.present() && !(rulesValue->isArray() && rulesValue->asArray().empty());
    if (!defaultBackend.present() && !haveRules) {
      e.add(spec, "either defaultBackend or rules must be specified");
    }
  }
  Decoded out;
  out.outcome = Decoded::Outcome::kOk;
  out.object = std::shared_ptr<const Ingress>(std::move(ing));
  return out;
}

Decoded decodeIngressClass(const Field& root, const Meta& meta, Errors& e) {
  auto cls = std::make_shared<IngressClass>();
  cls->name = meta.name;
  Field spec = root["spec"];
  if (optObject(spec, e)) {
    Field controller = spec["controller"];
    if (auto s = reqString(controller, e)) cls->controller = *s;
  } else if (!spec.present()) {
    e.add(spec, "required");
  }
  auto it = meta.annotations.find("ingressclass.kubernetes.io/is-default-class");
  cls->isDefault = it != meta.annotations.end() && it->second == "true";
  Decoded out;
  out.outcome = Decoded::Outcome::kOk;
  out.object = std::shared_ptr<const IngressClass>(std::move(cls));
  return out;
}

Decoded decodeSecret(const Field& root, const Meta& meta, Errors& e) {
  Decoded out;
  Field type = root["type"];
  auto t = optString(type, e);
  if (!t || *t != "kubernetes.io/tls") {
    out.outcome = Decoded::Outcome::kIgnored;
    out.message =
        "type " + quote(t ? *t : "Opaque") + " is not used by Capstan (only kubernetes.io/tls)";
    return out;
  }
  auto secret = std::make_shared<TlsSecret>();
  secret->name = {meta.ns, meta.name};
  Field data = root["data"];
  Field stringData = root["stringData"];
  bool haveData = optObject(data, e);
  bool haveStringData = optObject(stringData, e);
  // One key, from stringData (plain text, which the API server merges into data) or from data
  // (base64). Errors name the field the value came from.
  auto read = [&](const char* key, std::string& dest, bool (*valid)(std::string_view),
                  const char* what) {
    std::optional<Field> from;
    if (haveStringData) {
      Field f = stringData[key];
      if (auto s = optString(f, e)) {
        dest = *s;
        from.emplace(f.get(), &stringData, key);
      } else if (f.present()) {
        return;  // wrong type, reported
      }
    }
    if (!from) {
      if (data.present() && !haveData) return;  // wrong type, reported
      Field f = haveData ? data[key] : Field(nullptr, &data, key);
      if (!f.present()) {
        e.add(f, std::string("required: a kubernetes.io/tls Secret holds ") + key);
        return;
      }
      auto s = optString(f, e);
      if (!s) return;
      auto decoded = decodeBase64(*s);
      if (!decoded) {
        e.add(f, "invalid base64");
        return;
      }
      dest = std::move(*decoded);
      from.emplace(f.get(), &data, key);
    }
    if (!dest.empty() && !valid(dest)) e.add(*from, what);
  };
  read(
      "tls.crt", secret->certificatePem,
      [](std::string_view pem) {
        return pem.find("-----BEGIN CERTIFICATE-----") != std::string_view::npos;
      },
      "holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
  read(
      "tls.key", secret->privateKeyPem,
      [](std::string_view pem) { return pem.find("PRIVATE KEY-----") != std::string_view::npos; },
      "holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)");
  out.outcome = Decoded::Outcome::kOk;
  out.object = std::shared_ptr<const TlsSecret>(std::move(secret));
  return out;
}

Decoded decodeNode(const Field& root, const Meta& meta, Errors& e) {
  auto node = std::make_shared<NodeInfo>();
  node->name = meta.name;
  node->zone = label(meta, "topology.kubernetes.io/zone");
  node->eligible = !meta.deleting;
  Field spec = root["spec"];
  if (optObject(spec, e)) {
    Field podCIDRs = spec["podCIDRs"];
    Field podCIDR = spec["podCIDR"];
    std::vector<Field> items;
    if (const Value::Array* list = optArray(podCIDRs, e)) {
      items.reserve(list->size());
      for (size_t i = 0; i < list->size(); ++i) items.push_back(podCIDRs.at(i));
    } else if (podCIDR.present()) {
      items.push_back(Field(podCIDR.get(), &spec, "podCIDR"));
    }
    for (const Field& item : items) {
      if (auto s = optString(item, e)) {
        if (auto cidr = Cidr::parse(*s)) {
          node->podCIDRs.push_back(*cidr);
        } else {
          e.add(item, "invalid CIDR " + quote(*s));
        }
      }
    }
    Field taints = spec["taints"];
    if (const Value::Array* list = optArray(taints, e)) {
      for (size_t i = 0; i < list->size(); ++i) {
        Field t = taints.at(i);
        if (!optObject(t, e)) continue;
        Field key = t["key"];
        // The cluster autoscaler's taint: kube-proxy reports the node unhealthy so load
        // balancers stop sending it new connections before it goes away.
        if (auto s = optString(key, e); s && *s == "ToBeDeletedByClusterAutoscaler") {
          node->eligible = false;
        }
      }
    }
  }
  Field status = root["status"];
  if (optObject(status, e)) {
    Field addresses = status["addresses"];
    if (const Value::Array* list = optArray(addresses, e)) {
      for (size_t i = 0; i < list->size(); ++i) {
        Field a = addresses.at(i);
        if (!optObject(a, e)) continue;
        Field type = a["type"];
        Field address = a["address"];
        auto t = optString(type, e);
        if (!t || (*t != "InternalIP" && *t != "ExternalIP")) continue;
        if (auto ip = ipField(address, e)) node->addresses.push_back(*ip);
      }
    }
  }
  Decoded out;
  out.outcome = Decoded::Outcome::kOk;
  out.object = std::shared_ptr<const NodeInfo>(std::move(node));
  return out;
}

struct KindInfo {
  std::string_view kind;
  std::string_view apiVersion;
  ObjectKind objectKind;
  bool namespaced;
  NameRule nameRule;
  Decoded (*decode)(const Field&, const Meta&, Errors&);
};

constexpr KindInfo kKinds[] = {
    {"Service", "v1", ObjectKind::kService, true, NameRule::kDns1035Label, decodeService},
    {"EndpointSlice", "discovery.k8s.io/v1", ObjectKind::kEndpointSlice, true,
     NameRule::kDns1123Subdomain, decodeEndpointSlice},
    {"Ingress", "networking.k8s.io/v1", ObjectKind::kIngress, true, NameRule::kDns1123Subdomain,
     decodeIngress},
    {"IngressClass", "networking.k8s.io/v1", ObjectKind::kIngressClass, false,
     NameRule::kDns1123Subdomain, decodeIngressClass},
    {"Secret", "v1", ObjectKind::kSecret, true, NameRule::kDns1123Subdomain, decodeSecret},
    {"Node", "v1", ObjectKind::kNode, false, NameRule::kDns1123Subdomain, decodeNode},
};

// The kind and apiVersion an item of a typed list ("ServiceList") has when it names none: the API
// server's list responses leave them out of every item.
struct ImpliedType {
  std::string_view kind;
  std::string_view apiVersion;
};

std::optional<std::string> typeField(const Field& f, std::string_view implied, Errors& e) {
  if (!f.present() && !implied.empty()) return std::string(implied);
  return reqString(f, e);
}

Decoded decodeOne(const Value& object, const DecoderOptions& options, const ImpliedType& implied) {
  Decoded out;
  Field root(object);
  Errors e;
  auto fail = [&](std::string prefix) {
    out.outcome = Decoded::Outcome::kInvalid;
    out.message = prefix.empty() ? e.join() : prefix + ": " + e.join();
    out.line = e.firstLine() ? e.firstLine() : object.line();
    return out;
  };
  if (!object.isObject()) {
    e.add(root, "a Kubernetes object must be a mapping, got " + std::string(object.typeName()));
    return fail("");
  }
  Field kindField = root["kind"];
  Field apiVersionField = root["apiVersion"];
  auto kind = typeField(kindField, implied.kind, e);
  auto apiVersion = typeField(apiVersionField, implied.apiVersion, e);
  if (!kind) return fail("");

  const KindInfo* info = nullptr;
  for (const KindInfo& k : kKinds) {
    if (k.kind == *kind) info = &k;
  }
  if (!info) {
    if (!apiVersion) return fail("");
    out.outcome = Decoded::Outcome::kIgnored;
    out.line = object.line();
    std::string name;
    if (const Value* meta = object.find("metadata")) {
      if (const Value* n = meta->find("name"); n && n->isString()) name = " " + n->asString();
    }
    out.message = std::string(*kind) + name +
                  ": kind not used by Capstan (it reads Service, EndpointSlice, Ingress, "
                  "IngressClass, Secret and Node)";
    return out;
  }
  // Without a usable apiVersion the object is rejected, but its metadata is still read: a known
  // kind and a readable name give the key the source needs to keep the last good version.
  bool versionOk = apiVersion && *apiVersion == info->apiVersion;
  if (apiVersion && !versionOk) {
    e.add(apiVersionField, "apiVersion " + quote(*apiVersion) + " is not supported for " +
                               std::string(info->kind) + " (use " + std::string(info->apiVersion) +
                               ")");
  }
  Meta meta = decodeMeta(root, e, info->namespaced, info->nameRule, options.defaultNamespace);
  // A namespaced object whose namespace is invalid has no readable identity either.
  if (!meta.name.empty() && (!info->namespaced || !meta.ns.empty())) {
    out.key = ObjectKey{info->objectKind, {meta.ns, meta.name}};
  }
  std::string prefix = out.key ? out.key->toString() : std::string(info->kind);
  // Another version's spec has other fields: reading it as this one would only add noise.
  if (!versionOk) return fail(prefix);

  if (e.empty() && (info->objectKind == ObjectKind::kService ||
                    info->objectKind == ObjectKind::kEndpointSlice)) {
    // kube-proxy watches neither Services nor slices that name another proxy.
    std::string proxyName = label(meta, "service.kubernetes.io/service-proxy-name");
    if (!proxyName.empty()) {
      out.outcome = Decoded::Outcome::kIgnored;
      out.message = prefix + ": label service.kubernetes.io/service-proxy-name=" + proxyName +
                    " hands it to another proxy";
      out.line = object.line();
      return out;
    }
  }

  // The spec is read even when the metadata is faulty, so one message names every faulty field.
  Decoded decoded = info->decode(root, meta, e);
  if (!e.empty()) return fail(prefix);
  decoded.key = out.key;
  if (decoded.outcome == Decoded::Outcome::kIgnored) {
    decoded.message = prefix + ": " + decoded.message;
    decoded.line = object.line();
  }
  return decoded;
}

}  // namespace

Decoded ObjectDecoder::decodeObject(const Value& object) const {
  return decodeOne(object, options_, ImpliedType{});
}

std::vector<Decoded> ObjectDecoder::decodeDocument(const Value& document) const {
  std::vector<Decoded> out;
  const Value* kind = document.find("kind");
  const Value* items = document.find("items");
  bool isList = kind && kind->isString() && kind->asString().ends_with("List") && items;
  if (!isList) {
    out.push_back(decodeObject(document));
    return out;
  }
  if (!items->isArray()) {
    Decoded bad;
    bad.message =
        kind->asString() + ": items: expected a list, got " + std::string(items->typeName());
    bad.line = items->line() ? items->line() : document.line();
    out.push_back(std::move(bad));
    return out;
  }
  // "ServiceList" (what the API server returns for a list request) implies the kind and the
  // apiVersion of items that omit them; a plain "List" (what kubectl prints) implies nothing.
  ImpliedType implied;
  const std::string& listKind = kind->asString();
  if (listKind.size() > 4) {
    implied.kind = std::string_view(listKind).substr(0, listKind.size() - 4);
    if (const Value* v = document.find("apiVersion"); v && v->isString()) {
      implied.apiVersion = v->asString();
    }
  }
  out.reserve(items->asArray().size());
  for (size_t i = 0; i < items->asArray().size(); ++i) {
    Decoded d = decodeOne(items->asArray()[i], options_, implied);
    if (d.outcome != Decoded::Outcome::kOk) {
      d.message = "items[" + std::to_string(i) + "]: " + d.message;
    }
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace capstan::control
