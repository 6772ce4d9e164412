// runCommand(): run one program with bytes on its stdin, capture its stdout and stderr and its
// exit status, within a time limit. The exec runner's only way to start a process (iptables/ is
// the one folder that runs commands); written so that other kernel-facing folders can take it
// over when they need it.
//
// No shell is involved: argv goes to posix_spawn() as it is. The input is written while both
// outputs are read, in one poll() loop, so a child that writes a lot before reading all its
// input (or the reverse) cannot deadlock with us. The child gets its own process group, default
// signal dispositions and an empty signal mask, no file descriptor of ours beyond 0-2, and is
// killed (with its group) when the time limit passes.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "model/result.h"

namespace capstan::iptables {

struct CommandLimits {
  // From the spawn to the child's exit and both outputs closed. On expiry the child's process
  // group gets SIGKILL and runCommand() returns an Error.
  std::chrono::milliseconds timeout = std::chrono::seconds(60);
  // More stdout than this is an Error (the child is killed): a truncated iptables-save is worse
  // than none.
  size_t maxStdoutBytes = size_t{1} << 30;
  // Stderr past this is read and dropped (CommandOutput::stderrTruncated).
  size_t maxStderrBytes = size_t{1} << 20;
};

struct CommandOutput {
  int exitCode = -1;   // the exit status, or -1 when a signal ended the child
  int termSignal = 0;  // the signal that ended the child, 0 when it exited
  std::string stdoutText;
  std::string stderrText;
  bool stderrTruncated = false;
  // The child exited or closed its stdin before reading all of the input.
  bool inputUnread = false;

  bool succeeded() const { return exitCode == 0; }
};

// Runs argv[0] (a path, or a name looked up with findExecutable()) with `input` on its stdin.
// A child that runs and exits non-zero is a CommandOutput, not an Error; an Error means it could
// not be started, ran out of time, or wrote more than the limits allow. argv must not be empty.
Result<CommandOutput> runCommand(const std::vector<std::string>& argv, std::string_view input,
                                 const CommandLimits& limits = {});

// The full path of an executable `name`: the directories of $PATH in order, then /usr/local/sbin,
// /usr/sbin and /sbin (a daemon started with a user's PATH still finds the iptables tools).
// Empty when there is none. A name containing '/' is returned as it is if it is executable.
std::string findExecutable(std::string_view name);

// A one-line description of how the child ended: "exit status 2", "killed by signal 9".
std::string describeExit(const CommandOutput& output);

}  // namespace capstan::iptables
