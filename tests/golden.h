// Access to ../shared/reference/ijepa_golden.json: numbers measured on the reference implementation.
#pragma once

#include <nlohmann/json.hpp>

#include <fstream>
#include <stdexcept>
#include <string>

#include "test_util.h"

namespace ijepa::testing {

inline const nlohmann::json& golden() {
  static const nlohmann::json data = [] {
    const std::string path = shared_path("reference/ijepa_golden.json");
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    return nlohmann::json::parse(in);
  }();
  return data;
}

}  // namespace ijepa::testing
