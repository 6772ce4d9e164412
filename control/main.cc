// capstan: kube-proxy and an ingress controller in one daemon.
#include <iostream>
#include <string>
#include <vector>

#include "control/config.h"
#include "control/daemon.h"
#include "control/logging.h"

int main(int argc, char** argv) {
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
