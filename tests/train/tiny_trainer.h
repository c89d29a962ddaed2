// The fixture of the in-process trainer tests: 48 synthetic 28x28 IDX training images (and 20 test images for
// the probes) in a temporary folder, and tiny_config() trained for 2 epochs of 12 steps (batch 4).
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "common/config.h"
#include "data/data_test_util.h"
#include "dist/single_process_communicator.h"
#include "test_util.h"
#include "tiny_config.h"
#include "train/trainer.h"

namespace ijepa::train::testing {

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The first `columns` fields of each line of a CSV, header included (for comparing the columns that do not
// depend on timing).
inline std::vector<std::string> leading_columns(const std::string& csv, int columns) {
  std::vector<std::string> out;
  for (const auto& line : lines_of(csv)) {
    std::istringstream fields(line);
    std::string kept, field;
    for (int i = 0; i < columns && std::getline(fields, field, ','); ++i) kept += (i > 0 ? "," : "") + field;
    out.push_back(kept);
  }
  return out;
}

class TinyTrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_ / "data");
    data::testing::write_idx_pair(dir_ / "data", "train", 48, 28, 28, /*gzip=*/false);
    data::testing::write_idx_pair(dir_ / "data", "t10k", 20, 28, 28, /*gzip=*/false);
  }

  // The run writes to dir_/run; `sections` adds YAML sections (eval, ...), `overrides` are --set arguments.
  common::Config config(const std::string& run, const std::vector<std::string>& overrides = {},
                        const std::string& sections = "") const {
    const std::string yaml = tiny_config(dir_ / "data", "{epochs: 2, warmup: 0.5}") +
                             "logging: {folder: " + (dir_ / run) + ", log_every: 5}\n" +
                             "checkpoint: {every_steps: 4, keep_last: 2}\n" + sections;
    return common::parse_config(yaml, overrides);
  }

  TrainResult train(const common::Config& c) const {
    dist::SingleProcessCommunicator comm;
    Trainer trainer(c, comm);
    return trainer.run();
  }

  nlohmann::json summary(const std::string& run) const {
    return nlohmann::json::parse(ijepa::testing::read_file(dir_ / (run + "/summary.json")));
  }

  ijepa::testing::TempDir dir_;
};

}  // namespace ijepa::train::testing
