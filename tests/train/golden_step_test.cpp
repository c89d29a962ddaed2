// The whole training step against the reference's first three steps (fp32): same init, same masks, same
// schedules, same losses to 1e-4 relative; on two and three threads, the same steps, with both threads' ops
// profiled.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <tuple>

#include "golden.h"
#include "golden_run.h"
#include "train/op_profile.h"
#include "train/step_benchmark.h"

namespace ijepa::train {
namespace {

using ijepa::testing::golden;
using testing::GoldenCase;
using testing::GoldenRun;

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

// The run on `threads` intra-op threads (the caller's count restored afterwards).
GoldenRun run_on_threads(int threads, const GoldenCase& c, const JepaStep::Backward& backward = {}, bool bf16 = false) {
  const int before = at::get_num_threads();
  at::set_num_threads(threads);
  auto run = testing::run_golden_steps(c, torch::kCPU, bf16, 3, backward);
  at::set_num_threads(before);
  return run;
}

// Each step's loss within loss_tolerance of one thread's (relative), its parameter sums within sum_tolerance; by
// default fp32 rounding's.
void expect_the_same_steps(const GoldenRun& got, const GoldenRun& one_thread, double loss_tolerance = 1e-5,
                           double sum_tolerance = 1e-3) {
  ASSERT_EQ(got.steps.size(), one_thread.steps.size());
  for (size_t i = 0; i < got.steps.size(); ++i) {
    EXPECT_NEAR(got.steps[i].loss, one_thread.steps[i].loss, loss_tolerance * one_thread.steps[i].loss) << "step " << i;
    EXPECT_NEAR(got.steps[i].encoder_sum, one_thread.steps[i].encoder_sum, sum_tolerance) << "step " << i;
    EXPECT_NEAR(got.steps[i].target_sum, one_thread.steps[i].target_sum, sum_tolerance) << "step " << i;
  }
}

// With several intra-op threads the step cuts the batch into one part per thread, each part's forward and
// backward on its own thread: the same steps as one thread, within fp32 rounding (the gradients are summed over the
// parts, in another order than one thread sums them over the batch). Three threads: parts of 1, 1 and 2 images
// for the batch of 4, each weighted by its share.
TEST_P(GoldenSteps, TwoAndThreeThreadsRunTheSameSteps) {
  const auto one = run_on_threads(1, GetParam());
  expect_the_same_steps(run_on_threads(2, GetParam()), one);
  expect_the_same_steps(run_on_threads(3, GetParam()), one);
}

// The parts' gradients are summed in part order, whichever thread finishes first: the same bits run after run.
TEST_P(GoldenSteps, ThePartsGiveTheSameBitsEveryRun) {
  const auto first = run_on_threads(3, GetParam()), second = run_on_threads(3, GetParam());
  for (size_t i = 0; i < first.steps.size(); ++i) {
    EXPECT_EQ(first.steps[i].loss, second.steps[i].loss) << "step " << i;
    EXPECT_EQ(first.steps[i].encoder_sum, second.steps[i].encoder_sum) << "step " << i;
    EXPECT_EQ(first.steps[i].target_sum, second.steps[i].target_sum) << "step " << i;
  }
}

// Under bf16 autocast too (the parts run the bf16 kernels of lib/model on their own threads): the same steps as one
// thread up to bf16 rounding (measured: losses 5e-6 apart, parameter sums at most 2e-3).
TEST(GoldenStepsBf16, TwoThreadsRunTheSameStepsAsOneUpToBf16Rounding) {
  const auto& c = testing::golden_cases()[1];  // 28 x 28 images, patch 4: quick even where bf16 products are slow
  const auto one = run_on_threads(1, c, {}, /*bf16=*/true), two = run_on_threads(2, c, {}, /*bf16=*/true);
  expect_the_same_steps(two, one, /*loss_tolerance=*/1e-3, /*sum_tolerance=*/2e-2);
}

// A data-parallel trainer passes its own backward (which synchronises the gradients as they come): then the whole
// batch's context path runs on one thread while the target encoder's forward runs beside it, and the backward
// once, on all threads. The same steps as one thread.
TEST_P(GoldenSteps, WithABackwardOfItsOwnTheTargetEncoderRunsBesideTheContextPath) {
  int calls = 0;
  const auto backward = [&calls](const torch::Tensor& loss) {
    ++calls;
    loss.backward();
  };
  const auto two = run_on_threads(2, GetParam(), backward);
  EXPECT_EQ(calls, 3);
  expect_the_same_steps(two, run_on_threads(1, GetParam()));
}

// The threads run with the caller's thread-local state, the profiler's callbacks included, so a profile of a
// two-thread step holds the ops of both threads (`ijepa-bench step --profile`).
TEST_P(GoldenSteps, AProfileOfATwoThreadStepRecordsBothThreads) {
  const int threads = at::get_num_threads();
  at::set_num_threads(2);
  OpProfile profile;
  testing::run_golden_steps(GetParam(), torch::kCPU, /*bf16=*/false);
  const std::string trace = ::testing::TempDir() + "/two_thread_step_" + GetParam().key + ".json";
  const std::string table = profile.finish(trace, 3);
  at::set_num_threads(threads);
  // The table lists the top ops by self time (at 49 tokens the softmax may fall below them, behind the models'
  // initialisation): the backward's products are always there; the trace holds every op.
  EXPECT_NE(table.find("aten::mm"), std::string::npos) << table;
  std::set<int64_t> softmax_threads;
  const auto events = nlohmann::json::parse(std::ifstream(trace))["traceEvents"];
  std::filesystem::remove(trace);
  for (const auto& event : events) {
    if (event.value("name", std::string()) == "aten::_softmax") softmax_threads.insert(event["tid"].get<int64_t>());
  }
  EXPECT_EQ(softmax_threads.size(), 2u);
}

TEST(StepBenchmark, NoTimedStepsOrThreadsIsRefusedBeforeAnyWork) {
  for (const auto& [threads, steps, warmup] : {std::tuple{2, 0, 3}, std::tuple{0, 5, 3}, std::tuple{2, 5, -1}}) {
    StepBenchOptions o;
    o.threads = threads;
    o.steps = steps;
    o.warmup = warmup;
    EXPECT_THROW(run_step_benchmark(o), std::invalid_argument) << threads << " " << steps << " " << warmup;
  }
}

INSTANTIATE_TEST_SUITE_P(Reference, GoldenSteps, ::testing::ValuesIn(testing::golden_cases()),
                         [](const auto& info) { return std::string(info.param.key); });

}  // namespace
}  // namespace ijepa::train
