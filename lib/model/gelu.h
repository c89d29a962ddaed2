#pragma once
// The exact (erf) GELU, as the MLP takes it. On a CPU bf16 tensor (the MLP's hidden layer under CPU bf16 autocast)
// it and its backward look the result up in tables over the 65536 bf16 values; anything else is ATen's.
//
// Why: ATen's gelu and gelu_backward of bf16 evaluate erf (and exp) for every element, about 0.45 and 0.6-1.6 ns an
// element on the AVX-512 machines of BENCHMARKS.md, together 4-6% of a bf16 training step of workload (b). The
// input takes only 65536 values, so each function is computed once per value, by ATen's own vectorised kernel: the
// forward is then a lookup, and the backward a lookup, one product with the incoming gradient and one rounding to
// bf16. Both give the bits of ATen's vectorised kernels, with or without autograd. (ATen's scalar path for the last
// few elements of a tensor, with the C library's erf and exp, differs from its vectorised one: by at most one bf16
// rounding step from -4 up, by more where the GELU of an input below -4 is tiny, and for subnormal inputs.)
#include <torch/torch.h>

namespace ijepa::model {

// Named apart from ATen's gelu, which argument-dependent lookup would also find for a call to plain gelu(x).
torch::Tensor exact_gelu(const torch::Tensor& x);

// The same in place, where nothing is recorded for backward (an error otherwise), for a tensor that nothing else
// reads: the output of a linear in the target encoder's MLP. Returns x.
torch::Tensor exact_gelu_(torch::Tensor x);

}  // namespace ijepa::model
