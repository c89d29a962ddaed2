#include "common/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <mutex>
#include <string>

namespace ijepa::common {

namespace {
// Until init_logging runs, messages still go to stderr (spdlog's own default writes to stdout, where the
// binaries print JSON).
std::shared_ptr<spdlog::logger> early_logger() {
  static const auto logger = [] {
    auto l = spdlog::stderr_color_mt("ijepa");
    l->set_pattern("[%Y-%m-%d %H:%M:%S.%e] %^%l%$: %v");
    return l;
  }();
  return logger;
}

spdlog::logger& current() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (spdlog::default_logger()->name().empty()) spdlog::set_default_logger(early_logger());
  });
  return *spdlog::default_logger_raw();
}
}  // namespace

void init_logging(int rank, bool verbose) {
  auto logger = spdlog::stderr_color_mt("ijepa-r" + std::to_string(rank));
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [r" + std::to_string(rank) + "] %^%l%$: %v");
  logger->set_level(rank == 0 || verbose ? spdlog::level::info : spdlog::level::warn);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace ijepa::common

namespace ijepa::log {

void info(const std::string& message) { common::current().info("{}", message); }
void warn(const std::string& message) { common::current().warn("{}", message); }
void error(const std::string& message) { common::current().error("{}", message); }

}  // namespace ijepa::log
