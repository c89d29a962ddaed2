// The bf16 row softmax (model/softmax.h) against ATen's softmax, forward and backward.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "model/softmax.h"

namespace ijepa::model {
namespace {

// Attention-like scores in bf16: spread wide enough that the exponentials span many orders of magnitude.
torch::Tensor scores(std::vector<int64_t> shape, double spread) {
  return (spread * torch::randn(shape)).to(torch::kBFloat16);
}

// The exact answer for the kernel's input: the fp32 softmax of the widened bf16 scores, rounded once to bf16.
torch::Tensor exact_rounded(const torch::Tensor& s) { return torch::softmax(s.to(torch::kFloat), -1).to(s.dtype()); }

// How many bf16 rounding steps apart a and b are, element by element (both finite and of one sign: softmax >= 0).
torch::Tensor bf16_steps(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.view(torch::kInt16).to(torch::kInt32) - b.view(torch::kInt16).to(torch::kInt32)).abs();
}

TEST(Bf16Softmax, IsTheFp32SoftmaxRoundedToBf16WithinOneRoundingStep) {
  torch::manual_seed(0);
  // 196: a (b) attention row (12 whole lanes of 16 and a tail of 4); 49: (a)'s; 16 and 1: no tail, and one column.
  for (const int64_t width : {196, 49, 16, 1}) {
    for (const double spread : {1.0, 8.0}) {
      const auto s = scores({2, 3, 37, width}, spread);
      const auto ours = last_dim_softmax(s);
      ASSERT_EQ(ours.scalar_type(), torch::kBFloat16);
      ASSERT_EQ(ours.sizes(), s.sizes());
      const auto steps = bf16_steps(ours, exact_rounded(s));
      EXPECT_LE(steps.max().item<int>(), 1) << "width " << width << " spread " << spread;
      // One step apart only where the exact value lies within the exp's few fp32 ulps of a rounding midpoint.
      EXPECT_LT(steps.to(torch::kFloat).mean().item<double>(), 0.01) << "width " << width << " spread " << spread;
      // And against ATen's own bf16 softmax, which also rounds once from fp32.
      EXPECT_LE(bf16_steps(ours, torch::softmax(s, -1)).max().item<int>(), 1);
      const auto row_sums = ours.to(torch::kFloat).sum(-1);
      EXPECT_TRUE(torch::allclose(row_sums, torch::ones_like(row_sums), 0, 0.02));
    }
  }
}

TEST(Bf16Softmax, TheSameBitsOnOneThreadAndOnSeveral) {
  torch::manual_seed(1);
  const auto s = scores({4, 3, 196, 196}, 4.0);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = last_dim_softmax(s);
  at::set_num_threads(std::max(2, threads));
  const auto several = last_dim_softmax(s);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one, several));
}

TEST(Bf16Softmax, FarBelowTheMaximumIsZeroAndANanSpoilsOnlyItsRow) {
  auto s = torch::zeros({3, 20}, torch::kBFloat16);
  s[0][0] = 200.0;  // every other exp(-200) underflows
  s[1][5] = std::numeric_limits<float>::quiet_NaN();
  s[2][7] = -std::numeric_limits<float>::infinity();
  const auto out = last_dim_softmax(s).to(torch::kFloat);
  EXPECT_EQ(out[0][0].item<float>(), 1.f);
  EXPECT_EQ(out[0].slice(0, 1).abs().max().item<float>(), 0.f);
  EXPECT_TRUE(torch::isnan(out[1]).all().item<bool>());  // as ATen: the row's max is NaN
  EXPECT_EQ(out[2][7].item<float>(), 0.f);
  EXPECT_TRUE(torch::isfinite(out[2]).all().item<bool>());
  EXPECT_NEAR(out[2].sum().item<float>(), 1.f, 0.02);
}

TEST(Bf16Softmax, BackwardIsAtensForTheSameOutput) {
  torch::manual_seed(2);
  const auto s = scores({2, 3, 50, 50}, 3.0).requires_grad_();
  const auto upstream = torch::randn({2, 3, 50, 50}).to(torch::kBFloat16);
  const auto ours = last_dim_softmax(s);
  ASSERT_TRUE(ours.requires_grad());
  const auto grad = torch::autograd::grad({ours}, {s}, {upstream})[0];
  const auto expected = at::_softmax_backward_data(upstream, ours.detach(), -1, torch::kBFloat16);
  EXPECT_TRUE(torch::equal(grad, expected));
  // And close to the gradient of ATen's softmax itself (its output differs by at most one rounding step).
  const auto s_aten = s.detach().clone().requires_grad_();
  const auto grad_aten = torch::autograd::grad({torch::softmax(s_aten, -1)}, {s_aten}, {upstream})[0];
  EXPECT_TRUE(torch::allclose(grad.to(torch::kFloat), grad_aten.to(torch::kFloat), 0.02, 0.02));
}

// The predictor's attention (heads 32 wide): the reference's bf16 `scores * 32^-0.5`, then softmax. The kernel
// scales as it reads: the same bits forward, and backward the same as autograd through the product.
TEST(Bf16Softmax, ScalingTheScoresOnTheWayIsTheSameAsScalingThemFirst) {
  torch::manual_seed(4);
  const double scale = 1.0 / std::sqrt(32.0);
  for (const int64_t width : {106, 49, 16}) {
    const auto s = scores({2, 3, 20, width}, 8.0);
    const auto upstream = torch::randn({2, 3, 20, width}).to(torch::kBFloat16);
    const auto on_the_way = s.clone().requires_grad_(), first = s.clone().requires_grad_();
    const auto ours = last_dim_softmax(on_the_way, scale);
    const auto expected = last_dim_softmax(first * scale);
    EXPECT_TRUE(torch::equal(ours, expected)) << width;
    const auto grad = torch::autograd::grad({ours}, {on_the_way}, {upstream})[0];
    EXPECT_TRUE(torch::equal(grad, torch::autograd::grad({expected}, {first}, {upstream})[0])) << width;
    EXPECT_TRUE(torch::equal(last_dim_softmax(s, scale), last_dim_softmax(s * scale))) << width;  // no autograd
  }
  const auto fp32 = torch::randn({4, 33});
  EXPECT_TRUE(torch::equal(last_dim_softmax(fp32, scale), torch::softmax(fp32 * scale, -1)));
  EXPECT_THROW(last_dim_softmax(fp32, 0.0), std::invalid_argument);
  EXPECT_THROW(last_dim_softmax(scores({2, 16}, 1.0), -1.0), std::invalid_argument);
}

TEST(Bf16Softmax, OtherDtypesAndDevicesAreAtensSoftmax) {
  torch::manual_seed(3);
  const auto s = torch::randn({4, 33});
  EXPECT_TRUE(torch::equal(last_dim_softmax(s), torch::softmax(s, -1)));
  const auto d = s.to(torch::kFloat64);
  EXPECT_TRUE(torch::equal(last_dim_softmax(d), torch::softmax(d, -1)));
}

}  // namespace
}  // namespace ijepa::model
