#pragma once
// Softmax over the last dimension, as the attention takes it. A CPU bf16 tensor (the scores under CPU bf16 autocast,
// which leaves softmax in bf16, as the reference's torch does) takes a row kernel of this project; anything else
// ATen's softmax.
//
// Why: ATen's CPU softmax of bf16 rows as short as the attention's (49 to a few hundred tokens) took 0.9-2 ns an
// element on the AVX-512 machines of BENCHMARKS.md, some 7% of a bf16 training step of workload (b). The row
// kernel widens each row to fp32 once, takes the max, the exponentials (a vectorised exp, within a few fp32 ulps of
// the exact value) and their sum, and rounds each quotient once to bf16: the arithmetic of ATen's kernel, with
// results that differ from it by at most one bf16 rounding step. The backward is ATen's.
#include <torch/torch.h>

namespace ijepa::model {

// softmax(scores * scale) over the last dimension, scale > 0. The product is rounded to the scores' dtype first, as
// the reference's `(q @ k^T) * scale` is before its softmax: the kernel takes it on the way, in place of a pass of
// its own over the scores, forward and backward.
torch::Tensor last_dim_softmax(const torch::Tensor& scores, double scale = 1.0);

}  // namespace ijepa::model
