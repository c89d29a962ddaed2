// The whole training step against the reference's first three steps (fp32): same init, same masks, same
// schedules, same losses to 1e-4 relative; on two threads, the same steps, with both threads' ops profiled.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "golden.h"
#include "golden_run.h"
#include "train/op_profile.h"

namespace ijepa::train {
namespace {

using ijepa::testing::golden;
using testing::GoldenCase;

class GoldenSteps : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenSteps, ThreeStepsReproduceTheReferenceLosses) {
  const auto& g = golden()[GetParam().key];
  const auto run = testing::run_golden_steps(GetParam(), torch::kCPU, /*bf16=*/false);
  ASSERT_EQ(run.masks_enc, g["masks_enc"].get<testing::MaskLists>());
  ASSERT_EQ(run.masks_pred, g["masks_pred"].get<testing::MaskLists>());
  ASSERT_EQ(run.steps.size(), g["steps"].size());
  for (size_t i = 0; i < run.steps.size(); ++i) {
    const auto& expected = g["steps"][i];
    const auto& got = run.steps[i];
    EXPECT_DOUBLE_EQ(got.lr, expected["lr"].get<double>());
    EXPECT_DOUBLE_EQ(got.wd, expected["wd"].get<double>());
    EXPECT_DOUBLE_EQ(got.momentum, expected["ema_momentum"].get<double>());
    // (h_sum is not compared: layer-normed targets sum to float32 rounding noise around zero.)
    EXPECT_EQ(got.z_shape, expected["z_shape"].get<std::vector<int64_t>>());
    EXPECT_NEAR(got.loss, expected["loss"].get<double>(), 1e-4 * expected["loss"].get<double>()) << "step " << i;
    EXPECT_NEAR(got.encoder_sum, expected["encoder_sum_after_step"].get<double>(), 1e-2) << "step " << i;
    EXPECT_NEAR(got.target_sum, expected["target_sum_after_step"].get<double>(), 1e-2) << "step " << i;
  }
}

// With two intra-op threads the step runs the target encoder beside the context path (on a split batch): the
// same steps as one thread, within fp32 rounding.
TEST_P(GoldenSteps, TwoThreadsRunTheSameSteps) {
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = testing::run_golden_steps(GetParam(), torch::kCPU, /*bf16=*/false);
  at::set_num_threads(2);
  const auto two = testing::run_golden_steps(GetParam(), torch::kCPU, /*bf16=*/false);
  at::set_num_threads(threads);
  ASSERT_EQ(one.steps.size(), two.steps.size());
  for (size_t i = 0; i < one.steps.size(); ++i) {
    EXPECT_NEAR(two.steps[i].loss, one.steps[i].loss, 1e-5 * one.steps[i].loss) << "step " << i;
    EXPECT_NEAR(two.steps[i].encoder_sum, one.steps[i].encoder_sum, 1e-3) << "step " << i;
    EXPECT_NEAR(two.steps[i].target_sum, one.steps[i].target_sum, 1e-3) << "step " << i;
  }
}

// The side thread runs with the caller's thread-local state, the profiler's callbacks included, so a profile of a
// two-thread step holds the target encoder's forward from both threads (`ijepa-bench step --profile`).
TEST_P(GoldenSteps, AProfileOfATwoThreadStepRecordsBothThreads) {
  const int threads = at::get_num_threads();
  at::set_num_threads(2);
  OpProfile profile;
  testing::run_golden_steps(GetParam(), torch::kCPU, /*bf16=*/false);
  const std::string trace = ::testing::TempDir() + "/two_thread_step_" + GetParam().key + ".json";
  const std::string table = profile.finish(trace, 3);
  at::set_num_threads(threads);
  EXPECT_NE(table.find("aten::_softmax"), std::string::npos) << table;
  std::set<int64_t> softmax_threads;
  const auto events = nlohmann::json::parse(std::ifstream(trace))["traceEvents"];
  std::filesystem::remove(trace);
  for (const auto& event : events) {
    if (event.value("name", std::string()) == "aten::_softmax") softmax_threads.insert(event["tid"].get<int64_t>());
  }
  EXPECT_EQ(softmax_threads.size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Reference, GoldenSteps, ::testing::ValuesIn(testing::golden_cases()),
                         [](const auto& info) { return std::string(info.param.key); });

}  // namespace
}  // namespace ijepa::train
