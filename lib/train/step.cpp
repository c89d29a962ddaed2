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
#include "train/ema.h"

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

// task(0) .. task(n - 1) at once, each on one of the intra-op threads (ATen runs the ops inside each on that one
// thread), all with the caller's thread-local state: its grad mode, and the profiler's callbacks (without them
// `ijepa-bench step --profile` saw only one thread's ops). n at most the number of intra-op threads.
void on_threads_each(int64_t n, const std::function<void(int64_t)>& task) {
  const at::ThreadLocalState caller;
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    const at::ThreadLocalStateGuard state(caller);
    for (int64_t i = begin; i < end; ++i) task(i);
  });
}

void side_by_side(const std::function<void()>& a, const std::function<void()>& b) {
  on_threads_each(2, [&](int64_t i) { (i == 0 ? a : b)(); });
}

// Adds the gradients of params [begin, end) from the parts (undefined: unused there) to their .grad, as backward()
// would, summed in part order so that the result does not depend on which thread finished first; out of place,
// since a part's gradient may alias another tensor.
void accumulate_in_part_order(std::vector<torch::Tensor>& params,
                              const std::vector<torch::autograd::variable_list>& parts, size_t begin, size_t end) {
  const torch::NoGradGuard no_grad;
  for (size_t j = begin; j < end; ++j) {
    torch::Tensor sum;
    for (const auto& part : parts) {
      if (part[j].defined()) sum = sum.defined() ? sum + part[j] : part[j];
    }
    if (!sum.defined()) continue;
    auto& grad = params[j].mutable_grad();
    grad = grad.defined() ? grad + sum : sum;
  }
}

// Where params splits into n runs of about equal numbers of elements: n + 1 indices from 0 to params.size(), so
// that n threads can each sum one run of the gradients.
std::vector<size_t> even_runs(const std::vector<torch::Tensor>& params, int64_t n) {
  int64_t total = 0;
  for (const auto& p : params) total += p.numel();
  std::vector<size_t> bounds{0};
  int64_t seen = 0;
  for (size_t j = 0; j < params.size(); ++j) {
    seen += params[j].numel();
    // Close run k once it holds its share, total * k / n elements in all.
    while (static_cast<int64_t>(bounds.size()) < n && seen * n >= total * static_cast<int64_t>(bounds.size())) {
      bounds.push_back(j + 1);
    }
  }
  while (static_cast<int64_t>(bounds.size()) <= n) bounds.push_back(params.size());
  return bounds;
}

}  // namespace

JepaStep::JepaStep(JepaModels& models, AdamW& optimizer, bool use_bfloat16)
    : models_(models), optimizer_(optimizer), bf16_(use_bfloat16) {
  // The masks change the context and target token counts every step, and cuDNN's attention, which LibTorch 2.11
  // picks for bf16 on an H200, builds an execution plan per new shape: 136 of a 195 ms bf16 step of workload (b)
  // went to it there (BENCHMARKS.md). Flash and memory-efficient attention need no plan. Process-wide, as
  // torch.backends.cuda.enable_cudnn_sdp(False) is.
  if (models_.encoder->pos_embed.is_cuda()) at::globalContext().setSDPUseCuDNN(false);
  // As the reference, the EMA runs over every parameter, the fixed positional table too: m * t + (1 - m) * s with
  // t == s still rounds now and then, and the target's table drifts from the encoder's by as much as the
  // reference's does.
  const auto targets = models_.target->named_parameters();
  for (const auto& p : models_.encoder->named_parameters()) {
    ema_sources_.push_back(p.value());
    ema_targets_.push_back(targets[p.key()]);
  }
  for (const auto& parameters : {models_.encoder->parameters(), models_.predictor->parameters()}) {
    for (const auto& p : parameters) {
      if (p.requires_grad()) trainable_.push_back(p);
    }
  }
}

torch::Tensor JepaStep::targets(const torch::Tensor& images, const masking::BatchMasks& masks) {
  torch::NoGradGuard no_grad;
  const auto read = tokens_read(images, masks);
  return target_blocks(models_.target->forward(images, {}, read.tokens), read.within, masks.enc.size());
}

model::MaskUnion JepaStep::tokens_read(const torch::Tensor& images, const masking::BatchMasks& masks) const {
  // The union's length is read back to the host: on a GPU that would wait for the device every step, for a saving
  // of about 1% of the step's products, so there the target encoder computes every token.
  if (!images.is_cpu()) return model::every_token(masks.pred);
  const int64_t patch = models_.target->config().patch_size;
  return model::union_of_masks(masks.pred, (images.size(2) / patch) * (images.size(3) / patch));
}

torch::Tensor JepaStep::target_blocks(torch::Tensor h, const std::vector<torch::Tensor>& pred, size_t nenc) const {
  torch::NoGradGuard no_grad;
  const int64_t batch = h.size(0);
  h = torch::layer_norm(h, {h.size(-1)});                                       // [B, N, D]; no parameters, eps 1e-5
  h = model::apply_masks(h, pred);                                              // [npred*B, Kp, D]
  return model::repeat_interleave_batch(h, batch, static_cast<int64_t>(nenc));  // [npred*nenc*B, Kp, D]
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
  const auto read = tokens_read(images, masks);
  const auto read_by = [&](int64_t start, int64_t length) {
    return read.tokens.defined() ? read.tokens.narrow(0, start, length) : read.tokens;
  };
  torch::Tensor z, h_own, h_rest;
  side_by_side(
      [&] {
        const model::AutocastGuard autocast(device, bf16_);
        const torch::NoGradGuard no_grad;
        h_own = models_.target->forward(images.narrow(0, 0, own), {}, read_by(0, own));
      },
      [&] {
        const model::AutocastGuard autocast(device, bf16_);
        z = predictions(images, masks);
        const torch::NoGradGuard no_grad;
        if (own < batch) {
          h_rest = models_.target->forward(images.narrow(0, own, batch - own), {}, read_by(own, batch - own));
        }
      });
  const model::AutocastGuard autocast(device, bf16_);
  return {z, target_blocks(own < batch ? torch::cat({h_own, h_rest}) : h_own, read.within, masks.enc.size())};
}

torch::Tensor JepaStep::part_loss(const torch::Tensor& images, const masking::BatchMasks& masks, int64_t start,
                                  int64_t length) {
  const model::AutocastGuard autocast(images.device().type(), bf16_);
  const auto part = images.narrow(0, start, length);
  const auto part_masks = masks.narrow(start, length);
  const auto h = targets(part, part_masks);
  const double share = static_cast<double>(length) / static_cast<double>(images.size(0));
  return torch::smooth_l1_loss(predictions(part, part_masks), h) * share;
}

torch::Tensor JepaStep::forward_backward_in_parts(const torch::Tensor& images, const masking::BatchMasks& masks) {
  // With the batch cut into one part per thread, each thread runs the whole step on its part (target encoder,
  // context path, backward) alone: ViT-sized matrix products gain little from a second thread within one op, and
  // no op waits for another thread (BENCHMARKS.md: 11-15% faster at workload (b) than the target encoder beside the
  // context path; less at (a), within the noise in some runs). A part's loss is the mean over its rows times its share
  // of the batch, so the parts' gradients add up to the whole batch's mean's.
  const int64_t batch = images.size(0), parts = std::min<int64_t>(at::get_num_threads(), batch);
  std::vector<torch::Tensor> losses(parts);
  std::vector<torch::autograd::variable_list> grads(parts);
  on_threads_each(parts, [&](int64_t i) {
    const int64_t start = batch * i / parts, length = batch * (i + 1) / parts - start;
    const auto loss = part_loss(images, masks, start, length);
    grads[i] = torch::autograd::grad({loss}, trainable_, {}, /*retain_graph=*/false, /*create_graph=*/false,
                                     /*allow_unused=*/true);
    losses[i] = loss.detach();
  });
  // The sums on the same threads, each over a run of the parameters: at this point ATen would split only the
  // largest gradients' adds between the threads, and run the many small ones on one.
  const auto runs = even_runs(trainable_, parts);
  on_threads_each(parts, [&](int64_t i) {
    accumulate_in_part_order(trainable_, grads, runs[static_cast<size_t>(i)], runs[static_cast<size_t>(i) + 1]);
  });
  auto loss = losses[0];
  for (int64_t i = 1; i < parts; ++i) loss = loss + losses[i];
  return loss;
}

torch::Tensor JepaStep::forward_backward(const torch::Tensor& images, const masking::BatchMasks& masks,
                                         const Backward& backward) {
  const auto device = images.device().type();
  const bool threads_to_share = device == torch::kCPU && at::get_num_threads() > 1 && !at::in_parallel_region();
  if (threads_to_share && !backward && images.size(0) > 1) return forward_backward_in_parts(images, masks);
  torch::Tensor z, h;
  if (threads_to_share) {
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
