// ManifestSource: Kubernetes objects from files and directories of YAML or JSON manifests.
//
// Paths are files or directories (not recursive, like `kubectl apply -f DIR`: entries ending in
// .yaml, .yml or .json, hidden ones skipped — which also skips the `..data` machinery of a mounted
// ConfigMap while following its visible symlinks). reload() looks at every file again, reads
// only those whose identity (device, inode, size, mtime, following symlinks) changed, and returns
// the object events that turn the previous view into the new one.
//
// The promise to the operator: a broken file never takes away what was last loaded from it.
// - A file that cannot be read or parsed keeps all its last good objects.
// - An invalid object keeps its last good version (same kind, namespace and name) from that file.
// - Only deleting a file, or an object from a file that parses, deletes objects.
// When two files define the same object, the later path (in sorted order) wins, as it would with
// `kubectl apply -f`, and a diagnostic says so.
//
// Not thread-safe: owned by the control thread.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "control/decoder.h"
#include "control/source.h"

namespace capstan::control {

struct ManifestOptions {
  std::vector<std::string> paths;
  // Larger files are refused (and keep their last good objects): a guard against pointing
  // Capstan at the wrong file (--manifest-max-file-size). 10,000 Services with their
  // EndpointSlices of 10 endpoints each, as kubectl prints them, take 42 MB of YAML and 100 MB of
  // JSON.
  size_t maxFileBytes = size_t{128} << 20;
  // Threads that read and parse changed files (and pieces of large YAML files) at once;
  // 0 means one per core. Small changes are read on the calling thread.
  unsigned parseThreads = 0;
  DecoderOptions decoder;
};

class ManifestSource {
 public:
  explicit ManifestSource(ManifestOptions options);

  struct Reload {
    std::vector<ObjectEvent> events;
    std::vector<Diagnostic> diagnostics;  // problems found in the files read this time
    size_t filesRead = 0;
  };

  // Re-reads what changed. `nowNs` (wall clock, Unix ns; 0 for none) stamps the events as
  // their trigger time.
  Reload reload(int64_t nowNs);

  // Changes the paths (SIGHUP); the next reload() drops the objects of files no longer covered.
  void setPaths(std::vector<std::string> paths);
  const std::vector<std::string>& paths() const { return options_.paths; }

  // The directories whose entries decide what reload() sees: the configured directories (and
  // the directory holding one that is a symlink), the directories holding configured files, and
  // the directories symlinked files point into.
  std::vector<std::string> watchDirectories() const;

  // The current merged view.
  const std::map<ObjectKey, KubeObject>& objects() const { return merged_; }

  // Problems standing in the current files (kept until the file changes): what --dry-run
  // reports and what the invalid-objects gauge counts.
  std::vector<Diagnostic> standingDiagnostics() const;

 private:
  struct Stamp {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = -1;
    int64_t mtimeNs = 0;
    int64_t ctimeNs = 0;
    bool operator==(const Stamp&) const = default;
  };
  struct FileState {
    Stamp stamp;
    std::map<ObjectKey, KubeObject> objects;  // last good objects from this file
    std::vector<Diagnostic> diagnostics;      // from the last read
  };

  std::vector<std::string> listFiles(std::vector<Diagnostic>& diagnostics,
                                     std::vector<std::string>& unreadablePaths) const;
  struct Piece;
  struct ParsedFile;
  // The three steps of reading a changed file: the first two run on worker threads and touch
  // no member but the (const) options and decoder; the last runs on the caller's thread.
  void readContent(ParsedFile& file) const;
  void parsePiece(Piece& piece) const;
  void applyParsed(ParsedFile& file, FileState& state) const;

  ManifestOptions options_;
  ObjectDecoder decoder_;
  std::map<std::string, FileState> files_;
  std::map<ObjectKey, KubeObject> merged_;
  std::vector<Diagnostic> pathDiagnostics_;  // about the configured paths, from the last reload
  std::vector<std::string> lastFiles_;       // the files the last reload listed
};

}  // namespace capstan::control
