// The reference's first three training steps (golden_step_test.cpp, and on a GPU tests/gpu): the same seed,
// init, masks, images and schedules as the run that measured ijepa_golden.json, on any device and dtype.
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <ostream>
#include <string>
#include <vector>

#include "masking/multiblock.h"
#include "train/schedules.h"
#include "train/step.h"

namespace ijepa::train::testing {

struct GoldenCase {
  const char* key;  // in ijepa_golden.json
  int64_t img, patch, chans, min_keep, batch;
};

inline void PrintTo(const GoldenCase& c, std::ostream* os) { *os << c.key; }

inline const std::vector<GoldenCase>& golden_cases() {
  static const std::vector<GoldenCase> cases{{"train_in224_tiny16", 224, 16, 3, 10, 2},
                                             {"train_fmnist_tiny4", 28, 4, 1, 4, 4}};
  return cases;
}

using MaskLists = std::vector<std::vector<std::vector<int64_t>>>;

struct GoldenStep {
  double lr = 0, wd = 0, momentum = 0;
  std::vector<int64_t> z_shape;  // of the targets
  double loss = 0;
  double encoder_sum = 0, target_sum = 0;  // over all parameters, after the update
};

struct GoldenRun {
  MaskLists masks_enc, masks_pred;
  std::vector<GoldenStep> steps;
};

inline double sum_of(torch::nn::Module& m) {
  double s = 0;
  for (const auto& p : m.parameters()) s += p.to(torch::kFloat64).sum().item<double>();
  return s;
}

inline MaskLists lists_of(const std::vector<torch::Tensor>& masks) {
  MaskLists out;
  for (const auto& m : masks) {
    std::vector<std::vector<int64_t>> rows;
    for (int64_t i = 0; i < m.size(0); ++i)
      rows.emplace_back(m[i].data_ptr<int64_t>(), m[i].data_ptr<int64_t>() + m.size(1));
    out.push_back(rows);
  }
  return out;
}

// Seed 0, ViT-tiny with a 2-block predictor, one batch of masks from the default CPU generator, fixed sine
// images, the reference's schedules (10 iterations per epoch, 2 epochs, 1 warm-up epoch): `steps` steps, each
// computing its gradients with `backward` (JepaStep::forward_backward's).
inline GoldenRun run_golden_steps(const GoldenCase& c, torch::Device device, bool bf16, int steps = 3,
                                  const JepaStep::Backward& backward = {}) {
  torch::manual_seed(0);
  const auto enc = model::vit_preset("vit_tiny", c.img, c.patch, c.chans);
  JepaModels models = build_jepa_models(enc, model::predictor_for(enc, 96, 2), device);

  masking::MaskSpec spec;
  spec.grid_h = spec.grid_w = enc.grid();
  spec.min_keep = c.min_keep;
  masking::MultiBlockMaskSampler sampler(spec, at::detail::getDefaultCPUGenerator());
  const auto cpu_masks = sampler.sample(c.batch);
  GoldenRun run{lists_of(cpu_masks.enc), lists_of(cpu_masks.pred), {}};
  const auto masks = cpu_masks.to(device);
  const int64_t n = c.batch * c.chans * c.img * c.img;
  const auto images = torch::sin(0.001 * torch::arange(n, torch::kFloat64))
                          .to(torch::kFloat32)
                          .reshape({c.batch, c.chans, c.img, c.img})
                          .to(device);

  const Schedules schedules(golden_schedule(10, 2));

  AdamW optimizer(reference_param_groups(*models.encoder, *models.predictor));
  JepaStep step(models, optimizer, bf16);
  for (int64_t s = 1; s <= steps; ++s) {
    GoldenStep out;
    out.lr = schedules.lr(s);
    out.wd = schedules.weight_decay(s);
    out.momentum = schedules.momentum(s);
    out.z_shape = step.targets(images, masks).sizes().vec();
    out.loss = step.forward_backward(images, masks, backward).item<double>();
    step.update(out.lr, out.wd, out.momentum);
    out.encoder_sum = sum_of(*models.encoder);
    out.target_sum = sum_of(*models.target);
    run.steps.push_back(out);
  }
  return run;
}

}  // namespace ijepa::train::testing
