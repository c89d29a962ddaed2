#include "train/step.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <tuple>
#include <utility>

#include "model/autocast.h"
#include "model/flops.h"
#include "model/init.h"

namespace ijepa::train {

JepaModels build_jepa_models(const model::ViTConfig& encoder, const model::PredictorConfig& predictor,
                             const torch::Device& device) {
  auto built = model::build_models(encoder, predictor);
  JepaModels models{built.encoder, built.predictor, model::clone_as_target(built.encoder)};
  models.encoder->to(device);
  models.predictor->to(device);
  models.target->to(device);
  return models;
}

namespace {

// The context path (encoder and predictor forward, recording autograd) took about 1.4x the time per FLOP of the
// target encoder's no-grad forward (bf16, workload (a), this CPU): the split between the two threads weighs its
// FLOPs by that.
constexpr double kContextCostPerFlop = 1.4;

// a and b side by side on two of the intra-op threads (ATen runs the ops inside each on that one thread), both
// with the caller's thread-local state: its grad mode, and the profiler's callbacks (without them `ijepa-bench step
// --profile` saw only one thread's ops).
void side_by_side(const std::function<void()>& a, const std::function<void()>& b) {
  const at::ThreadLocalState caller;
  at::parallel_for(0, 2, 1, [&](int64_t begin, int64_t end) {
    const at::ThreadLocalStateGuard state(caller);
    for (int64_t i = begin; i < end; ++i) (i == 0 ? a : b)();
  });
}

}  // namespace

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
  return target_blocks(models_.target->forward(images), masks);
}

torch::Tensor JepaStep::target_blocks(torch::Tensor h, const masking::BatchMasks& masks) const {
  torch::NoGradGuard no_grad;
  const int64_t batch = h.size(0);
  h = torch::layer_norm(h, {h.size(-1)});  // [B, N, D]; no parameters, eps 1e-5
  h = model::apply_masks(h, masks.pred);   // [npred*B, Kp, D]
  const auto nenc = static_cast<int64_t>(masks.enc.size());
  return model::repeat_interleave_batch(h, batch, nenc);  // [npred*nenc*B, Kp, D]
}

torch::Tensor JepaStep::predictions(const torch::Tensor& images, const masking::BatchMasks& masks) {
  return models_.predictor->forward(models_.encoder->forward(images, masks.enc), masks.enc, masks.pred);
}

int64_t JepaStep::target_rows_on_their_own(int64_t batch, const masking::BatchMasks& masks) const {
  const auto& encoder = models_.encoder->config();
  const auto context = static_cast<double>(masks.enc[0].size(1)), target = static_cast<double>(masks.pred[0].size(1));
  const auto nenc = static_cast<int64_t>(masks.enc.size()), npred = static_cast<int64_t>(masks.pred.size());
  const double target_flops = model::encoder_flops(encoder, static_cast<double>(encoder.num_patches()));
  const double context_flops = static_cast<double>(nenc) * model::encoder_flops(encoder, context) +
                               model::predictor_flops(models_.predictor->config(), context, target, nenc, npred);
  // One thread: k target rows; the other: the context path, then the other batch - k rows. Even at
  // k = (batch + w * batch * context / target) / 2, w the context path's cost per FLOP relative to the target's.
  const double k = 0.5 * static_cast<double>(batch) * (1.0 + kContextCostPerFlop * context_flops / target_flops);
  return std::clamp<int64_t>(std::llround(k), 1, batch);
}

std::pair<torch::Tensor, torch::Tensor> JepaStep::forward_side_by_side(const torch::Tensor& images,
                                                                       const masking::BatchMasks& masks) {
  // ViT-sized matrix products gain little from a second thread within one op (BENCHMARKS.md), so two independent
  // parts of the forward finish sooner side by side: the target encoder over most of the batch on one thread; the
  // context path, then the target encoder over the rest, on the other.
  const auto device = images.device().type();
  const int64_t batch = images.size(0);
  const int64_t own = target_rows_on_their_own(batch, masks);
  torch::Tensor z, h_own, h_rest;
  side_by_side(
      [&] {
        const model::AutocastGuard autocast(device, bf16_);
        const torch::NoGradGuard no_grad;
        h_own = models_.target->forward(images.narrow(0, 0, own));
      },
      [&] {
        const model::AutocastGuard autocast(device, bf16_);
        z = predictions(images, masks);
        const torch::NoGradGuard no_grad;
        if (own < batch) h_rest = models_.target->forward(images.narrow(0, own, batch - own));
      });
  const model::AutocastGuard autocast(device, bf16_);
  return {z, target_blocks(own < batch ? torch::cat({h_own, h_rest}) : h_own, masks)};
}

torch::Tensor JepaStep::forward_backward(const torch::Tensor& images, const masking::BatchMasks& masks,
                                         const Backward& backward) {
  const auto device = images.device().type();
  torch::Tensor z, h;
  if (device == torch::kCPU && at::get_num_threads() > 1 && !at::in_parallel_region()) {
    std::tie(z, h) = forward_side_by_side(images, masks);
  } else {
    const model::AutocastGuard autocast(device, bf16_);
    h = targets(images, masks);
    z = predictions(images, masks);
  }
  torch::Tensor loss;
  {
    const model::AutocastGuard autocast(device, bf16_);
    loss = torch::smooth_l1_loss(z, h);
  }
  if (backward) {
    backward(loss);
  } else {
    loss.backward();
  }
  return loss.detach();
}

void JepaStep::update(double lr, double weight_decay, double momentum) {
  last_skipped_ = optimizer_.find_non_finite();
  optimizer_.step(lr, weight_decay, last_skipped_);
  optimizer_.zero_grad();
  ema_update(ema_targets_, ema_sources_, momentum);
}

}  // namespace ijepa::train
