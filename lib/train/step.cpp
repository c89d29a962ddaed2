#include "train/step.h"

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>

namespace ijepa::train {

AutocastGuard::AutocastGuard(torch::DeviceType device, bool enabled) : device_(device), enabled_(enabled) {
  if (!enabled_) return;
  was_enabled_ = at::autocast::is_autocast_enabled(device_);
  previous_dtype_ = at::autocast::get_autocast_dtype(device_);
  at::autocast::set_autocast_enabled(device_, true);
  at::autocast::set_autocast_dtype(device_, at::kBFloat16);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!enabled_) return;
  // Leaving the outermost region drops the cached bf16 copies of the weights, as torch.autocast does.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(device_, was_enabled_);
  at::autocast::set_autocast_dtype(device_, previous_dtype_);
}

void ema_update(std::vector<torch::Tensor>& targets, const std::vector<torch::Tensor>& sources, double momentum) {
  torch::NoGradGuard no_grad;
  torch::_foreach_mul_(targets, momentum);
  torch::_foreach_add_(targets, sources, 1.0 - momentum);
}

JepaStep::JepaStep(JepaModels& models, AdamW& optimizer, bool use_bfloat16)
    : models_(models), optimizer_(optimizer), bf16_(use_bfloat16) {
  // The masks change the context and target token counts every step, and cuDNN's attention, which LibTorch 2.11
  // picks for bf16 on an H200, builds an execution plan per new shape: 136 of a 195 ms bf16 step of workload (b)
  // went to it there (BENCHMARKS.md). Flash and memory-efficient attention need no plan. Process-wide, as
  // torch.backends.cuda.enable_cudnn_sdp(False) is.
  if (models_.encoder->pos_embed.is_cuda()) at::globalContext().setSDPUseCuDNN(false);
  // The fixed positional table is identical in both models; only trainable parameters need the EMA.
  const auto targets = models_.target->named_parameters();
  for (const auto& p : models_.encoder->named_parameters()) {
    if (!p.value().requires_grad()) continue;
    ema_sources_.push_back(p.value());
    ema_targets_.push_back(targets[p.key()]);
  }
}

torch::Tensor JepaStep::targets(const torch::Tensor& images, const masking::BatchMasks& masks) {
  torch::NoGradGuard no_grad;
  auto h = models_.target->forward(images);  // [B, N, D]
  h = torch::layer_norm(h, {h.size(-1)});    // no parameters, eps 1e-5
  h = model::apply_masks(h, masks.pred);     // [npred*B, Kp, D]
  const auto nenc = static_cast<int64_t>(masks.enc.size());
  return model::repeat_interleave_batch(h, images.size(0), nenc);  // [npred*nenc*B, Kp, D]
}

torch::Tensor JepaStep::forward_backward(const torch::Tensor& images, const masking::BatchMasks& masks) {
  torch::Tensor loss;
  {
    AutocastGuard autocast(images.device().type(), bf16_);
    auto h = targets(images, masks);
    auto z = models_.predictor->forward(models_.encoder->forward(images, masks.enc), masks.enc, masks.pred);
    loss = torch::smooth_l1_loss(z, h);
  }
  loss.backward();
  return loss.detach();
}

void JepaStep::update(double lr, double weight_decay, double momentum) {
  last_skipped_ = optimizer_.find_non_finite();
  optimizer_.step(lr, weight_decay, last_skipped_);
  optimizer_.zero_grad();
  ema_update(ema_targets_, ema_sources_, momentum);
}

}  // namespace ijepa::train
