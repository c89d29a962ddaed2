#include "model/tokens.h"

namespace ijepa::model {

// The rows of x as one [B*N, D] matrix, picked by index_select: a copy per token, where torch.gather, with its index
// expanded over D, reads an index per element (on CPU 4-20x slower, the most for bf16 rows of 768 patch values). The
// same values, and a gradient of the same sums.
torch::Tensor pick_tokens(const torch::Tensor& x, const torch::Tensor& index) {
  const int64_t batch = index.size(0), kept = index.size(1), tokens = x.size(1), width = x.size(2);
  if (x.size(0) == batch && batch > 1 && x.stride(0) == 0) {  // one table for every image (the positions)
    return x.select(0, 0).index_select(0, index.flatten()).view({batch, kept, width});
  }
  const auto offsets = torch::arange(batch, index.options()).mul_(tokens).unsqueeze(1);
  return x.reshape({-1, width}).index_select(0, (index + offsets).flatten()).view({batch, kept, width});
}

torch::Tensor apply_masks(const torch::Tensor& x, const std::vector<torch::Tensor>& masks) {
  std::vector<torch::Tensor> kept;
  kept.reserve(masks.size());
  for (const auto& m : masks) kept.push_back(pick_tokens(x, m));
  return kept.size() == 1 ? kept[0] : torch::cat(kept, 0);
}

torch::Tensor repeat_interleave_batch(const torch::Tensor& x, int64_t batch, int64_t repeat) {
  if (repeat == 1) return x;
  const int64_t chunks = x.size(0) / batch;
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < chunks; ++i) {
    for (int64_t r = 0; r < repeat; ++r) parts.push_back(x.narrow(0, i * batch, batch));
  }
  return torch::cat(parts, 0);
}

MaskUnion every_token(const std::vector<torch::Tensor>& masks) { return {torch::Tensor(), masks}; }

MaskUnion union_of_masks(const std::vector<torch::Tensor>& masks, int64_t num_tokens) {
  if (masks.empty()) return every_token(masks);
  const int64_t batch = masks[0].size(0);
  const auto options = masks[0].options();
  auto kept = torch::zeros({batch, num_tokens}, options.dtype(torch::kBool));
  for (const auto& m : masks) kept.scatter_(1, m, true);
  const int64_t longest = kept.sum(1).max().item<int64_t>();
  if (longest == num_tokens) return every_token(masks);
  // Each image's kept tokens first, in ascending order, then the others: sort by token + N for the others.
  const auto token = torch::arange(num_tokens, options).expand({batch, -1});
  const auto order = torch::where(kept, token, token + num_tokens).argsort(/*dim=*/int64_t{1}).narrow(1, 0, longest);
  // A kept token's position in its image's row is the number of kept tokens before it.
  const auto position = kept.to(torch::kLong).cumsum(1).sub_(1);
  MaskUnion u{order, {}};
  for (const auto& m : masks) u.within.push_back(position.gather(1, m));
  return u;
}

}  // namespace ijepa::model
