// The deployment (deploy/): every manifest is a well-formed Kubernetes object read with the
// project's own YAML reader; the ClusterRole grants exactly the verbs the API client uses
// (control/kube: capstanResources, capstanApiWrites); the DaemonSet runs as kube-proxy's does
// with only Capstan's capabilities, and its ConfigMap parses with the daemon's own config
// parser; the Helm chart (deploy/helm/capstan), rendered by a Go-template subset renderer,
// gives the same objects, and its values change them as they should. Each check is also run
// against a broken copy of the manifests, to show it can fail.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "control/config.h"
#include "control/document_reader.h"
#include "control/kube/api_access.h"
#include "control/kube/reflector.h"
#include "control/status_server.h"
#include "model/ingress.h"
#include "tests/deploy/chart_renderer.h"
#include "tests/support/netns.h"
#include "tests/support/text_lines.h"
#include "tests/support/value_json.h"

namespace capstan::deploy {
namespace {

namespace fs = std::filesystem;
using control::Value;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

const fs::path kSourceDir = CAPSTAN_SOURCE_DIR;
const fs::path kDeployDir = kSourceDir / "deploy";
const fs::path kChartDir = kDeployDir / "helm" / "capstan";

// One document of a manifest stream, with where it came from for messages.
struct Object {
  std::string origin;  // "capstan.yaml#3"
  Value value;
};
using Objects = std::vector<Object>;
using Problems = std::vector<std::string>;

std::string readFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

Result<Objects> readObjects(std::string_view text, const std::string& origin) {
  Objects out;
  Status st = control::readYamlDocuments(text, [&](Value v, size_t index) -> Status {
    out.push_back({origin + "#" + std::to_string(index), std::move(v)});
    return okStatus();
  });
  if (!st.ok()) return st.error().withContext(origin);
  return out;
}

// What `kubectl apply -f deploy/` reads: the directory's .yaml, .yml and .json files.
std::vector<fs::path> manifestFiles() {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(kDeployDir)) {
    auto ext = entry.path().extension();
    if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml" || ext == ".json")) {
      out.push_back(entry.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

Objects plainManifests() {
  Objects out;
  for (const fs::path& file : manifestFiles()) {
    auto objects = readObjects(readFile(file), file.filename().string());
    EXPECT_TRUE(objects.ok()) << objects.error().message();
    if (objects.ok()) out.insert(out.end(), objects->begin(), objects->end());
  }
  return out;
}

// --- Value access ----------------------------------------------------------------------------

const Value* at(const Value* v, std::initializer_list<std::string_view> path) {
  for (std::string_view key : path) {
    if (!v) return nullptr;
    v = v->find(key);
  }
  return v;
}

std::string str(const Value* v) { return v && v->isString() ? v->asString() : std::string(); }

const Value::Array& list(const Value* v) {
  static const Value::Array kEmpty;
  return v && v->isArray() ? v->asArray() : kEmpty;
}

std::vector<std::string> strings(const Value* v) {
  std::vector<std::string> out;
  for (const Value& item : list(v)) out.push_back(str(&item));
  return out;
}

Value* mutableAt(Value& v, std::initializer_list<std::string_view> path) {
  Value* current = &v;
  for (std::string_view key : path) {
    if (!current->isObject()) return nullptr;
    Value* next = nullptr;
    for (auto& [k, member] : current->mutableObject()) {
      if (k == key) next = &member;
    }
    if (!next) return nullptr;
    current = next;
  }
  return current;
}

// Sets (adding if absent) the member at `path`; the maps on the way must exist.
void set(Value& v, std::initializer_list<std::string_view> path, Value value) {
  std::vector<std::string_view> keys(path);
  Value* parent = &v;
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    parent = mutableAt(*parent, {keys[i]});
    ASSERT_NE(parent, nullptr) << keys[i];
  }
  Value* member = mutableAt(*parent, {keys.back()});
  if (member) {
    *member = std::move(value);
  } else {
    parent->mutableObject().emplace_back(std::string(keys.back()), std::move(value));
  }
}

std::string kindOf(const Object& o) { return str(o.value.find("kind")); }
std::string nameOf(const Object& o) { return str(at(&o.value, {"metadata", "name"})); }

std::vector<const Object*> ofKind(const Objects& objects, std::string_view kind) {
  std::vector<const Object*> out;
  for (const Object& o : objects) {
    if (kindOf(o) == kind) out.push_back(&o);
  }
  return out;
}

Object* mutableOfKind(Objects& objects, std::string_view kind) {
  for (Object& o : objects) {
    if (kindOf(o) == kind) return &o;
  }
  return nullptr;
}

// --- (a) well-formed Kubernetes objects -------------------------------------------------------

struct KindInfo {
  std::string apiVersion;
  bool namespaced = false;
};
const std::map<std::string, KindInfo> kKinds = {
    {"ServiceAccount", {"v1", true}},
    {"ConfigMap", {"v1", true}},
    {"DaemonSet", {"apps/v1", true}},
    {"ClusterRole", {"rbac.authorization.k8s.io/v1", false}},
    {"ClusterRoleBinding", {"rbac.authorization.k8s.io/v1", false}},
    {"IngressClass", {"networking.k8s.io/v1", false}},
};

// RFC 1123 subdomain, what metadata.name of these kinds must be.
bool isDnsSubdomain(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front()) || !alnum(name.back())) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return alnum(c) || c == '-' || c == '.'; });
}

Problems wellFormedProblems(const Objects& objects, const std::string& wantNamespace) {
  Problems out;
  std::set<std::pair<std::string, std::string>> seen;
  for (const Object& o : objects) {
    const std::string what = o.origin + " " + kindOf(o) + " " + nameOf(o);
    if (!o.value.isObject()) {
      out.push_back(o.origin + ": not a mapping");
      continue;
    }
    auto kind = kKinds.find(kindOf(o));
    if (kind == kKinds.end()) {
      out.push_back(what + ": kind: not one the deployment is made of");
      continue;
    }
    if (str(o.value.find("apiVersion")) != kind->second.apiVersion) {
      out.push_back(what + ": apiVersion: want " + kind->second.apiVersion + ", got \"" +
                    str(o.value.find("apiVersion")) + "\"");
    }
    if (!isDnsSubdomain(nameOf(o))) out.push_back(what + ": metadata.name: not a DNS subdomain");
    const Value* ns = at(&o.value, {"metadata", "namespace"});
    if (kind->second.namespaced && str(ns) != wantNamespace) {
      out.push_back(what + ": metadata.namespace: want " + wantNamespace + ", got \"" + str(ns) +
                    "\"");
    } else if (!kind->second.namespaced && ns) {
      out.push_back(what + ": metadata.namespace: set on a cluster-scoped kind");
    }
    if (!seen.insert({kindOf(o), nameOf(o)}).second) out.push_back(what + ": defined twice");
  }
  return out;
}

// --- (b) RBAC: exactly the verbs the client uses ----------------------------------------------

using Grant = std::tuple<std::string, std::string, std::string>;  // group, resource, verb

std::string toString(const Grant& g) {
  return "(\"" + std::get<0>(g) + "\", " + std::get<1>(g) + ", " + std::get<2>(g) + ")";
}

// "/api/v1/services" -> ("", "services"); "/apis/discovery.k8s.io/v1/endpointslices" ->
// ("discovery.k8s.io", "endpointslices").
Result<std::pair<std::string, std::string>> groupAndResource(std::string_view path) {
  std::vector<std::string> parts;
  size_t start = 1;
  while (path.starts_with('/') && start <= path.size()) {
    size_t slash = path.find('/', start);
    parts.emplace_back(path.substr(start, slash == path.npos ? path.npos : slash - start));
    if (slash == path.npos) break;
    start = slash + 1;
  }
  if (parts.size() == 3 && parts[0] == "api") return std::pair{std::string(), parts[2]};
  if (parts.size() == 4 && parts[0] == "apis") return std::pair{parts[1], parts[3]};
  return Error("not a cluster-wide collection path: " + std::string(path));
}

std::set<Grant> grantsTheClientNeeds() {
  std::set<Grant> out;
  for (const auto& spec : control::kube::capstanResources("node-a")) {
    auto gr = groupAndResource(spec.path);
    EXPECT_TRUE(gr.ok()) << gr.error().message();
    if (!gr.ok()) continue;
    // A reflector lists, then watches (control/kube/reflector.h).
    out.insert({gr->first, gr->second, "list"});
    out.insert({gr->first, gr->second, "watch"});
  }
  for (const auto& write : control::kube::capstanApiWrites()) {
    out.insert({write.group, write.resource, write.verb});
  }
  return out;
}

Problems rbacProblems(const Objects& objects) {
  Problems out;
  auto roles = ofKind(objects, "ClusterRole");
  if (roles.size() != 1) return {"want one ClusterRole, found " + std::to_string(roles.size())};
  const Object& role = *roles[0];
  std::set<Grant> granted;
  size_t index = 0;
  for (const Value& rule : list(role.value.find("rules"))) {
    const std::string where = role.origin + " rules[" + std::to_string(index++) + "]";
    for (const char* narrowing : {"resourceNames", "nonResourceURLs"}) {
      if (rule.find(narrowing)) out.push_back(where + ": " + narrowing + ": not expected");
    }
    for (const std::string& group : strings(rule.find("apiGroups"))) {
      for (const std::string& resource : strings(rule.find("resources"))) {
        for (const std::string& verb : strings(rule.find("verbs"))) {
          if (group == "*" || resource == "*" || verb == "*") {
            out.push_back(where + ": a wildcard grants more than the client uses");
          }
          granted.insert({group, resource, verb});
        }
      }
    }
  }
  for (const Grant& g : grantsTheClientNeeds()) {
    if (!granted.count(g)) out.push_back("ClusterRole: missing " + toString(g));
  }
  for (const Grant& g : granted) {
    if (!grantsTheClientNeeds().count(g)) {
      out.push_back("ClusterRole: grants " + toString(g) + ", which the client never does");
    }
  }
  return out;
}

// --- (c) the DaemonSet, its binding and its ConfigMap -----------------------------------------

// KUBERNETES_SERVICE_HOST set for a scope: the daemon then reads the API in-cluster, as in a Pod.
class InClusterEnvironment {
 public:
  InClusterEnvironment() {
    if (const char* old = std::getenv("KUBERNETES_SERVICE_HOST")) old_ = old;
    ::setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  }
  ~InClusterEnvironment() {
    if (old_) {
      ::setenv("KUBERNETES_SERVICE_HOST", old_->c_str(), 1);
    } else {
      ::unsetenv("KUBERNETES_SERVICE_HOST");
    }
  }

 private:
  std::optional<std::string> old_;
};

const Value* findNamed(const Value* items, std::string_view key, std::string_view name) {
  for (const Value& item : list(items)) {
    if (str(item.find(key)) == name) return &item;
  }
  return nullptr;
}

// The container's command line with the ConfigMap's file in place of the mounted one and the
// node name kubelet would substitute, parsed by the daemon's own parser.
Result<control::Config> parseDaemonConfig(const std::vector<std::string>& args,
                                          const std::string& configText,
                                          const std::string& configPath) {
  char dir[] = "/tmp/capstan-deploy-XXXXXX";
  if (!::mkdtemp(dir)) return Error("mkdtemp failed");
  const fs::path file = fs::path(dir) / "config.yaml";
  std::ofstream(file) << configText;
  std::vector<std::string> argv;
  for (const std::string& arg : args) {
    std::string a = arg;
    if (a == "--config=" + configPath) a = "--config=" + file.string();
    if (size_t p = a.find("$(NODE_NAME)"); p != std::string::npos) a.replace(p, 12, "node-a");
    argv.push_back(a);
  }
  InClusterEnvironment inCluster;
  auto parsed = control::parseArgs(argv);
  fs::remove_all(dir);
  if (!parsed.ok()) return parsed.error();
  return parsed->config;
}

uint16_t portOf(const std::string& address) {
  auto hp = control::parseHostPort(address);
  return hp.ok() ? hp->port : 0;
}

// Checks the DaemonSet and what it refers to; `config` receives the parsed --config file.
Problems deploymentProblems(const Objects& objects, control::Config* config = nullptr) {
  Problems out;
  auto one = [&](const char* kind) -> const Value* {
    auto found = ofKind(objects, kind);
    if (found.size() != 1) {
      out.push_back(std::string("want one ") + kind + ", found " + std::to_string(found.size()));
      return nullptr;
    }
    return &found[0]->value;
  };
  const Value* ds = one("DaemonSet");
  const Value* account = one("ServiceAccount");
  const Value* binding = one("ClusterRoleBinding");
  const Value* role = one("ClusterRole");
  const Value* configMap = one("ConfigMap");
  if (!ds || !account || !binding || !role || !configMap) return out;
  auto ingressClasses = ofKind(objects, "IngressClass");

  // The ServiceAccount the Pods run as is the one bound to the ClusterRole.
  const Value* pod = at(ds, {"spec", "template", "spec"});
  const std::string accountName = str(at(account, {"metadata", "name"}));
  const std::string namespace_ = str(at(ds, {"metadata", "namespace"}));
  if (str(at(pod, {"serviceAccountName"})) != accountName) {
    out.push_back("DaemonSet: serviceAccountName is not the ServiceAccount " + accountName);
  }
  if (str(at(account, {"metadata", "namespace"})) != namespace_) {
    out.push_back("ServiceAccount: not in the DaemonSet's namespace");
  }
  if (str(at(binding, {"roleRef", "kind"})) != "ClusterRole" ||
      str(at(binding, {"roleRef", "name"})) != str(at(role, {"metadata", "name"})) ||
      str(at(binding, {"roleRef", "apiGroup"})) != "rbac.authorization.k8s.io") {
    out.push_back("ClusterRoleBinding: roleRef is not the ClusterRole");
  }
  bool bound = false;
  for (const Value& subject : list(binding->find("subjects"))) {
    bound |= str(subject.find("kind")) == "ServiceAccount" &&
             str(subject.find("name")) == accountName &&
             str(subject.find("namespace")) == namespace_;
  }
  if (!bound) out.push_back("ClusterRoleBinding: does not bind the DaemonSet's ServiceAccount");

  // As kube-proxy's DaemonSet.
  const Value* hostNetwork = at(pod, {"hostNetwork"});
  if (!hostNetwork || hostNetwork->type() != Value::Type::kBool || !hostNetwork->asBool()) {
    out.push_back("DaemonSet: hostNetwork: want true");
  }
  if (str(at(pod, {"dnsPolicy"})) != "ClusterFirstWithHostNet") {
    out.push_back("DaemonSet: dnsPolicy: want ClusterFirstWithHostNet");
  }
  if (str(at(pod, {"priorityClassName"})) != "system-node-critical") {
    out.push_back("DaemonSet: priorityClassName: want system-node-critical");
  }
  bool everyNode = false;
  for (const Value& t : list(at(pod, {"tolerations"}))) {
    everyNode |= str(t.find("operator")) == "Exists" && !t.find("key") && !t.find("effect");
  }
  if (!everyNode) out.push_back("DaemonSet: tolerations: want {operator: Exists} (every node)");
  if (str(at(ds, {"spec", "updateStrategy", "type"})) != "RollingUpdate") {
    out.push_back("DaemonSet: updateStrategy.type: want RollingUpdate");
  }
  const Value* matchLabels = at(ds, {"spec", "selector", "matchLabels"});
  if (!matchLabels || !matchLabels->isObject() || matchLabels->asObject().empty()) {
    out.push_back("DaemonSet: spec.selector.matchLabels: want labels");
  } else {
    for (const auto& [key, value] : matchLabels->asObject()) {
      if (str(at(ds, {"spec", "template", "metadata", "labels", key})) != str(&value)) {
        out.push_back("DaemonSet: selector label " + key + " is not on the Pod template");
      }
    }
  }

  const Value* container = findNamed(at(pod, {"containers"}), "name", "capstan");
  if (!container || list(at(pod, {"containers"})).size() != 1) {
    out.push_back("DaemonSet: want one container, named capstan");
    return out;
  }
  // The flags: the command after the program, then args (the image's entrypoint is capstan).
  std::vector<std::string> args = strings(container->find("command"));
  if (!args.empty()) args.erase(args.begin());
  for (const std::string& a : strings(container->find("args"))) args.push_back(a);
  if (std::find(args.begin(), args.end(), "--hostname-override=$(NODE_NAME)") == args.end()) {
    out.push_back("DaemonSet: no --hostname-override=$(NODE_NAME)");
  }
  const Value* nodeName = findNamed(container->find("env"), "name", "NODE_NAME");
  if (str(at(nodeName, {"valueFrom", "fieldRef", "fieldPath"})) != "spec.nodeName") {
    out.push_back("DaemonSet: env NODE_NAME: want valueFrom.fieldRef.fieldPath spec.nodeName");
  }

  // The host paths, mounted as kube-proxy mounts them.
  auto hostMount = [&](const std::string& path, const char* type, bool readOnly) {
    const Value* volume = nullptr;
    for (const Value& v : list(at(pod, {"volumes"}))) {
      if (str(at(&v, {"hostPath", "path"})) == path) volume = &v;
    }
    if (!volume) return out.push_back("DaemonSet: no hostPath volume " + path);
    if (str(at(volume, {"hostPath", "type"})) != type) {
      out.push_back("DaemonSet: hostPath " + path + ": type: want \"" + type + "\"");
    }
    const Value* mount =
        findNamed(container->find("volumeMounts"), "name", str(volume->find("name")));
    const Value* ro = mount ? mount->find("readOnly") : nullptr;
    if (!mount || str(mount->find("mountPath")) != path) {
      out.push_back("DaemonSet: hostPath " + path + " is not mounted at " + path);
    } else if ((ro && ro->type() == Value::Type::kBool && ro->asBool()) != readOnly) {
      out.push_back("DaemonSet: mount " + path + ": readOnly: want " +
                    (readOnly ? "true" : "false"));
    }
  };
  hostMount("/lib/modules", "", true);
  hostMount("/run/xtables.lock", "FileOrCreate", false);

  // The --config file: a ConfigMap key, mounted where the flag points.
  std::string configPath;
  for (const std::string& a : args) {
    if (a.starts_with("--config=")) configPath = a.substr(9);
  }
  const fs::path mountDir = fs::path(configPath).parent_path();
  const std::string key = fs::path(configPath).filename().string();
  const Value* configMount =
      findNamed(container->find("volumeMounts"), "mountPath", mountDir.string());
  const Value* configVolume =
      configMount ? findNamed(at(pod, {"volumes"}), "name", str(configMount->find("name")))
                  : nullptr;
  if (configPath.empty() || !configVolume ||
      str(at(configVolume, {"configMap", "name"})) != str(at(configMap, {"metadata", "name"}))) {
    out.push_back("DaemonSet: --config is not a file of the ConfigMap's volume");
    return out;
  }
  const Value* text = at(configMap, {"data", key});
  if (!text || !text->isString()) {
    out.push_back("ConfigMap: no data." + key + " for --config");
    return out;
  }
  auto parsed = parseDaemonConfig(args, text->asString(), configPath);
  if (!parsed.ok()) {
    out.push_back("ConfigMap data." + key +
                  " with the DaemonSet's flags: " + parsed.error().message());
    return out;
  }
  if (config) *config = *parsed;
  if (parsed->hostnameOverride != "node-a") {
    out.push_back("DaemonSet: the node name does not reach --hostname-override");
  }

  // Probes on the status server, kube-proxy's /healthz (readiness) and /livez (liveness).
  const uint16_t healthzPort = portOf(parsed->healthzBindAddress);
  for (auto [probe, path] :
       {std::pair{"readinessProbe", "/healthz"}, std::pair{"livenessProbe", "/livez"}}) {
    const Value* get = at(container, {probe, "httpGet"});
    const Value* port = at(get, {"port"});
    if (str(at(get, {"path"})) != path || !port || port->type() != Value::Type::kInt ||
        port->asInt() != healthzPort || healthzPort == 0) {
      out.push_back(std::string("DaemonSet: ") + probe + ": want httpGet " + path + " on port " +
                    std::to_string(healthzPort) + " (healthzBindAddress)");
    }
  }

  // The ingress: its IngressClass and listeners exist exactly when it is enabled.
  std::set<int64_t> listenerPorts;
  bool privilegedPort = false;
  if (parsed->ingress.enabled) {
    for (const std::string& address : {parsed->ingress.httpAddress, parsed->ingress.httpsAddress}) {
      if (address.empty()) continue;
      listenerPorts.insert(portOf(address));
      privilegedPort |= portOf(address) < 1024;
    }
    const Value* cls = ingressClasses.size() == 1 ? &ingressClasses[0]->value : nullptr;
    if (!cls || str(at(cls, {"metadata", "name"})) != parsed->ingressClass ||
        str(at(cls, {"spec", "controller"})) != IngressClassSelector{}.controller) {
      out.push_back("IngressClass: want one named " + parsed->ingressClass + " with controller " +
                    IngressClassSelector{}.controller);
    }
  } else if (!ingressClasses.empty()) {
    out.push_back("IngressClass: present while the ingress is disabled");
  }
  std::set<int64_t> containerPorts;
  for (const Value& p : list(container->find("ports"))) {
    const Value* number = p.find("containerPort");
    if (number && number->type() == Value::Type::kInt) containerPorts.insert(number->asInt());
  }
  listenerPorts.insert(healthzPort);
  if (containerPorts != listenerPorts) {
    out.push_back("DaemonSet: ports: want exactly /healthz's and the ingress listeners'");
  }

  // Not privileged; all capabilities dropped but NET_ADMIN and NET_RAW, and NET_BIND_SERVICE
  // only where the ingress listens below 1024.
  const Value* security = container->find("securityContext");
  const Value* privileged = at(security, {"privileged"});
  if (privileged && (privileged->type() != Value::Type::kBool || privileged->asBool())) {
    out.push_back("DaemonSet: privileged: want false");
  }
  auto dropped = strings(at(security, {"capabilities", "drop"}));
  if (std::find(dropped.begin(), dropped.end(), "ALL") == dropped.end()) {
    out.push_back("DaemonSet: capabilities.drop: want ALL");
  }
  std::set<std::string> added;
  for (const std::string& c : strings(at(security, {"capabilities", "add"}))) added.insert(c);
  std::set<std::string> required = {"NET_ADMIN", "NET_RAW"};
  std::set<std::string> allowed = required;
  if (parsed->ingress.enabled) allowed.insert("NET_BIND_SERVICE");
  if (privilegedPort) required.insert("NET_BIND_SERVICE");
  for (const std::string& c : required) {
    if (!added.count(c)) out.push_back("DaemonSet: capabilities.add: missing " + c);
  }
  for (const std::string& c : added) {
    if (!allowed.count(c)) out.push_back("DaemonSet: capabilities.add: " + c + " not needed");
  }
  return out;
}

// --- (d) the Helm chart ----------------------------------------------------------------------

Value readValues() {
  Value values;
  Status st = control::readYamlDocuments(readFile(kChartDir / "values.yaml"),
                                         [&](Value v, size_t) -> Status {
                                           values = std::move(v);
                                           return okStatus();
                                         });
  EXPECT_TRUE(st.ok()) << st.error().message();
  return values;
}

Result<Objects> renderChart(const Value& values) {
  ChartContext context;
  context.values = values;
  auto chart = readObjects(readFile(kChartDir / "Chart.yaml"), "Chart.yaml");
  if (!chart.ok()) return chart.error();
  if (chart->size() != 1) return Error("Chart.yaml: want one document");
  const Value& c = chart->front().value;
  if (str(c.find("apiVersion")) != "v2") return Error("Chart.yaml: apiVersion: want v2");
  context.chartName = str(c.find("name"));
  context.chartVersion = str(c.find("version"));
  context.chartAppVersion = str(c.find("appVersion"));
  std::vector<fs::path> templates;
  for (const auto& entry : fs::directory_iterator(kChartDir / "templates")) {
    if (entry.path().extension() == ".yaml") templates.push_back(entry.path());
  }
  std::sort(templates.begin(), templates.end());
  Objects out;
  for (const fs::path& file : templates) {
    const std::string name = file.filename().string();
    auto text = renderTemplate(readFile(file), context, name);
    if (!text.ok()) return text.error();
    auto objects = readObjects(*text, "helm:" + name);
    if (!objects.ok()) return objects.error();
    out.insert(out.end(), objects->begin(), objects->end());
  }
  return out;
}

// An object as JSON, with each ConfigMap entry read as the YAML it holds (comments and
// quoting aside, the same settings).
std::string canonical(const Object& o) {
  Value v = o.value;
  if (kindOf(o) == "ConfigMap") {
    if (Value* data = mutableAt(v, {"data"}); data && data->isObject()) {
      for (auto& [key, entry] : data->mutableObject()) {
        if (!entry.isString()) continue;
        Value parsed;
        Status st = control::readYamlDocuments(entry.asString(), [&](Value d, size_t) -> Status {
          parsed = std::move(d);
          return okStatus();
        });
        if (st.ok()) entry = std::move(parsed);
      }
    }
  }
  std::string json;
  support::appendJson(v, json);
  return json;
}

Problems differences(const Objects& want, const Objects& got) {
  Problems out;
  std::map<std::string, std::string> a, b;
  for (const Object& o : want) a[kindOf(o) + "/" + nameOf(o)] = canonical(o);
  for (const Object& o : got) b[kindOf(o) + "/" + nameOf(o)] = canonical(o);
  for (const auto& [name, json] : a) {
    if (!b.count(name)) {
      out.push_back(name + ": missing");
    } else if (b[name] != json) {
      out.push_back(name + ": differs:\n  want " + json + "\n  got  " + b[name]);
    }
  }
  for (const auto& [name, json] : b) {
    if (!a.count(name)) out.push_back(name + ": not expected");
  }
  return out;
}

// --- tests -----------------------------------------------------------------------------------

TEST(DeployManifests, EveryDocumentIsAWellFormedKubernetesObject) {
  Objects objects = plainManifests();
  ASSERT_FALSE(objects.empty()) << "no manifests in " << kDeployDir;
  EXPECT_THAT(wellFormedProblems(objects, "kube-system"), IsEmpty());
  std::multiset<std::string> kinds;
  for (const Object& o : objects) kinds.insert(kindOf(o));
  EXPECT_EQ(kinds,
            (std::multiset<std::string>{"ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                                        "ConfigMap", "IngressClass", "DaemonSet"}));
}

TEST(DeployManifests, TheWellFormedCheckFailsOnBrokenObjects) {
  Objects objects = plainManifests();
  ASSERT_FALSE(objects.empty());
  set(mutableOfKind(objects, "DaemonSet")->value, {"metadata", "namespace"}, Value("default"));
  set(mutableOfKind(objects, "ClusterRole")->value, {"metadata", "namespace"},
      Value("kube-system"));
  set(mutableOfKind(objects, "ConfigMap")->value, {"metadata", "name"}, Value("Capstan_Config"));
  set(mutableOfKind(objects, "IngressClass")->value, {"apiVersion"},
      Value("networking.k8s.io/v1beta1"));
  objects.push_back(objects.front());
  auto problems = wellFormedProblems(objects, "kube-system");
  EXPECT_THAT(problems, Contains(HasSubstr("DaemonSet capstan: metadata.namespace: want")));
  EXPECT_THAT(problems, Contains(HasSubstr("ClusterRole capstan: metadata.namespace: set on")));
  EXPECT_THAT(problems, Contains(HasSubstr("metadata.name: not a DNS subdomain")));
  EXPECT_THAT(problems, Contains(HasSubstr("IngressClass capstan: apiVersion: want")));
  EXPECT_THAT(problems, Contains(HasSubstr("defined twice")));
}

TEST(DeployRbac, GroupAndResourceComeFromTheCollectionPath) {
  EXPECT_EQ(*groupAndResource("/api/v1/services"),
            (std::pair<std::string, std::string>{"", "services"}));
  EXPECT_EQ(*groupAndResource("/apis/discovery.k8s.io/v1/endpointslices"),
            (std::pair<std::string, std::string>{"discovery.k8s.io", "endpointslices"}));
  EXPECT_FALSE(groupAndResource("/api/v1/namespaces/a/services").ok());
}

TEST(DeployRbac, TheClusterRoleGrantsExactlyWhatTheClientCalls) {
  // What the client calls, spelled out once here so that a change to capstanResources() or
  // capstanApiWrites() shows in this test too.
  std::set<Grant> expected;
  for (auto [group, resource] :
       {std::pair{"", "services"}, std::pair{"discovery.k8s.io", "endpointslices"},
        std::pair{"networking.k8s.io", "ingresses"},
        std::pair{"networking.k8s.io", "ingressclasses"}, std::pair{"", "secrets"},
        std::pair{"", "nodes"}}) {
    expected.insert({group, resource, "list"});
    expected.insert({group, resource, "watch"});
  }
  expected.insert({"networking.k8s.io", "ingresses/status", "patch"});
  EXPECT_EQ(grantsTheClientNeeds(), expected);
  EXPECT_THAT(rbacProblems(plainManifests()), IsEmpty());
}

TEST(DeployRbac, AMissingOrAnExtraVerbFails) {
  Objects objects = plainManifests();
  Object* role = mutableOfKind(objects, "ClusterRole");
  ASSERT_NE(role, nullptr);
  Value::Array& rules = mutableAt(role->value, {"rules"})->mutableArray();
  // The first rule loses watch and gains get; a new rule grants events.
  Value::Array& verbs = mutableAt(rules[0], {"verbs"})->mutableArray();
  verbs.erase(
      std::remove_if(verbs.begin(), verbs.end(), [](const Value& v) { return str(&v) == "watch"; }),
      verbs.end());
  verbs.emplace_back(std::string("get"));
  rules.emplace_back(Value::Object{{"apiGroups", Value(Value::Array{Value(std::string(""))})},
                                   {"resources", Value(Value::Array{Value(std::string("*"))})},
                                   {"verbs", Value(Value::Array{Value(std::string("create"))})}});
  auto problems = rbacProblems(objects);
  EXPECT_THAT(problems, Contains(HasSubstr("missing (\"\", services, watch)")));
  EXPECT_THAT(problems, Contains(HasSubstr("grants (\"\", services, get)")));
  EXPECT_THAT(problems, Contains(HasSubstr("grants (\"\", *, create)")));
  EXPECT_THAT(problems, Contains(HasSubstr("a wildcard")));
}

TEST(DeployDaemonSet, RunsAsKubeProxyDoesWithOnlyTheCapabilitiesItUses) {
  control::Config config;
  EXPECT_THAT(deploymentProblems(plainManifests(), &config), IsEmpty());
  EXPECT_EQ(config.mode, control::ProxyMode::kIptables);  // kube-proxy's mode, and its chains
  EXPECT_TRUE(config.ingress.enabled);
  EXPECT_EQ(config.ingressClass, "capstan");
  EXPECT_EQ(config.healthzBindAddress, "0.0.0.0:10256");
  EXPECT_FALSE(config.iptablesLocalhostNodePorts);  // no route_localnet without privileges
  EXPECT_TRUE(config.manifests.empty() && config.kubeconfig.empty());  // in-cluster API
}

TEST(DeployDaemonSet, TheChecksFailOnBrokenManifests) {
  auto broken = [](auto&& change) {
    Objects objects = plainManifests();
    change(objects);
    return deploymentProblems(objects);
  };
  auto pod = [](Objects& o) -> Value& {
    return *mutableAt(mutableOfKind(o, "DaemonSet")->value, {"spec", "template", "spec"});
  };
  auto container = [&](Objects& o) -> Value& {
    return mutableAt(pod(o), {"containers"})->mutableArray()[0];
  };
  EXPECT_THAT(broken([&](Objects& o) { set(pod(o), {"hostNetwork"}, Value(false)); }),
              Contains(HasSubstr("hostNetwork")));
  EXPECT_THAT(broken([&](Objects& o) {
                mutableAt(container(o), {"securityContext", "capabilities", "add"})
                    ->mutableArray()
                    .emplace_back(std::string("SYS_ADMIN"));
              }),
              Contains(HasSubstr("SYS_ADMIN not needed")));
  EXPECT_THAT(broken([&](Objects& o) {
                set(container(o), {"securityContext", "privileged"}, Value(true));
              }),
              Contains(HasSubstr("privileged")));
  EXPECT_THAT(broken([&](Objects& o) {
                auto& volumes = mutableAt(pod(o), {"volumes"})->mutableArray();
                volumes.pop_back();  // lib-modules
              }),
              Contains(HasSubstr("no hostPath volume /lib/modules")));
  EXPECT_THAT(broken([&](Objects& o) {
                set(mutableAt(pod(o), {"volumes"})->mutableArray()[1], {"hostPath", "type"},
                    Value(std::string("File")));
              }),
              Contains(HasSubstr("/run/xtables.lock: type")));
  EXPECT_THAT(broken([&](Objects& o) {
                set(mutableAt(mutableOfKind(o, "ClusterRoleBinding")->value, {"subjects"})
                        ->mutableArray()[0],
                    {"name"}, Value(std::string("kube-proxy")));
              }),
              Contains(HasSubstr("does not bind")));
  EXPECT_THAT(
      broken([&](Objects& o) {
        Value* text = mutableAt(mutableOfKind(o, "ConfigMap")->value, {"data", "config.yaml"});
        *text = Value(text->asString() + "proxyMode: nftables\n");
      }),
      Contains(HasSubstr("proxyMode: unknown field")));
  EXPECT_THAT(
      broken([&](Objects& o) {
        Value* text = mutableAt(mutableOfKind(o, "ConfigMap")->value, {"data", "config.yaml"});
        std::string s = text->asString();
        s.replace(s.find("enabled: true"), 13, "enabled: false");
        *text = Value(s);
      }),
      Contains(HasSubstr("IngressClass: present while the ingress is disabled")));
  EXPECT_THAT(broken([&](Objects& o) {
                set(container(o), {"livenessProbe", "httpGet", "port"}, Value(int64_t{10249}));
              }),
              Contains(HasSubstr("livenessProbe")));
}

TEST(HelmChart, DefaultValuesRenderThePlainManifests) {
  auto rendered = renderChart(readValues());
  ASSERT_TRUE(rendered.ok()) << rendered.error().message();
  EXPECT_THAT(differences(plainManifests(), *rendered), IsEmpty());
  EXPECT_THAT(wellFormedProblems(*rendered, "kube-system"), IsEmpty());
  EXPECT_THAT(rbacProblems(*rendered), IsEmpty());
  EXPECT_THAT(deploymentProblems(*rendered), IsEmpty());
}

TEST(HelmChart, ModeAndIngressValuesChangeTheOutput) {
  Value values = readValues();
  set(values, {"proxyMode"}, Value(std::string("nftables")));
  set(values, {"ingress", "enabled"}, Value(false));
  set(values, {"extraArgs"},
      Value(Value::Array{Value(std::string("--iptables-backend=legacy")),
                         Value(std::string("--v=2"))}));
  auto rendered = renderChart(values);
  ASSERT_TRUE(rendered.ok()) << rendered.error().message();
  control::Config config;
  EXPECT_THAT(deploymentProblems(*rendered, &config), IsEmpty());
  EXPECT_THAT(rbacProblems(*rendered), IsEmpty());  // the API calls do not change
  EXPECT_EQ(config.mode, control::ProxyMode::kNftables);
  EXPECT_FALSE(config.ingress.enabled);
  EXPECT_EQ(config.iptablesBackend, "legacy");
  EXPECT_EQ(config.verbosity, 2);
  EXPECT_TRUE(ofKind(*rendered, "IngressClass").empty());
  const Value* container = &list(
      at(&ofKind(*rendered, "DaemonSet")[0]->value, {"spec", "template", "spec", "containers"}))[0];
  EXPECT_THAT(strings(at(container, {"securityContext", "capabilities", "add"})),
              Not(Contains("NET_BIND_SERVICE")));
  EXPECT_EQ(list(container->find("ports")).size(), 1u);
  auto diff = differences(plainManifests(), *rendered);
  EXPECT_THAT(diff, Contains(HasSubstr("IngressClass/capstan: missing")));
  EXPECT_THAT(diff, Contains(HasSubstr("ConfigMap/capstan: differs")));
  EXPECT_THAT(diff, Contains(HasSubstr("DaemonSet/capstan: differs")));
}

TEST(HelmChart, OptionalValuesAppearOnlyWhenSet) {
  Value values = readValues();
  set(values, {"ingress", "isDefaultClass"}, Value(true));
  set(values, {"ingress", "class"}, Value(std::string("edge")));
  set(values, {"ingress", "httpPort"}, Value(int64_t{8080}));
  set(values, {"ingress", "httpsPort"}, Value(int64_t{8443}));
  set(values, {"apiServer", "host"}, Value(std::string("192.0.2.10")));
  set(values, {"resources", "limits", "memory"}, Value(std::string("512Mi")));
  set(values, {"image", "tag"}, Value(std::string("dev")));
  auto rendered = renderChart(values);
  ASSERT_TRUE(rendered.ok()) << rendered.error().message();
  control::Config config;
  EXPECT_THAT(deploymentProblems(*rendered, &config), IsEmpty());
  EXPECT_EQ(config.ingressClass, "edge");
  EXPECT_EQ(config.ingress.httpAddress, "0.0.0.0:8080");
  auto classes = ofKind(*rendered, "IngressClass");
  ASSERT_EQ(classes.size(), 1u);
  EXPECT_EQ(str(at(&classes[0]->value,
                   {"metadata", "annotations", "ingressclass.kubernetes.io/is-default-class"})),
            "true");
  const Value* container = &list(
      at(&ofKind(*rendered, "DaemonSet")[0]->value, {"spec", "template", "spec", "containers"}))[0];
  EXPECT_EQ(str(container->find("image")), "capstan:dev");
  EXPECT_EQ(
      str(at(findNamed(container->find("env"), "name", "KUBERNETES_SERVICE_HOST"), {"value"})),
      "192.0.2.10");
  EXPECT_EQ(
      str(at(findNamed(container->find("env"), "name", "KUBERNETES_SERVICE_PORT"), {"value"})),
      "6443");
  EXPECT_EQ(str(at(container, {"resources", "limits", "memory"})), "512Mi");
}

TEST(ChartRenderer, RendersTheSubsetAsTextTemplateDoes) {
  ChartContext context;
  auto values = readObjects("a: {b: x, n: 0, t: true}\nlist: [p, 'q\"r']\nempty: []\n", "v");
  ASSERT_TRUE(values.ok());
  context.values = values->front().value;
  auto render = [&](std::string_view text) {
    auto r = renderTemplate(text, context, "t.yaml");
    return r.ok() ? *r : "error: " + r.error().message();
  };
  EXPECT_EQ(render("k: {{ .Values.a.b }} {{ .Release.Namespace }}/{{ .Release.Name }}"),
            "k: x kube-system/capstan");
  EXPECT_EQ(render("{{ .Values.a.n | quote }} {{ .Values.a.b | quote }}"), "\"0\" \"x\"");
  EXPECT_EQ(render("a:\n  {{- if .Values.a.t }}\n  b: 1\n  {{- end }}\nc: 2"), "a:\n  b: 1\nc: 2");
  EXPECT_EQ(render("{{ if .Values.a.n }}yes{{ else }}no{{ end }}"), "no");
  EXPECT_EQ(render("{{ if .Values.a.missing }}yes{{ end }}."), ".");
  EXPECT_EQ(render("l:\n{{- range .Values.list }}\n- {{ . | quote }}\n{{- end }}"),
            "l:\n- \"p\"\n- \"q\\\"r\"");
  EXPECT_EQ(render("{{- range .Values.empty }}x{{ end }}{{/* note */}}y  {{- \"z\" -}}  ."), "yz.");
  EXPECT_EQ(render("{{ range .Values.list }}{{ $.Values.a.b }}{{ end }}"), "xx");
  // What Helm would print as <no value>, or fail on, and what is outside the subset.
  EXPECT_THAT(render("{{ .Values.a.missing }}"), HasSubstr("t.yaml:1: .Values.a.missing has no"));
  EXPECT_THAT(render("\n{{ .Values.nope.b }}"), HasSubstr("t.yaml:2: nil pointer"));
  EXPECT_THAT(render("{{ .Values.a | toYaml }}"), HasSubstr("function \"toYaml\""));
  EXPECT_THAT(render("{{ include \"x\" . }}"), HasSubstr("outside the template subset"));
  EXPECT_THAT(render("{{ if .Values.a.t }}x"), HasSubstr("no {{ end }}"));
}

// --- kubectl, where the machine has it --------------------------------------------------------

bool haveKubectl() { return support::runCommand({"sh", "-c", "command -v kubectl"}).ok(); }

// kubectl with a server that never answers (a closed loopback port, no kubeconfig): nothing it
// does leaves the machine.
support::CommandResult kubectl(std::vector<std::string> args) {
  args.insert(args.begin(), {"kubectl", "--kubeconfig=/dev/null", "--server=http://127.0.0.1:1"});
  return support::runCommand(args, -1, std::chrono::seconds(60));
}

// kubectl's own names for the objects: kind in lower case, its group after a dot.
std::set<std::string> kubectlNames(const Objects& objects) {
  std::set<std::string> out;
  for (const Object& o : objects) {
    std::string kind = kindOf(o);
    std::transform(kind.begin(), kind.end(), kind.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string apiVersion = str(o.value.find("apiVersion"));
    size_t slash = apiVersion.find('/');
    if (slash != std::string::npos) kind += "." + apiVersion.substr(0, slash);
    out.insert(kind + "/" + nameOf(o));
  }
  return out;
}

std::set<std::string> lineSet(const std::string& text) {
  std::set<std::string> out;
  for (const std::string& line : support::lines(text)) {
    if (!line.empty()) out.insert(line);
  }
  return out;
}

// `kubectl label --local` decodes the files with kubectl's own decoder and needs no server: the
// manifests and the rendered chart read as the same objects there as here.
TEST(Kubectl, ReadsTheManifestsAndTheRenderedChartAsTheSameObjects) {
  if (!haveKubectl()) GTEST_SKIP() << "kubectl is not installed";
  auto plain =
      kubectl({"label", "--local", "-o", "name", "-f", kDeployDir.string(), "capstan.io/x=y"});
  ASSERT_TRUE(plain.ok()) << plain.describe() << ": " << plain.output;
  EXPECT_EQ(lineSet(plain.output), kubectlNames(plainManifests()));

  auto rendered = renderChart(readValues());
  ASSERT_TRUE(rendered.ok()) << rendered.error().message();
  char dir[] = "/tmp/capstan-chart-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  {
    std::ofstream out(fs::path(dir) / "rendered.json");
    for (const Object& o : *rendered) {
      std::string json;
      support::appendJson(o.value, json);
      out << json << "\n";
    }
  }
  auto fromChart = kubectl({"label", "--local", "-o", "name", "-f",
                            std::string(dir) + "/rendered.json", "capstan.io/x=y"});
  fs::remove_all(dir);
  ASSERT_TRUE(fromChart.ok()) << fromChart.describe() << ": " << fromChart.output;
  EXPECT_EQ(lineSet(fromChart.output), kubectlNames(*rendered));
}

}  // namespace
}  // namespace capstan::deploy
