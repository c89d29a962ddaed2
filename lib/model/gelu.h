#pragma once
// The exact (erf) GELU, as the MLP takes it. Its backward on a CPU bf16 tensor (the MLP's hidden layer under CPU
// bf16 autocast) looks up the derivative in a table over the 65536 bf16 values; anything else is ATen's.
//
// Why: ATen's gelu_backward of bf16 evaluates erf and exp for every element, 0.6-1.6 ns an element on the AVX-512
// machines of BENCHMARKS.md, 3-4% of a bf16 training step of workload (b). Its input takes only 65536 values, so
// the derivative is computed once per value, by ATen's own vectorised kernel, and the backward is a gather, one
// product with the incoming gradient and one rounding to bf16: the bits of ATen's vectorised kernel, which
// computes the same product of the same fp32 values (its scalar path for the last few elements of a tensor, with
// the C library's erf and exp, can differ from both by one bf16 rounding step).
#include <torch/torch.h>

namespace ijepa::model {

// Named apart from ATen's gelu, which argument-dependent lookup would also find for a call to plain gelu(x).
torch::Tensor exact_gelu(const torch::Tensor& x);

}  // namespace ijepa::model
