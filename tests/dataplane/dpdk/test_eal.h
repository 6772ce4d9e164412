// The one EAL of a DPDK test process: no hugepages, no PCI, no shared files, a file prefix of its
// own (so runs in parallel do not collide), and three lcores floating over the CPUs this process
// may use: lcore 0 is the test's thread (the main lcore), 1 and 2 are workers.
#pragma once

#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "dataplane/dpdk/eal.h"

namespace capstan::dataplane::test {

inline std::string testEalArgs() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::string cpus;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (!CPU_ISSET(cpu, &set)) continue;
      if (!cpus.empty()) cpus += ',';
      cpus += std::to_string(cpu);
    }
  }
  if (cpus.empty()) cpus = "0";
  return "--no-huge -m 256 --no-pci --no-shconf --no-telemetry --file-prefix capstan-test-" +
         std::to_string(getpid()) + " --lcores 0@(" + cpus + "),1@(" + cpus + "),2@(" + cpus +
         ") --log-level lib.eal:warning";
}

// Initialises the EAL once; later calls return the first result. The EAL's (empty) runtime
// directory is removed at exit.
inline Status initTestEal() {
  Status s = dpdk::Eal::init(testEalArgs());
  static const bool cleanupRegistered = [&] {
    if (s) std::atexit([] { rmdir(dpdk::Eal::runtimeDir().c_str()); });
    return true;
  }();
  (void)cleanupRegistered;
  return s;
}

}  // namespace capstan::dataplane::test
