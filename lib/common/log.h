// Logging calls usable from every translation unit, including LibTorch ones.
//
// LibTorch bundles its own, newer {fmt}, which clashes with the {fmt} that Debian's spdlog is built against, so
// no header of this project may include spdlog or fmt: code that includes torch logs through these functions,
// which build their message with operator<< (str) and hand it to spdlog inside lib/common.
#pragma once

#include <sstream>
#include <string>

namespace ijepa::log {

void info(const std::string& message);
void warn(const std::string& message);
void error(const std::string& message);

// Concatenates anything printable: log::warn(log::str("file ", path, ": ", count, " records")).
template <class... Args>
std::string str(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

}  // namespace ijepa::log
