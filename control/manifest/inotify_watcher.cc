#include "control/manifest/inotify_watcher.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

namespace capstan::control {

Result<InotifyWatcher> InotifyWatcher::create() {
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return Error(std::string("inotify_init1: ") + std::strerror(errno));
  return InotifyWatcher(fd);
}

InotifyWatcher::InotifyWatcher(InotifyWatcher&& other) noexcept
    : fd_(other.fd_), watches_(std::move(other.watches_)) {
  other.fd_ = -1;
}

InotifyWatcher& InotifyWatcher::operator=(InotifyWatcher&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    watches_ = std::move(other.watches_);
    other.fd_ = -1;
  }
  return *this;
}

InotifyWatcher::~InotifyWatcher() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<std::string> InotifyWatcher::watch(const std::vector<std::string>& dirs) {
  std::vector<std::string> problems;
  std::set<std::string> wanted(dirs.begin(), dirs.end());
  constexpr uint32_t kMask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE |
                             IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
  std::map<std::string, int> next;
  for (const std::string& dir : wanted) {
    // Adding again is cheap and renews a watch the kernel dropped (directory deleted/recreated).
    int wd = inotify_add_watch(fd_, dir.c_str(), kMask);
    if (wd < 0) {
      problems.push_back(dir + ": cannot watch: " + std::strerror(errno));
      continue;
    }
    next[dir] = wd;
  }
  // Watches are per directory (inode), not per path: two paths naming one directory share a
  // descriptor, and a path that now names another directory (a re-pointed symlink, a directory
  // deleted and made again) got a new one. Remove exactly the descriptors no wanted path uses.
  std::set<int> inUse;
  for (const auto& [dir, wd] : next) inUse.insert(wd);
  for (const auto& [dir, wd] : watches_) {
    if (!inUse.count(wd)) inotify_rm_watch(fd_, wd);  // EINVAL if the kernel dropped it: fine
  }
  watches_ = std::move(next);
  return problems;
}

bool InotifyWatcher::drain() {
  alignas(struct inotify_event) char buf[16384];
  bool any = false;
  for (;;) {
    ssize_t n = ::read(fd_, buf, sizeof(buf));
    if (n > 0) {
      any = true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return any;  // EAGAIN: drained
  }
}

}  // namespace capstan::control
