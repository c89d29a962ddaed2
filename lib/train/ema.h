// The EMA of the target encoder: target = m * target + (1 - m) * source, parameter by parameter.
#pragma once

#include <torch/types.h>

#include <vector>

namespace ijepa::train {

// The reference's `param_k.mul_(m).add_((1. - m) * param_q)` over matching lists, with its roundings: t * m and
// s * (1 - m) each rounded to fp32, then their sum. ATen's add_ with an alpha would fuse the second product into
// the sum (one rounding, a different last bit in about 1% of the elements). CPU fp32 contiguous tensors take one
// pass that reads each target once; others ATen's ops in the reference's order.
void ema_update(std::vector<torch::Tensor>& targets, const std::vector<torch::Tensor>& sources, double momentum);

}  // namespace ijepa::train
