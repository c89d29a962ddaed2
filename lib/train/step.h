// One I-JEPA training step, as the reference's train_step:
//   targets (no grad): h = LayerNorm_noparams(target_encoder(imgs)), gathered at the target blocks;
//   z = predictor(encoder(imgs, ctx_masks), ctx_masks, target_masks);
//   loss = smooth_l1(z, h) (beta 1, mean); backward; AdamW; then the EMA of the target encoder.
// Forward and loss run under bf16 autocast when asked (CPU or CUDA); parameters and optimizer state stay fp32.
// Split into forward_backward() and update() so that gradient synchronisation can finish in between. Nothing is
// read back to the host: the loss stays a device tensor.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <utility>
#include <vector>

#include "masking/multiblock.h"
#include "model/tokens.h"
#include "model/vit.h"
#include "train/optimizer.h"

namespace ijepa::train {

struct JepaModels {
  model::VisionTransformer encoder{nullptr};
  model::Predictor predictor{nullptr};
  model::VisionTransformer target{nullptr};  // EMA of the encoder, requires_grad off
};

// The reference's encoder and predictor (model::build_models, drawing from the global generator) and the target
// encoder as the encoder's frozen copy, all three on `device`.
JepaModels build_jepa_models(const model::ViTConfig& encoder, const model::PredictorConfig& predictor,
                             const torch::Device& device);

class JepaStep {
 public:
  JepaStep(JepaModels& models, AdamW& optimizer, bool use_bfloat16);

  // How the gradients of the loss are computed: loss.backward() when empty. A data-parallel trainer passes
  // its GradientSynchronizer's backward, which scales the loss by 1/world size so that the buckets are only
  // summed (no pass over every gradient after the all-reduce).
  using Backward = std::function<void(const torch::Tensor& loss)>;

  // images: [B, C, H, W] on the models' device; masks on the same device.
  // Returns the loss (fp32 scalar tensor, not synchronised with the host, never scaled by `backward`). On a CPU with
  // several intra-op threads and no `backward`, each thread computes a part of the batch, forward and backward; the
  // loss is then the sum of the parts' shares, the batch mean up to rounding.
  torch::Tensor forward_backward(const torch::Tensor& images, const masking::BatchMasks& masks,
                                 const Backward& backward = {});

  // AdamW with this step's lr and weight decay (skipped on the device if a gradient is not finite), zero the
  // gradients, then target = m * target + (1 - m) * encoder.
  void update(double lr, double weight_decay, double momentum);

  // The targets alone: [npred*nenc*B, Kp, D], for tests.
  torch::Tensor targets(const torch::Tensor& images, const masking::BatchMasks& masks);

  // 1 when the last update was skipped for a non-finite gradient (device tensor).
  const torch::Tensor& last_skipped() const { return last_skipped_; }

 private:
  // The tokens of each image that the target blocks read (on a CPU; all of them on a GPU): the target encoder's last
  // block computes only theirs.
  model::MaskUnion tokens_read(const torch::Tensor& images, const masking::BatchMasks& masks) const;
  // LayerNorm of the target encoder's output h [B, N, D] (or of the tokens read), gathered at the target blocks
  // `pred` (indices into h's tokens) and repeated for each of the nenc context masks.
  torch::Tensor target_blocks(torch::Tensor h, const std::vector<torch::Tensor>& pred, size_t nenc) const;
  // The predictor's output for the target blocks, from the context encoder (records autograd).
  torch::Tensor predictions(const torch::Tensor& images, const masking::BatchMasks& masks);
  // How many of the batch's target-encoder rows run on a thread of their own, beside the context path.
  int64_t target_rows_on_their_own(int64_t batch, const masking::BatchMasks& masks) const;
  // The whole step with the batch cut into one part per intra-op thread, each on its own thread (CPU, where the
  // gradients are not synchronised with other ranks).
  torch::Tensor forward_backward_in_parts(const torch::Tensor& images, const masking::BatchMasks& masks);
  // The loss of images [start, start + length) of the batch, times their share of it.
  torch::Tensor part_loss(const torch::Tensor& images, const masking::BatchMasks& masks, int64_t start, int64_t length);
  // The predictions and the targets, computed on two of the intra-op threads (CPU, for a data-parallel trainer,
  // whose backward synchronises the gradients as they come).
  std::pair<torch::Tensor, torch::Tensor> forward_side_by_side(const torch::Tensor& images,
                                                               const masking::BatchMasks& masks);

  JepaModels& models_;
  AdamW& optimizer_;
  bool bf16_;
  std::vector<torch::Tensor> ema_sources_, ema_targets_;
  std::vector<torch::Tensor> trainable_;  // the encoder's and the predictor's, in registration order
  torch::Tensor last_skipped_;
};

}  // namespace ijepa::train
