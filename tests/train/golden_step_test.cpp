// The whole training step against the reference's first three steps (fp32): same init, same masks, same
// schedules, same losses to 1e-4 relative.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "golden.h"
#include "masking/multiblock.h"
#include "model/init.h"
#include "train/schedules.h"
#include "train/step.h"

namespace ijepa::train {
namespace {

using ijepa::testing::golden;

struct GoldenCase {
  const char* key;
  int64_t img, patch, chans, min_keep, batch;
};

double sum_of(torch::nn::Module& m) {
  double s = 0;
  for (const auto& p : m.parameters()) s += p.to(torch::kFloat64).sum().item<double>();
  return s;
}

std::vector<std::vector<std::vector<int64_t>>> lists_of(const std::vector<torch::Tensor>& masks) {
  std::vector<std::vector<std::vector<int64_t>>> out;
  for (const auto& m : masks) {
    std::vector<std::vector<int64_t>> rows;
    for (int64_t i = 0; i < m.size(0); ++i)
      rows.emplace_back(m[i].data_ptr<int64_t>(), m[i].data_ptr<int64_t>() + m.size(1));
    out.push_back(rows);
  }
  return out;
}

class GoldenSteps : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenSteps, ThreeStepsReproduceTheReferenceLosses) {
  const auto& c = GetParam();
  const auto& g = golden()[c.key];
  torch::manual_seed(0);
  const auto enc = model::vit_preset("vit_tiny", c.img, c.patch, c.chans);
  auto built = model::build_models(enc, model::predictor_for(enc, 96, 2));
  JepaModels models{built.encoder, built.predictor, model::clone_as_target(built.encoder)};

  masking::MaskSpec spec;
  spec.grid_h = spec.grid_w = enc.grid();
  spec.min_keep = c.min_keep;
  masking::MultiBlockMaskSampler sampler(spec, at::detail::getDefaultCPUGenerator());
  const auto masks = sampler.sample(c.batch);
  ASSERT_EQ(lists_of(masks.enc), g["masks_enc"].get<std::vector<std::vector<std::vector<int64_t>>>>());
  ASSERT_EQ(lists_of(masks.pred), g["masks_pred"].get<std::vector<std::vector<std::vector<int64_t>>>>());

  const int64_t n = c.batch * c.chans * c.img * c.img;
  const auto images = torch::sin(0.001 * torch::arange(n, torch::kFloat64))
                          .to(torch::kFloat32)
                          .reshape({c.batch, c.chans, c.img, c.img});

  ScheduleConfig sc;
  sc.iterations_per_epoch = 10;
  sc.epochs = 2;
  sc.warmup_epochs = 1;
  sc.start_lr = 2e-4;
  sc.lr = 1e-3;
  sc.final_lr = 1e-6;
  sc.weight_decay = 0.04;
  sc.final_weight_decay = 0.4;
  const Schedules schedules(sc);

  auto groups = reference_param_groups(*models.encoder, *models.predictor);
  AdamW optimizer(groups);
  JepaStep step(models, optimizer, /*use_bfloat16=*/false);
  for (const auto& expected : g["steps"]) {
    const int64_t s = expected["step"].get<int64_t>() + 1;
    EXPECT_DOUBLE_EQ(schedules.lr(s), expected["lr"].get<double>());
    EXPECT_DOUBLE_EQ(schedules.weight_decay(s), expected["wd"].get<double>());
    EXPECT_DOUBLE_EQ(schedules.momentum(s), expected["ema_momentum"].get<double>());
    // (h_sum is not compared: layer-normed targets sum to float32 rounding noise around zero.)
    EXPECT_EQ(step.targets(images, masks).sizes(), expected["z_shape"].get<std::vector<int64_t>>());
    const double loss = step.forward_backward(images, masks).item<double>();
    EXPECT_NEAR(loss, expected["loss"].get<double>(), 1e-4 * expected["loss"].get<double>()) << "step " << s;
    step.update(schedules.lr(s), schedules.weight_decay(s), schedules.momentum(s));
    EXPECT_NEAR(sum_of(*models.encoder), expected["encoder_sum_after_step"].get<double>(), 1e-2) << "step " << s;
    EXPECT_NEAR(sum_of(*models.target), expected["target_sum_after_step"].get<double>(), 1e-2) << "step " << s;
  }
}

INSTANTIATE_TEST_SUITE_P(Reference, GoldenSteps,
                         ::testing::Values(GoldenCase{"train_in224_tiny16", 224, 16, 3, 10, 2},
                                           GoldenCase{"train_fmnist_tiny4", 28, 4, 1, 4, 4}),
                         [](const auto& info) { return std::string(info.param.key); });

}  // namespace
}  // namespace ijepa::train
