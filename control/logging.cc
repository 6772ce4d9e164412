#include "control/logging.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace capstan::control {

void setupLogging(int verbosity) {
  static bool created = false;
  if (!created) {
    auto logger = spdlog::stderr_logger_mt("capstan");
    spdlog::set_default_logger(logger);
    created = true;
  }
  spdlog::set_pattern("%L%m%d %H:%M:%S.%f %P] %v");
  spdlog::set_level(verbosity >= 4   ? spdlog::level::trace
                    : verbosity >= 2 ? spdlog::level::debug
                                     : spdlog::level::info);
  spdlog::flush_on(spdlog::level::info);
}

}  // namespace capstan::control
