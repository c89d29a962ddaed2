// The reference's Vision Transformer encoder and predictor. Module and parameter names equal the reference's
// state-dict keys (blocks.0.attn.qkv.weight, predictor_blocks.0.mlp.fc2.bias, ...), so checkpoints load both
// ways. Construction draws PyTorch's default initialisation exactly as the reference's constructors do; the
// reference's further initialisation passes are in model/init.h.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "model/residual_norm.h"
#include "model/tokens.h"
#include "model/vit_config.h"

namespace ijepa::model {

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t dim, int64_t num_heads);
  // x [B, N, D] -> [B, N, D]. With `outputs` ([B, K] token indices per image, as pick_tokens takes them): [B, K, D],
  // the attention of those tokens over all N (only their queries are projected).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& outputs = {});

  torch::nn::Linear qkv{nullptr}, proj{nullptr};

 private:
  int64_t num_heads_;
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t dim, int64_t hidden);
  torch::Tensor forward(const torch::Tensor& x);  // [B, N, D] -> [B, N, D], exact (erf) GELU

  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

// Pre-norm transformer block: x + attn(norm1(x)), then + mlp(norm2(x)); LayerNorm eps 1e-6.
class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(int64_t dim, int64_t num_heads, int64_t mlp_hidden);
  // x [B, N, D] -> [B, N, D]. With `outputs` ([B, K] token indices per image): [B, K, D], the block's output for
  // those tokens alone (all N are attended to), each the one the whole block gives; the others' work is left out
  // where nothing reads them.
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& outputs = {});

  // The same block on a stream whose norm1 was applied already (in.normed), with each residual add fused with the
  // LayerNorm after it (model/residual_norm.h); next_norm, the norm that follows the block, gives the output's
  // normed part in next_dtype. `outputs` as for forward.
  ResidualNorm forward_fused(const ResidualNorm& in, const torch::nn::LayerNorm& next_norm,
                             torch::ScalarType next_dtype, const torch::Tensor& outputs = {});

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  Attention attn{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(Block);

class PatchEmbedImpl : public torch::nn::Module {
 public:
  PatchEmbedImpl(int64_t patch_size, int64_t in_chans, int64_t dim);
  torch::Tensor forward(const torch::Tensor& x);  // [B, C, H, W] -> [B, (H/p)*(W/p), D], row-major tokens

  // On CPU with sides that are multiples of the patch, the convolution runs as one matrix product over the image's
  // patches: rows(x) lays them out ([B, N, C*p*p], model/patch_rows.h) and project(rows) multiplies, so that a
  // caller may keep some rows before the product. Elsewhere rows(x) is undefined and forward convolves.
  torch::Tensor rows(const torch::Tensor& x) const;
  torch::Tensor project(const torch::Tensor& rows) const;  // [..., C*p*p] -> [..., D]

  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

class VisionTransformerImpl : public torch::nn::Module {
 public:
  explicit VisionTransformerImpl(const ViTConfig& config);

  // x: [B, C, H, W]. Without masks: [B, N, D]. With masks (each [B, K]): [len(masks)*B, K, D]. The output keeps
  // the final LayerNorm. Images of another size than the config's get the sin-cos table of their own grid.
  // With `outputs` (no masks; [B, K] token indices per image): [B, K, D], the same as those tokens of the whole
  // output, for the last block's work on them alone.
  torch::Tensor forward(const torch::Tensor& x, const std::vector<torch::Tensor>& masks = {},
                        const torch::Tensor& outputs = {});

  // Per-block outputs of the last `n` blocks, each [B, N, D] (the last one after the final norm), for probes.
  std::vector<torch::Tensor> last_block_outputs(const torch::Tensor& x, int64_t n);

  const ViTConfig& config() const { return config_; }

  torch::Tensor pos_embed;  // [1, N, D], fixed (requires_grad false), a parameter as in the reference
  PatchEmbed patch_embed{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};

 private:
  // Patch embedding plus positions: [B, N, D], or with masks the kept tokens only, as apply_masks gives them.
  torch::Tensor embed(const torch::Tensor& x, const std::vector<torch::Tensor>& masks = {});
  ViTConfig config_;
};
TORCH_MODULE(VisionTransformer);

class PredictorImpl : public torch::nn::Module {
 public:
  explicit PredictorImpl(const PredictorConfig& config);

  // x: [nenc*B, Kc, D] context tokens from the encoder; masks_x: nenc masks [B, Kc]; masks: npred masks [B, Kp].
  // Each target block is its own sequence [context ; mask tokens], so blocks never attend to each other.
  // Returns [npred*nenc*B, Kp, D] in target-block-major order.
  torch::Tensor forward(const torch::Tensor& x, const std::vector<torch::Tensor>& masks_x,
                        const std::vector<torch::Tensor>& masks);

  const PredictorConfig& config() const { return config_; }

  torch::Tensor mask_token;           // [1, 1, Dp]
  torch::Tensor predictor_pos_embed;  // [1, N, Dp], fixed
  torch::nn::Linear predictor_embed{nullptr};
  torch::nn::ModuleList predictor_blocks{nullptr};
  torch::nn::LayerNorm predictor_norm{nullptr};
  torch::nn::Linear predictor_proj{nullptr};

 private:
  PredictorConfig config_;
};
TORCH_MODULE(Predictor);

// The [1, grid*grid, dim] float32 sin-cos table.
torch::Tensor sincos_table(int64_t dim, int64_t grid);

}  // namespace ijepa::model
