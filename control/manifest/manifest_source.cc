#include "control/manifest/manifest_source.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>

#include "control/document_reader.h"

namespace capstan::control {

std::string Diagnostic::toString() const {
  std::string out = file;
  if (!file.empty() && line != 0) out += ":" + std::to_string(line);
  if (!out.empty()) out += ": ";
  return out + message;
}

namespace {

bool hasManifestExtension(std::string_view name) {
  return name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json");
}

std::string dirName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string joinPath(const std::string& dir, const std::string& name) {
  if (!dir.empty() && dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

bool isUnder(const std::string& file, const std::string& path) {
  if (path.empty()) return false;  // names nothing (and back() below needs a character)
  if (file == path) return true;
  std::string prefix = path.back() == '/' ? path : path + "/";
  return file.starts_with(prefix);
}

std::string sizeText(size_t bytes) {
  if (bytes >= (size_t{1} << 20) && bytes % (size_t{1} << 20) == 0) {
    return std::to_string(bytes >> 20) + " MiB";
  }
  return std::to_string(bytes) + " bytes";
}

Result<std::string> readWholeFile(const std::string& path, size_t maxBytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error(std::string("cannot open: ") + std::strerror(errno));
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return Error(std::string("cannot read: ") + std::strerror(err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > maxBytes) {
      ::close(fd);
      return Error("larger than the " + sizeText(maxBytes) + " limit (--manifest-max-file-size)");
    }
  }
  ::close(fd);
  return out;
}

}  // namespace

ManifestSource::ManifestSource(ManifestOptions options)
    : options_(std::move(options)), decoder_(options_.decoder) {}

void ManifestSource::setPaths(std::vector<std::string> paths) { options_.paths = std::move(paths); }

std::vector<std::string> ManifestSource::listFiles(std::vector<Diagnostic>& diagnostics,
                                                   std::vector<std::string>& unreadable) const {
  std::vector<std::string> files;
  for (const std::string& path : options_.paths) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      diagnostics.push_back({Diagnostic::Severity::kError, path, 0,
                             std::string("cannot access: ") + std::strerror(errno) +
                                 " (keeping the objects last loaded from it)"});
      unreadable.push_back(path);
      continue;
    }
    if (S_ISREG(st.st_mode)) {
      files.push_back(path);
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      diagnostics.push_back(
          {Diagnostic::Severity::kError, path, 0, "neither a file nor a directory"});
      unreadable.push_back(path);
      continue;
    }
    DIR* dir = ::opendir(path.c_str());
    if (!dir) {
      diagnostics.push_back({Diagnostic::Severity::kError, path, 0,
                             std::string("cannot list: ") + std::strerror(errno) +
                                 " (keeping the objects last loaded from it)"});
      unreadable.push_back(path);
      continue;
    }
    while (struct dirent* entry = ::readdir(dir)) {
      std::string name = entry->d_name;
      if (name.empty() || name[0] == '.' || !hasManifestExtension(name)) continue;
      std::string full = joinPath(path, name);
      struct stat fst;
      if (::stat(full.c_str(), &fst) == 0 && S_ISREG(fst.st_mode)) files.push_back(full);
    }
    ::closedir(dir);
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  return files;
}

void ManifestSource::readFile(const std::string& path, const Stamp& stamp, FileState& state) {
  state.stamp = stamp;
  state.diagnostics.clear();
  auto keepAll = [&](std::string message) {
    if (!state.objects.empty()) {
      message += " (keeping the " + std::to_string(state.objects.size()) +
                 " objects last loaded from this file)";
    }
    state.diagnostics.push_back({Diagnostic::Severity::kError, path, 0, std::move(message)});
  };
  if (stamp.size > 0 && static_cast<size_t>(stamp.size) > options_.maxFileBytes) {
    keepAll("file is " + std::to_string(stamp.size) + " bytes, larger than the " +
            sizeText(options_.maxFileBytes) + " limit (--manifest-max-file-size)");
    return;
  }
  auto content = readWholeFile(path, options_.maxFileBytes);
  if (!content.ok()) {
    keepAll(content.error().message());
    return;
  }
  if (std::memchr(content->data(), '\0', content->size()) != nullptr) {
    keepAll("binary file (contains NUL bytes), not YAML or JSON");
    return;
  }

  std::map<ObjectKey, KubeObject> objects;
  std::map<ObjectKey, uint32_t> definedAt;
  std::vector<Diagnostic> diagnostics;
  std::set<ObjectKey> invalid;
  Status parsed = readDocuments(*content, [&](Value document, size_t) -> Status {
    for (Decoded& d : decoder_.decodeDocument(document)) {
      switch (d.outcome) {
        case Decoded::Outcome::kOk: {
          if (auto it = definedAt.find(*d.key); it != definedAt.end()) {
            diagnostics.push_back({Diagnostic::Severity::kWarning, path, d.line,
                                   d.key->toString() + ": defined again (first at line " +
                                       std::to_string(it->second) + "); the later one wins"});
          }
          definedAt[*d.key] = d.line ? d.line : document.line();
          objects[*d.key] = std::move(d.object);
          invalid.erase(*d.key);
          break;
        }
        case Decoded::Outcome::kIgnored:
          diagnostics.push_back({Diagnostic::Severity::kIgnored, path, d.line, d.message});
          break;
        case Decoded::Outcome::kInvalid: {
          std::string message = d.message;
          if (d.key && !objects.count(*d.key)) {
            invalid.insert(*d.key);
            if (state.objects.count(*d.key)) message += " (keeping its last good version)";
          }
          diagnostics.push_back({Diagnostic::Severity::kError, path, d.line, std::move(message)});
          break;
        }
      }
    }
    return okStatus();
  });
  if (!parsed.ok()) {
    // A syntax error anywhere makes the whole file suspect (it may be half written).
    keepAll(parsed.error().message());
    return;
  }
  for (const ObjectKey& key : invalid) {
    if (auto it = state.objects.find(key); it != state.objects.end()) objects[key] = it->second;
  }
  state.objects = std::move(objects);
  state.diagnostics = std::move(diagnostics);
}

ManifestSource::Reload ManifestSource::reload(int64_t nowNs) {
  Reload out;
  std::vector<Diagnostic> pathDiagnostics;
  std::vector<std::string> unreadable;
  std::vector<std::string> files = listFiles(pathDiagnostics, unreadable);

  for (auto it = files_.begin(); it != files_.end();) {
    bool listed = std::binary_search(files.begin(), files.end(), it->first);
    bool shielded = std::any_of(unreadable.begin(), unreadable.end(),
                                [&](const std::string& p) { return isUnder(it->first, p); });
    if (!listed && !shielded) {
      it = files_.erase(it);
    } else {
      ++it;
    }
  }
  for (const std::string& path : files) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) continue;  // vanished since the listing: next time
    Stamp stamp{st.st_dev, st.st_ino, st.st_size,
                int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec,
                int64_t{st.st_ctim.tv_sec} * 1'000'000'000 + st.st_ctim.tv_nsec};
    auto [it, inserted] = files_.try_emplace(path);
    if (!inserted && it->second.stamp == stamp) continue;
    readFile(path, stamp, it->second);
    ++out.filesRead;
    out.diagnostics.insert(out.diagnostics.end(), it->second.diagnostics.begin(),
                           it->second.diagnostics.end());
  }
  pathDiagnostics_ = pathDiagnostics;
  out.diagnostics.insert(out.diagnostics.begin(), pathDiagnostics.begin(), pathDiagnostics.end());

  // The merged view: later files override earlier ones.
  std::map<ObjectKey, KubeObject> merged;
  std::map<ObjectKey, const std::string*> source;
  for (const auto& [path, state] : files_) {
    for (const auto& [key, object] : state.objects) {
      if (auto it = source.find(key); it != source.end() && out.filesRead > 0) {
        out.diagnostics.push_back(
            {Diagnostic::Severity::kWarning, path, 0,
             key.toString() + ": also defined in " + *it->second + "; the definition here wins"});
      }
      merged[key] = object;
      source[key] = &path;
    }
  }

  auto oldIt = merged_.begin();
  auto newIt = merged.begin();
  while (oldIt != merged_.end() || newIt != merged.end()) {
    if (newIt == merged.end() || (oldIt != merged_.end() && oldIt->first < newIt->first)) {
      out.events.push_back({ObjectEvent::Type::kDelete, oldIt->first, {}, nowNs});
      ++oldIt;
    } else if (oldIt == merged_.end() || newIt->first < oldIt->first) {
      out.events.push_back({ObjectEvent::Type::kUpsert, newIt->first, newIt->second, nowNs});
      ++newIt;
    } else {
      if (!sameObject(oldIt->second, newIt->second)) {
        out.events.push_back({ObjectEvent::Type::kUpsert, newIt->first, newIt->second, nowNs});
      }
      ++oldIt;
      ++newIt;
    }
  }
  merged_ = std::move(merged);
  lastFiles_ = std::move(files);
  return out;
}

std::vector<Diagnostic> ManifestSource::standingDiagnostics() const {
  std::vector<Diagnostic> out = pathDiagnostics_;
  for (const auto& [path, state] : files_) {
    out.insert(out.end(), state.diagnostics.begin(), state.diagnostics.end());
  }
  return out;
}

std::vector<std::string> ManifestSource::watchDirectories() const {
  std::set<std::string> dirs;
  for (std::string path : options_.paths) {
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    if (path.empty()) continue;
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      dirs.insert(path);
      // A configured directory that is a symlink (`manifests -> releases/v2`) is re-pointed in
      // the directory holding the link.
      struct stat lst;
      if (::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) dirs.insert(dirName(path));
    } else {
      dirs.insert(dirName(path));
    }
  }
  // A symlinked file changes where its target lives (a ConfigMap's ..data swap is seen in the
  // directory itself; a link to elsewhere is not), so watch the targets' directories too.
  for (const std::string& file : lastFiles_) {
    char resolved[PATH_MAX];
    if (::realpath(file.c_str(), resolved) != nullptr && file != resolved) {
      dirs.insert(dirName(resolved));
    }
  }
  return {dirs.begin(), dirs.end()};
}

}  // namespace capstan::control
