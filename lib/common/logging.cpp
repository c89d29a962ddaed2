#include "common/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <string>

namespace ijepa::common {

void init_logging(int rank, bool verbose) {
  auto logger = spdlog::stderr_color_mt("ijepa-r" + std::to_string(rank));
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [r" + std::to_string(rank) + "] %^%l%$: %v");
  logger->set_level(rank == 0 || verbose ? spdlog::level::info : spdlog::level::warn);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace ijepa::common

namespace ijepa::log {

void info(const std::string& message) { spdlog::info("{}", message); }
void warn(const std::string& message) { spdlog::warn("{}", message); }
void error(const std::string& message) { spdlog::error("{}", message); }

}  // namespace ijepa::log
