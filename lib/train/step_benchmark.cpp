#include "train/step_benchmark.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

#include "masking/multiblock.h"
#include "model/flops.h"
#include "train/op_profile.h"
#include "train/report.h"
#include "train/schedules.h"
#include "train/step.h"

namespace ijepa::train {

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

struct Workload {
  int64_t img, patch, chans, min_keep, batch;
};

Workload workload_of(char name) {
  if (name == 'a') return {28, 4, 1, 4, 64};
  if (name == 'b') return {224, 16, 3, 10, 16};
  throw std::invalid_argument(std::string("unknown workload '") + name + "' (a or b)");
}

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

}  // namespace

double measure_matmul_flops(bool bf16, const std::string& device, int64_t n) {
  const auto options = torch::TensorOptions().dtype(bf16 ? torch::kBFloat16 : torch::kFloat32).device(device);
  auto a = torch::randn({n, n}, options), b = torch::randn({n, n}, options);
  torch::Tensor c;
  for (int i = 0; i < 2; ++i) c = torch::mm(a, b);  // warm-up
  synchronize(a.device());
  const int reps = 5;
  const auto start = Clock::now();
  for (int i = 0; i < reps; ++i) c = torch::mm(a, b);
  synchronize(a.device());
  return 2.0 * static_cast<double>(n * n * n) * reps / (ms_since(start) / 1e3);
}

namespace {

// One step of the benchmark, its phases timed separately.
struct TimedStep {
  double masks_ms = 0, forward_backward_ms = 0, update_ms = 0, total_ms = 0;
  int64_t context_tokens = 0, target_tokens = 0;
};

TimedStep time_step(JepaStep& step, masking::MultiBlockMaskSampler& sampler, const torch::Tensor& images,
                    const Schedules& schedules, int64_t s) {
  const auto device = images.device();
  TimedStep t;
  const auto t0 = Clock::now();
  const auto masks = sampler.sample(images.size(0)).to(device);
  t.masks_ms = ms_since(t0);
  const auto t1 = Clock::now();
  step.forward_backward(images, masks);
  synchronize(device);
  t.forward_backward_ms = ms_since(t1);
  const auto t2 = Clock::now();
  step.update(schedules.lr(s), schedules.weight_decay(s), schedules.momentum(s));
  synchronize(device);
  t.update_ms = ms_since(t2);
  t.total_ms = ms_since(t0);
  t.context_tokens = masks.enc[0].size(1);
  t.target_tokens = masks.pred[0].size(1);
  return t;
}

}  // namespace

StepBenchResult run_step_benchmark(const StepBenchOptions& o) {
  if (o.threads < 1 || o.steps < 1 || o.warmup < 0) {
    throw std::invalid_argument("step benchmark: threads and steps must be positive and warmup not negative, got " +
                                std::to_string(o.threads) + ", " + std::to_string(o.steps) + " and " +
                                std::to_string(o.warmup));
  }
  at::set_num_threads(o.threads);
  const Workload w = workload_of(o.workload);
  const torch::Device device(o.device);
  torch::manual_seed(0);
  const auto enc = model::vit_preset("vit_tiny", w.img, w.patch, w.chans);
  const auto pred = model::predictor_for(enc, 96, 6);
  JepaModels models = build_jepa_models(enc, pred, device);
  AdamW optimizer(reference_param_groups(*models.encoder, *models.predictor));
  JepaStep step(models, optimizer, o.bf16);
  const Schedules schedules(golden_schedule(1000, 10));

  masking::MaskSpec spec;
  spec.grid_h = spec.grid_w = enc.grid();
  spec.min_keep = w.min_keep;
  masking::MultiBlockMaskSampler sampler(spec, at::make_generator<at::CPUGeneratorImpl>(0));
  const auto images = torch::randn({w.batch, w.chans, w.img, w.img}).to(device);

  std::vector<double> step_ms;
  StepBenchResult r;
  r.batch = w.batch;
  std::unique_ptr<OpProfile> profile;
  for (int i = 0; i < o.warmup + o.steps; ++i) {
    if (o.profile && i == o.warmup) profile = std::make_unique<OpProfile>(!o.trace_path.empty());
    const TimedStep t = time_step(step, sampler, images, schedules, i + 1);
    if (i < o.warmup) continue;
    step_ms.push_back(t.total_ms);
    r.masks_ms += t.masks_ms / o.steps;
    r.forward_backward_ms += t.forward_backward_ms / o.steps;
    r.update_ms += t.update_ms / o.steps;
    r.context_tokens += static_cast<double>(t.context_tokens) / o.steps;
    r.target_tokens += static_cast<double>(t.target_tokens) / o.steps;
  }
  if (profile) r.profile_table = profile->finish(o.trace_path, o.steps);
  std::sort(step_ms.begin(), step_ms.end());
  r.step_ms = step_ms[step_ms.size() / 2];
  r.images_per_second = static_cast<double>(w.batch) / (r.step_ms / 1e3);
  r.flops_per_image =
      model::training_step_flops(enc, pred, r.context_tokens, r.target_tokens, spec.num_enc, spec.num_pred);
  r.achieved_flops = r.flops_per_image * r.images_per_second;
  r.outside_share = (r.masks_ms + r.update_ms) / (r.masks_ms + r.forward_backward_ms + r.update_ms);
  // A GPU needs a larger product than a CPU core to reach its rate (2048^3 is launch-bound there).
  r.matmul_flops = measure_matmul_flops(o.bf16, o.device, device.is_cuda() ? 8192 : 2048);
  r.peak_rss_bytes = peak_rss_bytes();
  return r;
}

}  // namespace ijepa::train
