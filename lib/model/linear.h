#pragma once
// The linear layers of the encoder and the predictor: y = x W^T + b, as torch.nn.Linear computes it. On a CPU they
// run on oneDNN's kernels where those are faster than ATen's path for the same arithmetic:
//
//   - under CPU bf16 autocast, on a CPU with native bf16 products: the bias added to the product's fp32
//     accumulator, one rounding to bf16 instead of ATen's bias copied into the output, then a cast;
//   - in fp32 (no autocast): oneDNN's fp32 kernel for the product and for the input's gradient, where ATen's
//     addmm and mm take MKL's sgemm, up to a third slower at these shapes with both cores busy on the AVX-512 AMD
//     machine of BENCHMARKS.md.
//
// Everywhere else (CUDA, other dtypes, CPU bf16 without native products) it is ATen's linear.
#include <torch/torch.h>

namespace ijepa::model {

// One fused addmm over the flattened tokens, as torch.nn.Linear calls it (where oneDNN does not take it). The C++
// frontend's LinearImpl::forward takes matmul and then `output += bias` for inputs of more than 2 dims, which
// under autocast adds the fp32 bias into the bf16 output through a conversion pass and costs a separate add in
// backward.
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);
torch::Tensor linear(const torch::nn::Linear& layer, const torch::Tensor& x);

// The MLP's first layer: exact (erf) GELU of the linear. Where nothing is recorded for backward, fused into the
// product in fp32, and applied in place to the product in bf16 (model/gelu.h).
torch::Tensor linear_gelu(const torch::nn::Linear& layer, const torch::Tensor& x);

}  // namespace ijepa::model
