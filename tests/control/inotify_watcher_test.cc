// InotifyWatcher against real directories under /tmp (inotify delivers events synchronously with
// the file operation, so no test here needs to wait).
#include "control/manifest/inotify_watcher.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace capstan::control {
namespace {

namespace fs = std::filesystem;

class InotifyWatcherTest : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/capstan-inotify-test-XXXXXX";
    char* made = ::mkdtemp(pattern);
    ASSERT_NE(made, nullptr);
    root_ = made;
    ASSERT_EQ(::mkdir(path("a").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(path("b").c_str(), 0755), 0);
    auto watcher = InotifyWatcher::create();
    ASSERT_TRUE(watcher.ok()) << watcher.error().message();
    watcher_.emplace(std::move(watcher).value());
  }
  void TearDown() override {
    watcher_.reset();
    std::error_code ignored;
    if (!root_.empty()) fs::remove_all(root_, ignored);
  }

  std::string path(const std::string& rel) const { return root_ + "/" + rel; }

  void write(const std::string& rel, const std::string& content, const char* mode = "wb") {
    FILE* f = std::fopen(path(rel).c_str(), mode);
    ASSERT_NE(f, nullptr) << rel;
    ASSERT_EQ(std::fwrite(content.data(), 1, content.size(), f), content.size());
    ASSERT_EQ(std::fclose(f), 0);
  }

  std::string root_;
  std::optional<InotifyWatcher> watcher_;
};

TEST_F(InotifyWatcherTest, DrainIsFalseWhenNothingHappened) {
  EXPECT_GE(watcher_->fd(), 0);
  EXPECT_FALSE(watcher_->drain());  // nothing watched yet
  EXPECT_TRUE(watcher_->watch({path("a")}).empty());
  EXPECT_FALSE(watcher_->drain());
  // Reading a file and listing the directory are not changes.
  write("a/x.yaml", "x: 1\n");
  ASSERT_TRUE(watcher_->drain());
  EXPECT_FALSE(watcher_->drain());
  std::FILE* f = std::fopen(path("a/x.yaml").c_str(), "rb");
  ASSERT_NE(f, nullptr);
  char buf[16];
  EXPECT_GT(std::fread(buf, 1, sizeof(buf), f), 0u);
  std::fclose(f);
  EXPECT_EQ(fs::directory_iterator(path("a")) == fs::directory_iterator(), false);
  EXPECT_FALSE(watcher_->drain());
  // Watching the same directory again adds nothing to read.
  EXPECT_TRUE(watcher_->watch({path("a")}).empty());
  EXPECT_FALSE(watcher_->drain());
}

TEST_F(InotifyWatcherTest, ReportsCreateModifyRenameAndDelete) {
  ASSERT_TRUE(watcher_->watch({path("a")}).empty());

  write("a/x.yaml", "x: 1\n");  // create
  EXPECT_TRUE(watcher_->drain());
  EXPECT_FALSE(watcher_->drain());

  write("a/x.yaml", "x: 2\n", "ab");  // modify in place
  EXPECT_TRUE(watcher_->drain());
  EXPECT_FALSE(watcher_->drain());

  // Replaced by rename from a temporary file in the same directory.
  write("a/.x.yaml.tmp", "x: 3\n");
  ASSERT_TRUE(watcher_->drain());
  ASSERT_EQ(::rename(path("a/.x.yaml.tmp").c_str(), path("a/x.yaml").c_str()), 0);
  EXPECT_TRUE(watcher_->drain());
  EXPECT_FALSE(watcher_->drain());

  // Moved in from an unwatched directory, and out to it.
  write("b/y.yaml", "y: 1\n");
  EXPECT_FALSE(watcher_->drain());
  ASSERT_EQ(::rename(path("b/y.yaml").c_str(), path("a/y.yaml").c_str()), 0);
  EXPECT_TRUE(watcher_->drain());
  ASSERT_EQ(::rename(path("a/y.yaml").c_str(), path("b/y.yaml").c_str()), 0);
  EXPECT_TRUE(watcher_->drain());

  // chmod (kubectl cp, an editor restoring the mode).
  ASSERT_EQ(::chmod(path("a/x.yaml").c_str(), 0600), 0);
  EXPECT_TRUE(watcher_->drain());

  // A symlink swap, as the kubelet updates a ConfigMap.
  ASSERT_EQ(::symlink("b", path("a/..data_tmp").c_str()), 0);
  ASSERT_EQ(::rename(path("a/..data_tmp").c_str(), path("a/..data").c_str()), 0);
  EXPECT_TRUE(watcher_->drain());

  ASSERT_EQ(::unlink(path("a/x.yaml").c_str()), 0);  // delete
  EXPECT_TRUE(watcher_->drain());
  EXPECT_FALSE(watcher_->drain());
}

TEST_F(InotifyWatcherTest, ManyEventsAreDrainedAtOnce) {
  ASSERT_TRUE(watcher_->watch({path("a")}).empty());
  // More than one read() buffer of events.
  for (int i = 0; i < 2000; ++i) write("a/file-with-a-longish-name-" + std::to_string(i), "x");
  EXPECT_TRUE(watcher_->drain());
  EXPECT_FALSE(watcher_->drain());
}

TEST_F(InotifyWatcherTest, WatchRemovesDirectoriesNoLongerListed) {
  ASSERT_TRUE(watcher_->watch({path("a"), path("b")}).empty());
  write("b/x", "1");
  EXPECT_TRUE(watcher_->drain());

  ASSERT_TRUE(watcher_->watch({path("a")}).empty());
  watcher_->drain();  // the kernel's note that the watch of b is gone (IN_IGNORED)
  write("b/y", "1");
  ASSERT_EQ(::unlink(path("b/x").c_str()), 0);
  EXPECT_FALSE(watcher_->drain()) << "b is still watched";
  write("a/y", "1");
  EXPECT_TRUE(watcher_->drain()) << "a is no longer watched";

  ASSERT_TRUE(watcher_->watch({}).empty());
  watcher_->drain();
  write("a/z", "1");
  EXPECT_FALSE(watcher_->drain());

  // And back.
  ASSERT_TRUE(watcher_->watch({path("b")}).empty());
  write("b/z", "1");
  EXPECT_TRUE(watcher_->drain());
}

TEST_F(InotifyWatcherTest, ReportsADirectoryThatCannotBeWatchedAndTriesAgain) {
  auto problems = watcher_->watch({path("a"), path("missing")});
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find(path("missing")), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find("No such file or directory"), std::string::npos) << problems[0];
  // The others are watched all the same.
  write("a/x", "1");
  EXPECT_TRUE(watcher_->drain());

  // Created later: the next watch() picks it up.
  ASSERT_EQ(::mkdir(path("missing").c_str(), 0755), 0);
  ASSERT_TRUE(watcher_->watch({path("a"), path("missing")}).empty());
  watcher_->drain();
  write("missing/x", "1");
  EXPECT_TRUE(watcher_->drain());

  // A file is not a directory.
  problems = watcher_->watch({path("a"), path("a/x")});
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find(path("a/x")), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find("Not a directory"), std::string::npos) << problems[0];
}

TEST_F(InotifyWatcherTest, ADirectoryDeletedAndRecreatedIsWatchedAgain) {
  ASSERT_TRUE(watcher_->watch({path("a")}).empty());
  fs::remove_all(path("a"));
  EXPECT_TRUE(watcher_->drain());
  ASSERT_EQ(::mkdir(path("a").c_str(), 0755), 0);
  // The kernel dropped the watch with the directory; watching again renews it.
  EXPECT_TRUE(watcher_->watch({path("a")}).empty());
  write("a/x", "1");
  EXPECT_TRUE(watcher_->drain());
}

TEST_F(InotifyWatcherTest, ARepointedSymlinkMovesTheWatch) {
  ASSERT_EQ(::symlink("a", path("current").c_str()), 0);
  ASSERT_TRUE(watcher_->watch({path("current")}).empty());
  write("a/x", "1");
  EXPECT_TRUE(watcher_->drain());

  // `ln -sfn b current`, done atomically.
  ASSERT_EQ(::symlink("b", path("current.tmp").c_str()), 0);
  ASSERT_EQ(::rename(path("current.tmp").c_str(), path("current").c_str()), 0);
  ASSERT_TRUE(watcher_->watch({path("current")}).empty());
  watcher_->drain();  // IN_IGNORED of the watch on a
  write("b/x", "1");
  EXPECT_TRUE(watcher_->drain()) << "b, which current names now, is not watched";
  write("a/y", "1");
  EXPECT_FALSE(watcher_->drain()) << "a, which current no longer names, is still watched";

  // Two paths naming one directory share the kernel's watch: dropping one keeps the other.
  ASSERT_TRUE(watcher_->watch({path("current"), path("b")}).empty());
  ASSERT_TRUE(watcher_->watch({path("b")}).empty());
  watcher_->drain();
  write("b/y", "1");
  EXPECT_TRUE(watcher_->drain());
}

TEST_F(InotifyWatcherTest, MovesKeepTheDescriptor) {
  ASSERT_TRUE(watcher_->watch({path("a")}).empty());
  int fd = watcher_->fd();
  InotifyWatcher moved(std::move(*watcher_));
  EXPECT_EQ(moved.fd(), fd);
  EXPECT_EQ(watcher_->fd(), -1);
  write("a/x", "1");
  EXPECT_TRUE(moved.drain());
  // Move-assigned over another watcher: that one's descriptor is closed, ours lives on.
  auto other = InotifyWatcher::create();
  ASSERT_TRUE(other.ok());
  int otherFd = other->fd();
  *other = std::move(moved);
  EXPECT_EQ(other->fd(), fd);
  EXPECT_EQ(::fcntl(otherFd, F_GETFD), -1);
  write("a/y", "1");
  EXPECT_TRUE(other->drain());
}

}  // namespace
}  // namespace capstan::control
