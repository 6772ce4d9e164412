// EalTest: the GoogleTest fixture of the tests that run DPDK (the shell, the proxier): the
// process's test EAL started once (test_eal.h), and a scratch directory per test for pcap files.
// Without root the EAL cannot start here: the test is skipped and says so.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "tests/dataplane/dpdk/test_eal.h"

namespace capstan::dataplane::test {

class EalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const Status eal = initTestEal();
    if (!eal) {
      if (geteuid() != 0) {
        GTEST_SKIP() << "the DPDK EAL does not start without root here: " << eal.error().message();
      }
      FAIL() << eal.error().message();
    }
    dir_ = std::filesystem::temp_directory_path() /
           ("capstan-dpdk-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }
  std::string path(const char* name) const { return (dir_ / name).string(); }

 private:
  std::filesystem::path dir_;
};

}  // namespace capstan::dataplane::test
