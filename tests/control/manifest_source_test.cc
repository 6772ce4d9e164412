// ManifestSource against real files: each test gets a fresh directory under /tmp and removes it.
#include "control/manifest/manifest_source.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace capstan::control {
namespace {

namespace fs = std::filesystem;

// A fresh directory under /tmp, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/capstan-manifest-test-XXXXXX";
    if (char* made = ::mkdtemp(pattern)) path_ = made;
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string serviceYaml(const std::string& name, int port, const std::string& clusterIP) {
  return "apiVersion: v1\n"
         "kind: Service\n"
         "metadata:\n"
         "  name: " +
         name +
         "\n"
         "  namespace: default\n"
         "spec:\n"
         "  clusterIP: " +
         clusterIP +
         "\n"
         "  ports:\n"
         "  - name: http\n"
         "    port: " +
         std::to_string(port) + "\n    targetPort: 8080\n";
}

std::string serviceJson(const std::string& name, int port, const std::string& clusterIP) {
  return R"({"apiVersion": "v1", "kind": "Service", "metadata": {"name": ")" + name +
         R"(", "namespace": "default"}, "spec": {"clusterIP": ")" + clusterIP +
         R"(", "ports": [{"name": "http", "port": )" + std::to_string(port) +
         R"(, "targetPort": 8080}]}})";
}

std::string sliceYaml(const std::string& name, const std::string& service,
                      const std::vector<std::string>& ips) {
  std::string out =
      "apiVersion: discovery.k8s.io/v1\n"
      "kind: EndpointSlice\n"
      "metadata:\n"
      "  name: " +
      name +
      "\n"
      "  namespace: default\n"
      "  labels:\n"
      "    kubernetes.io/service-name: " +
      service +
      "\n"
      "addressType: IPv4\n"
      "endpoints:\n";
  for (const std::string& ip : ips) {
    out += "- addresses: [\"" + ip + "\"]\n  conditions: {ready: true}\n  nodeName: node-a\n";
  }
  out += "ports:\n- name: http\n  port: 8080\n  protocol: TCP\n";
  return out;
}

ObjectKey serviceKey(const std::string& name) { return {ObjectKind::kService, {"default", name}}; }
ObjectKey sliceKey(const std::string& name) {
  return {ObjectKind::kEndpointSlice, {"default", name}};
}

// "upsert Service default/a", "delete EndpointSlice default/b", sorted.
std::vector<std::string> describe(const std::vector<ObjectEvent>& events) {
  std::vector<std::string> out;
  for (const ObjectEvent& e : events) {
    out.push_back(std::string(e.type == ObjectEvent::Type::kUpsert ? "upsert " : "delete ") +
                  e.key.toString());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> keys(const std::map<ObjectKey, KubeObject>& objects) {
  std::vector<std::string> out;
  for (const auto& [key, object] : objects) out.push_back(key.toString());
  return out;
}

// The first port of Service default/<name> in the source's merged view, nullopt if absent.
std::optional<int> servicePort(const ManifestSource& source, const std::string& name) {
  auto it = source.objects().find(serviceKey(name));
  if (it == source.objects().end()) return std::nullopt;
  const auto& service = std::get<std::shared_ptr<const Service>>(it->second);
  if (service->ports.empty()) return 0;
  return service->ports[0].port;
}

size_t sliceEndpoints(const ManifestSource& source, const std::string& name) {
  auto it = source.objects().find(sliceKey(name));
  if (it == source.objects().end()) return 0;
  return std::get<std::shared_ptr<const EndpointSlice>>(it->second)->endpoints.size();
}

std::vector<Diagnostic> withSeverity(const std::vector<Diagnostic>& all,
                                     Diagnostic::Severity severity) {
  std::vector<Diagnostic> out;
  std::copy_if(all.begin(), all.end(), std::back_inserter(out),
               [&](const Diagnostic& d) { return d.severity == severity; });
  return out;
}

std::string allText(const std::vector<Diagnostic>& diagnostics) {
  std::string out;
  for (const Diagnostic& d : diagnostics) out += d.toString() + "\n";
  return out;
}

class ManifestSourceTest : public testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(tmp_.path().empty()) << "mkdtemp failed"; }

  std::string path(const std::string& rel) const { return tmp_.path() + "/" + rel; }

  // Writes in place (truncate and write), as `echo > file` or a simple editor does.
  void write(const std::string& rel, const std::string& content) const {
    std::string full = path(rel);
    fs::create_directories(fs::path(full).parent_path());
    FILE* f = std::fopen(full.c_str(), "wb");
    ASSERT_NE(f, nullptr) << full;
    ASSERT_EQ(std::fwrite(content.data(), 1, content.size(), f), content.size());
    ASSERT_EQ(std::fclose(f), 0);
  }

  // Writes a temporary file and renames it over the target, as most editors and tools do.
  void writeByRename(const std::string& rel, const std::string& content) const {
    write(rel + ".tmp~", content);
    ASSERT_EQ(::rename(path(rel + ".tmp~").c_str(), path(rel).c_str()), 0);
  }

  ManifestSource sourceFor(std::vector<std::string> paths,
                           size_t maxFileBytes = size_t{32} << 20) const {
    ManifestOptions options;
    options.paths = std::move(paths);
    options.maxFileBytes = maxFileBytes;
    return ManifestSource(options);
  }

  TempDir tmp_;
};

TEST_F(ManifestSourceTest, LoadsYamlAndJsonFilesOfADirectoryAndNothingElse) {
  write("d/a.yaml", serviceYaml("a", 80, "10.96.0.1"));
  write("d/b.yml", sliceYaml("a-1", "a", {"10.244.0.1", "10.244.0.2"}));
  write("d/c.json", serviceJson("c", 81, "10.96.0.3"));
  // Not manifests by name, hidden, or not a regular file: all skipped.
  write("d/notes.txt", serviceYaml("txt", 80, "10.96.0.4"));
  write("d/README.md", serviceYaml("md", 80, "10.96.0.5"));
  write("d/.hidden.yaml", serviceYaml("hidden", 80, "10.96.0.6"));
  write("d/a.yaml.bak", serviceYaml("bak", 80, "10.96.0.7"));
  write("d/yaml", serviceYaml("noext", 80, "10.96.0.8"));
  write("d/sub.yaml/inner.yaml", serviceYaml("inner", 80, "10.96.0.9"));  // not recursive
  write("d/.git/x.yaml", serviceYaml("git", 80, "10.96.0.10"));

  ManifestSource source = sourceFor({path("d")});
  auto r = source.reload(123);
  EXPECT_EQ(r.filesRead, 3u);
  EXPECT_TRUE(withSeverity(r.diagnostics, Diagnostic::Severity::kError).empty())
      << allText(r.diagnostics);
  EXPECT_EQ(describe(r.events),
            (std::vector<std::string>{"upsert EndpointSlice default/a-1",
                                      "upsert Service default/a", "upsert Service default/c"}));
  for (const ObjectEvent& e : r.events) EXPECT_EQ(e.triggerTimeNs, 123);
  EXPECT_EQ(keys(source.objects()),
            (std::vector<std::string>{"Service default/a", "Service default/c",
                                      "EndpointSlice default/a-1"}));
  EXPECT_EQ(servicePort(source, "a"), 80);
  EXPECT_EQ(servicePort(source, "c"), 81);
  EXPECT_EQ(sliceEndpoints(source, "a-1"), 2u);
  EXPECT_TRUE(source.standingDiagnostics().empty()) << allText(source.standingDiagnostics());
}

TEST_F(ManifestSourceTest, ASingleFilePathIsReadWhateverItsNameAndItsSiblingsAreNot) {
  write("d/only.conf", serviceYaml("only", 80, "10.96.0.1"));
  write("d/sibling.yaml", serviceYaml("sibling", 80, "10.96.0.2"));
  ManifestSource source = sourceFor({path("d/only.conf")});
  auto r = source.reload(0);
  EXPECT_EQ(r.filesRead, 1u);
  EXPECT_EQ(describe(r.events), (std::vector<std::string>{"upsert Service default/only"}));
  // Two paths, a file and its directory: the file is read once.
  ManifestSource both = sourceFor({path("d"), path("d/sibling.yaml")});
  auto r2 = both.reload(0);
  EXPECT_EQ(r2.filesRead, 1u);
  EXPECT_EQ(keys(both.objects()), (std::vector<std::string>{"Service default/sibling"}));
}

TEST_F(ManifestSourceTest, ReadsMultiDocumentFilesAndLists) {
  write("d/multi.yaml", "# leading comment\n---\n" + serviceYaml("m1", 80, "10.96.0.1") +
                            "---\n---\n# an empty document in between\n" +
                            serviceYaml("m2", 81, "10.96.0.2") + "---\n" +
                            sliceYaml("m2-1", "m2", {"10.244.0.1"}) + "...\n");
  write("d/list.json",
        R"({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": [)" +
            serviceJson("l1", 82, "10.96.0.3") + ", " + serviceJson("l2", 83, "10.96.0.4") + "]}");
  // As `kubectl get services -o yaml` prints it.
  write("d/servicelist.yaml",
        "apiVersion: v1\n"
        "kind: ServiceList\n"
        "items:\n"
        "- apiVersion: v1\n"
        "  kind: Service\n"
        "  metadata: {name: k1, namespace: default}\n"
        "  spec:\n"
        "    clusterIP: 10.96.0.5\n"
        "    ports: [{port: 84}]\n"
        "- apiVersion: v1\n"
        "  kind: Service\n"
        "  metadata: {name: k2, namespace: default}\n"
        "  spec: {clusterIP: 10.96.0.6, ports: [{port: 85}]}\n"
        "metadata: {resourceVersion: \"\"}\n");
  // A JSON stream of two objects.
  write("d/stream.json",
        serviceJson("s1", 86, "10.96.0.7") + "\n" + serviceJson("s2", 87, "10.96.0.8") + "\n");

  ManifestSource source = sourceFor({path("d")});
  auto r = source.reload(0);
  EXPECT_EQ(r.filesRead, 4u);
  EXPECT_TRUE(withSeverity(r.diagnostics, Diagnostic::Severity::kError).empty())
      << allText(r.diagnostics);
  EXPECT_EQ(r.events.size(), 9u) << testing::PrintToString(describe(r.events));
  int expectedPort = 80;
  for (const char* name : {"m1", "m2", "l1", "l2", "k1", "k2", "s1", "s2"}) {
    EXPECT_EQ(servicePort(source, name), expectedPort++) << name;
  }
  EXPECT_EQ(sliceEndpoints(source, "m2-1"), 1u);
}

TEST_F(ManifestSourceTest, AnEditedFileYieldsOnlyItsOwnEvents) {
  write("d/a.yaml", serviceYaml("a", 80, "10.96.0.1") + "---\n" +
                        sliceYaml("a-1", "a", {"10.244.0.1"}) + "---\n" +
                        serviceYaml("a2", 90, "10.96.0.11"));
  write("d/b.yaml",
        serviceYaml("b", 80, "10.96.0.2") + "---\n" + sliceYaml("b-1", "b", {"10.244.1.1"}));
  ManifestSource source = sourceFor({path("d")});
  auto first = source.reload(0);
  ASSERT_EQ(first.events.size(), 5u);

  // b: one endpoint more, Service unchanged. a is not touched.
  write("d/b.yaml", serviceYaml("b", 80, "10.96.0.2") + "---\n" +
                        sliceYaml("b-1", "b", {"10.244.1.1", "10.244.1.2"}));
  auto r = source.reload(7);
  EXPECT_EQ(r.filesRead, 1u);
  EXPECT_EQ(describe(r.events), (std::vector<std::string>{"upsert EndpointSlice default/b-1"}));
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].triggerTimeNs, 7);
  EXPECT_EQ(std::get<std::shared_ptr<const EndpointSlice>>(r.events[0].object)->endpoints.size(),
            2u);

  // a: a2 removed from the file, a's port changed; the slice is the same.
  write("d/a.yaml",
        serviceYaml("a", 8080, "10.96.0.1") + "---\n" + sliceYaml("a-1", "a", {"10.244.0.1"}));
  r = source.reload(0);
  EXPECT_EQ(r.filesRead, 1u);
  EXPECT_EQ(describe(r.events),
            (std::vector<std::string>{"delete Service default/a2", "upsert Service default/a"}));
  EXPECT_EQ(servicePort(source, "a"), 8080);
  EXPECT_EQ(servicePort(source, "a2"), std::nullopt);
}

TEST_F(ManifestSourceTest, UnchangedFilesAreNotReadAgain) {
  write("d/a.yaml", serviceYaml("a", 80, "10.96.0.1"));
  write("d/b.json", serviceJson("b", 80, "10.96.0.2"));
  ManifestSource source = sourceFor({path("d")});
  EXPECT_EQ(source.reload(0).filesRead, 2u);
  for (int i = 0; i < 3; ++i) {
    auto r = source.reload(0);
    EXPECT_EQ(r.filesRead, 0u);
    EXPECT_TRUE(r.events.empty());
    EXPECT_TRUE(r.diagnostics.empty()) << allText(r.diagnostics);
  }
  // Touched but not changed: read again, no events.
  timespec times[2] = {{1'000'000'000, 0}, {1'000'000'000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path("d/a.yaml").c_str(), times, 0), 0);
  auto r = source.reload(0);
  EXPECT_EQ(r.filesRead, 1u);
  EXPECT_TRUE(r.events.empty());
  // A new file in the directory: only it is read.
  write("d/c.yaml", serviceYaml("c", 80, "10.96.0.3"));
  r = source.reload(0);
  EXPECT_EQ(r.filesRead, 1u);
  EXPECT_EQ(describe(r.events), (std::vector<std::string>{"upsert Service default/c"}));
}

TEST_F(ManifestSourceTest, ADeletedFileDeletesItsObjects) {
  write("d/a.yaml",
        serviceYaml("a", 80, "10.96.0.1") + "---\n" + sliceYaml("a-1", "a", {"10.244.0.1"}));
  write("d/b.yaml", serviceYaml("b", 80, "10.96.0.2"));
  ManifestSource source = sourceFor({path("d")});
  source.reload(0);
  ASSERT_EQ(source.objects().size(), 3u);
  ASSERT_EQ(::unlink(path("d/a.yaml").c_str()), 0);
  auto r = source.reload(0);
  EXPECT_EQ(r.filesRead, 0u);
  EXPECT_EQ(describe(r.events), (std::vector<std::string>{"delete EndpointSlice default/a-1",
                                                          "delete Service default/a"}));
  EXPECT_EQ(keys(source.objects()), (std::vector<std::string>{"Service default/b"}));
  // Renamed to a name that is not a manifest (a backup): gone too.
  ASSERT_EQ(::rename(path("d/b.yaml").c_str(), path("d/b.yaml.orig").c_str()), 0);
  r = source.reload(0);
  EXPECT_EQ(describe(r.events), (std::vector<std::string>{"delete Service default/b"}));
  EXPECT_TRUE(source.objects().empty());
}

TEST_F(ManifestSourceTest, AFileReplacedByRenameIsReadAgain) {
  write("d/a.yaml", serviceYaml("a", 80, "10.96.0.1"));
  ManifestSource source = sourceFor({path("d")});
  source.reload(0);
  // Same size, new inode: the rename is what must be noticed.
  writeByRename("d/a.yaml", serviceYaml("a", 81, "10.96.0.1"));
  auto r = source.reload(0);
  EXPECT_EQ(r.filesRead, 1u);
  EXPECT_EQ(describe(r.events), (std::vector<std::string>{"upsert Service default/a"}));
  EXPECT_EQ(servicePort(source, "a"), 81);
  // As `rsync -t` replaces a file: same size, and the old modification time kept.
  struct stat old;
  ASSERT_EQ(::stat(path("d/a.yaml").c_str(), &old), 0);
  write("d/.a.yaml.rsync", serviceYaml("a", 83, "10.96.0.1"));
  timespec times[2] = {old.st_atim, old.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, path("d/.a.yaml.rsync").c_str(), times, 0), 0);
  ASSERT_EQ(::rename(path("d/.a.yaml.rsync").c_str(), path("d/a.yaml").c_str()), 0);
  r = source.reload(0);
  EXPECT_EQ(r.filesRead, 1u);
  EXPECT_EQ(servicePort(source, "a"), 83);
  // A configured single file replaced by rename too.
  ManifestSource single = sourceFor({path("d/a.yaml")});
  single.reload(0);
  writeByRename("d/a.yaml", serviceYaml("a", 82, "10.96.0.1"));
  r = single.reload(0);
  EXPECT_EQ(describe(r.events), (std::vector<std::string>{"upsert Service default/a"}));
  EXPECT_EQ(servicePort(single, "a"), 82);
}

// The layout the kubelet's atomic writer gives a mounted ConfigMap:
//   dir/..2026_11_24_10_00_00.000/<key>   the data
//   dir/..data -> ..2026_11_24_10_00_00.000
//   dir/<key> -> ..data/<key>
// and its update: a new timestamped directory, a ..data_tmp link renamed over ..data, the old
// directory removed.
TEST_F(ManifestSourceTest, FollowsAConfigMapDataSymlinkSwap) {
  const std::string v1 = "..2026_11_24_10_00_00.000";
  const std::string v2 = "..2026_11_24_10_05_00.000";
  write("cm/" + v1 + "/services.yaml",
        serviceYaml("a", 80, "10.96.0.1") + "---\n" + serviceYaml("b", 80, "10.96.0.2"));
  write("cm/" + v1 + "/slices.yaml", sliceYaml("a-1", "a", {"10.244.0.1"}));
  ASSERT_EQ(::symlink(v1.c_str(), path("cm/..data").c_str()), 0);
  ASSERT_EQ(::symlink("..data/services.yaml", path("cm/services.yaml").c_str()), 0);
  ASSERT_EQ(::symlink("..data/slices.yaml", path("cm/slices.yaml").c_str()), 0);

  ManifestSource source = sourceFor({path("cm")});
  auto r = source.reload(0);
  EXPECT_EQ(r.filesRead, 2u);  // the visible keys, not the timestamped copies behind them
  EXPECT_TRUE(r.diagnostics.empty()) << allText(r.diagnostics);
  EXPECT_EQ(keys(source.objects()),
            (std::vector<std::string>{"Service default/a", "Service default/b",
                                      "EndpointSlice default/a-1"}));
  // The data directory is watched as well: that is where the kubelet writes.
  char real[PATH_MAX];
  ASSERT_NE(::realpath(path("cm/" + v1).c_str(), real), nullptr);
  auto dirs = source.watchDirectories();
  EXPECT_NE(std::find(dirs.begin(), dirs.end(), path("cm")), dirs.end());
  EXPECT_NE(std::find(dirs.begin(), dirs.end(), std::string(real)), dirs.end())
      << testing::PrintToString(dirs);

  // The update: services.yaml changes (b's port; c added), slices.yaml keeps its content, and a
  // new key appears.
  write("cm/" + v2 + "/services.yaml", serviceYaml("a", 80, "10.96.0.1") + "---\n" +
                                           serviceYaml("b", 8080, "10.96.0.2") + "---\n" +
                                           serviceYaml("c", 80, "10.96.0.3"));
  write("cm/" + v2 + "/slices.yaml", sliceYaml("a-1", "a", {"10.244.0.1"}));
  write("cm/" + v2 + "/more.yaml", sliceYaml("b-1", "b", {"10.244.1.1"}));
  ASSERT_EQ(::symlink(v2.c_str(), path("cm/..data_tmp").c_str()), 0);
  ASSERT_EQ(::rename(path("cm/..data_tmp").c_str(), path("cm/..data").c_str()), 0);
  ASSERT_EQ(::symlink("..data/more.yaml", path("cm/more.yaml").c_str()), 0);
  fs::remove_all(path("cm/" + v1));

  r = source.reload(0);
  EXPECT_TRUE(withSeverity(r.diagnostics, Diagnostic::Severity::kError).empty())
      << allText(r.diagnostics);
  EXPECT_EQ(describe(r.events),
            (std::vector<std::string>{"upsert EndpointSlice default/b-1",
                                      "upsert Service default/b", "upsert Service default/c"}));
  EXPECT_EQ(servicePort(source, "b"), 8080);
  dirs = source.watchDirectories();
  ASSERT_NE(::realpath(path("cm/" + v2).c_str(), real), nullptr);
  EXPECT_NE(std::find(dirs.begin(), dirs.end(), std::string(real)), dirs.end())
      << testing::PrintToString(dirs);

  // A key removed from the ConfigMap: its visible link goes.
  ASSERT_EQ(::unlink(path("cm/more.yaml").c_str()), 0);
  r = source.reload(0);
  EXPECT_EQ(describe(r.events), (std::vector<std::string>{"delete EndpointSlice default/b-1"}));
}

TEST_F(ManifestSourceTest, ASyntaxErrorKeepsTheFilesObjectsAndNamesFileAndLine) {
  write("d/a.yaml",
        serviceYaml("a", 80, "10.96.0.1") + "---\n" + serviceYaml("b", 80, "10.96.0.2"));
  write("d/other.yaml", serviceYaml("other", 80, "10.96.0.3"));
  ManifestSource source = sourceFor({path("d")});
  source.reload(0);
  ASSERT_EQ(source.objects().size(), 3u);

  // Half an edit: b is gone and a is changed, but line 5 breaks the file.
  write("d/a.yaml",
        "apiVersion: v1\n"
        "kind: Service\n"
        "metadata:\n"
        "  name: a\n"
        " spec: [\n"
        "  clusterIP: 10.96.0.1\n");
  write("d/other.yaml", serviceYaml("other", 81, "10.96.0.3"));
  auto r = source.reload(0);
  EXPECT_EQ(r.filesRead, 2u);
  EXPECT_EQ(describe(r.events), (std::vector<std::string>{"upsert Service default/other"}));
  EXPECT_EQ(servicePort(source, "a"), 80);
  EXPECT_EQ(servicePort(source, "b"), 80);
  auto errors = withSeverity(r.diagnostics, Diagnostic::Severity::kError);
  ASSERT_EQ(errors.size(), 1u) << allText(r.diagnostics);
  EXPECT_EQ(errors[0].file, path("d/a.yaml"));
  EXPECT_NE(errors[0].toString().find("line 5"), std::string::npos) << errors[0].toString();
  EXPECT_NE(errors[0].message.find("keeping the 2 objects"), std::string::npos)
      << errors[0].message;
  // The problem stands until the file changes.
  EXPECT_EQ(withSeverity(source.standingDiagnostics(), Diagnostic::Severity::kError).size(), 1u);
  r = source.reload(0);
  EXPECT_EQ(r.filesRead, 0u);
  EXPECT_TRUE(r.events.empty());
  EXPECT_EQ(withSeverity(source.standingDiagnostics(), Diagnostic::Severity::kError).size(), 1u);

  // Broken JSON behaves the same.
  write("d/j.json", serviceJson("j", 80, "10.96.0.4"));
  source.reload(0);
  ASSERT_EQ(servicePort(source, "j"), 80);
  write("d/j.json", serviceJson("j", 81, "10.96.0.4").substr(0, 60));
  r = source.reload(0);
  EXPECT_TRUE(r.events.empty()) << testing::PrintToString(describe(r.events));
  EXPECT_EQ(servicePort(source, "j"), 80);
  errors = withSeverity(r.diagnostics, Diagnostic::Severity::kError);
  ASSERT_EQ(errors.size(), 1u) << allText(r.diagnostics);
  EXPECT_EQ(errors[0].file, path("d/j.json"));

  // Fixed: the file is what it says again; b is deleted now that the file parses.
  write("d/a.yaml", serviceYaml("a", 8080, "10.96.0.1"));
  r = source.reload(0);
  EXPECT_EQ(describe(r.events),
            (std::vector<std::string>{"delete Service default/b", "upsert Service default/a"}));
  EXPECT_EQ(withSeverity(source.standingDiagnostics(), Diagnostic::Severity::kError).size(), 1u)
      << allText(source.standingDiagnostics());  // j.json is still broken
}

TEST_F(ManifestSourceTest, AnInvalidObjectKeepsItsLastGoodVersionWhileItsSiblingsUpdate) {
  write("d/a.yaml",
        serviceYaml("a", 80, "10.96.0.1") + "---\n" + serviceYaml("b", 80, "10.96.0.2"));
  ManifestSource source = sourceFor({path("d")});
  source.reload(0);
  // a gets an impossible port on line 10 of the file; b changes validly.
  write("d/a.yaml",
        serviceYaml("a", 70000, "10.96.0.1") + "---\n" + serviceYaml("b", 81, "10.96.0.2"));
  auto r = source.reload(0);
  EXPECT_EQ(describe(r.events), (std::vector<std::string>{"upsert Service default/b"}));
  EXPECT_EQ(servicePort(source, "a"), 80);
  EXPECT_EQ(servicePort(source, "b"), 81);
  auto errors = withSeverity(r.diagnostics, Diagnostic::Severity::kError);
  ASSERT_EQ(errors.size(), 1u) << allText(r.diagnostics);
  EXPECT_EQ(errors[0].file, path("d/a.yaml"));
  EXPECT_EQ(errors[0].line, 10u);
  EXPECT_NE(errors[0].message.find("Service default/a"), std::string::npos) << errors[0].message;
  EXPECT_NE(errors[0].message.find("spec.ports[0].port"), std::string::npos) << errors[0].message;
  EXPECT_NE(errors[0].message.find("keeping its last good version"), std::string::npos)
      << errors[0].message;
  EXPECT_EQ(errors[0].toString().rfind(path("d/a.yaml") + ":10: Service default/a", 0), 0u)
      << errors[0].toString();

  // Still invalid, and b changes again: a stays at its last good version across reads.
  write("d/a.yaml",
        serviceYaml("a", 70001, "10.96.0.1") + "---\n" + serviceYaml("b", 82, "10.96.0.2"));
  r = source.reload(0);
  EXPECT_EQ(describe(r.events), (std::vector<std::string>{"upsert Service default/b"}));
  EXPECT_EQ(servicePort(source, "a"), 80);

  // Removed from the parsing file: now it goes.
  write("d/a.yaml", serviceYaml("b", 82, "10.96.0.2"));
  r = source.reload(0);
  EXPECT_EQ(describe(r.events), (std::vector<std::string>{"delete Service default/a"}));
  EXPECT_TRUE(source.standingDiagnostics().empty()) << allText(source.standingDiagnostics());
}

TEST_F(ManifestSourceTest, ANewInvalidObjectIsRejected) {
  write("d/a.yaml", serviceYaml("a", 80, "10.96.0.1"));
  ManifestSource source = sourceFor({path("d")});
  source.reload(0);
  write("d/a.yaml", serviceYaml("a", 80, "10.96.0.1") + "---\n" +
                        serviceYaml("new", 0, "10.96.0.2") + "---\n" +
                        sliceYaml("new-1", "new", {"not-an-ip"}));
  auto r = source.reload(0);
  EXPECT_TRUE(r.events.empty()) << testing::PrintToString(describe(r.events));
  EXPECT_EQ(keys(source.objects()), (std::vector<std::string>{"Service default/a"}));
  auto errors = withSeverity(r.diagnostics, Diagnostic::Severity::kError);
  ASSERT_EQ(errors.size(), 2u) << allText(r.diagnostics);
  EXPECT_NE(errors[0].message.find("Service default/new"), std::string::npos) << errors[0].message;
  EXPECT_NE(errors[1].message.find("EndpointSlice default/new-1"), std::string::npos)
      << errors[1].message;
  for (const Diagnostic& d : errors) {
    EXPECT_EQ(d.message.find("keeping"), std::string::npos) << d.message;  // nothing to keep
    EXPECT_GT(d.line, 0u);
  }
  EXPECT_EQ(withSeverity(source.standingDiagnostics(), Diagnostic::Severity::kError).size(), 2u);
}

TEST_F(ManifestSourceTest, ABinaryFileKeepsTheLastGoodObjects) {
  write("d/a.yaml", serviceYaml("a", 80, "10.96.0.1"));
  ManifestSource source = sourceFor({path("d")});
  source.reload(0);
  std::string binary;
  for (int i = 0; i < 4096; ++i) binary += static_cast<char>((i * 7919) & 0xff);
  write("d/a.yaml", binary);
  write("d/b.yaml",
        "\x7f"
        "ELF\x02\x01\x01" +
            std::string(64, '\0'));
  auto r = source.reload(0);
  EXPECT_EQ(r.filesRead, 2u);
  EXPECT_TRUE(r.events.empty()) << testing::PrintToString(describe(r.events));
  EXPECT_EQ(servicePort(source, "a"), 80);
  auto errors = withSeverity(r.diagnostics, Diagnostic::Severity::kError);
  ASSERT_EQ(errors.size(), 2u) << allText(r.diagnostics);
  EXPECT_EQ(errors[0].file, path("d/a.yaml"));
  EXPECT_NE(errors[0].message.find("binary"), std::string::npos) << errors[0].message;
  EXPECT_NE(errors[0].message.find("keeping the 1 objects"), std::string::npos)
      << errors[0].message;
  EXPECT_EQ(errors[1].file, path("d/b.yaml"));
}

// 50 MB of Services, one document each, as a generator would write them.
std::string fiftyMegabytesOfServices(size_t& count) {
  constexpr size_t kTarget = 50'000'000;
  std::string out;
  out.reserve(kTarget + 512);
  count = 0;
  while (out.size() < kTarget) {
    size_t i = count++;
    std::string ip = "10." + std::to_string(96 + (i >> 16)) + "." + std::to_string((i >> 8) & 255) +
                     "." + std::to_string(i & 255);
    out += "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-" + std::to_string(i) +
           "\n  namespace: bulk\n  labels: {app: bulk, tier: backend, team: load-test}\n"
           "spec:\n  clusterIP: " +
           ip +
           "\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n"
           "  - name: https\n    port: 443\n    targetPort: 8443\n";
  }
  return out;
}

TEST_F(ManifestSourceTest, AFileOverTheSizeLimitKeepsItsObjectsAndARaisedLimitLoadsIt) {
  write("d/big.yaml", serviceYaml("small", 80, "10.96.0.1"));
  write("d/other.yaml", serviceYaml("other", 80, "10.96.0.2"));
  ManifestSource source = sourceFor({path("d")}, size_t{32} << 20);  // a 32 MiB limit
  source.reload(0);
  ASSERT_EQ(source.objects().size(), 2u);

  size_t count = 0;
  std::string big = fiftyMegabytesOfServices(count);
  write("d/big.yaml", big);
  big = std::string();
  auto r = source.reload(0);
  EXPECT_TRUE(r.events.empty()) << testing::PrintToString(describe(r.events));
  EXPECT_EQ(servicePort(source, "small"), 80);
  auto errors = withSeverity(r.diagnostics, Diagnostic::Severity::kError);
  ASSERT_EQ(errors.size(), 1u) << allText(r.diagnostics);
  EXPECT_EQ(errors[0].file, path("d/big.yaml"));
  EXPECT_NE(errors[0].message.find("32 MiB limit"), std::string::npos) << errors[0].message;
  EXPECT_NE(errors[0].message.find("--manifest-max-file-size"), std::string::npos);
  EXPECT_NE(errors[0].message.find("keeping the 1 objects"), std::string::npos)
      << errors[0].message;

  // Under the default limit (128 MiB) the same file loads, every Service of it.
  ManifestSource raised = sourceFor({path("d")}, ManifestOptions().maxFileBytes);
  auto start = std::chrono::steady_clock::now();
  r = raised.reload(0);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(withSeverity(r.diagnostics, Diagnostic::Severity::kError).empty())
      << allText(r.diagnostics).substr(0, 2000);
  EXPECT_EQ(r.events.size(), count + 1);
  EXPECT_EQ(raised.objects().size(), count + 1);
  auto last =
      raised.objects().find({ObjectKind::kService, {"bulk", "svc-" + std::to_string(count - 1)}});
  ASSERT_NE(last, raised.objects().end());
  EXPECT_EQ(std::get<std::shared_ptr<const Service>>(last->second)->ports.size(), 2u);
  std::printf("loaded %zu Services (50 MB of YAML) in %.2f s\n", count, seconds);
}

// A large YAML file is parsed in pieces on several threads; the result must be exactly what
// one thread reading it whole gives: the same objects, diagnostics and lines.
TEST_F(ManifestSourceTest, ParallelPiecesGiveTheSameResultAsOneThread) {
  std::string big;
  uint32_t line = 1;
  uint32_t invalidLine = 0, deploymentLine = 0, repeatLine = 0;
  for (int i = 0; i < 30'000; ++i) {
    std::string doc;
    if (i == 17'000) {
      invalidLine = line + 10;  // the bad port's line, after the "---"
      doc = serviceYaml("svc-" + std::to_string(i), 70000, "10.96.1.1");
    } else if (i == 23'000) {
      deploymentLine = line + 1;
      doc = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n";
    } else {
      if (i == 29'000) repeatLine = line + 1;  // the document's first key
      doc = serviceYaml("svc-" + std::to_string(i % 29'000), 80 + i % 7, "10.96.0.1");
    }
    big += "---\n" + doc;
    line += 1 + static_cast<uint32_t>(std::count(doc.begin(), doc.end(), '\n'));
  }
  ASSERT_GT(big.size(), size_t{4} << 20);  // several pieces
  write("d/big.yaml", big);
  for (int i = 0; i < 8; ++i)
    write("d/small-" + std::to_string(i) + ".yaml",
          serviceYaml("s" + std::to_string(i), 80, "10.96.0.1"));

  auto run = [&](unsigned threads) {
    ManifestOptions options;
    options.paths = {path("d")};
    options.parseThreads = threads;
    ManifestSource source(options);
    auto r = source.reload(0);
    std::vector<std::string> events = describe(r.events);
    return std::make_tuple(events, allText(r.diagnostics), source.objects());
  };
  auto [events1, text1, objects1] = run(1);
  auto [events4, text4, objects4] = run(4);
  EXPECT_EQ(events1, events4);
  EXPECT_EQ(text1, text4);
  ASSERT_EQ(objects1.size(), objects4.size());
  for (auto a = objects1.begin(), b = objects4.begin(); a != objects1.end(); ++a, ++b) {
    ASSERT_EQ(a->first, b->first);
    ASSERT_TRUE(sameObject(a->second, b->second)) << a->first.toString();
  }
  // svc-0 .. svc-28999 from the big file but for svc-17000 (invalid) and svc-23000 (a
  // Deployment stands in its place), and the 8 small files.
  EXPECT_EQ(objects4.size(), 29'000u - 2u + 8u) << text4.substr(0, 500);
  // Lines are lines of the whole file, whichever piece they were in.
  EXPECT_NE(text4.find(path("d/big.yaml") + ":" + std::to_string(invalidLine) +
                       ": Service default/svc-17000: spec.ports[0].port"),
            std::string::npos)
      << text4.substr(0, 2000);
  EXPECT_NE(text4.find(path("d/big.yaml") + ":" + std::to_string(deploymentLine) + ": Deployment"),
            std::string::npos)
      << text4.substr(0, 2000);
  // Services 0..999 appear twice (i and i + 29,000): later definitions win, warned about.
  EXPECT_NE(text4.find(path("d/big.yaml") + ":" + std::to_string(repeatLine) +
                       ": Service default/svc-0: defined again (first at line 2)"),
            std::string::npos)
      << text4.substr(0, 2000);
}

TEST_F(ManifestSourceTest, ASyntaxErrorInALaterPieceKeepsTheWholeFile) {
  std::string big;
  for (int i = 0; i < 20'000; ++i)
    big += "---\n" + serviceYaml("svc-" + std::to_string(i), 80, "10.96.0.1");
  write("d/big.yaml", big);
  ManifestOptions options;
  options.paths = {path("d")};
  options.parseThreads = 2;
  ManifestSource source(options);
  source.reload(0);
  ASSERT_EQ(source.objects().size(), 20'000u);
  uint32_t lines = static_cast<uint32_t>(std::count(big.begin(), big.end(), '\n'));
  writeByRename("d/big.yaml", big + "---\nkind: [unclosed\n" + big.substr(0, 100'000));
  auto r = source.reload(0);
  EXPECT_TRUE(r.events.empty());
  EXPECT_EQ(source.objects().size(), 20'000u);
  auto errors = withSeverity(r.diagnostics, Diagnostic::Severity::kError);
  ASSERT_EQ(errors.size(), 1u) << allText(r.diagnostics);
  EXPECT_NE(errors[0].message.find("line " + std::to_string(lines + 3)), std::string::npos)
      << errors[0].message;
  EXPECT_NE(errors[0].message.find("keeping the 20000 objects"), std::string::npos);
}

TEST_F(ManifestSourceTest, AFifoIsNeverOpened) {
  // Opening a FIFO for reading blocks until a writer comes: it must be skipped, not read.
  write("d/a.yaml", serviceYaml("a", 80, "10.96.0.1"));
  ASSERT_EQ(::mkfifo(path("d/pipe.yaml").c_str(), 0644), 0);
  ASSERT_EQ(::mkfifo(path("configured.yaml").c_str(), 0644), 0);
  ManifestSource source = sourceFor({path("d"), path("configured.yaml")});
  auto r = source.reload(0);
  EXPECT_EQ(r.filesRead, 1u);
  EXPECT_EQ(keys(source.objects()), (std::vector<std::string>{"Service default/a"}));
  auto errors = withSeverity(r.diagnostics, Diagnostic::Severity::kError);
  ASSERT_EQ(errors.size(), 1u) << allText(r.diagnostics);
  EXPECT_EQ(errors[0].file, path("configured.yaml"));
}

TEST_F(ManifestSourceTest, AMissingConfiguredPathIsAnErrorAndKeepsWhatWasLoadedFromIt) {
  // Missing from the start: an error, nothing loaded, no crash.
  ManifestSource none = sourceFor({path("nowhere"), path("nofile.yaml")});
  auto r = none.reload(0);
  EXPECT_TRUE(r.events.empty());
  auto errors = withSeverity(r.diagnostics, Diagnostic::Severity::kError);
  ASSERT_EQ(errors.size(), 2u) << allText(r.diagnostics);
  EXPECT_EQ(errors[0].file, path("nowhere"));
  EXPECT_NE(errors[0].message.find("No such file or directory"), std::string::npos)
      << errors[0].message;
  EXPECT_EQ(errors[1].file, path("nofile.yaml"));
  EXPECT_EQ(none.standingDiagnostics().size(), 2u);

  // A configured directory and a configured file, both loaded, then both gone (an unmounted
  // volume, a file being replaced by a tool that deletes first).
  write("d/a.yaml", serviceYaml("a", 80, "10.96.0.1"));
  write("d/b.yaml", serviceYaml("b", 80, "10.96.0.2"));
  write("single.yaml", serviceYaml("s", 80, "10.96.0.3"));
  ManifestSource source = sourceFor({path("d"), path("single.yaml")});
  source.reload(0);
  ASSERT_EQ(source.objects().size(), 3u);
  ASSERT_EQ(::rename(path("d").c_str(), path("d-moved-away").c_str()), 0);
  ASSERT_EQ(::unlink(path("single.yaml").c_str()), 0);
  r = source.reload(0);
  EXPECT_TRUE(r.events.empty()) << testing::PrintToString(describe(r.events));
  EXPECT_EQ(source.objects().size(), 3u);
  errors = withSeverity(r.diagnostics, Diagnostic::Severity::kError);
  ASSERT_EQ(errors.size(), 2u) << allText(r.diagnostics);
  EXPECT_EQ(errors[0].file, path("d"));
  EXPECT_NE(errors[0].message.find("keeping the objects last loaded from it"), std::string::npos)
      << errors[0].message;
  EXPECT_EQ(errors[1].file, path("single.yaml"));

  // Back: the stored state is current again, and a file removed meanwhile is now deleted.
  ASSERT_EQ(::rename(path("d-moved-away").c_str(), path("d").c_str()), 0);
  ASSERT_EQ(::unlink(path("d/b.yaml").c_str()), 0);
  write("single.yaml", serviceYaml("s", 81, "10.96.0.3"));
  r = source.reload(0);
  EXPECT_EQ(describe(r.events),
            (std::vector<std::string>{"delete Service default/b", "upsert Service default/s"}));
  EXPECT_TRUE(withSeverity(r.diagnostics, Diagnostic::Severity::kError).empty())
      << allText(r.diagnostics);
  EXPECT_TRUE(source.standingDiagnostics().empty());
}

TEST_F(ManifestSourceTest, AnEmptyConfiguredPathShieldsNothing) {
  // `--manifests ""` (or an empty entry in the config file) names nothing; it must not stop
  // deleted files elsewhere from deleting their objects.
  write("d/a.yaml", serviceYaml("a", 80, "10.96.0.1"));
  write("d/b.yaml", serviceYaml("b", 80, "10.96.0.2"));
  ManifestSource source = sourceFor({path("d"), ""});
  auto r = source.reload(0);
  EXPECT_EQ(source.objects().size(), 2u);
  auto errors = withSeverity(r.diagnostics, Diagnostic::Severity::kError);
  ASSERT_EQ(errors.size(), 1u) << allText(r.diagnostics);
  ASSERT_EQ(::unlink(path("d/a.yaml").c_str()), 0);
  r = source.reload(0);
  EXPECT_EQ(describe(r.events), (std::vector<std::string>{"delete Service default/a"}));
}

TEST_F(ManifestSourceTest, TheSameObjectInTwoFilesTakesTheLaterPathWithAWarning) {
  write("d/10-base.yaml", serviceYaml("web", 80, "10.96.0.1"));
  write("d/20-override.json", serviceJson("web", 8080, "10.96.0.1"));
  ManifestSource source = sourceFor({path("d")});
  auto r = source.reload(0);
  EXPECT_EQ(describe(r.events), (std::vector<std::string>{"upsert Service default/web"}));
  EXPECT_EQ(servicePort(source, "web"), 8080);
  auto warnings = withSeverity(r.diagnostics, Diagnostic::Severity::kWarning);
  ASSERT_EQ(warnings.size(), 1u) << allText(r.diagnostics);
  EXPECT_EQ(warnings[0].file, path("d/20-override.json"));
  EXPECT_NE(warnings[0].message.find("Service default/web"), std::string::npos);
  EXPECT_NE(warnings[0].message.find(path("d/10-base.yaml")), std::string::npos)
      << warnings[0].message;

  // The later file goes: the earlier definition is back in effect.
  ASSERT_EQ(::unlink(path("d/20-override.json").c_str()), 0);
  r = source.reload(0);
  EXPECT_EQ(describe(r.events), (std::vector<std::string>{"upsert Service default/web"}));
  EXPECT_EQ(servicePort(source, "web"), 80);

  // Twice in one file: the later document wins, with a warning naming the first line.
  write("d/10-base.yaml",
        serviceYaml("web", 80, "10.96.0.1") + "---\n" + serviceYaml("web", 81, "10.96.0.1"));
  r = source.reload(0);
  EXPECT_EQ(servicePort(source, "web"), 81);
  warnings = withSeverity(r.diagnostics, Diagnostic::Severity::kWarning);
  ASSERT_EQ(warnings.size(), 1u) << allText(r.diagnostics);
  EXPECT_NE(warnings[0].message.find("defined again"), std::string::npos) << warnings[0].message;
}

TEST_F(ManifestSourceTest, SetPathsDropsTheObjectsOfPathsNoLongerConfigured) {
  write("a/x.yaml", serviceYaml("x", 80, "10.96.0.1"));
  write("b/y.yaml", serviceYaml("y", 80, "10.96.0.2"));
  ManifestSource source = sourceFor({path("a"), path("b")});
  source.reload(0);
  ASSERT_EQ(source.objects().size(), 2u);
  source.setPaths({path("b")});
  auto r = source.reload(0);
  EXPECT_EQ(r.filesRead, 0u);
  EXPECT_EQ(describe(r.events), (std::vector<std::string>{"delete Service default/x"}));
}

TEST_F(ManifestSourceTest, WatchDirectoriesIncludeTheDirectoriesOfSymlinkTargets) {
  write("d/own.yaml", serviceYaml("own", 80, "10.96.0.1"));
  write("elsewhere/target.yaml", serviceYaml("linked", 80, "10.96.0.2"));
  write("third/file.yaml", serviceYaml("file", 80, "10.96.0.3"));
  ASSERT_EQ(::symlink(path("elsewhere/target.yaml").c_str(), path("d/link.yaml").c_str()), 0);
  ManifestSource source = sourceFor({path("d"), path("third/file.yaml"), path("missing/x.yaml")});
  auto r = source.reload(0);
  EXPECT_EQ(keys(source.objects()),
            (std::vector<std::string>{"Service default/file", "Service default/linked",
                                      "Service default/own"}));
  char real[PATH_MAX];
  ASSERT_NE(::realpath(path("elsewhere").c_str(), real), nullptr);
  std::vector<std::string> want = {path("d"), path("third"), path("missing"), real};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(source.watchDirectories(), want);

  // A configured directory that is a symlink is re-pointed in its parent: that is watched too,
  // and so are the directories behind it.
  ASSERT_EQ(::mkdir(path("releases").c_str(), 0755), 0);
  write("releases/v1/x.yaml", serviceYaml("x", 80, "10.96.0.4"));
  ASSERT_EQ(::symlink("releases/v1", path("current").c_str()), 0);
  ManifestSource linked = sourceFor({path("current") + "/"});
  linked.reload(0);
  ASSERT_NE(::realpath(path("releases/v1").c_str(), real), nullptr);
  want = {tmp_.path(), path("current"), real};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(linked.watchDirectories(), want);

  // Editing the target is a change of the link.
  write("elsewhere/target.yaml", serviceYaml("linked", 8080, "10.96.0.2"));
  r = source.reload(0);
  EXPECT_EQ(describe(r.events), (std::vector<std::string>{"upsert Service default/linked"}));
  // A dangling link is no file: its objects go.
  ASSERT_EQ(::unlink(path("elsewhere/target.yaml").c_str()), 0);
  r = source.reload(0);
  EXPECT_EQ(describe(r.events), (std::vector<std::string>{"delete Service default/linked"}));
}

}  // namespace
}  // namespace capstan::control
