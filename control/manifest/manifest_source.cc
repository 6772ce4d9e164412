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
#include <optional>
#include <set>
#include <thread>

#include "control/document_reader.h"
#include "control/parallel.h"

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

// One piece of a file (the whole file, or a run of documents of a large YAML file) and what
// reading it produced.
struct ManifestSource::Piece {
  std::string_view text;
  uint32_t firstLine = 1;
  struct Entry {
    Decoded decoded;
    uint32_t documentLine;
  };
  std::vector<Entry> entries;
  Status status;
};

// A changed file, read and parsed away from the control thread; applied by applyParsed().
struct ManifestSource::ParsedFile {
  std::string path;
  Stamp stamp;
  std::string content;
  std::optional<std::string> fatal;  // could not be read at all: keep what it had
  std::vector<Piece> pieces;
};

namespace {
// Large YAML files are parsed in pieces of about this size, on several threads.
constexpr size_t kPieceBytes = size_t{1} << 20;
// Below this much changed data, threads cost more than they save.
constexpr size_t kParallelBytes = size_t{256} << 10;
// File bytes parsed at once by the per-file pool.
constexpr size_t kInFlightBytes = size_t{64} << 20;
}  // namespace

void ManifestSource::readContent(ParsedFile& file) const {
  if (file.stamp.size > 0 && static_cast<size_t>(file.stamp.size) > options_.maxFileBytes) {
    file.fatal = "file is " + std::to_string(file.stamp.size) + " bytes, larger than the " +
                 sizeText(options_.maxFileBytes) + " limit (--manifest-max-file-size)";
    return;
  }
  auto content = readWholeFile(file.path, options_.maxFileBytes);
  if (!content.ok()) {
    file.fatal = content.error().message();
    return;
  }
  file.content = std::move(content).value();
  if (std::memchr(file.content.data(), '\0', file.content.size()) != nullptr) {
    file.fatal = "binary file (contains NUL bytes), not YAML or JSON";
    return;
  }
  if (sniffFormat(file.content) == DocumentFormat::kYaml && file.content.size() > 2 * kPieceBytes) {
    for (auto [text, line] : splitYamlStream(file.content, kPieceBytes)) {
      file.pieces.push_back(Piece{text, line, {}, {}});
    }
  } else {
    file.pieces.push_back(Piece{file.content, 1, {}, {}});
  }
}

void ManifestSource::parsePiece(Piece& piece) const {
  piece.status = readDocuments(
      piece.text,
      [&](Value document, size_t) -> Status {
        for (Decoded& d : decoder_.decodeDocument(document)) {
          piece.entries.push_back({std::move(d), document.line()});
        }
        return okStatus();
      },
      {}, piece.firstLine);
}

void ManifestSource::applyParsed(ParsedFile& file, FileState& state) const {
  const std::string& path = file.path;
  state.stamp = file.stamp;
  state.diagnostics.clear();
  auto keepAll = [&](std::string message) {
    if (!state.objects.empty()) {
      message += " (keeping the " + std::to_string(state.objects.size()) +
                 " objects last loaded from this file)";
    }
    state.diagnostics.push_back({Diagnostic::Severity::kError, path, 0, std::move(message)});
  };
  if (file.fatal) {
    keepAll(*file.fatal);
    return;
  }
  for (const Piece& piece : file.pieces) {
    if (!piece.status.ok()) {
      // A syntax error anywhere makes the whole file suspect (it may be half written).
      keepAll(piece.status.error().message());
      return;
    }
  }

  std::map<ObjectKey, KubeObject> objects;
  std::map<ObjectKey, uint32_t> definedAt;
  std::vector<Diagnostic> diagnostics;
  std::set<ObjectKey> invalid;
  for (Piece& piece : file.pieces) {
    for (auto& [d, documentLine] : piece.entries) {
      switch (d.outcome) {
        case Decoded::Outcome::kOk: {
          uint32_t at = d.line ? d.line : documentLine;
          if (auto it = definedAt.find(*d.key); it != definedAt.end()) {
            diagnostics.push_back({Diagnostic::Severity::kWarning, path, at,
                                   d.key->toString() + ": defined again (first at line " +
                                       std::to_string(it->second) + "); the later one wins"});
          }
          definedAt[*d.key] = at;
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
  std::vector<ParsedFile> changed;
  size_t changedBytes = 0;
  for (const std::string& path : files) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) continue;  // vanished since the listing: next time
    Stamp stamp{st.st_dev, st.st_ino, st.st_size,
                int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec,
                int64_t{st.st_ctim.tv_sec} * 1'000'000'000 + st.st_ctim.tv_nsec};
    auto it = files_.find(path);
    if (it != files_.end() && it->second.stamp == stamp) continue;
    changed.push_back(ParsedFile{path, stamp, {}, {}, {}});
    changedBytes += static_cast<size_t>(std::max<off_t>(st.st_size, 0));
  }

  // Read and parse on several threads (files, and pieces of large YAML files, are independent;
  // the decoder is const), then apply on this thread in path order, so the outcome does not
  // depend on which thread finished first. A file's text is dropped as soon as it is parsed, so
  // what is held at once is bounded by the threads, not by the number of files: small files and
  // JSON files go one per thread, large YAML files one at a time with their pieces spread over
  // the threads.
  unsigned threads = options_.parseThreads ? options_.parseThreads
                                           : std::max(1u, std::thread::hardware_concurrency());
  if (changedBytes < kParallelBytes) threads = 1;
  auto release = [](ParsedFile& file) {
    for (Piece& piece : file.pieces) piece.text = {};
    // Not `content = std::string()`: libstdc++ keeps the buffer when moving from a short string.
    std::string().swap(file.content);
  };
  std::vector<ParsedFile*> small, large;
  size_t largestSmall = 1;
  for (ParsedFile& file : changed) {
    size_t size = static_cast<size_t>(std::max<off_t>(file.stamp.size, 0));
    // Only YAML is cut into pieces (JSON files are read whole, whatever their size).
    if (size > 2 * kPieceBytes && !file.path.ends_with(".json")) {
      large.push_back(&file);
    } else {
      small.push_back(&file);
      largestSmall = std::max(largestSmall, size);
    }
  }
  // Parsing holds a few times a file's size; keep what the pool holds at once near the budget.
  unsigned smallThreads =
      static_cast<unsigned>(std::clamp<size_t>(kInFlightBytes / largestSmall, 1, threads));
  parallelFor(small.size(), smallThreads, [&](size_t i) {
    readContent(*small[i]);
    for (Piece& piece : small[i]->pieces) parsePiece(piece);
    release(*small[i]);
  });
  for (ParsedFile* file : large) {
    readContent(*file);
    parallelFor(file->pieces.size(), threads, [&](size_t i) { parsePiece(file->pieces[i]); });
    release(*file);
  }
  for (ParsedFile& file : changed) {
    FileState& state = files_[file.path];
    applyParsed(file, state);
    ++out.filesRead;
    out.diagnostics.insert(out.diagnostics.end(), state.diagnostics.begin(),
                           state.diagnostics.end());
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
