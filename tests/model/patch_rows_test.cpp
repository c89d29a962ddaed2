// The patch rows of the CPU patch embedding (model/patch_rows.h) against ATen's permuted copy of the image.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "model/patch_rows.h"

namespace ijepa::model {
namespace {

// What the convolution's im2col is, written as a view: the reference for the kernel.
torch::Tensor permuted(const torch::Tensor& x, int64_t p) {
  const int64_t B = x.size(0), C = x.size(1), rows = x.size(2) / p, columns = x.size(3) / p;
  return x.reshape({B, C, rows, p, columns, p}).permute({0, 2, 4, 1, 3, 5}).reshape({B, rows * columns, C * p * p});
}

TEST(PatchRows, AreThePermutedImageInFp32AndItsBf16RoundingInBf16) {
  torch::manual_seed(0);
  // (a)'s images and patch; three channels, patch 16, a grid that is not square; one patch per image.
  for (const auto& [shape, p] : {std::pair{std::vector<int64_t>{3, 1, 28, 28}, int64_t{4}},
                                 std::pair{std::vector<int64_t>{2, 3, 32, 48}, int64_t{16}},
                                 std::pair{std::vector<int64_t>{2, 2, 8, 8}, int64_t{8}}}) {
    auto x = torch::randn(shape);
    x.view(-1)[5] = std::numeric_limits<float>::quiet_NaN();  // a NaN stays a NaN through the rounding
    const auto expected = permuted(x, p);
    const auto fp32 = patch_rows(x, p, torch::kFloat);
    ASSERT_EQ(fp32.sizes(), expected.sizes());
    EXPECT_TRUE(torch::equal(fp32.nan_to_num(7), expected.nan_to_num(7))) << p;
    const auto bf16 = patch_rows(x, p, torch::kBFloat16);
    ASSERT_EQ(bf16.scalar_type(), torch::kBFloat16);
    // ATen's conversion gives its NaN another payload; every other value is the same bf16.
    const auto widened = [](const torch::Tensor& t) { return t.to(torch::kFloat).nan_to_num(7); };
    EXPECT_TRUE(torch::equal(widened(bf16), widened(expected.to(torch::kBFloat16)))) << p;
    EXPECT_EQ(bf16.isnan().sum().item<int64_t>(), 1) << p;
  }
}

TEST(PatchRows, TheSameBitsOnOneThreadAndOnSeveral) {
  torch::manual_seed(1);
  const auto x = torch::randn({4, 3, 64, 64});
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = patch_rows(x, 16, torch::kBFloat16);
  at::set_num_threads(std::max(2, threads));
  const auto several = patch_rows(x, 16, torch::kBFloat16);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one, several));
}

TEST(PatchRows, ImagesThatNeedAGradientOrAreNotContiguousTakeTheViewAndKeepTheirGradient) {
  torch::manual_seed(2);
  const auto x = torch::randn({2, 3, 16, 16}).requires_grad_();
  const auto rows = patch_rows(x, 4, torch::kFloat);
  ASSERT_TRUE(rows.requires_grad());
  rows.sum().backward();
  EXPECT_TRUE(torch::equal(x.grad(), torch::ones_like(x)));
  const auto transposed = torch::randn({2, 3, 16, 16}).transpose(2, 3);
  EXPECT_TRUE(torch::equal(patch_rows(transposed, 4, torch::kFloat), permuted(transposed, 4)));
}

TEST(PatchRows, SidesThatAreNotMultiplesOfThePatchAreRejectedNamingThePatch) {
  try {
    patch_rows(torch::zeros({1, 1, 30, 28}), 4, torch::kFloat);
    FAIL() << "30 rows are not a multiple of 4";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("patch 4"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ijepa::model
