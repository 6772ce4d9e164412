// The `capstan` daemon: sources -> tracker -> sync runner -> proxier, on one control thread,
// with the status server beside it. Also the one-shot commands --dry-run and --cleanup.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "control/config.h"

namespace capstan::control {

// Runs in the foreground until SIGTERM or SIGINT (exit code 0), re-reading --config on SIGHUP.
// `args` are the command-line arguments, kept to re-apply them over the file on SIGHUP.
int runDaemon(const Config& config, std::vector<std::string> args);

// --dry-run: loads the manifests once and prints what the proxy mode would program to `out`;
// returns 0, or 1 with the errors printed to `err`.
int runDryRun(const Config& config, std::ostream& out, std::ostream& err);

// --cleanup: removes what the proxy mode programmed; returns the exit code.
int runCleanup(const Config& config, std::ostream& err);

// This node's name: --hostname-override, or the host name, lower-cased as kube-proxy does.
std::string nodeName(const Config& config);

}  // namespace capstan::control
