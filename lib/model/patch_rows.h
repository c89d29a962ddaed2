// The input of a p x p convolution with stride p, laid out as the rows of one matrix product (im2col without
// overlap): how the patch embedding runs on CPU.
#pragma once

#include <torch/types.h>

namespace ijepa::model {

// images [B, C, H, W], H and W multiples of p -> [B, (H/p)*(W/p), C*p*p]: row r*(W/p)+c is the patch at grid row
// r and column c, flattened as the convolution's kernel is ([C, p, p]); converted to dtype (float or bf16) on the
// way, which gives the same bits as converting the whole result. Differentiable with respect to images where they
// require grad.
torch::Tensor patch_rows(const torch::Tensor& images, int64_t patch, torch::ScalarType dtype);

}  // namespace ijepa::model
