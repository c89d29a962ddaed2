// GELU and its backward in bf16 by table (model/gelu.h) against ATen's gelu and gelu_backward.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <stdexcept>
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

// Both of one sign or zero, so the bit patterns as integers are ordered as the values.
int rounding_steps_apart(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.view(torch::kInt16).to(torch::kInt32) - b.view(torch::kInt16).to(torch::kInt32)).abs().max().item<int>();
}

TEST(Bf16Gelu, TheLastFewElementsAreWithinOneRoundingStepOfAtensScalarTail) {
  torch::manual_seed(2);
  // 222 elements, not a multiple of a vector; from -4 up, where the two paths are at most one step apart (gelu.h)
  const auto x = (2 * torch::randn({2, 3, 37})).clamp_min(-4).to(torch::kBFloat16);
  const auto upstream = torch::randn({2, 3, 37}).to(torch::kBFloat16);
  const auto ours = forward_backward(x, upstream);
  EXPECT_LE(rounding_steps_apart(ours.grad_x, at::gelu_backward(upstream, x)), 1);
  EXPECT_LE(rounding_steps_apart(ours.y, at::gelu(x)), 1);
}

// Where nothing is recorded (the target encoder's MLP, evaluation) a bf16 input takes the table too, so that the
// forward computes the same bits with and without autograd.
TEST(Bf16Gelu, InferenceTakesTheSameTable) {
  torch::manual_seed(4);
  const auto x = every_bf16_value();
  const auto ragged = (2 * torch::randn({5, 41})).clamp_min(-4).to(torch::kBFloat16).t();  // strided, 205 elements
  const auto recorded = forward_backward(x, torch::ones({65536}, torch::kBFloat16)).y;
  const auto ragged_recorded = forward_backward(ragged, torch::ones({41, 5}, torch::kBFloat16)).y;
  const torch::NoGradGuard no_grad;
  const auto inference = exact_gelu(x);
  EXPECT_TRUE(same_bits(inference, at::gelu(x)));
  EXPECT_TRUE(same_bits(inference, recorded));
  EXPECT_TRUE(torch::equal(exact_gelu(ragged), ragged_recorded));
  EXPECT_LE(rounding_steps_apart(exact_gelu(ragged), at::gelu(ragged)), 1);
}

TEST(Bf16Gelu, InPlaceWritesTheTablesValuesIntoItsInput) {
  torch::manual_seed(5);
  const auto x = (2 * torch::randn({3, 7, 33})).to(torch::kBFloat16);
  const torch::NoGradGuard no_grad;
  auto y = x.clone();
  const auto result = exact_gelu_(y);
  EXPECT_EQ(result.data_ptr(), y.data_ptr());
  EXPECT_TRUE(torch::equal(y, exact_gelu(x)));
  auto strided = x.clone().transpose(0, 2);  // not contiguous: ATen's gelu_, as ATen's gelu computes it
  exact_gelu_(strided);
  EXPECT_TRUE(torch::equal(strided, at::gelu(x.transpose(0, 2))));
  auto fp32 = x.to(torch::kFloat);
  exact_gelu_(fp32);
  EXPECT_TRUE(torch::equal(fp32, at::gelu(x.to(torch::kFloat))));
}

TEST(Bf16Gelu, InPlaceRefusesATensorThatAutogradRecords) {
  const auto x = torch::randn({4, 8}).to(torch::kBFloat16).requires_grad_();
  EXPECT_THROW(exact_gelu_(x), std::invalid_argument);
}

TEST(Bf16Gelu, OtherDtypesAreAtensGelu) {
  torch::manual_seed(3);
  const auto x = torch::randn({4, 50});
  const auto upstream = torch::randn({4, 50});
  const auto fp32 = forward_backward(x, upstream);
  EXPECT_EQ(fp32.node.find("Bf16Gelu"), std::string::npos) << fp32.node;
  EXPECT_TRUE(torch::equal(fp32.grad_x, at::gelu_backward(upstream, x)));
  EXPECT_TRUE(torch::equal(fp32.y, at::gelu(x)));
  const torch::NoGradGuard no_grad;
  const auto fp16 = x.to(torch::kHalf);
  EXPECT_TRUE(torch::equal(exact_gelu(fp16), at::gelu(fp16)));
}

}  // namespace
}  // namespace ijepa::model
