// InotifyWatcher: tells when anything changes in a set of directories.
//
// It watches directories, not files, because that is where replacements show: an editor's
// write-and-rename, `kubectl cp`, and the `..data` symlink swap with which the kubelet updates a
// mounted ConfigMap all appear as entries created, moved or removed in the directory. The
// caller does not learn what changed, only that something did, and asks ManifestSource to look
// again (it reads only what changed).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "model/result.h"

namespace capstan::control {

class InotifyWatcher {
 public:
  static Result<InotifyWatcher> create();
  InotifyWatcher(InotifyWatcher&& other) noexcept;
  InotifyWatcher& operator=(InotifyWatcher&& other) noexcept;
  ~InotifyWatcher();

  // The inotify descriptor (non-blocking), to wait on for readability.
  int fd() const { return fd_; }

  // Watches exactly `dirs` from now on (adding and removing watches as needed). A directory that
  // cannot be watched is reported in the returned list of problems and tried again next time.
  std::vector<std::string> watch(const std::vector<std::string>& dirs);

  // Consumes the pending events; true if there were any.
  bool drain();

 private:
  explicit InotifyWatcher(int fd) : fd_(fd) {}
  int fd_ = -1;
  std::map<std::string, int> watches_;  // directory -> watch descriptor
};

}  // namespace capstan::control
