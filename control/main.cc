// capstan: kube-proxy and an ingress controller in one daemon.
#include <malloc.h>

#include <iostream>
#include <string>
#include <vector>

#include "control/config.h"
#include "control/daemon.h"
#include "control/logging.h"

int main(int argc, char** argv) {
  // Parsing a manifest file takes buffers of a few times its size (file text, simdjson's tape,
  // parse trees) that are freed right after. glibc's default raises its mmap threshold after the
  // first such free, so the next ones come from the heap and stay resident. A fixed threshold
  // returns them to the kernel when freed: loading 100 MB of JSON manifests peaks at 93 MB RSS
  // with it, 104 MB without (--dry-run, 10,000 Services and their EndpointSlices).
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = capstan::control::parseArgs(args);
  if (!parsed.ok()) {
    std::cerr << "capstan: " << parsed.error().message() << "\n";
    return 2;
  }
  if (parsed->exitNow) {
    std::cout << parsed->output;
    return parsed->exitCode;
  }
  const capstan::control::Config& config = parsed->config;
  capstan::control::setupLogging(config.verbosity);
  if (config.dryRun) return capstan::control::runDryRun(config, std::cout, std::cerr);
  if (config.cleanup) return capstan::control::runCleanup(config, std::cerr);
  return capstan::control::runDaemon(config, std::move(args));
}
