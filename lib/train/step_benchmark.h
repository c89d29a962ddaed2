// Timing of the whole training step (masks, forward, backward, AdamW, EMA) on the two benchmark workloads of
// ARCHITECTURE.md, for `ijepa-bench step`:
//   a: 28x28x1, patch 4, ViT-tiny, predictor depth 6 width 96, batch 64
//   b: 224x224x3, patch 16, same models, batch 16
// Images are synthetic (data loading is measured separately); masks are sampled inside the timed step with the
// reference sampler.
#pragma once

#include <cstdint>
#include <string>

namespace ijepa::train {

struct StepBenchOptions {
  char workload = 'a';
  bool bf16 = true;
  int threads = 2;
  int steps = 20;
  int warmup = 3;
  std::string device = "cpu";
  bool profile = false;    // record the timed steps op by op (OpProfile); see profile_table
  std::string trace_path;  // with profile: also write a Chrome trace here, with each op's input shapes
};

struct StepBenchResult {
  double images_per_second = 0;  // median step
  double step_ms = 0;            // median
  double flops_per_image = 0;    // model FLOPs of one training step per image, at the mean mask sizes
  double achieved_flops = 0;     // flops_per_image * images_per_second
  double matmul_flops = 0;       // a 2048^3 matrix product of the same dtype, threads and device, this run
  // Mean time per phase; outside_share = (masks + update) / step.
  double masks_ms = 0, forward_backward_ms = 0, update_ms = 0;
  double outside_share = 0;
  double context_tokens = 0, target_tokens = 0;  // mean per image and block
  int64_t peak_rss_bytes = 0;
  int64_t batch = 0;
  std::string profile_table;  // with options.profile: ops by self time per step
};

StepBenchResult run_step_benchmark(const StepBenchOptions& options);

// Matrix-product FLOP/s of an n x n x n product in the given dtype on the current threads.
double measure_matmul_flops(bool bf16, const std::string& device, int64_t n = 2048);

}  // namespace ijepa::train
