#include "train/step_benchmark.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <stdexcept>

#include "masking/multiblock.h"
#include "model/flops.h"
#include "model/init.h"
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

StepBenchResult run_step_benchmark(const StepBenchOptions& o) {
  at::set_num_threads(o.threads);
  const Workload w = workload_of(o.workload);
  const torch::Device device(o.device);
  torch::manual_seed(0);
  const auto enc = model::vit_preset("vit_tiny", w.img, w.patch, w.chans);
  const auto pred = model::predictor_for(enc, 96, 6);
  auto built = model::build_models(enc, pred);
  JepaModels models{built.encoder, built.predictor, model::clone_as_target(built.encoder)};
  for (auto* m :
       {static_cast<torch::nn::Module*>(models.encoder.get()), static_cast<torch::nn::Module*>(models.predictor.get()),
        static_cast<torch::nn::Module*>(models.target.get())}) {
    m->to(device);
  }
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
    if (o.profile && i == o.warmup) profile = std::make_unique<OpProfile>();
    const auto t0 = Clock::now();
    auto masks = sampler.sample(w.batch);
    for (auto& m : masks.enc) m = m.to(device);
    for (auto& m : masks.pred) m = m.to(device);
    const double masks_ms = ms_since(t0);
    const auto t1 = Clock::now();
    step.forward_backward(images, masks);
    synchronize(device);
    const double fb_ms = ms_since(t1);
    const auto t2 = Clock::now();
    step.update(schedules.lr(i + 1), schedules.weight_decay(i + 1), schedules.momentum(i + 1));
    synchronize(device);
    const double update_ms = ms_since(t2);
    if (i < o.warmup) continue;
    step_ms.push_back(ms_since(t0));
    r.masks_ms += masks_ms / o.steps;
    r.forward_backward_ms += fb_ms / o.steps;
    r.update_ms += update_ms / o.steps;
    r.context_tokens += static_cast<double>(masks.enc[0].size(1)) / o.steps;
    r.target_tokens += static_cast<double>(masks.pred[0].size(1)) / o.steps;
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
