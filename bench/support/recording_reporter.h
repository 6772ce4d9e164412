// What the benchmark programs with their own main() share: a console reporter that also keeps
// each benchmark's mean time per iteration, so that main() can print ratios against the peers
// measured in the same run, and the colour choice the default reporter would make.
#pragma once

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace capstan::bench {

// As the default reporter does: colour on a terminal unless --benchmark_color=false.
inline bool consoleColor(int argc, char** argv) {
  bool color = ::isatty(STDOUT_FILENO) != 0;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--benchmark_color=false" || arg == "--benchmark_color=no") color = false;
  }
  return color;
}

// Prints as the console reporter does and keeps each benchmark's mean seconds per iteration,
// wall and CPU.
class RecordingReporter : public benchmark::ConsoleReporter {
 public:
  explicit RecordingReporter(bool color) : ConsoleReporter(color ? OO_Defaults : OO_Tabular) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.run_type != Run::RT_Iteration || run.error_occurred || run.iterations == 0) continue;
      Times& t = times_[run.run_name.function_name];
      auto n = static_cast<double>(run.iterations);
      t.real += run.real_accumulated_time / n;
      t.cpu += run.cpu_accumulated_time / n;
      ++t.runs;
    }
    ConsoleReporter::ReportRuns(runs);
  }

  struct Times {
    double real = 0;
    double cpu = 0;
    int runs = 0;
  };
  // Mean seconds per iteration of `name` (as registered: without "/arg", with a
  // BENCHMARK_CAPTURE's "/case"); runs == 0 if it did not run.
  Times times(const std::string& name) const {
    auto it = times_.find(name);
    if (it == times_.end()) return {};
    const Times& t = it->second;
    return {t.real / t.runs, t.cpu / t.runs, t.runs};
  }

 private:
  std::map<std::string, Times> times_;
};

}  // namespace capstan::bench
