// The DPDK Environment Abstraction Layer, initialised once per process from the operator's
// --dpdk-eal-args string (e.g. "-l 0,1 --no-huge -m 256 --no-pci --file-prefix capstan").
//
// The daemon calls Eal::init() once from its main thread at start-up, before opening any Port: the
// calling thread becomes DPDK's main lcore (and is pinned to its CPU set) and every other lcore of
// the -l/--lcores list becomes a worker lcore the Shell launches its packet loops on. DPDK cannot
// be initialised twice in a process: a second init() with the same arguments succeeds without
// doing anything (so tests may call it from each fixture), one with other arguments fails.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "model/result.h"

namespace capstan::dataplane::dpdk {

// Splits an argument string into words at whitespace, as a POSIX shell would without expansions:
// single quotes keep everything literally, double quotes keep whitespace, a backslash outside
// single quotes escapes the next character. An unterminated quote is an error.
Result<std::vector<std::string>> splitEalArgs(std::string_view text);

class Eal {
 public:
  // Initialises the EAL with `args` (argv[0] is supplied). Thread-safe; the first caller wins.
  static Status init(const std::vector<std::string>& args);
  static Status init(std::string_view args);

  static bool initialized();
  // The worker lcores (every enabled lcore but the main one), ascending. Empty before init().
  static std::vector<unsigned> workerLcores();
  static unsigned mainLcore();
  // The EAL's runtime directory (/var/run/dpdk/<file prefix>); it stays after the process ends,
  // empty with --no-shconf. Empty before init().
  static std::string runtimeDir();
};

}  // namespace capstan::dataplane::dpdk
