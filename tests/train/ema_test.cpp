// The EMA of the target encoder (train/ema.h) against the reference's two ops.
#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

#include "train/ema.h"

namespace ijepa::train {
namespace {

TEST(EmaUpdate, IsTheReferencesProductsThenSumBitForBit) {
  torch::manual_seed(0);
  // A qkv weight's size, an odd size (a vector tail), one element, and a transposed (non-contiguous) weight.
  std::vector<torch::Tensor> targets{torch::randn({576, 192}), torch::randn({1003}), torch::randn({1}),
                                     torch::randn({96, 384}).t()};
  std::vector<torch::Tensor> sources;
  for (const auto& t : targets) sources.push_back(torch::randn(t.sizes()));
  for (const double m : {0.996, 0.99932, 1.0}) {
    std::vector<torch::Tensor> ours, reference;
    for (const auto& t : targets) {
      ours.push_back(t.clone());
      reference.push_back(t.clone());
    }
    ours[3] = ours[3].t().contiguous().t();  // keep the last one transposed
    ema_update(ours, sources, m);
    for (size_t i = 0; i < reference.size(); ++i) {
      reference[i].mul_(m).add_((1.0 - m) * sources[i]);  // param_k.mul_(m).add_((1. - m) * param_q)
      EXPECT_TRUE(torch::equal(ours[i], reference[i])) << "tensor " << i << ", momentum " << m;
    }
  }
}

TEST(EmaUpdate, ListsOfDifferentLengthsAreRejected) {
  std::vector<torch::Tensor> targets{torch::zeros({3}), torch::zeros({2})};
  EXPECT_THROW(ema_update(targets, {torch::zeros({3})}, 0.99), std::invalid_argument);
}

}  // namespace
}  // namespace ijepa::train
