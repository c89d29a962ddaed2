// GELU's bf16 backward by table (model/gelu.h) against ATen's gelu_backward.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <string>

#include "model/gelu.h"

namespace ijepa::model {
namespace {

struct Run {
  torch::Tensor y, grad_x;
  std::string node;
};

Run forward_backward(const torch::Tensor& x_in, const torch::Tensor& upstream) {
  const auto x = x_in.detach().clone().requires_grad_();
  const auto y = exact_gelu(x);
  y.backward(upstream);
  return {y.detach(), x.grad(), y.grad_fn()->name()};
}

// Equal bits, counting any NaN as equal to any NaN (ATen's conversions give NaNs other payloads).
bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  const auto both_nan = a.isnan() & b.isnan();
  return ((a.view(torch::kInt16) == b.view(torch::kInt16)) | both_nan).all().item<bool>();
}

torch::Tensor every_bf16_value() {
  return torch::arange(65536, torch::kInt32).to(torch::kInt16).view(torch::kBFloat16);
}

TEST(Bf16Gelu, BackwardIsAtensVectorisedKernelBitForBitForEveryInput) {
  torch::manual_seed(0);
  const auto x = every_bf16_value();  // NaNs, infinities, subnormals and zeros of both signs among them
  for (const double scale : {1.0, 1e-3, 300.0}) {
    const auto upstream = (scale * torch::randn({65536})).to(torch::kBFloat16);
    const auto ours = forward_backward(x, upstream);
    EXPECT_NE(ours.node.find("Bf16Gelu"), std::string::npos) << ours.node;
    ASSERT_EQ(ours.grad_x.scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(same_bits(ours.grad_x, at::gelu_backward(upstream, x))) << "gradients scaled by " << scale;
    EXPECT_TRUE(same_bits(ours.y, at::gelu(x)));
  }
}

TEST(Bf16Gelu, AnMlpSizedHiddenLayerGetsAtensBitsOnAnyNumberOfThreads) {
  torch::manual_seed(1);
  const auto x = (2 * torch::randn({3392, 384})).to(torch::kBFloat16);  // (b)'s predictor, one part
  const auto upstream = torch::randn({3392, 384}).to(torch::kBFloat16);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = forward_backward(x, upstream);
  at::set_num_threads(std::max(2, threads));
  const auto several = forward_backward(x, upstream);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one.grad_x, several.grad_x));
  EXPECT_TRUE(same_bits(one.grad_x, at::gelu_backward(upstream, x)));
}

TEST(Bf16Gelu, TheLastFewElementsAreWithinOneRoundingStepOfAtensScalarTail) {
  torch::manual_seed(2);
  const auto x = (2 * torch::randn({2, 3, 37})).to(torch::kBFloat16);  // 222: not a multiple of a vector
  const auto upstream = torch::randn({2, 3, 37}).to(torch::kBFloat16);
  const auto ours = forward_backward(x, upstream).grad_x;
  const auto aten = at::gelu_backward(upstream, x);
  // Both of one sign or zero, so the bit patterns as integers are ordered as the values.
  const auto steps = (ours.view(torch::kInt16).to(torch::kInt32) - aten.view(torch::kInt16).to(torch::kInt32)).abs();
  EXPECT_LE(steps.max().item<int>(), 1);
}

TEST(Bf16Gelu, OtherDtypesAndInferenceAreAtensGelu) {
  torch::manual_seed(3);
  const auto x = torch::randn({4, 50});
  const auto upstream = torch::randn({4, 50});
  const auto fp32 = forward_backward(x, upstream);
  EXPECT_EQ(fp32.node.find("Bf16Gelu"), std::string::npos) << fp32.node;
  EXPECT_TRUE(torch::equal(fp32.grad_x, at::gelu_backward(upstream, x)));
  const torch::NoGradGuard no_grad;
  const auto bf16 = x.to(torch::kBFloat16);
  EXPECT_TRUE(torch::equal(exact_gelu(bf16), at::gelu(bf16)));
}

}  // namespace
}  // namespace ijepa::model
