// Picking tokens out of a batch of sequences: the reference's apply_masks and repeat_interleave_batch, and the union
// of a batch's masks (the tokens of each image that some mask keeps), so that an encoder may compute its last block
// for those tokens alone.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace ijepa::model {

// x [B, N, D] at the tokens index [B, K] (token indices per image, in any order, repeats allowed): [B, K, D].
// Differentiable in x.
torch::Tensor pick_tokens(const torch::Tensor& x, const torch::Tensor& index);

// Keeps the tokens listed in each mask. x: [B, N, D]; each mask: [B, K] token indices.
// Returns [len(masks)*B, K, D], mask-major (all images of mask 0, then mask 1, ...).
torch::Tensor apply_masks(const torch::Tensor& x, const std::vector<torch::Tensor>& masks);

// The reference's repeat_interleave_batch: x is [N*B, ...] in chunks of B; each chunk repeated `repeat` times.
torch::Tensor repeat_interleave_batch(const torch::Tensor& x, int64_t batch, int64_t repeat);

// The tokens that some mask keeps, per image, and the masks as positions among them:
// apply_masks(x, masks) == apply_masks(pick_tokens(x, tokens), within).
struct MaskUnion {
  torch::Tensor tokens;               // [B, U]: each image's kept tokens, ascending, then others up to the longest list
                                      // of the batch; undefined where that is all N (the masks are then `within`)
  std::vector<torch::Tensor> within;  // each mask [B, K] as indices into its image's row of tokens
};
MaskUnion union_of_masks(const std::vector<torch::Tensor>& masks, int64_t num_tokens);
// The union as every token: `tokens` undefined, and the masks index the tokens themselves.
MaskUnion every_token(const std::vector<torch::Tensor>& masks);

}  // namespace ijepa::model
