#pragma once
// The residual add that ends a transformer sub-block and the LayerNorm that starts the next one, as one pass over
// each token on CPU, forward and backward.
//
// Under CPU bf16 autocast the reference's block is x = x + attn(norm1(x)); x = x + mlp(norm2(x)) with an fp32
// residual stream and bf16 branches: ATen runs that as a type-promoting add (a conversion copy of the branch, then
// the add), a LayerNorm writing fp32, and autocast's cast of that output to bf16 at the next linear; backward as
// the cast's gradient, the LayerNorm's backward, the sum of the two gradients of the residual and the cast of that
// sum to the branch's dtype. Here each of those is one pass that keeps the row in cache: the same arithmetic (fp32
// statistics and normalisation, one rounding to the output dtype), summed in another order.
#include <torch/torch.h>

namespace ijepa::model {

struct ResidualNorm {
  torch::Tensor residual;  // x + branch, fp32; x itself where there was no branch
  torch::Tensor normed;    // layer_norm(residual) with the norm's weight, bias and eps, in the dtype asked for
};

// Whether residual_layer_norm takes x: a CPU fp32 tensor.
bool fusable_residual(const torch::Tensor& x);

// residual = x + branch (branch fp32 or bf16, x's shape; undefined: no add) and its LayerNorm over the last
// dimension, which must be the norm's width. Differentiable in x, branch, and the norm's weight and bias.
ResidualNorm residual_layer_norm(const torch::Tensor& x, const torch::Tensor& branch, const torch::nn::LayerNorm& norm,
                                 torch::ScalarType normed_dtype);

}  // namespace ijepa::model
