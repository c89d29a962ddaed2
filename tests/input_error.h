// Checking the one clear error that bad input must give: a common::InputError whose message names the thing.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "common/errors.h"

namespace ijepa::testing {

// The message of the common::InputError that fn() throws; "" when it throws none.
inline std::string input_error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const common::InputError& e) {
    return e.what();
  }
  return "";
}

// Expects fn() to throw common::InputError with each of `needles` (a file, a key, a rank, a reason) in its message.
inline void expect_input_error(const std::function<void()>& fn, const std::vector<std::string>& needles) {
  const std::string message = input_error_of(fn);
  ASSERT_FALSE(message.empty()) << "no InputError";
  for (const auto& needle : needles) EXPECT_NE(message.find(needle), std::string::npos) << message;
}

}  // namespace ijepa::testing
