// Error types shared by every library. Bad config or input is an InputError (exit code 2 in the mains);
// anything else that escapes is a failure (exit code 1). Messages name the thing: key path, file, rank.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace ijepa::common {

// Bad config or input: the user can fix it. The mains map it to exit code 2.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A config that failed validation; holds every error found, each starting with its key path.
class ConfigError : public InputError {
 public:
  explicit ConfigError(std::vector<std::string> errors);
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::vector<std::string> errors_;
};

}  // namespace ijepa::common
