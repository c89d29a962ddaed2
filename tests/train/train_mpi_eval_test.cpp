// Evaluation in a 2-rank run (mpirun -np 2): each rank extracts half of the features and both run the probes;
// the numbers equal those of ijepa-eval on the run's final checkpoint in one process, and training goes on
// after each evaluation without a collective timing out.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "data/data_test_util.h"
#include "test_util.h"
#include "tiny_config.h"

namespace ijepa::train {
namespace {

using ijepa::testing::binary_path;
using ijepa::testing::read_file;
using ijepa::testing::run_command;
using ijepa::testing::TempDir;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line.substr(0, line.find(',', line.find(',') + 1)));
  return lines;
}

TEST(TrainMpiEvalTest, TwoRanksShareTheFeaturesAndAgreeWithIjepaEvalInOneProcess) {
  TempDir dir;
  std::filesystem::create_directories(dir / "data");
  data::testing::write_idx_pair(dir / "data", "train", 32, 28, 28, /*gzip=*/false);
  data::testing::write_idx_pair(dir / "data", "t10k", 21, 28, 28, /*gzip=*/false);  // odd: unequal shares
  ijepa::testing::write_file(dir / "config.yaml",
                             train::testing::tiny_config(dir / "data", "{epochs: 3, warmup: 1, max_steps: 6}") +
                                 "logging: {folder: " + (dir / "run") +
                                 ", log_every: 1}\n"
                                 "dist: {backend: mpi, timeout_s: 60}\n"
                                 "eval: {every_epochs: 1, at_end: true, protocol: both, max_train_samples: 0, "
                                 "max_test_samples: 0}\n");
  // 4 steps per epoch (2 ranks x 4 of 32 images): evaluations after step 4 and at the end, step 6.
  const auto r = run_command("timeout 120 " IJEPA_MPIEXEC " --allow-run-as-root --oversubscribe -np 2 " +
                             binary_path("ijepa-train") + " --config " + (dir / "config.yaml"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(lines_of(read_file(dir / "run/jepa_eval.csv")),
            (std::vector<std::string>{"epoch,step", "1,4", "1,4", "2,6", "2,6"}));
  const auto summary = nlohmann::json::parse(read_file(dir / "run/summary.json"));
  EXPECT_EQ(summary["world_size"], 2);
  EXPECT_EQ(summary["steps"], 6);
  const auto& e = summary["eval"];
  EXPECT_EQ(e["train_samples"], 32);
  EXPECT_EQ(e["test_samples"], 21);

  // In a subshell: run_command sends stderr to the same pipe as stdout, and the JSON must come alone.
  const auto one = run_command("(" + binary_path("ijepa-eval") + " --checkpoint " + (dir / "run/jepa-latest.pth.tar") +
                               " --dataset idx --data-path " + (dir / "data") +
                               " --protocol both --threads 1 --json --quiet > " + (dir / "eval.json") + ")");
  ASSERT_EQ(one.exit_code, 0) << one.output;
  const auto reference = nlohmann::json::parse(read_file(dir / "eval.json"));
  // The same encoder and samples in the same order; the features come from other batch sizes (float sums in
  // another order), so a borderline test image may go the other way.
  EXPECT_NEAR(e["target"]["knn"]["top1"].get<double>(), reference["knn"]["top1"].get<double>(), 1.0 / 21 + 1e-9);
  EXPECT_NEAR(e["target"]["linear"]["top1"].get<double>(), reference["linear"]["top1"].get<double>(), 1.0 / 21 + 1e-9);
}

}  // namespace
}  // namespace ijepa::train
