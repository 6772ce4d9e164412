#include "control/decoder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "control/document_reader.h"
#include "tests/support/value_json.h"

namespace capstan::control {
namespace {

using Outcome = Decoded::Outcome;

// --- Helpers ------------------------------------------------------------------------------------

std::string readTestdata(const std::string& name) {
  std::string path = std::string(CAPSTAN_SOURCE_DIR) + "/tests/control/testdata/" + name;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<Value> yamlDocuments(std::string_view text) {
  std::vector<Value> docs;
  Status st = readYamlDocuments(text, [&](Value v, size_t) {
    docs.push_back(std::move(v));
    return okStatus();
  });
  EXPECT_TRUE(st.ok()) << st.error().message();
  return docs;
}

std::vector<Value> jsonDocuments(std::string_view text) {
  std::vector<Value> docs;
  Status st = readJsonDocuments(text, [&](Value v, size_t) {
    docs.push_back(std::move(v));
    return okStatus();
  });
  EXPECT_TRUE(st.ok()) << st.error().message();
  return docs;
}

std::vector<Decoded> decodeAll(const std::vector<Value>& docs,
                               const ObjectDecoder& decoder = ObjectDecoder()) {
  std::vector<Decoded> out;
  for (const Value& doc : docs) {
    for (Decoded& d : decoder.decodeDocument(doc)) out.push_back(std::move(d));
  }
  return out;
}

std::vector<Decoded> decodeYaml(std::string_view text,
                                const ObjectDecoder& decoder = ObjectDecoder()) {
  return decodeAll(yamlDocuments(text), decoder);
}

Decoded decodeOneYaml(std::string_view text, const ObjectDecoder& decoder = ObjectDecoder()) {
  std::vector<Decoded> all = decodeYaml(text, decoder);
  EXPECT_EQ(all.size(), 1u) << text;
  return all.empty() ? Decoded{} : std::move(all.front());
}

Decoded decodeOneJson(std::string_view text) {
  std::vector<Decoded> all = decodeAll(jsonDocuments(text));
  EXPECT_EQ(all.size(), 1u) << text;
  return all.empty() ? Decoded{} : std::move(all.front());
}

template <typename T>
std::shared_ptr<const T> objectAs(const Decoded& d) {
  const auto* p = std::get_if<std::shared_ptr<const T>>(&d.object);
  return p ? *p : nullptr;
}

// The decoded entry whose key names `name` (namespace/name, or name for cluster-scoped kinds).
const Decoded* findByName(const std::vector<Decoded>& all, const std::string& name) {
  for (const Decoded& d : all) {
    if (!d.key) continue;
    std::string n = d.key->name.ns.empty() ? d.key->name.name : d.key->name.toString();
    if (n == name) return &d;
  }
  return nullptr;
}

IpAddress ip(const char* text) {
  auto v = IpAddress::parse(text);
  EXPECT_TRUE(v) << text;
  return v.value_or(IpAddress());
}

Cidr cidr(const char* text) {
  auto v = Cidr::parse(text);
  EXPECT_TRUE(v) << text;
  return v.value_or(Cidr());
}

// --- Readable descriptions of model values, for failure messages -------------------------------

std::string str(const std::vector<IpAddress>& ips) {
  std::string out = "[";
  for (const auto& a : ips) out += (out.size() > 1 ? " " : "") + a.toString();
  return out + "]";
}

std::string str(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const auto& s : items) out += (out.size() > 1 ? " " : "") + s;
  return out + "]";
}

std::string str(const std::optional<bool>& b) { return b ? (*b ? "true" : "false") : "unset"; }

std::string str(const Service& s) {
  std::ostringstream o;
  o << s.name.toString() << " type=" << toString(s.type) << " clusterIPs=" << str(s.clusterIPs)
    << " headless=" << s.headless << " externalName=" << s.externalName << " ports={";
  for (const auto& p : s.ports) {
    o << " " << p.name << "/" << toString(p.protocol) << ":" << p.port << "->";
    if (const auto* n = std::get_if<int32_t>(&p.targetPort)) {
      o << *n;
    } else {
      o << std::get<std::string>(p.targetPort);
    }
    o << " np=" << p.nodePort << " app=" << p.appProtocol << ";";
  }
  o << "} externalIPs=" << str(s.externalIPs) << " lbIPs=" << str(s.loadBalancerIPs) << " ranges=[";
  for (const auto& c : s.loadBalancerSourceRanges) o << " " << c.toString();
  o << "] affinity=" << toString(s.sessionAffinity) << "/" << s.affinityTimeoutSeconds
    << " etp=" << toString(s.externalTrafficPolicy) << " itp=" << toString(s.internalTrafficPolicy)
    << " hc=" << s.healthCheckNodePort << " td=" << toString(s.trafficDistribution)
    << " topology=" << s.topologyMode;
  return o.str();
}

std::string str(const EndpointSlice& s) {
  std::ostringstream o;
  o << s.name.toString() << " service=" << s.serviceName
    << " type=" << static_cast<int>(s.addressType) << " endpoints={";
  for (const auto& e : s.endpoints) {
    o << " " << str(e.addresses) << " r=" << str(e.conditions.ready)
      << " s=" << str(e.conditions.serving) << " t=" << str(e.conditions.terminating)
      << " host=" << e.hostname << " node=" << e.nodeName << " zone=" << e.zone
      << " zh=" << str(e.zoneHints) << " nh=" << str(e.nodeHints) << ";";
  }
  o << "} ports={";
  for (const auto& p : s.ports) {
    o << " " << p.name << "/" << toString(p.protocol) << ":" << (p.port ? *p.port : -1)
      << " app=" << p.appProtocol << ";";
  }
  o << "} trigger=" << s.lastChangeTriggerTimeNs;
  return o.str();
}

std::string str(const IngressBackend& b) {
  if (b.service) {
    return "svc:" + b.service->name + ":" + std::to_string(b.service->portNumber) + "/" +
           b.service->portName;
  }
  return "res:" + b.resourceKind + "/" + b.resourceName;
}

std::string str(const Ingress& i) {
  std::ostringstream o;
  o << i.name.toString() << " class=" << i.ingressClassName.value_or("<unset>")
    << " annotation=" << i.classAnnotation
    << " default=" << (i.defaultBackend ? str(*i.defaultBackend) : "none") << " rules={";
  for (const auto& r : i.rules) {
    o << " host=" << r.host << " [";
    for (const auto& p : r.paths) {
      o << " " << p.path << " " << toString(p.pathType) << " " << str(p.backend) << ";";
    }
    o << "]";
  }
  o << "} tls={";
  for (const auto& t : i.tls) o << " " << str(t.hosts) << " " << t.secretName << ";";
  o << "} annotations=" << i.annotations.size();
  return o.str();
}

std::string str(const NodeInfo& n) {
  std::ostringstream o;
  o << n.name << " zone=" << n.zone << " addresses=" << str(n.addresses) << " podCIDRs=[";
  for (const auto& c : n.podCIDRs) o << " " << c.toString();
  o << "] eligible=" << n.eligible;
  return o.str();
}

std::string str(const TlsSecret& s) {
  return s.name.toString() + " cert=" + s.certificatePem + " key=" + s.privateKeyPem;
}

std::string str(const IngressClass& c) {
  return c.name + " controller=" + c.controller + " default=" + (c.isDefault ? "1" : "0");
}

// Expects `all` to hold an OK object of type T named `name`, equal to `want`.
template <typename T>
void expectObject(const std::vector<Decoded>& all, const std::string& name, const T& want) {
  SCOPED_TRACE(name);
  const Decoded* d = findByName(all, name);
  ASSERT_NE(d, nullptr) << "no object named " << name;
  ASSERT_EQ(d->outcome, Outcome::kOk) << d->message;
  auto got = objectAs<T>(*d);
  ASSERT_NE(got, nullptr) << "wrong object type";
  EXPECT_EQ(*got, want) << "\n got: " << str(*got) << "\nwant: " << str(want);
}

ServicePortSpec port(std::string name, Protocol protocol, uint16_t number, IntOrString target,
                     uint16_t nodePort = 0, std::string appProtocol = "") {
  ServicePortSpec p;
  p.name = std::move(name);
  p.protocol = protocol;
  p.port = number;
  p.targetPort = std::move(target);
  p.nodePort = nodePort;
  p.appProtocol = std::move(appProtocol);
  return p;
}

IngressBackend serviceBackend(std::string name, uint16_t number, std::string portName = "") {
  IngressBackend b;
  b.service = IngressServiceBackend{std::move(name), number, std::move(portName)};
  return b;
}

IngressBackend resourceBackend(std::string kind, std::string name) {
  IngressBackend b;
  b.resourceKind = std::move(kind);
  b.resourceName = std::move(name);
  return b;
}

const char* const kFixtures[] = {
    "decoder_kubectl_services.yaml",  "decoder_kubectl_endpointslices.yaml",
    "decoder_kubectl_ingresses.yaml", "decoder_kubectl_secrets.yaml",
    "decoder_kubectl_nodes.yaml",
};

const std::string kCertPem =
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2Fwc3RhbiB0ZXN0IGNlcnQ=\n"
    "-----END CERTIFICATE-----\n";
const std::string kKeyPem =
    "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIENhcHN0YW4gdGVzdCBrZXk=\n"
    "-----END EC PRIVATE KEY-----\n";

// --- Real kubectl output, every field ------------------------------------------------------------

TEST(DecoderServices, DecodesEveryFieldOfKubectlOutput) {
  std::vector<Decoded> all = decodeYaml(readTestdata("decoder_kubectl_services.yaml"));
  ASSERT_EQ(all.size(), 7u);
  for (const Decoded& d : all) {
    EXPECT_EQ(d.outcome, Outcome::kOk) << d.message;
    ASSERT_TRUE(d.key);
    EXPECT_EQ(d.key->kind, ObjectKind::kService);
  }

  Service web;
  web.name = {"shop", "web"};
  web.clusterIPs = {ip("10.96.10.10"), ip("fd00:10:96::a")};
  web.ports = {port("http", Protocol::kTCP, 80, 8080, 0, "http"),
               port("metrics", Protocol::kTCP, 9090, std::string("metrics")),
               port("dns", Protocol::kUDP, 53, 5353), port("assoc", Protocol::kSCTP, 3868, 3868)};
  web.sessionAffinity = SessionAffinity::kClientIP;
  web.affinityTimeoutSeconds = 600;
  web.internalTrafficPolicy = TrafficPolicy::kLocal;
  web.trafficDistribution = TrafficDistribution::kPreferClose;
  web.topologyMode = "Auto";
  expectObject(all, "shop/web", web);

  Service api;
  api.name = {"shop", "api"};
  api.type = ServiceType::kNodePort;
  api.clusterIPs = {ip("10.96.10.20")};
  api.ports = {port("https", Protocol::kTCP, 443, std::string("https"), 30443)};
  api.externalIPs = {ip("192.0.2.10"), ip("2001:db8::10")};
  api.externalTrafficPolicy = TrafficPolicy::kLocal;
  api.sessionAffinity = SessionAffinity::kClientIP;
  api.affinityTimeoutSeconds = 10800;
  api.topologyMode = "auto";  // from the older topology-aware-hints annotation
  expectObject(all, "shop/api", api);

  Service edge;
  edge.name = {"shop", "edge"};
  edge.type = ServiceType::kLoadBalancer;
  edge.clusterIPs = {ip("10.96.10.30")};
  // The same nodePort for TCP and UDP is allowed: uniqueness is per protocol.
  edge.ports = {port("http", Protocol::kTCP, 80, 8080, 30080),
                port("quic", Protocol::kUDP, 80, 8443, 30080)};
  // The Proxy-mode ingress and the hostname-only one are not programmed.
  edge.loadBalancerIPs = {ip("198.51.100.10"), ip("2001:db8::1")};
  // Trimmed, and host bits masked.
  edge.loadBalancerSourceRanges = {cidr("203.0.113.0/24"), cidr("198.51.0.0/16"),
                                   cidr("2001:db8::/32")};
  edge.externalTrafficPolicy = TrafficPolicy::kLocal;
  edge.healthCheckNodePort = 31999;
  expectObject(all, "shop/edge", edge);

  Service db;
  db.name = {"shop", "db"};
  db.headless = true;
  db.ports = {port("pg", Protocol::kTCP, 5432, 5432)};
  expectObject(all, "shop/db", db);

  Service mail;
  mail.name = {"shop", "mail"};
  mail.type = ServiceType::kExternalName;
  mail.externalName = "mail.example.com";
  expectObject(all, "shop/mail", mail);

  Service peers;  // headless without ports
  peers.name = {"shop", "peers"};
  peers.headless = true;
  expectObject(all, "shop/peers", peers);

  Service plain;  // the default namespace; the affinity timeout's default; targetPort = port
  plain.name = {"default", "plain"};
  plain.ports = {port("", Protocol::kTCP, 8080, 8080)};
  plain.sessionAffinity = SessionAffinity::kClientIP;
  plain.affinityTimeoutSeconds = kDefaultAffinityTimeoutSeconds;
  expectObject(all, "default/plain", plain);
  EXPECT_EQ(kDefaultAffinityTimeoutSeconds, 10800u);
}

TEST(DecoderEndpointSlices, DecodesEveryFieldOfKubectlOutput) {
  std::vector<Decoded> all = decodeYaml(readTestdata("decoder_kubectl_endpointslices.yaml"));
  ASSERT_EQ(all.size(), 5u);

  EndpointSlice web;
  web.name = {"shop", "web-x7k2p"};
  web.serviceName = "web";
  web.addressType = AddressType::kIPv4;
  EndpointSliceEndpoint a;
  a.addresses = {ip("10.244.1.5")};
  a.conditions = {true, true, false};
  a.nodeName = "node-a";
  a.zone = "zone-a";
  a.zoneHints = {"zone-a"};
  a.nodeHints = {"node-a"};
  EndpointSliceEndpoint b;
  b.addresses = {ip("10.244.2.7")};
  b.conditions = {false, true, true};
  b.nodeName = "node-b";
  b.zone = "zone-b";
  EndpointSliceEndpoint c;  // conditions: {} leaves all three unset ("unknown")
  c.addresses = {ip("10.244.3.9")};
  c.hostname = "web-2";
  web.endpoints = {a, b, c};
  web.ports = {{"http", Protocol::kTCP, 8080, "http"},
               {"dns", Protocol::kUDP, 5353, ""},
               {"all", Protocol::kTCP, std::nullopt, ""}};
  // 2026-11-24T10:00:00.25Z
  web.lastChangeTriggerTimeNs = int64_t{1795514400} * 1'000'000'000 + 250'000'000;
  expectObject(all, "shop/web-x7k2p", web);
  EXPECT_EQ(web.serviceKey(), (NamespacedName{"shop", "web"}));

  EndpointSlice v6;
  v6.name = {"shop", "web-v6q9z"};
  v6.serviceName = "web";
  v6.addressType = AddressType::kIPv6;
  EndpointSliceEndpoint e6;
  e6.addresses = {ip("fd00:10:244:1::5")};
  e6.conditions = {true, true, false};
  e6.nodeName = "node-a";
  e6.zone = "zone-a";
  v6.endpoints = {e6};
  v6.ports = {{"", Protocol::kTCP, 8080, ""}};
  expectObject(all, "shop/web-v6q9z", v6);

  EndpointSlice fqdn;  // addresses of FQDN slices are not IPs: kept out of the model
  fqdn.name = {"shop", "db-fqdn"};
  fqdn.serviceName = "db";
  fqdn.addressType = AddressType::kFQDN;
  EndpointSliceEndpoint ef;
  ef.conditions.ready = true;
  fqdn.endpoints = {ef};
  fqdn.ports = {{"pg", Protocol::kTCP, 5432, ""}};
  expectObject(all, "shop/db-fqdn", fqdn);

  EndpointSlice empty;  // `endpoints: null` and `ports: null`, as the API serves an empty slice
  empty.name = {"shop", "api-m4n5b"};
  empty.serviceName = "api";
  expectObject(all, "shop/api-m4n5b", empty);

  const Decoded* orphan = findByName(all, "shop/orphan");
  ASSERT_NE(orphan, nullptr);
  EXPECT_EQ(orphan->outcome, Outcome::kIgnored);
  EXPECT_EQ(orphan->message,
            "items[4]: EndpointSlice shop/orphan: no kubernetes.io/service-name label: not part "
            "of any Service");
  EXPECT_EQ(orphan->key->kind, ObjectKind::kEndpointSlice);
}

TEST(DecoderIngresses, DecodesEveryFieldOfKubectlOutput) {
  std::vector<Decoded> all = decodeYaml(readTestdata("decoder_kubectl_ingresses.yaml"));
  ASSERT_EQ(all.size(), 4u);

  expectObject(all, "capstan", IngressClass{"capstan", "capstan.io/ingress-controller", true});
  expectObject(all, "nginx", IngressClass{"nginx", "k8s.io/ingress-nginx", false});
  EXPECT_EQ(findByName(all, "capstan")->key->kind, ObjectKind::kIngressClass);

  Ingress shop;
  shop.name = {"shop", "shop"};
  shop.ingressClassName = "capstan";
  shop.defaultBackend = serviceBackend("fallback", 80);
  IngressRule r1;
  r1.host = "shop.example.com";
  r1.paths = {{"/api", PathType::kPrefix, serviceBackend("api", 8080)},
              {"/checkout", PathType::kExact, serviceBackend("web", 0, "http")},
              {"/legacy/.*", PathType::kImplementationSpecific, serviceBackend("web", 0, "http")},
              {"/static", PathType::kPrefix, resourceBackend("StorageBucket", "static-assets")}};
  IngressRule r2;
  r2.host = "*.shop.example.com";
  // An ImplementationSpecific path may be left out: Capstan reads it as "/".
  r2.paths = {{"/", PathType::kImplementationSpecific, serviceBackend("tenant", 80)}};
  IngressRule r3;  // no host: every host
  r3.paths = {{"/", PathType::kPrefix, serviceBackend("web", 80)}};
  shop.rules = {r1, r2, r3};
  shop.tls = {{{"shop.example.com", "*.shop.example.com"}, "shop-tls"},
              {{"admin.example.com"}, ""}};
  shop.annotations = {{"capstan.io/load-balance", "maglev"}};
  expectObject(all, "shop/shop", shop);

  Ingress legacy;
  legacy.name = {"shop", "legacy"};
  legacy.classAnnotation = "capstan";
  legacy.defaultBackend = resourceBackend("StorageBucket", "maintenance-page");
  legacy.annotations = {{"kubernetes.io/ingress.class", "capstan"}};
  expectObject(all, "shop/legacy", legacy);
}

TEST(DecoderSecrets, DecodesTlsSecretsAndIgnoresOthers) {
  std::vector<Decoded> all = decodeYaml(readTestdata("decoder_kubectl_secrets.yaml"));
  ASSERT_EQ(all.size(), 4u);
  expectObject(all, "shop/shop-tls", TlsSecret{{"shop", "shop-tls"}, kCertPem, kKeyPem});
  // stringData: plain text, the same PEM.
  expectObject(all, "shop/admin-tls", TlsSecret{{"shop", "admin-tls"}, kCertPem, kKeyPem});

  const Decoded* opaque = findByName(all, "shop/db-password");
  ASSERT_NE(opaque, nullptr);
  EXPECT_EQ(opaque->outcome, Outcome::kIgnored);
  EXPECT_EQ(opaque->message,
            "items[1]: Secret shop/db-password: type \"Opaque\" is not used by Capstan (only "
            "kubernetes.io/tls)");
  const Decoded* token = findByName(all, "shop/capstan-token");
  ASSERT_NE(token, nullptr);
  EXPECT_EQ(token->outcome, Outcome::kIgnored);
  EXPECT_NE(token->message.find("\"kubernetes.io/service-account-token\" is not used"),
            std::string::npos)
      << token->message;

  // No type at all is an Opaque Secret.
  Decoded untyped = decodeOneYaml("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n");
  EXPECT_EQ(untyped.outcome, Outcome::kIgnored);
  EXPECT_EQ(untyped.message,
            "Secret default/s: type \"Opaque\" is not used by Capstan (only kubernetes.io/tls)");
  EXPECT_EQ(untyped.line, 1u);
}

TEST(DecoderNodes, DecodesEveryFieldOfKubectlOutput) {
  std::vector<Decoded> all = decodeYaml(readTestdata("decoder_kubectl_nodes.yaml"));
  ASSERT_EQ(all.size(), 4u);

  NodeInfo a;
  a.name = "node-a";
  a.zone = "zone-a";
  a.addresses = {ip("10.0.0.11"), ip("fd00::11"), ip("203.0.113.11")};  // not the Hostname
  a.podCIDRs = {cidr("10.244.1.0/24"), cidr("fd00:10:244:1::/64")};
  expectObject(all, "node-a", a);
  EXPECT_EQ(findByName(all, "node-a")->key->kind, ObjectKind::kNode);
  EXPECT_TRUE(findByName(all, "node-a")->key->name.ns.empty());

  NodeInfo b;  // being deleted; podCIDR without podCIDRs
  b.name = "node-b";
  b.zone = "zone-b";
  b.addresses = {ip("10.0.0.12")};
  b.podCIDRs = {cidr("10.244.2.0/24")};
  b.eligible = false;
  expectObject(all, "node-b", b);

  NodeInfo c;  // tainted by the cluster autoscaler
  c.name = "node-c";
  c.zone = "zone-b";
  c.addresses = {ip("10.0.0.13")};
  c.podCIDRs = {cidr("10.244.3.0/24")};
  c.eligible = false;
  expectObject(all, "node-c", c);

  NodeInfo d;  // only unschedulable: still eligible
  d.name = "node-d";
  expectObject(all, "node-d", d);
}

TEST(DecoderJson, FixturesDecodeTheSameFromJson) {
  size_t compared = 0;
  for (const char* fixture : kFixtures) {
    SCOPED_TRACE(fixture);
    std::vector<Value> docs = yamlDocuments(readTestdata(fixture));
    ASSERT_FALSE(docs.empty());
    std::string json;
    for (const Value& doc : docs) {
      support::appendJson(doc, json);
      json += '\n';
    }
    std::vector<Decoded> fromYaml = decodeAll(docs);
    std::vector<Decoded> fromJson = decodeAll(jsonDocuments(json));
    ASSERT_EQ(fromYaml.size(), fromJson.size());
    for (size_t i = 0; i < fromYaml.size(); ++i) {
      EXPECT_EQ(fromJson[i].outcome, fromYaml[i].outcome) << fromJson[i].message;
      EXPECT_EQ(fromJson[i].key, fromYaml[i].key);
      EXPECT_EQ(fromJson[i].message, fromYaml[i].message);
      EXPECT_TRUE(sameObject(fromJson[i].object, fromYaml[i].object)) << i;
      EXPECT_EQ(fromJson[i].line, 0u);  // JSON has no lines
      ++compared;
    }
  }
  EXPECT_EQ(compared, 7u + 5u + 4u + 4u + 4u);
}

TEST(DecoderJson, DecodesKubectlJsonWithIntegralFloats) {
  // JSON has one number type; 80.0 is the integer 80 as encoding/json reads it. 80.5 is not.
  Decoded d = decodeOneJson(R"({"apiVersion": "v1", "kind": "Service",
      "metadata": {"name": "web", "namespace": "shop"},
      "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80.0, "targetPort": 8.08e3}]}})");
  ASSERT_EQ(d.outcome, Outcome::kOk) << d.message;
  auto svc = objectAs<Service>(d);
  ASSERT_NE(svc, nullptr);
  ASSERT_EQ(svc->ports.size(), 1u);
  EXPECT_EQ(svc->ports[0].port, 80);
  EXPECT_EQ(svc->ports[0].targetPort, IntOrString(8080));

  Decoded bad = decodeOneJson(R"({"apiVersion": "v1", "kind": "Service",
      "metadata": {"name": "web", "namespace": "shop"},
      "spec": {"ports": [{"port": 80.5}, {"port": 1e300, "name": "b"}]}})");
  EXPECT_EQ(bad.outcome, Outcome::kInvalid);
  EXPECT_EQ(bad.message,
            "Service shop/web: spec.ports[0].name: required when a Service has several ports; "
            "spec.ports[0].port: expected an integer, got a number; "
            "spec.ports[1].port: expected an integer, got a number");
  EXPECT_EQ(bad.line, 0u);
}

// --- Lists
// ----------------------------------------------------------------------------------------

TEST(DecoderLists, ApiServerListsImplyTheKindOfTheirItems) {
  // The API server's list responses leave kind and apiVersion out of every item.
  std::vector<Decoded> all = decodeAll(jsonDocuments(readTestdata("decoder_api_lists.json")));
  ASSERT_EQ(all.size(), 3u);
  for (const Decoded& d : all) EXPECT_EQ(d.outcome, Outcome::kOk) << d.message;

  Service web;
  web.name = {"shop", "web"};
  web.clusterIPs = {ip("10.96.10.10")};
  web.ports = {port("http", Protocol::kTCP, 80, 8080, 0, "http")};
  expectObject(all, "shop/web", web);

  Service mail;
  mail.name = {"shop", "mail"};
  mail.type = ServiceType::kExternalName;
  mail.externalName = "mail.example.com";
  expectObject(all, "shop/mail", mail);

  const Decoded* slice = findByName(all, "shop/web-x7k2p");
  ASSERT_NE(slice, nullptr);
  EXPECT_EQ(slice->key->kind, ObjectKind::kEndpointSlice);
  auto s = objectAs<EndpointSlice>(*slice);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->lastChangeTriggerTimeNs, int64_t{1795514400} * 1'000'000'000);
  ASSERT_EQ(s->endpoints.size(), 1u);
  EXPECT_EQ(s->endpoints[0].nodeName, "node-a");
}

TEST(DecoderLists, ExpandsListsAndNamesTheFaultyItem) {
  std::vector<Decoded> all = decodeYaml(
      "apiVersion: v1\n"
      "kind: List\n"
      "items:\n"
      "- apiVersion: v1\n"
      "  kind: Service\n"
      "  metadata: {name: a}\n"
      "  spec: {ports: [{port: 80}]}\n"
      "- metadata: {name: no-kind}\n"  // a plain List implies nothing
      "- apiVersion: apps/v1\n"
      "  kind: Deployment\n"
      "  metadata: {name: web}\n"
      "- apiVersion: v1\n"
      "  kind: Service\n"
      "  metadata: {name: b}\n"
      "  spec: {ports: [{port: 0}]}\n");
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].outcome, Outcome::kOk);
  EXPECT_EQ(all[1].outcome, Outcome::kInvalid);
  EXPECT_EQ(all[1].message, "items[1]: kind: required; apiVersion: required");
  EXPECT_EQ(all[1].line, 8u);
  EXPECT_EQ(all[2].outcome, Outcome::kIgnored);
  EXPECT_EQ(all[2].message,
            "items[2]: Deployment web: kind not used by Capstan (it reads Service, EndpointSlice, "
            "Ingress, IngressClass, Secret and Node)");
  EXPECT_EQ(all[3].outcome, Outcome::kInvalid);
  EXPECT_EQ(all[3].message,
            "items[3]: Service default/b: spec.ports[0].port: must be between 1 and 65535, got 0");
  EXPECT_EQ(all[3].line, 15u);
  ASSERT_TRUE(all[3].key);
  EXPECT_EQ(all[3].key->toString(), "Service default/b");

  // A typed list: items that name their kind keep it.
  std::vector<Decoded> typed = decodeYaml(
      "apiVersion: v1\nkind: ServiceList\nitems:\n"
      "- metadata: {name: implied}\n  spec: {ports: [{port: 80}]}\n"
      "- kind: Node\n  apiVersion: v1\n  metadata: {name: node-a}\n");
  ASSERT_EQ(typed.size(), 2u);
  EXPECT_EQ(typed[0].outcome, Outcome::kOk) << typed[0].message;
  EXPECT_EQ(typed[0].key->kind, ObjectKind::kService);
  EXPECT_EQ(typed[1].outcome, Outcome::kOk) << typed[1].message;
  EXPECT_EQ(typed[1].key->kind, ObjectKind::kNode);

  // An IngressList of another version: the implied apiVersion is checked like a written one.
  Decoded old = decodeOneYaml(
      "apiVersion: networking.k8s.io/v1beta1\nkind: IngressList\nitems:\n"
      "- metadata: {name: x, namespace: shop}\n  spec: {backend: {serviceName: a, servicePort: "
      "80}}\n");
  EXPECT_EQ(old.outcome, Outcome::kInvalid);
  EXPECT_EQ(old.message,
            "items[0]: Ingress shop/x: apiVersion: apiVersion \"networking.k8s.io/v1beta1\" is not "
            "supported for Ingress (use networking.k8s.io/v1)");
}

TEST(DecoderLists, EmptyAndMalformedLists) {
  EXPECT_TRUE(decodeYaml("apiVersion: v1\nkind: List\nitems: []\n").empty());
  Decoded bad = decodeOneYaml("apiVersion: v1\nkind: ServiceList\nitems:\n  a: 1\n");
  EXPECT_EQ(bad.outcome, Outcome::kInvalid);
  EXPECT_EQ(bad.message, "ServiceList: items: expected a list, got an object");
  EXPECT_EQ(bad.line, 4u);
  Decoded nullItems = decodeOneYaml("apiVersion: v1\nkind: List\nitems: null\n");
  EXPECT_EQ(nullItems.outcome, Outcome::kInvalid);
  EXPECT_EQ(nullItems.message, "List: items: expected a list, got null");
  EXPECT_EQ(nullItems.line, 3u);
  // A "List" kind without items is just an unknown kind.
  Decoded noItems = decodeOneYaml("apiVersion: v1\nkind: List\n");
  EXPECT_EQ(noItems.outcome, Outcome::kIgnored);
  EXPECT_FALSE(noItems.key);
}

// --- Identity, namespaces, ignored objects
// ---------------------------------------------------------

TEST(DecoderOptions, UsesTheDefaultNamespaceForObjectsWithoutOne) {
  ObjectDecoder decoder(DecoderOptions{"prod"});
  Decoded d = decodeOneYaml(
      "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: \"\"\n"
      "spec:\n  ports: [{port: 80}]\n",
      decoder);
  ASSERT_EQ(d.outcome, Outcome::kOk) << d.message;
  EXPECT_EQ(d.key->toString(), "Service prod/web");
  EXPECT_EQ(objectAs<Service>(d)->name, (NamespacedName{"prod", "web"}));
  // Cluster-scoped kinds have none, even if the manifest writes one.
  Decoded node = decodeOneYaml(
      "apiVersion: v1\nkind: Node\nmetadata: {name: node-a, namespace: shop}\n", decoder);
  ASSERT_EQ(node.outcome, Outcome::kOk) << node.message;
  EXPECT_EQ(node.key->toString(), "Node node-a");
}

TEST(DecoderIgnored, ServiceProxyNameLabelHandsObjectsToAnotherProxy) {
  Decoded svc = decodeOneYaml(
      "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels:\n"
      "    service.kubernetes.io/service-proxy-name: other-proxy\nspec:\n  ports: [{port: 80}]\n");
  EXPECT_EQ(svc.outcome, Outcome::kIgnored);
  EXPECT_EQ(svc.message,
            "Service default/web: label service.kubernetes.io/service-proxy-name=other-proxy hands "
            "it to another proxy");
  ASSERT_TRUE(svc.key);
  EXPECT_EQ(svc.key->toString(), "Service default/web");
  Decoded slice = decodeOneYaml(
      "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-1\n"
      "  labels:\n    kubernetes.io/service-name: web\n"
      "    service.kubernetes.io/service-proxy-name: other-proxy\naddressType: IPv4\n");
  EXPECT_EQ(slice.outcome, Outcome::kIgnored);
  EXPECT_TRUE(slice.message.starts_with("EndpointSlice default/web-1: label ")) << slice.message;
  // An empty value names no proxy.
  Decoded empty = decodeOneYaml(
      "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels:\n"
      "    service.kubernetes.io/service-proxy-name: \"\"\nspec:\n  ports: [{port: 80}]\n");
  EXPECT_EQ(empty.outcome, Outcome::kOk) << empty.message;
}

TEST(DecoderIgnored, UnknownKindsAreIgnoredWithTheirName) {
  struct Case {
    const char* yaml;
    const char* message;
  };
  const Case cases[] = {
      {"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
       "Deployment web: kind not used by Capstan (it reads Service, EndpointSlice, Ingress, "
       "IngressClass, Secret and Node)"},
      {"apiVersion: v1\nkind: Endpoints\nmetadata: {name: web}\n",
       "Endpoints web: kind not used by Capstan (it reads Service, EndpointSlice, Ingress, "
       "IngressClass, Secret and Node)"},
      {"apiVersion: v1\nkind: ConfigMap\n",
       "ConfigMap: kind not used by Capstan (it reads Service, EndpointSlice, Ingress, "
       "IngressClass, Secret and Node)"},
      {"apiVersion: v1\nkind: service\nmetadata: {name: web}\n",  // kinds are case-sensitive
       "service web: kind not used by Capstan (it reads Service, EndpointSlice, Ingress, "
       "IngressClass, Secret and Node)"},
  };
  for (const Case& c : cases) {
    Decoded d = decodeOneYaml(c.yaml);
    EXPECT_EQ(d.outcome, Outcome::kIgnored) << c.yaml;
    EXPECT_EQ(d.message, c.message);
    EXPECT_FALSE(d.key);
    EXPECT_EQ(d.line, 1u);
  }
}

// --- Bad inputs: every faulty field named
// ---------------------------------------------------------

// A Service named shop/web; `spec` starts at line 7 (after `extraMeta`'s lines).
std::string service(const std::string& spec, const std::string& extraMeta = "") {
  return "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\n" + extraMeta +
         "spec:\n" + spec;
}

// An EndpointSlice shop/web-abc of Service web; its own fields start at line 8.
std::string slice(const std::string& body) {
  return "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-abc\n"
         "  namespace: shop\n  labels:\n    kubernetes.io/service-name: web\n" +
         body;
}

// An Ingress shop/shop; `spec` starts at line 7.
std::string ingress(const std::string& spec) {
  return "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: shop\n"
         "  namespace: shop\nspec:\n" +
         spec;
}

// One path of an Ingress rule, with a backend; the path's fields start at line 11.
std::string ingressPath(const std::string& pathFields, const std::string& backend =
                                                           "        backend:\n"
                                                           "          service:\n"
                                                           "            name: web\n"
                                                           "            port: {number: 80}\n") {
  return ingress("  rules:\n  - host: shop.example.com\n    http:\n      paths:\n      - " +
                 pathFields + backend);
}

// A kubernetes.io/tls Secret shop/tls; its data starts at line 7.
std::string secret(const std::string& body) {
  return "apiVersion: v1\nkind: Secret\nmetadata:\n  name: tls\n  namespace: shop\n"
         "type: kubernetes.io/tls\n" +
         body;
}

// A Node node-a; its fields start at line 5.
std::string node(const std::string& body) {
  return "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-a\n" + body;
}

struct BadCase {
  const char* what;
  std::string yaml;
  std::string message;  // the whole Decoded::message
  uint32_t line;        // the first faulty field's line
  bool keySet = true;   // whether the name was readable
};

void runBadCases(const std::vector<BadCase>& cases) {
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.what);
    Decoded d = decodeOneYaml(c.yaml);
    EXPECT_EQ(d.outcome, Outcome::kInvalid);
    EXPECT_EQ(d.message, c.message) << c.yaml;
    EXPECT_EQ(d.line, c.line) << c.yaml;
    EXPECT_EQ(d.key.has_value(), c.keySet);
    // The message leads with the object's identity whenever it is known.
    if (d.key) {
      EXPECT_TRUE(d.message.starts_with(d.key->toString() + ": ")) << d.message;
    }
    EXPECT_TRUE(std::visit([](const auto& p) { return p == nullptr; }, d.object))
        << "an invalid object must not carry a value";
  }
}

TEST(DecoderBadInput, WrongTypes) {
  runBadCases({
      {"port as a string", service("  ports:\n  - port: \"80\"\n"),
       "Service shop/web: spec.ports[0].port: expected an integer, got a string", 8},
      {"ports as a map", service("  ports:\n    port: 80\n"),
       "Service shop/web: spec.ports: expected a list, got an object", 8},
      {"ports as a string", service("  ports: \"80\"\n"),
       "Service shop/web: spec.ports: expected a list, got a string", 7},
      {"a port entry that is not an object", service("  ports:\n  - 80\n  - null\n"),
       "Service shop/web: spec.ports[0]: expected an object, got an integer; spec.ports[1]: "
       "expected an object, got null",
       8},
      {"label value as an integer",
       service("  ports: [{port: 80}]\n", "  labels:\n    app: web\n    tier: 3\n"),
       "Service shop/web: metadata.labels.tier: expected a string, got an integer", 8},
      {"annotations as a list", service("  ports: [{port: 80}]\n", "  annotations: [a, b]\n"),
       "Service shop/web: metadata.annotations: expected an object, got a list", 6},
      {"spec as a string", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: web\n",
       "Service default/web: spec: expected an object, got a string", 4},
      {"metadata as a list", "apiVersion: v1\nkind: Service\nmetadata: [web]\nspec: {}\n",
       "Service: metadata: expected an object, got a list; spec.ports: required (a Service needs "
       "at least one port)",
       3, false},
      {"kind as an integer", "apiVersion: v1\nkind: 5\n", "kind: expected a string, got an integer",
       2, false},
      {"name as an integer", "apiVersion: v1\nkind: Node\nmetadata:\n  name: 5\n",
       "Node: metadata.name: expected a string, got an integer", 4, false},
      {"namespace as a boolean",
       "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: true\n",
       "Secret: metadata.namespace: expected a string, got a boolean", 5, false},
      {"sessionAffinityConfig timeout as a string",
       service("  ports: [{port: 80}]\n  sessionAffinity: ClientIP\n  sessionAffinityConfig:\n"
               "    clientIP:\n      timeoutSeconds: 3h\n"),
       "Service shop/web: spec.sessionAffinityConfig.clientIP.timeoutSeconds: expected an "
       "integer, got a string",
       11},
      {"externalIPs as a string", service("  ports: [{port: 80}]\n  externalIPs: 192.0.2.1\n"),
       "Service shop/web: spec.externalIPs: expected a list, got a string", 8},
      {"slice conditions.ready as a string",
       slice("addressType: IPv4\nendpoints:\n- addresses: [10.0.0.1]\n  conditions:\n"
             "    ready: \"true\"\n"),
       "EndpointSlice shop/web-abc: endpoints[0].conditions.ready: expected a boolean, got a "
       "string",
       12},
      {"slice addresses as a string",
       slice("addressType: IPv4\nendpoints:\n- addresses: 10.0.0.1\n"),
       "EndpointSlice shop/web-abc: endpoints[0].addresses: expected a list, got a string", 10},
      {"ingress rules as an object", ingress("  rules:\n    host: a.example.com\n"),
       "Ingress shop/shop: spec.rules: expected a list, got an object", 8},
      {"secret type as an integer",
       "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: shop}\ntype: 5\n",
       "Secret shop/s: type: expected a string, got an integer", 4},
      {"secret data as a list", secret("data: [a]\n"),
       "Secret shop/tls: data: expected an object, got a list", 7},
      {"node taints as an object", node("spec:\n  taints:\n    key: x\n"),
       "Node node-a: spec.taints: expected a list, got an object", 7},
  });
}

TEST(DecoderBadInput, MissingRequiredFields) {
  runBadCases({
      {"metadata.name",
       "apiVersion: v1\nkind: Service\nmetadata:\n  namespace: shop\nspec:\n"
       "  ports: [{port: 80}]\n",
       "Service: metadata.name: required", 4, false},
      {"metadata.name empty", "apiVersion: v1\nkind: Node\nmetadata:\n  name: \"\"\n",
       "Node: metadata.name: required (must not be empty)", 4, false},
      {"metadata",
       "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nspec: {controller: x.io/y}\n",
       "IngressClass: metadata: required", 1, false},
      {"spec.ports", service("  clusterIP: 10.96.0.10\n"),
       "Service shop/web: spec.ports: required (a Service needs at least one port)", 7},
      {"spec.ports empty", service("  ports: []\n"),
       "Service shop/web: spec.ports: required (a Service needs at least one port)", 7},
      {"spec", "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n",
       "Service default/web: spec: required", 1},
      {"port number", service("  ports:\n  - name: http\n"),
       "Service shop/web: spec.ports[0].port: required", 8},
      {"externalName", service("  type: ExternalName\n"),
       "Service shop/web: spec.externalName: required", 7},
      {"apiVersion", "kind: Service\nmetadata: {name: web}\n",
       "Service default/web: apiVersion: required", 1},
      {"kind", "apiVersion: v1\nmetadata: {name: web}\n", "kind: required", 1, false},
      {"kind and apiVersion", "metadata: {name: web}\n", "kind: required; apiVersion: required", 1,
       false},
      {"addressType", slice("endpoints: []\n"), "EndpointSlice shop/web-abc: addressType: required",
       1},
      {"endpoint addresses", slice("addressType: IPv4\nendpoints:\n- nodeName: node-a\n"),
       "EndpointSlice shop/web-abc: endpoints[0].addresses: required (at least one address)", 10},
      {"endpoint addresses empty", slice("addressType: IPv4\nendpoints:\n- addresses: []\n"),
       "EndpointSlice shop/web-abc: endpoints[0].addresses: required (at least one address)", 10},
      {"hint name",
       slice("addressType: IPv4\nendpoints:\n- addresses: [10.0.0.1]\n  hints:\n"
             "    forZones:\n    - {}\n"),
       "EndpointSlice shop/web-abc: endpoints[0].hints.forZones[0].name: required", 13},
      {"pathType", ingressPath("path: /api\n"),
       "Ingress shop/shop: spec.rules[0].http.paths[0].pathType: required", 11},
      {"path for Prefix", ingressPath("pathType: Prefix\n"),
       "Ingress shop/shop: spec.rules[0].http.paths[0].path: required for pathType Prefix (an "
       "absolute path, starting with '/')",
       11},
      {"path for Exact", ingressPath("pathType: Exact\n        path: \"\"\n"),
       "Ingress shop/shop: spec.rules[0].http.paths[0].path: required for pathType Exact (an "
       "absolute path, starting with '/')",
       12},
      {"paths", ingress("  rules:\n  - host: a.example.com\n    http:\n      paths: []\n"),
       "Ingress shop/shop: spec.rules[0].http.paths: required (at least one path)", 10},
      {"backend", ingressPath("path: /\n        pathType: Prefix\n", ""),
       "Ingress shop/shop: spec.rules[0].http.paths[0].backend: required", 11},
      {"backend port",
       ingressPath("path: /\n        pathType: Prefix\n",
                   "        backend:\n          service:\n            name: web\n"),
       "Ingress shop/shop: spec.rules[0].http.paths[0].backend.service.port: required", 15},
      {"rules or defaultBackend", ingress("  ingressClassName: capstan\n"),
       "Ingress shop/shop: spec: either defaultBackend or rules must be specified", 7},
      {"resource kind", ingress("  defaultBackend:\n    resource:\n      name: bucket\n"),
       "Ingress shop/shop: spec.defaultBackend.resource.kind: required", 9},
      {"ingressclass controller",
       "apiVersion: networking.k8s.io/v1\nkind: IngressClass\n"
       "metadata: {name: capstan}\nspec:\n  parameters: {}\n",
       "IngressClass capstan: spec.controller: required", 5},
      {"secret tls.key",
       secret("data:\n  tls.crt: " + std::string("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==") +
              "\n"),
       "Secret shop/tls: data.tls.key: required: a kubernetes.io/tls Secret holds tls.key", 8},
      {"secret data", secret(""),
       "Secret shop/tls: data.tls.crt: required: a kubernetes.io/tls Secret holds tls.crt; "
       "data.tls.key: required: a kubernetes.io/tls Secret holds tls.key",
       1},
  });
}

TEST(DecoderBadInput, UnsupportedApiVersions) {
  runBadCases({
      {"Ingress v1beta1",
       "apiVersion: networking.k8s.io/v1beta1\nkind: Ingress\nmetadata:\n  name: shop\n"
       "  namespace: shop\nspec:\n  backend:\n    serviceName: web\n    servicePort: 80\n",
       "Ingress shop/shop: apiVersion: apiVersion \"networking.k8s.io/v1beta1\" is not supported "
       "for Ingress (use networking.k8s.io/v1)",
       1},
      {"Ingress extensions/v1beta1",
       "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: shop}\n",
       "Ingress default/shop: apiVersion: apiVersion \"extensions/v1beta1\" is not supported for "
       "Ingress (use networking.k8s.io/v1)",
       1},
      {"EndpointSlice v1beta1",
       "apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: s}\n",
       "EndpointSlice default/s: apiVersion: apiVersion \"discovery.k8s.io/v1beta1\" is not "
       "supported for EndpointSlice (use discovery.k8s.io/v1)",
       1},
      {"Service v2 with a bad name too", "apiVersion: v2\nkind: Service\nmetadata: {name: Web}\n",
       "Service: apiVersion: apiVersion \"v2\" is not supported for Service (use v1); "
       "metadata.name: invalid name \"Web\" (must be a DNS-1035 label: lower-case letters, "
       "digits and '-', starting with a letter, at most 63 characters)",
       1, false},
  });
}

TEST(DecoderBadInput, InvalidAddresses) {
  runBadCases({
      {"clusterIP", service("  clusterIP: 10.96.0.300\n  ports: [{port: 80}]\n"),
       "Service shop/web: spec.clusterIP: invalid IP address \"10.96.0.300\"", 7},
      {"clusterIP with a leading zero", service("  clusterIP: 010.96.0.1\n  ports: [{port: 80}]\n"),
       "Service shop/web: spec.clusterIP: invalid IP address \"010.96.0.1\"", 7},
      {"clusterIP unspecified", service("  clusterIP: 0.0.0.0\n  ports: [{port: 80}]\n"),
       "Service shop/web: spec.clusterIP: must not be the unspecified address \"0.0.0.0\"", 7},
      {"clusterIPs first entry differs",
       service("  clusterIP: 10.96.0.10\n  clusterIPs: [10.96.0.11]\n  ports: [{port: 80}]\n"),
       "Service shop/web: spec.clusterIPs: first entry \"10.96.0.11\" must match spec.clusterIP "
       "\"10.96.0.10\"",
       8},
      {"clusterIPs of one family",
       service("  clusterIP: 10.96.0.10\n  clusterIPs: [10.96.0.10, 10.96.0.11]\n"
               "  ports: [{port: 80}]\n"),
       "Service shop/web: spec.clusterIPs: both entries are IPv4; a dual-stack Service has one "
       "of each family",
       8},
      {"three clusterIPs",
       service("  clusterIPs: [10.96.0.10, fd00::10, 10.96.0.12]\n  ports: [{port: 80}]\n"),
       "Service shop/web: spec.clusterIPs: at most two entries (one per IP family); "
       "spec.clusterIPs: both entries are IPv4; a dual-stack Service has one of each family",
       7},
      {"clusterIPs second entry invalid",
       service("  clusterIPs: [10.96.0.10, 'fd00::g']\n  ports: [{port: 80}]\n"),
       "Service shop/web: spec.clusterIPs: invalid IP address \"fd00::g\"", 7},
      {"headless NodePort", service("  type: NodePort\n  clusterIP: None\n  ports: [{port: 80}]\n"),
       "Service shop/web: spec.clusterIP: may not be set to \"None\" for NodePort Services", 8},
      {"headless LoadBalancer", service("  type: LoadBalancer\n  clusterIPs: [None]\n"),
       "Service shop/web: spec.clusterIPs: may not be set to \"None\" for LoadBalancer Services",
       8},
      {"ExternalName with a clusterIP",
       service("  type: ExternalName\n  externalName: a.example.com\n  clusterIP: 10.96.0.1\n"),
       "Service shop/web: spec.clusterIP: may not be set for ExternalName Services", 9},
      {"externalIPs",
       service("  ports: [{port: 80}]\n  externalIPs:\n  - 192.0.2.1\n  - 192.0.2\n  - '::'\n"),
       "Service shop/web: spec.externalIPs[1]: invalid IP address \"192.0.2\"; "
       "spec.externalIPs[2]: must not be the unspecified address",
       10},
      {"load balancer ingress",
       service("  ports: [{port: 80}]\n", "") +
           "status:\n  loadBalancer:\n    ingress:\n    - ip: 198.51.100.300\n"
           "    - ip: 198.51.100.1\n      ipMode: Direct\n",
       "Service shop/web: status.loadBalancer.ingress[0].ip: invalid IP address "
       "\"198.51.100.300\"; status.loadBalancer.ingress[1].ipMode: unsupported value \"Direct\" "
       "(supported: VIP, Proxy)",
       11},
      {"endpoint address", slice("addressType: IPv4\nendpoints:\n- addresses: [10.0.0.256]\n"),
       "EndpointSlice shop/web-abc: endpoints[0].addresses[0]: invalid IP address \"10.0.0.256\"",
       10},
      {"IPv6 address in an IPv4 slice",
       slice("addressType: IPv4\nendpoints:\n- addresses:\n  - 10.0.0.1\n  - fd00::1\n"),
       "EndpointSlice shop/web-abc: endpoints[0].addresses[1]: address fd00::1 is not IPv4 (the "
       "slice's addressType)",
       12},
      {"IPv4 address in an IPv6 slice",
       slice("addressType: IPv6\nendpoints:\n- addresses: [10.0.0.1]\n"),
       "EndpointSlice shop/web-abc: endpoints[0].addresses[0]: address 10.0.0.1 is not IPv6 (the "
       "slice's addressType)",
       10},
      {"unknown addressType reports only itself",
       slice("addressType: IPV4\nendpoints:\n- addresses: ['fd00::1', 10.0.0.1]\n"),
       "EndpointSlice shop/web-abc: addressType: unsupported value \"IPV4\" (supported: IPv4, "
       "IPv6, FQDN)",
       8},
      {"too many addresses",
       slice("addressType: IPv4\nendpoints:\n- addresses: [" +
             [] {
               std::string s;
               for (int i = 1; i <= 101; ++i)
                 s += (i > 1 ? ", 10.0.0." : "10.0.0.") + std::to_string(i);
               return s;
             }() +
             "]\n"),
       "EndpointSlice shop/web-abc: endpoints[0].addresses: at most 100 addresses", 10},
      {"node address", node("status:\n  addresses:\n  - type: InternalIP\n    address: node-a\n"),
       "Node node-a: status.addresses[0].address: invalid IP address \"node-a\"", 8},
  });
}

TEST(DecoderBadInput, InvalidPortsAndProtocols) {
  runBadCases({
      {"port 0", service("  ports: [{port: 0}]\n"),
       "Service shop/web: spec.ports[0].port: must be between 1 and 65535, got 0", 7},
      {"port 70000", service("  ports:\n  - port: 70000\n"),
       "Service shop/web: spec.ports[0].port: must be between 1 and 65535, got 70000", 8},
      {"port -1", service("  ports:\n  - port: -1\n"),
       "Service shop/web: spec.ports[0].port: must be between 1 and 65535, got -1", 8},
      {"port 80.5", service("  ports:\n  - port: 80.5\n"),
       "Service shop/web: spec.ports[0].port: expected an integer, got a number", 8},
      {"port out of int64", service("  ports:\n  - port: 99999999999999999999\n"),
       "Service shop/web: spec.ports[0].port: expected an integer, got a number", 8},
      {"protocol tcp", service("  ports:\n  - port: 80\n    protocol: tcp\n"),
       "Service shop/web: spec.ports[0].protocol: unsupported value \"tcp\" (supported: TCP, "
       "UDP, SCTP)",
       9},
      {"protocol HTTP", service("  ports:\n  - port: 80\n    protocol: HTTP\n"),
       "Service shop/web: spec.ports[0].protocol: unsupported value \"HTTP\" (supported: TCP, "
       "UDP, SCTP)",
       9},
      {"duplicate ports",
       service("  ports:\n  - {name: a, port: 80}\n  - {name: b, port: 80, protocol: TCP}\n"
               "  - {name: c, port: 80, protocol: UDP}\n"),
       "Service shop/web: spec.ports[1].port: duplicate port 80/TCP", 9},
      {"duplicate port names",
       service("  ports:\n  - {name: http, port: 80}\n  - {name: http, port: 81}\n"),
       "Service shop/web: spec.ports[1].name: duplicate port name \"http\"", 9},
      {"missing port name among several",
       service("  ports:\n  - {name: http, port: 80}\n  - {port: 81}\n  - {port: 82}\n"),
       "Service shop/web: spec.ports[1].name: required when a Service has several ports; "
       "spec.ports[2].name: required when a Service has several ports",
       9},
      {"invalid port name", service("  ports:\n  - {name: HTTP, port: 80}\n"),
       "Service shop/web: spec.ports[0].name: invalid port name \"HTTP\" (must be a DNS-1123 "
       "label)",
       8},
      {"nodePort on a ClusterIP Service", service("  ports:\n  - port: 80\n    nodePort: 30080\n"),
       "Service shop/web: spec.ports[0].nodePort: may only be set when type is NodePort or "
       "LoadBalancer",
       9},
      {"duplicate nodePorts",
       service("  type: NodePort\n  ports:\n  - {name: a, port: 80, nodePort: 30080}\n"
               "  - {name: b, port: 81, nodePort: 30080}\n"),
       "Service shop/web: spec.ports[1].nodePort: duplicate nodePort 30080", 10},
      {"nodePort 70000", service("  type: NodePort\n  ports:\n  - {port: 80, nodePort: 70000}\n"),
       "Service shop/web: spec.ports[0].nodePort: must be between 0 and 65535, got 70000", 9},
      {"quoted number as targetPort", service("  ports:\n  - port: 80\n    targetPort: \"8080\"\n"),
       "Service shop/web: spec.ports[0].targetPort: invalid port name \"8080\" (a number must not "
       "be quoted; a name needs a letter)",
       9},
      {"targetPort name too long",
       service("  ports:\n  - port: 80\n    targetPort: a-very-long-port-name\n"),
       "Service shop/web: spec.ports[0].targetPort: invalid port name \"a-very-long-port-name\" "
       "(an IANA service name: at most 15 lower-case letters, digits and '-', with at least one "
       "letter)",
       9},
      {"targetPort 70000", service("  ports:\n  - port: 80\n    targetPort: 70000\n"),
       "Service shop/web: spec.ports[0].targetPort: must be between 0 and 65535, got 70000", 9},
      {"healthCheckNodePort", service("  ports: [{port: 80}]\n  healthCheckNodePort: 65536\n"),
       "Service shop/web: spec.healthCheckNodePort: must be between 0 and 65535, got 65536", 8},
      {"slice port 0", slice("addressType: IPv4\nports:\n- port: 0\n"),
       "EndpointSlice shop/web-abc: ports[0].port: must be between 1 and 65535, got 0", 10},
      {"slice unnamed ports twice", slice("addressType: IPv4\nports:\n- port: 80\n- port: 81\n"),
       "EndpointSlice shop/web-abc: ports[1].name: duplicate port name \"\"", 11},
      {"slice protocol", slice("addressType: IPv4\nports:\n- port: 80\n  protocol: udp\n"),
       "EndpointSlice shop/web-abc: ports[0].protocol: unsupported value \"udp\" (supported: TCP, "
       "UDP, SCTP)",
       11},
      {"slice port name", slice("addressType: IPv4\nports:\n- name: Http_1\n  port: 80\n"),
       "EndpointSlice shop/web-abc: ports[0].name: invalid port name \"Http_1\" (must be a "
       "DNS-1123 label)",
       10},
  });
}

TEST(DecoderBadInput, InvalidEnumsAndRanges) {
  runBadCases({
      {"type", service("  type: Internal\n  ports: [{port: 80}]\n"),
       "Service shop/web: spec.type: unsupported value \"Internal\" (supported: ClusterIP, "
       "NodePort, LoadBalancer, ExternalName)",
       7},
      {"sessionAffinity", service("  ports: [{port: 80}]\n  sessionAffinity: Sticky\n"),
       "Service shop/web: spec.sessionAffinity: unsupported value \"Sticky\" (supported: None, "
       "ClientIP)",
       8},
      {"timeoutSeconds 0",
       service("  ports: [{port: 80}]\n  sessionAffinity: ClientIP\n"
               "  sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}\n"),
       "Service shop/web: spec.sessionAffinityConfig.clientIP.timeoutSeconds: must be between 1 "
       "and 86400, got 0",
       9},
      {"timeoutSeconds 86401",
       service("  ports: [{port: 80}]\n  sessionAffinity: ClientIP\n"
               "  sessionAffinityConfig: {clientIP: {timeoutSeconds: 86401}}\n"),
       "Service shop/web: spec.sessionAffinityConfig.clientIP.timeoutSeconds: must be between 1 "
       "and 86400, got 86401",
       9},
      {"externalTrafficPolicy",
       service("  type: NodePort\n  ports: [{port: 80}]\n  externalTrafficPolicy: Global\n"),
       "Service shop/web: spec.externalTrafficPolicy: unsupported value \"Global\" (supported: "
       "Cluster, Local)",
       9},
      {"internalTrafficPolicy", service("  ports: [{port: 80}]\n  internalTrafficPolicy: local\n"),
       "Service shop/web: spec.internalTrafficPolicy: unsupported value \"local\" (supported: "
       "Cluster, Local)",
       8},
      {"trafficDistribution", service("  ports: [{port: 80}]\n  trafficDistribution: Nearest\n"),
       "Service shop/web: spec.trafficDistribution: unsupported value \"Nearest\" (supported: "
       "PreferClose, PreferSameZone, PreferSameNode)",
       8},
      {"pathType", ingressPath("path: /\n        pathType: Regex\n"),
       "Ingress shop/shop: spec.rules[0].http.paths[0].pathType: unsupported value \"Regex\" "
       "(supported: Exact, Prefix, ImplementationSpecific)",
       12},
  });
}

TEST(DecoderBadInput, InvalidNames) {
  const std::string long64(64, 'a');
  runBadCases({
      {"uppercase Service name",
       "apiVersion: v1\nkind: Service\nmetadata:\n  name: Web\nspec:\n  ports: [{port: 80}]\n",
       "Service: metadata.name: invalid name \"Web\" (must be a DNS-1035 label: lower-case "
       "letters, digits and '-', starting with a letter, at most 63 characters)",
       4, false},
      {"Service name starting with a digit",
       "apiVersion: v1\nkind: Service\nmetadata:\n  name: 1web\nspec:\n  ports: [{port: 80}]\n",
       "Service: metadata.name: invalid name \"1web\" (must be a DNS-1035 label: lower-case "
       "letters, digits and '-', starting with a letter, at most 63 characters)",
       4, false},
      {"Service name with a dot (a subdomain is not a label)",
       "apiVersion: v1\nkind: Service\nmetadata:\n  name: web.shop\nspec:\n  ports: [{port: 80}]\n",
       "Service: metadata.name: invalid name \"web.shop\" (must be a DNS-1035 label: lower-case "
       "letters, digits and '-', starting with a letter, at most 63 characters)",
       4, false},
      {"Service name of 64 characters",
       "apiVersion: v1\nkind: Service\nmetadata:\n  name: " + long64 +
           "\nspec:\n  ports: [{port: 80}]\n",
       "Service: metadata.name: invalid name \"" + long64 +
           "\" (must be a DNS-1035 label: lower-case letters, digits and '-', starting with a "
           "letter, at most 63 characters)",
       4, false},
      {"Node name of 254 characters",
       "apiVersion: v1\nkind: Node\nmetadata:\n  name: " + std::string(254, 'n') + "\n",
       "Node: metadata.name: invalid name \"" + std::string(80, 'n') +
           "...\" (must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', at most "
           "253 characters)",
       4, false},
      {"slice name with an underscore",
       "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web_1\n"
       "addressType: IPv4\n",
       "EndpointSlice: metadata.name: invalid name \"web_1\" (must be a DNS-1123 subdomain: "
       "lower-case letters, digits, '-' and '.', at most 253 characters)",
       4, false},
      {"namespace uppercase",
       "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: Shop\nspec:\n"
       "  ports: [{port: 80}]\n",
       "Service: metadata.namespace: invalid namespace \"Shop\" (must be a DNS-1123 label)", 5,
       false},
      {"Ingress backend Service name",
       ingress("  defaultBackend:\n    service:\n      name: Web\n      port: {number: 80}\n"),
       "Ingress shop/shop: spec.defaultBackend.service.name: invalid Service name \"Web\" (must be "
       "a DNS-1035 label)",
       9},
  });
}

TEST(DecoderBadInput, InvalidCidrs) {
  runBadCases({
      {"source range prefix too long",
       service("  type: LoadBalancer\n  ports: [{port: 80}]\n  loadBalancerSourceRanges:\n"
               "  - 10.0.0.0/33\n  - 10.0.0.0\n  - 10.0.0.0/08\n  - ' '\n"),
       "Service shop/web: spec.loadBalancerSourceRanges[0]: invalid CIDR \"10.0.0.0/33\"; "
       "spec.loadBalancerSourceRanges[1]: invalid CIDR \"10.0.0.0\"; "
       "spec.loadBalancerSourceRanges[2]: invalid CIDR \"10.0.0.0/08\"; "
       "spec.loadBalancerSourceRanges[3]: invalid CIDR \" \"",
       10},
      {"source ranges on a ClusterIP Service",
       service("  ports: [{port: 80}]\n  loadBalancerSourceRanges: [10.0.0.0/8]\n"),
       "Service shop/web: spec.loadBalancerSourceRanges: may only be used when type is "
       "LoadBalancer",
       8},
      {"node podCIDRs",
       node("spec:\n  podCIDRs:\n  - 10.244.1.0/24\n  - fd00::/129\n  - 10.244.1.1\n"),
       "Node node-a: spec.podCIDRs[1]: invalid CIDR \"fd00::/129\"; spec.podCIDRs[2]: invalid "
       "CIDR \"10.244.1.1\"",
       8},
      {"node podCIDR", node("spec:\n  podCIDR: 10.244.1.0/\n"),
       "Node node-a: spec.podCIDR: invalid CIDR \"10.244.1.0/\"", 6},
  });
}

TEST(DecoderBadInput, IngressHostsPathsAndBackends) {
  const std::string backend2 =
      "        backend:\n          service:\n            name: web\n"
      "            port: {number: 80, name: http}\n";
  runBadCases({
      {"host that is an IP", ingress("  rules:\n  - host: 192.0.2.1\n"),
       "Ingress shop/shop: spec.rules[0].host: must be a DNS name, not an IP address", 8},
      {"host that is an IPv6 address", ingress("  rules:\n  - host: '2001:db8::1'\n"),
       "Ingress shop/shop: spec.rules[0].host: must be a DNS name, not an IP address", 8},
      {"wildcard in the middle", ingress("  rules:\n  - host: 'shop.*.example.com'\n"),
       "Ingress shop/shop: spec.rules[0].host: invalid host \"shop.*.example.com\" (a DNS-1123 "
       "subdomain, optionally starting with \"*.\")",
       8},
      {"bare wildcard", ingress("  rules:\n  - host: '*'\n"),
       "Ingress shop/shop: spec.rules[0].host: invalid host \"*\" (a DNS-1123 subdomain, "
       "optionally starting with \"*.\")",
       8},
      {"uppercase host", ingress("  rules:\n  - host: Shop.example.com\n"),
       "Ingress shop/shop: spec.rules[0].host: invalid host \"Shop.example.com\" (a DNS-1123 "
       "subdomain, optionally starting with \"*.\")",
       8},
      {"host with a port", ingress("  rules:\n  - host: shop.example.com:8080\n"),
       "Ingress shop/shop: spec.rules[0].host: invalid host \"shop.example.com:8080\" (a DNS-1123 "
       "subdomain, optionally starting with \"*.\")",
       8},
      {"tls host",
       ingress("  defaultBackend: {service: {name: web, port: {number: 80}}}\n"
               "  tls:\n  - hosts: [shop.example.com, '*.*.example.com']\n"),
       "Ingress shop/shop: spec.tls[0].hosts[1]: invalid host \"*.*.example.com\"", 9},
      {"relative path for Prefix", ingressPath("path: api\n        pathType: Prefix\n"),
       "Ingress shop/shop: spec.rules[0].http.paths[0].path: must be an absolute path (start with "
       "'/'), got \"api\"",
       11},
      {"relative path for ImplementationSpecific",
       ingressPath("path: api\n        pathType: ImplementationSpecific\n"),
       "Ingress shop/shop: spec.rules[0].http.paths[0].path: must be an absolute path (start with "
       "'/'), got \"api\"",
       11},
      {"dot segments in a Prefix path", ingressPath("path: /a/../b//c\n        pathType: Prefix\n"),
       "Ingress shop/shop: spec.rules[0].http.paths[0].path: must not contain '//', got "
       "\"/a/../b//c\"; spec.rules[0].http.paths[0].path: must not contain '/../', got "
       "\"/a/../b//c\"",
       11},
      {"encoded slash in an Exact path", ingressPath("path: /a%2Fb/.\n        pathType: Exact\n"),
       "Ingress shop/shop: spec.rules[0].http.paths[0].path: must not contain '%2F', got "
       "\"/a%2Fb/.\"; spec.rules[0].http.paths[0].path: cannot end with '/.', got \"/a%2Fb/.\"",
       11},
      {"backend with number and name", ingressPath("path: /\n        pathType: Prefix\n", backend2),
       "Ingress shop/shop: spec.rules[0].http.paths[0].backend.service.port: exactly one of "
       "number and name is required",
       16},
      {"backend with service and resource",
       ingress("  defaultBackend:\n    service: {name: web, port: {number: 80}}\n"
               "    resource: {kind: Bucket, name: b}\n"),
       "Ingress shop/shop: spec.defaultBackend: exactly one of service and resource is required",
       8},
      {"backend port number 0",
       ingress("  defaultBackend:\n    service: {name: web, port: {number: 0}}\n"),
       "Ingress shop/shop: spec.defaultBackend.service.port.number: must be between 1 and 65535, "
       "got 0",
       8},
      {"backend port name that is a number",
       ingress("  defaultBackend:\n    service: {name: web, port: {name: '8080'}}\n"),
       "Ingress shop/shop: spec.defaultBackend.service.port.name: invalid port name \"8080\" (an "
       "IANA service name: at most 15 lower-case letters, digits and '-', with at least one "
       "letter)",
       8},
      {"backend port name too long for IANA",
       ingress("  defaultBackend:\n    service: {name: web, port: {name: metrics-and-health}}\n"),
       "Ingress shop/shop: spec.defaultBackend.service.port.name: invalid port name "
       "\"metrics-and-health\" (an IANA service name: at most 15 lower-case letters, digits and "
       "'-', with at least one letter)",
       8},
  });
}

TEST(DecoderBadInput, SecretsWithoutUsablePem) {
  runBadCases({
      {"bad base64",
       secret("data:\n  tls.crt: not*base64\n  tls.key: " +
              std::string("LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCg==") + "\n"),
       "Secret shop/tls: data.tls.crt: invalid base64", 8},
      {"data after padding", secret("data:\n  tls.crt: QQ==QQ==\n  tls.key: QQ==\n"),
       "Secret shop/tls: data.tls.crt: invalid base64; data.tls.key: holds no PEM private key "
       "(-----BEGIN ... PRIVATE KEY-----)",
       8},
      {"no PEM in data",
       secret("data:\n  tls.crt: bm90IGEgY2VydGlmaWNhdGU=\n"
              "  tls.key: bm90IGEgY2VydGlmaWNhdGU=\n"),
       "Secret shop/tls: data.tls.crt: holds no PEM certificate (-----BEGIN CERTIFICATE-----); "
       "data.tls.key: holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)",
       8},
      {"no PEM in stringData",
       secret("stringData:\n  tls.crt: |\n    -----BEGIN CERTIFICATE-----\n    AA==\n"
              "    -----END CERTIFICATE-----\n  tls.key: hunter2\n"),
       "Secret shop/tls: stringData.tls.key: holds no PEM private key (-----BEGIN ... PRIVATE "
       "KEY-----)",
       12},
      {"stringData of the wrong type", secret("stringData:\n  tls.crt: 5\n  tls.key: x\n"),
       "Secret shop/tls: stringData.tls.crt: expected a string, got an integer; "
       "stringData.tls.key: holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)",
       8},
  });
  // stringData wins over data for the same key, as the API server merges it.
  Decoded d = decodeOneYaml(
      secret("data:\n  tls.crt: bm90IGEgY2VydGlmaWNhdGU=\n  tls.key: " +
             std::string("LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCg==") +
             "\nstringData:\n  tls.crt: \"-----BEGIN CERTIFICATE-----\\nAA==\\n\"\n"));
  ASSERT_EQ(d.outcome, Outcome::kOk) << d.message;
  EXPECT_EQ(objectAs<TlsSecret>(d)->certificatePem, "-----BEGIN CERTIFICATE-----\nAA==\n");
  EXPECT_EQ(objectAs<TlsSecret>(d)->privateKeyPem, "-----BEGIN PRIVATE KEY-----\n");
}

TEST(DecoderBadInput, ReportsEveryFaultyFieldOfAService) {
  Decoded d = decodeOneYaml(
      "apiVersion: v1\n"                 // 1
      "kind: Service\n"                  // 2
      "metadata:\n"                      // 3
      "  name: web\n"                    // 4
      "  namespace: shop\n"              // 5
      "  labels:\n"                      // 6
      "    tier: 3\n"                    // 7
      "spec:\n"                          // 8
      "  type: NodePort\n"               // 9
      "  clusterIP: 10.96.0.300\n"       // 10
      "  ports:\n"                       // 11
      "  - name: http\n"                 // 12
      "    port: 0\n"                    // 13
      "  - protocol: tcp\n"              // 14
      "    port: 70000\n"                // 15
      "    targetPort: \"8080\"\n"       // 16
      "  externalIPs: [192.0.2.1, x]\n"  // 17
      "  sessionAffinity: Sticky\n");    // 18
  EXPECT_EQ(d.outcome, Outcome::kInvalid);
  EXPECT_EQ(d.message,
            "Service shop/web: metadata.labels.tier: expected a string, got an integer; "
            "spec.clusterIP: invalid IP address \"10.96.0.300\"; "
            "spec.ports[0].port: must be between 1 and 65535, got 0; "
            "spec.ports[1].name: required when a Service has several ports; "
            "spec.ports[1].protocol: unsupported value \"tcp\" (supported: TCP, UDP, SCTP); "
            "spec.ports[1].port: must be between 1 and 65535, got 70000; "
            "spec.ports[1].targetPort: invalid port name \"8080\" (a number must not be quoted; a "
            "name needs a letter); "
            "spec.externalIPs[1]: invalid IP address \"x\"; "
            "spec.sessionAffinity: unsupported value \"Sticky\" (supported: None, ClientIP)");
  EXPECT_EQ(d.line, 7u);  // the first faulty field
  ASSERT_TRUE(d.key);
  EXPECT_EQ(d.key->toString(), "Service shop/web");
}

// --- Fixes that accept what the API server accepts ---------------------------------------------

TEST(DecoderAccepts, WhatTheApiServerDefaultsOrAllows) {
  // targetPort "" (and 0) default to the port (SetDefaults_Service).
  Decoded empty =
      decodeOneYaml(service("  ports:\n  - name: a\n    port: 80\n    targetPort: \"\"\n"
                            "  - {name: b, port: 81, targetPort: 0}\n"
                            "  - {name: c, port: 82, targetPort: 0, protocol: UDP}\n"));
  ASSERT_EQ(empty.outcome, Outcome::kOk) << empty.message;
  auto svc = objectAs<Service>(empty);
  ASSERT_EQ(svc->ports.size(), 3u);
  EXPECT_EQ(svc->ports[0].targetPort, IntOrString(80));
  EXPECT_EQ(svc->ports[1].targetPort, IntOrString(81));
  EXPECT_EQ(svc->ports[2].protocol, Protocol::kUDP);

  // An empty Ingress host is no host.
  Decoded anyHost = decodeOneYaml(ingress(
      "  rules:\n  - host: \"\"\n    http:\n      paths:\n      - path: /\n        pathType: "
      "Prefix\n        backend:\n          service: {name: web, port: {number: 80}}\n"));
  ASSERT_EQ(anyHost.outcome, Outcome::kOk) << anyHost.message;
  ASSERT_EQ(objectAs<Ingress>(anyHost)->rules.size(), 1u);
  EXPECT_EQ(objectAs<Ingress>(anyHost)->rules[0].host, "");

  // ClusterIP headless Services need no ports; one unnamed port needs no name.
  EXPECT_EQ(decodeOneYaml(service("  clusterIP: None\n")).outcome, Outcome::kOk);
  // Backend port names are IANA names (up to 15 characters).
  Decoded named = decodeOneYaml(
      ingress("  defaultBackend:\n    service: {name: web, port: {name: metrics-health}}\n"));
  ASSERT_EQ(named.outcome, Outcome::kOk) << named.message;
  EXPECT_EQ(objectAs<Ingress>(named)->defaultBackend->service->portName, "metrics-health");
  // Prefix paths with dots that are not dot segments are fine.
  EXPECT_EQ(decodeOneYaml(ingressPath("path: /v1.2/.well-known/x..y\n        pathType: Prefix\n"))
                .outcome,
            Outcome::kOk);
  // 8080.0 is the integer 8080, as kubectl's YAML-to-JSON conversion hands it to the server.
  Decoded floatPort = decodeOneYaml(service("  ports:\n  - port: 8080.0\n"));
  ASSERT_EQ(floatPort.outcome, Outcome::kOk) << floatPort.message;
  EXPECT_EQ(objectAs<Service>(floatPort)->ports[0].port, 8080);
  // ClientIP affinity with a config that names no timeout: the default, 3 hours.
  Decoded affinity = decodeOneYaml(
      service("  ports: [{port: 80}]\n  sessionAffinity: ClientIP\n  sessionAffinityConfig:\n"
              "    clientIP: {}\n"));
  ASSERT_EQ(affinity.outcome, Outcome::kOk) << affinity.message;
  EXPECT_EQ(objectAs<Service>(affinity)->sessionAffinity, SessionAffinity::kClientIP);
  EXPECT_EQ(objectAs<Service>(affinity)->affinityTimeoutSeconds, 10800u);
}

// --- Robustness: every Value shape at every field ------------------------------------------------

using PathStep = std::variant<std::string, size_t>;
using Path = std::vector<PathStep>;

void collectPaths(const Value& v, Path& prefix, std::vector<Path>& out) {
  if (v.isObject()) {
    for (const auto& [key, child] : v.asObject()) {
      prefix.push_back(key);
      out.push_back(prefix);
      collectPaths(child, prefix, out);
      prefix.pop_back();
    }
  } else if (v.isArray()) {
    for (size_t i = 0; i < v.asArray().size(); ++i) {
      prefix.push_back(i);
      out.push_back(prefix);
      collectPaths(v.asArray()[i], prefix, out);
      prefix.pop_back();
    }
  }
}

Value* at(Value& root, const Path& path) {
  Value* v = &root;
  for (const PathStep& step : path) {
    if (const auto* key = std::get_if<std::string>(&step)) {
      Value* next = nullptr;
      for (auto& m : v->mutableObject()) {
        if (m.first == *key) next = &m.second;
      }
      v = next;
    } else {
      v = &v->mutableArray()[std::get<size_t>(step)];
    }
    if (!v) return nullptr;
  }
  return v;
}

std::string pathString(const Path& path) {
  std::string out;
  for (const PathStep& step : path) {
    if (const auto* key = std::get_if<std::string>(&step)) {
      if (!out.empty()) out += '.';
      out += *key;
    } else {
      out += "[" + std::to_string(std::get<size_t>(step)) + "]";
    }
  }
  return out;
}

std::vector<Value> replacementShapes() {
  std::vector<Value> shapes;
  shapes.push_back(Value::null());
  shapes.push_back(Value(int64_t{0}));
  shapes.push_back(Value(int64_t{70000}));
  shapes.push_back(Value(int64_t{-1}));
  shapes.push_back(Value(80.5));
  shapes.push_back(Value(std::nan("")));
  shapes.push_back(Value(true));
  shapes.push_back(Value(std::string()));
  shapes.push_back(Value(std::string("x")));
  shapes.push_back(Value(std::string("None")));
  shapes.push_back(Value(Value::Array{}));
  shapes.push_back(Value(Value::Array{Value(int64_t{1}), Value::null()}));
  shapes.push_back(Value(Value::Object{}));
  shapes.push_back(Value(Value::Object{{"a", Value(int64_t{1})}}));
  return shapes;
}

// `v` as if read from `line`, as every value from a YAML file is.
Value withLine(const Value& v, uint32_t line) {
  switch (v.type()) {
    case Value::Type::kNull:
      return Value::null(line);
    case Value::Type::kBool:
      return Value(v.asBool(), line);
    case Value::Type::kInt:
      return Value(v.asInt(), line);
    case Value::Type::kFloat:
      return Value(v.asFloat(), line);
    case Value::Type::kString:
      return Value(v.asString(), line);
    case Value::Type::kArray: {
      Value::Array items;
      for (const Value& item : v.asArray()) items.push_back(withLine(item, line));
      return Value(std::move(items), line);
    }
    case Value::Type::kObject: {
      Value::Object members;
      for (const auto& [key, item] : v.asObject()) members.emplace_back(key, withLine(item, line));
      return Value(std::move(members), line);
    }
  }
  return v;
}

// Fields whose value the decoder never reads: any value there leaves the result unchanged.
bool ignoredField(const Path& path) {
  static const std::set<std::string> kIgnored = {"managedFields",
                                                 "uid",
                                                 "resourceVersion",
                                                 "creationTimestamp",
                                                 "selector",
                                                 "ipFamilies",
                                                 "ipFamilyPolicy",
                                                 "targetRef",
                                                 "generation",
                                                 "finalizers",
                                                 "ownerReferences",
                                                 "generateName",
                                                 "providerID",
                                                 "nodeInfo",
                                                 "allocatable",
                                                 "publishNotReadyAddresses",
                                                 "parameters",
                                                 "apiGroup",
                                                 "deletionGracePeriodSeconds",
                                                 "allocateLoadBalancerNodePorts"};
  for (const PathStep& step : path) {
    if (const auto* key = std::get_if<std::string>(&step); key && kIgnored.count(*key)) {
      return true;
    }
  }
  return false;
}

// Paths (relative to one object) where a change may change the object's identity.
bool identityField(const Path& rel) {
  if (rel.empty()) return true;
  const auto* first = std::get_if<std::string>(&rel[0]);
  if (!first) return true;
  if (*first == "kind") return true;
  if (*first != "metadata") return false;
  if (rel.size() == 1) return true;
  const auto* second = std::get_if<std::string>(&rel[1]);
  return second && (*second == "name" || *second == "namespace");
}

TEST(DecoderRobustness, AnyValueAtAnyFieldIsDecodedOrRejectedCleanly) {
  ObjectDecoder decoder;
  const std::vector<Value> shapes = replacementShapes();
  size_t mutations = 0, invalid = 0, ok = 0;
  for (const char* fixture : kFixtures) {
    SCOPED_TRACE(fixture);
    for (const Value& original : yamlDocuments(readTestdata(fixture))) {
      const std::vector<Decoded> before = decoder.decodeDocument(original);
      const bool isList = original.find("items") != nullptr;
      std::vector<Path> paths;
      Path prefix;
      collectPaths(original, prefix, paths);
      for (const Path& path : paths) {
        for (const Value& shape : shapes) {
          Value mutated = original;
          Value* target = at(mutated, path);
          ASSERT_NE(target, nullptr);
          *target = withLine(shape, target->line());
          const std::string where = pathString(path) + " = " + std::string(shape.typeName());
          std::vector<Decoded> after;
          ASSERT_NO_THROW(after = decoder.decodeDocument(mutated)) << where;
          ++mutations;
          for (size_t i = 0; i < after.size(); ++i) {
            const Decoded& d = after[i];
            switch (d.outcome) {
              case Outcome::kOk:
                ++ok;
                EXPECT_TRUE(d.key) << where;
                EXPECT_TRUE(std::visit([](const auto& p) { return p != nullptr; }, d.object))
                    << where;
                break;
              case Outcome::kInvalid:
                ++invalid;
                EXPECT_FALSE(d.message.empty()) << where;
                EXPECT_GT(d.line, 0u) << where << ": " << d.message;
                break;
              case Outcome::kIgnored:
                EXPECT_FALSE(d.message.empty()) << where;
                break;
            }
          }
          if (ignoredField(path) && after.size() == before.size()) {
            for (size_t i = 0; i < after.size(); ++i) {
              EXPECT_EQ(after[i].outcome, before[i].outcome) << where << ": " << after[i].message;
              EXPECT_TRUE(sameObject(after[i].object, before[i].object)) << where;
            }
          } else if (ignoredField(path)) {
            ADD_FAILURE() << where << ": an ignored field changed the number of objects";
          }
          // A change away from kind, metadata.name and metadata.namespace keeps the identity.
          size_t item = 0;
          Path rel = path;
          if (isList) {
            if (rel.size() < 3 || std::get_if<std::string>(&rel[0]) == nullptr ||
                std::get<std::string>(rel[0]) != "items") {
              continue;
            }
            item = std::get<size_t>(rel[1]);
            rel.erase(rel.begin(), rel.begin() + 2);
          }
          if (!identityField(rel) && before[item].key && after.size() == before.size()) {
            EXPECT_EQ(after[item].key, before[item].key) << where << ": " << after[item].message;
          }
        }
      }
    }
  }
  // The loop must really have run, and found both outcomes.
  EXPECT_GT(mutations, 9'000u);
  EXPECT_GT(invalid, 5'000u);
  EXPECT_GT(ok, 20'000u);
}

TEST(DecoderRobustness, AnyDocumentShapeIsRejectedCleanly) {
  ObjectDecoder decoder;
  std::vector<Value> docs = replacementShapes();
  for (const char* yaml :
       {"kind: ServiceList\nitems: [1, null, x, [], {}, {kind: 5}]\n", "kind: List\nitems: 5\n",
        "kind: [List]\nitems: []\n", "kind: List\n",
        "kind: Service\napiVersion: v1\nmetadata: {name: a}\nspec: {ports: [[1]]}\n",
        "kind: Service\napiVersion: v1\nmetadata: {name: a, labels: [x]}\nspec: []\n",
        "kind: EndpointSlice\napiVersion: discovery.k8s.io/v1\nmetadata: {name: a}\n"
        "addressType: [IPv4]\nendpoints: [[], {addresses: {}}, {hints: []}]\nports: {}\n",
        "kind: Ingress\napiVersion: networking.k8s.io/v1\nmetadata: {name: a}\n"
        "spec: {rules: [[], {http: []}, {http: {paths: [{}, [], {backend: {service: []}}]}}]}\n",
        "kind: Secret\napiVersion: v1\nmetadata: {name: a}\ntype: kubernetes.io/tls\n"
        "data: {tls.crt: [], tls.key: {}}\nstringData: []\n",
        "kind: Node\napiVersion: v1\nmetadata: {name: a}\nspec: {podCIDRs: {}, taints: [1]}\n"
        "status: {addresses: [[], {type: []}]}\n"}) {
    for (Value& v : yamlDocuments(yaml)) docs.push_back(std::move(v));
  }
  for (const Value& doc : docs) {
    std::vector<Decoded> out;
    ASSERT_NO_THROW(out = decoder.decodeDocument(doc));
    for (const Decoded& d : out) {
      EXPECT_NE(d.outcome, Outcome::kOk) << d.message;
      EXPECT_FALSE(d.message.empty());
    }
  }
}

}  // namespace
}  // namespace capstan::control
