#include "model/vit.h"

#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>

#include "model/autocast.h"
#include "model/linear.h"
#include "model/patch_rows.h"
#include "model/pos_embed.h"
#include "model/softmax.h"

namespace ijepa::model {

namespace {
torch::nn::LayerNorm layer_norm(int64_t dim) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-6));
}
}  // namespace

torch::Tensor sincos_table(int64_t dim, int64_t grid) {
  std::vector<double> table = sincos_pos_embed_2d(dim, grid);
  return torch::from_blob(table.data(), {1, grid * grid, dim}, torch::kFloat64).to(torch::kFloat32);
}

AttentionImpl::AttentionImpl(int64_t dim, int64_t num_heads) : num_heads_(num_heads) {
  if (num_heads <= 0 || dim % num_heads != 0) {
    throw std::invalid_argument("attention width " + std::to_string(dim) + " is not divisible by " +
                                std::to_string(num_heads) + " heads");
  }
  qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(dim, 3 * dim).bias(true)));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
}

namespace {

// The reference's softmax((q k^T) * (C/H)^-0.5), its scale applied by the softmax kernel as it reads the scores
// (model/softmax.h). Where autograd records and that scale is a power of two (heads 4, 16, 64 or 256 wide, as in
// ViT-tiny to -large), scaling q instead gives the same bits, forward and backward (a power of two commutes with
// every rounding), and in the backward q [N, C/H] is the smaller tensor to multiply once the sequence is longer
// than a head.
torch::Tensor attention_weights(const torch::Tensor& q, const torch::Tensor& k) {
  const int64_t head_width = q.size(-1), tokens = k.size(-2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_width));
  int exponent = 0;
  const bool power_of_two = std::frexp(scale, &exponent) == 0.5;
  const bool records = at::GradMode::is_enabled() && q.requires_grad();
  if (records && power_of_two && tokens > head_width) {
    return last_dim_softmax(torch::matmul(q * scale, k.transpose(-2, -1)));
  }
  return last_dim_softmax(torch::matmul(q, k.transpose(-2, -1)), scale);
}

// [B, N, parts * C] -> `parts` tensors [B, H, N, C/H], laid out once so that the products of the attention need no
// copies of them, and split by unbind, whose backward stacks the gradients (indexing would give each its own
// zero-filled buffer of the whole and sum them).
std::vector<torch::Tensor> split_heads(const torch::Tensor& t, int64_t parts, int64_t heads) {
  const int64_t B = t.size(0), N = t.size(1), head_width = t.size(2) / parts / heads;
  return t.reshape({B, N, parts, heads, head_width}).permute({2, 0, 3, 1, 4}).contiguous().unbind(0);
}

}  // namespace

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& outputs) {
  const int64_t B = x.size(0), C = x.size(2), queries = outputs.defined() ? outputs.size(1) : x.size(1);
  torch::Tensor q, k, v;  // [B, H, N, C/H], q [B, H, queries, C/H]
  if (!outputs.defined()) {
    const auto qkv_heads = split_heads(linear(qkv, x), 3, num_heads_);
    q = qkv_heads[0], k = qkv_heads[1], v = qkv_heads[2];
  } else {
    // The rows of qkv's weight and bias are q's, then k's, then v's: the first C project the queries.
    const auto &weight = qkv->weight, &bias = qkv->bias;
    q = split_heads(linear(pick_tokens(x, outputs), weight.narrow(0, 0, C), bias.narrow(0, 0, C)), 1, num_heads_)[0];
    const auto kv = split_heads(linear(x, weight.narrow(0, C, 2 * C), bias.narrow(0, C, 2 * C)), 2, num_heads_);
    k = kv[0], v = kv[1];
  }
  torch::Tensor out;
  if (x.is_cuda()) {
    out = at::scaled_dot_product_attention(q, k, v);  // fused (flash) kernels, same (C/H)^-0.5 scale
  } else {
    // On CPU the explicit form is several times faster than the fused kernel in bf16 at ViT sequence lengths,
    // and it is the reference's arithmetic op for op (CPU autocast leaves softmax in bf16, unlike CUDA's; a bf16
    // softmax takes this project's row kernel, model/softmax.h).
    out = torch::matmul(attention_weights(q, k), v);
  }
  return linear(proj, out.transpose(1, 2).reshape({B, queries, C}));
}

MlpImpl::MlpImpl(int64_t dim, int64_t hidden) {
  fc1 = register_module("fc1", torch::nn::Linear(dim, hidden));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, dim));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) { return linear(fc2, linear_gelu(fc1, x)); }

BlockImpl::BlockImpl(int64_t dim, int64_t num_heads, int64_t mlp_hidden) {
  // Registration (and so default-init draw) order of the reference: norm1, attn, norm2, mlp.
  norm1 = register_module("norm1", layer_norm(dim));
  attn = register_module("attn", Attention(dim, num_heads));
  norm2 = register_module("norm2", layer_norm(dim));
  mlp = register_module("mlp", Mlp(dim, mlp_hidden));
}

namespace {
// The tokens `outputs` of x, x itself where it is undefined (all of them).
torch::Tensor output_tokens(const torch::Tensor& x, const torch::Tensor& outputs) {
  return outputs.defined() ? pick_tokens(x, outputs) : x;
}
}  // namespace

torch::Tensor BlockImpl::forward(torch::Tensor x, const torch::Tensor& outputs) {
  x = output_tokens(x, outputs) + attn->forward(norm1(x), outputs);
  return x + mlp(norm2(x));
}

ResidualNorm BlockImpl::forward_fused(const ResidualNorm& in, const torch::nn::LayerNorm& next_norm,
                                      torch::ScalarType next_dtype, const torch::Tensor& outputs) {
  const auto mid = residual_layer_norm(output_tokens(in.residual, outputs), attn->forward(in.normed, outputs), norm2,
                                       torch::kBFloat16);
  return residual_layer_norm(mid.residual, mlp(mid.normed), next_norm, next_dtype);
}

namespace {

// Under CPU bf16 autocast the residual stream is fp32 and its LayerNorms' outputs are cast to bf16 at the next
// linear: there each add and the norm after it run as one pass (model/residual_norm.h), with the norm's output in
// bf16 straight away (fp32 for the final norm, whose output the reference keeps in fp32).
bool fuse_residual_norms(const torch::Tensor& x) { return fusable_residual(x) && cpu_bf16_autocast_active(); }

using AfterBlock = std::function<void(size_t, const torch::Tensor&)>;

// The blocks over the residual stream x, then final_norm, for the tokens `outputs` (all where undefined): the last
// block computes only theirs (the others' outputs are read by nothing). after_block(i, h), where given, sees the
// stream after block i.
torch::Tensor run_blocks(torch::nn::ModuleList blocks, const torch::Tensor& x, torch::nn::LayerNorm final_norm,
                         const torch::Tensor& outputs = {}, const AfterBlock& after_block = nullptr) {
  const auto block = [&](size_t i) { return blocks[i]->as<BlockImpl>(); };
  if (blocks->is_empty()) return final_norm(output_tokens(x, outputs));
  const auto last_outputs = [&](size_t i) { return i + 1 == blocks->size() ? outputs : torch::Tensor(); };
  if (!fuse_residual_norms(x)) {
    auto h = x;
    for (size_t i = 0; i < blocks->size(); ++i) {
      h = block(i)->forward(h, last_outputs(i));
      if (after_block) after_block(i, h);
    }
    return final_norm(h);
  }
  auto stream = residual_layer_norm(x, torch::Tensor(), block(0)->norm1, torch::kBFloat16);
  for (size_t i = 0; i < blocks->size(); ++i) {
    const bool last = i + 1 == blocks->size();
    stream = block(i)->forward_fused(stream, last ? final_norm : block(i + 1)->norm1,
                                     last ? torch::kFloat : torch::kBFloat16, last_outputs(i));
    if (after_block) after_block(i, stream.residual);
  }
  return stream.normed;
}

}  // namespace

PatchEmbedImpl::PatchEmbedImpl(int64_t patch_size, int64_t in_chans, int64_t dim) {
  proj = register_module("proj",
                         torch::nn::Conv2d(torch::nn::Conv2dOptions(in_chans, dim, patch_size).stride(patch_size)));
}

torch::Tensor PatchEmbedImpl::rows(const torch::Tensor& x) const {
  const int64_t p = proj->options.kernel_size()->at(0);
  if (!x.is_cpu() || x.size(2) % p != 0 || x.size(3) % p != 0) return {};
  // A p x p convolution with stride p is one matrix product over the image's patches, each flattened as the
  // kernel is ([C, p, p]). On CPU that is 1.3-5x faster than ATen's convolution forward and backward at the
  // benchmark workloads' sizes (its weight gradient dominates), for the same result up to the order of the sums.
  // Under bf16 autocast the rows are laid out in bf16 directly: the linear would cast them to it.
  return patch_rows(x, p, cpu_bf16_autocast_active() ? torch::kBFloat16 : x.scalar_type());
}

torch::Tensor PatchEmbedImpl::project(const torch::Tensor& rows) const {
  return linear(rows, proj->weight.reshape({proj->weight.size(0), -1}), proj->bias);
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& x) {
  const auto patches = rows(x);
  return patches.defined() ? project(patches) : proj(x).flatten(2).transpose(1, 2);
}

VisionTransformerImpl::VisionTransformerImpl(const ViTConfig& config) : config_(config) {
  patch_embed = register_module("patch_embed", PatchEmbed(config.patch_size, config.in_chans, config.embed_dim));
  pos_embed = register_parameter("pos_embed", sincos_table(config.embed_dim, config.grid()), /*requires_grad=*/false);
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.depth; ++i) {
    blocks->push_back(Block(config.embed_dim, config.num_heads, config.mlp_hidden));
  }
  norm = register_module("norm", layer_norm(config.embed_dim));
}

torch::Tensor VisionTransformerImpl::embed(const torch::Tensor& x, const std::vector<torch::Tensor>& masks) {
  const int64_t tokens = (x.size(2) / config_.patch_size) * (x.size(3) / config_.patch_size);
  const auto pos =
      tokens == pos_embed.size(1)
          ? pos_embed
          : sincos_table(config_.embed_dim, static_cast<int64_t>(std::lround(std::sqrt(tokens)))).to(x.device());
  const auto patches = patch_embed->rows(x);
  if (!patches.defined()) {
    // Where the convolution runs (CUDA), the patch tokens are a transposed view of its output and the sum keeps
    // that layout, so the residual stream would be non-contiguous and every LayerNorm on it would copy it first:
    // lay it out once here.
    const auto all = patch_embed(x).contiguous() + pos;
    return masks.empty() ? all : apply_masks(all, masks);
  }
  if (masks.empty()) return patch_embed->project(patches) + pos;
  // Only the kept patches are projected (the context encoder keeps a sixth to a third of them in the benchmark
  // workloads): each token is the same as when all are projected and some kept, for the kept ones' work forward and
  // backward, and no scatter of the gradient into a zero-filled [B, N, D].
  return patch_embed->project(apply_masks(patches, masks)) + apply_masks(pos.expand({x.size(0), -1, -1}), masks);
}

torch::Tensor VisionTransformerImpl::forward(const torch::Tensor& x, const std::vector<torch::Tensor>& masks,
                                             const torch::Tensor& outputs) {
  if (outputs.defined() && !masks.empty()) {
    throw std::invalid_argument("VisionTransformer::forward: outputs are picked from all tokens, not with masks");
  }
  return run_blocks(blocks, embed(x, masks), norm, outputs);
}

std::vector<torch::Tensor> VisionTransformerImpl::last_block_outputs(const torch::Tensor& x, int64_t n) {
  std::vector<torch::Tensor> outputs;
  const auto depth = static_cast<int64_t>(blocks->size());
  auto last = run_blocks(blocks, embed(x), norm, /*outputs=*/{}, [&](size_t i, const torch::Tensor& h) {
    const auto block = static_cast<int64_t>(i);
    if (block >= depth - n && block < depth - 1) outputs.push_back(h);
  });
  outputs.push_back(std::move(last));
  return outputs;
}

PredictorImpl::PredictorImpl(const PredictorConfig& config) : config_(config) {
  const int64_t dp = config.predictor_embed_dim;
  // The reference's order: predictor_embed (draws), mask_token, predictor_pos_embed, blocks, norm, proj.
  predictor_embed = register_module("predictor_embed", torch::nn::Linear(config.embed_dim, dp));
  mask_token = register_parameter("mask_token", torch::zeros({1, 1, dp}));
  predictor_pos_embed = register_parameter("predictor_pos_embed", sincos_table(dp, config.grid), false);
  predictor_blocks = register_module("predictor_blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.depth; ++i) {
    predictor_blocks->push_back(Block(dp, config.num_heads, config.mlp_hidden()));
  }
  predictor_norm = register_module("predictor_norm", layer_norm(dp));
  predictor_proj = register_module("predictor_proj", torch::nn::Linear(dp, config.embed_dim));
}

torch::Tensor PredictorImpl::forward(const torch::Tensor& x, const std::vector<torch::Tensor>& masks_x,
                                     const std::vector<torch::Tensor>& masks) {
  const int64_t nenc = static_cast<int64_t>(masks_x.size());
  const int64_t npred = static_cast<int64_t>(masks.size());
  const int64_t batch = x.size(0) / nenc;
  const auto pos = predictor_pos_embed.expand({batch, -1, -1});  // [B, N, Dp]

  auto context = linear(predictor_embed, x) + apply_masks(pos, masks_x);  // [nenc*B, Kc, Dp]
  const int64_t n_context = context.size(1);

  auto target_pos = repeat_interleave_batch(apply_masks(pos, masks), batch, nenc);  // [npred*nenc*B, Kp, Dp]
  auto mask_tokens = mask_token + target_pos;

  const auto tokens = torch::cat({context.repeat({npred, 1, 1}), mask_tokens}, 1);
  // Only the mask tokens' predictions are read: the last block and the norm compute theirs alone.
  const auto mask_positions =
      torch::arange(n_context, tokens.size(1), x.options().dtype(torch::kLong)).expand({tokens.size(0), -1});
  const auto predicted = run_blocks(predictor_blocks, tokens, predictor_norm, mask_positions);
  return linear(predictor_proj, predicted);  // [npred*nenc*B, Kp, D]
}

}  // namespace ijepa::model
