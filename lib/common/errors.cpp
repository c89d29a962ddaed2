#include "common/errors.h"

namespace ijepa::common {

namespace {
std::string join_errors(const std::vector<std::string>& errors) {
  std::string text = std::to_string(errors.size()) + " config error(s):";
  for (const auto& e : errors) text += "\n  " + e;
  return text;
}
}  // namespace

ConfigError::ConfigError(std::vector<std::string> errors)
    : InputError(join_errors(errors)), errors_(std::move(errors)) {}

}  // namespace ijepa::common
