// The fused residual add and LayerNorm (model/residual_norm.h) against ATen's ops, forward and backward.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include <cmath>
#include <limits>

#include "model/autocast.h"
#include "model/residual_norm.h"
#include "model/vit.h"

namespace ijepa::model {
namespace {

// A LayerNorm with weights and biases away from their initial 1 and 0, so that both enter the results.
torch::nn::LayerNorm random_norm(int64_t width) {
  torch::nn::LayerNorm norm(torch::nn::LayerNormOptions({width}).eps(1e-6));
  torch::NoGradGuard no_grad;
  norm->weight.copy_(1.0 + 0.5 * torch::randn({width}));
  norm->bias.copy_(0.2 * torch::randn({width}));
  return norm;
}

// The same sum and norm as ATen's ops compute them, recorded by autograd as the reference's block does.
ResidualNorm aten_residual_norm(const torch::Tensor& x, const torch::Tensor& branch, torch::nn::LayerNorm& norm) {
  const auto sum = x + branch;
  return {sum, torch::layer_norm(sum, {sum.size(-1)}, norm->weight, norm->bias, norm->options.eps())};
}

struct Grads {
  torch::Tensor x, branch, weight, bias;
};

// Sends upstream gradients into both outputs (as a block does: the normed one to the next linear, the residual to
// the next add) and collects the gradients of the inputs and of the norm's parameters.
Grads backward_through(const ResidualNorm& out, const torch::Tensor& x, const torch::Tensor& branch,
                       torch::nn::LayerNorm& norm, const torch::Tensor& into_normed,
                       const torch::Tensor& into_residual) {
  for (const torch::Tensor* t : std::initializer_list<const torch::Tensor*>{&x, &branch, &norm->weight, &norm->bias}) {
    t->mutable_grad().reset();
  }
  torch::autograd::backward({out.normed, out.residual}, {into_normed.to(out.normed.scalar_type()), into_residual});
  return {x.grad(), branch.grad(), norm->weight.grad().clone(), norm->bias.grad().clone()};
}

TEST(ResidualNorm, ForwardIsTheSumAndItsLayerNormRoundedOnceToTheOutputDtype) {
  torch::manual_seed(0);
  for (const int64_t width : {192, 20}) {  // 20: rows that do not fill whole 16-float lanes
    auto norm = random_norm(width);
    const auto x = torch::randn({3, 50, width});
    const auto branch = torch::randn({3, 50, width}).to(torch::kBFloat16);
    const auto fused = residual_layer_norm(x, branch, norm, torch::kBFloat16);
    const auto fused_fp32 = residual_layer_norm(x, branch, norm, torch::kFloat);
    const auto sum = x + branch;
    const auto aten = torch::layer_norm(sum, {width}, norm->weight, norm->bias, 1e-6);
    EXPECT_TRUE(torch::equal(fused.residual, sum));  // one fp32 add of the widened bf16 value: the same bits
    EXPECT_EQ(fused.normed.scalar_type(), torch::kBFloat16);
    // The bf16 output is the fp32 one rounded to nearest even, exactly as ATen's cast rounds it.
    EXPECT_TRUE(torch::equal(fused.normed, fused_fp32.normed.to(torch::kBFloat16)));
    // The fp32 statistics agree with ATen's up to the order of the sums.
    EXPECT_TRUE(torch::allclose(fused_fp32.normed.detach(), aten.detach(), 1e-5, 1e-5));
    const auto rounded_alike = torch::eq(fused.normed, aten.to(torch::kBFloat16)).to(torch::kFloat).mean();
    EXPECT_GT(rounded_alike.item<double>(), 0.99);
  }
}

TEST(ResidualNorm, WithoutABranchItIsALayerNormInTheAskedDtype) {
  torch::manual_seed(1);
  auto norm = random_norm(96);
  const auto x = torch::randn({7, 96});
  const auto out = residual_layer_norm(x, torch::Tensor(), norm, torch::kBFloat16);
  const auto out_fp32 = residual_layer_norm(x, torch::Tensor(), norm, torch::kFloat);
  EXPECT_TRUE(out.residual.is_same(x));
  EXPECT_EQ(out.normed.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(out.normed, out_fp32.normed.to(torch::kBFloat16)));
  const auto aten = torch::layer_norm(x, {96}, norm->weight, norm->bias, 1e-6);
  EXPECT_TRUE(torch::allclose(out_fp32.normed.detach(), aten.detach(), 1e-5, 1e-5));
}

TEST(ResidualNorm, GradientsMatchATensAutogradInFp32) {
  torch::manual_seed(2);
  auto norm = random_norm(192);
  const auto x = torch::randn({2, 150, 192}).requires_grad_();  // 300 rows: several chunks of the weight gradient
  const auto branch = torch::randn({2, 150, 192}).requires_grad_();
  const auto into_normed = torch::randn({2, 150, 192}), into_residual = torch::randn({2, 150, 192});
  const auto fused = backward_through(residual_layer_norm(x, branch, norm, torch::kFloat), x, branch, norm, into_normed,
                                      into_residual);
  const auto aten = backward_through(aten_residual_norm(x, branch, norm), x, branch, norm, into_normed, into_residual);
  EXPECT_TRUE(torch::allclose(fused.x, aten.x, 1e-4, 1e-5));
  EXPECT_TRUE(torch::equal(fused.branch, fused.x));  // an fp32 branch gets the residual's gradient itself
  EXPECT_TRUE(torch::allclose(fused.weight, aten.weight, 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(fused.bias, aten.bias, 1e-4, 1e-4));
}

TEST(ResidualNorm, ABf16BranchGetsTheFp32GradientRoundedToBf16) {
  torch::manual_seed(3);
  auto norm = random_norm(192);
  const auto x = torch::randn({100, 192}).requires_grad_();
  const auto branch = torch::randn({100, 192}).to(torch::kBFloat16).requires_grad_();
  const auto into_normed = torch::randn({100, 192}), into_residual = torch::randn({100, 192});
  const auto fused = backward_through(residual_layer_norm(x, branch, norm, torch::kBFloat16), x, branch, norm,
                                      into_normed, into_residual);
  ASSERT_EQ(fused.branch.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(fused.branch, fused.x.to(torch::kBFloat16)));
  // Against the modules under autocast's arithmetic: the fp32 norm fed a bf16 upstream gradient.
  const auto aten = backward_through(aten_residual_norm(x, branch, norm), x, branch, norm,
                                     into_normed.to(torch::kBFloat16).to(torch::kFloat), into_residual);
  EXPECT_TRUE(torch::allclose(fused.x, aten.x, 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(fused.weight, aten.weight, 1e-4, 1e-4));
}

TEST(ResidualNorm, AnOutputLeftUnusedContributesNothing) {
  torch::manual_seed(4);
  auto norm = random_norm(64);
  const auto x = torch::randn({40, 64}).requires_grad_();
  const auto branch = torch::randn({40, 64}).requires_grad_();
  // Only the residual used: its gradient passes straight through; the norm's parameters get none.
  residual_layer_norm(x, branch, norm, torch::kFloat).residual.sum().backward();
  EXPECT_TRUE(torch::equal(x.grad(), torch::ones_like(x)));
  EXPECT_TRUE(torch::equal(branch.grad(), torch::ones_like(branch)));
  EXPECT_FALSE(norm->weight.grad().defined());
  // Only the normed output used: the LayerNorm's gradient alone.
  x.mutable_grad().reset();
  const auto into = torch::randn({40, 64});
  (residual_layer_norm(x, branch, norm, torch::kFloat).normed * into).sum().backward();
  const auto x_ref = x.detach().clone().requires_grad_();
  (torch::layer_norm(x_ref + branch.detach(), {64}, norm->weight, norm->bias, 1e-6) * into).sum().backward();
  EXPECT_TRUE(torch::allclose(x.grad(), x_ref.grad(), 1e-4, 1e-5));
}

TEST(ResidualNorm, ResultsDoNotDependOnTheNumberOfThreads) {
  torch::manual_seed(5);
  auto norm = random_norm(192);
  const auto x = torch::randn({1000, 192}).requires_grad_();
  const auto branch = torch::randn({1000, 192}).to(torch::kBFloat16).requires_grad_();
  const auto into_normed = torch::randn({1000, 192}), into_residual = torch::randn({1000, 192});
  const int threads = at::get_num_threads();
  Grads by_threads[2];
  torch::Tensor normed[2];
  for (int i = 0; i < 2; ++i) {
    at::set_num_threads(i + 1);
    const auto out = residual_layer_norm(x, branch, norm, torch::kBFloat16);
    normed[i] = out.normed.detach();
    by_threads[i] = backward_through(out, x, branch, norm, into_normed, into_residual);
  }
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(normed[0], normed[1]));
  EXPECT_TRUE(torch::equal(by_threads[0].x, by_threads[1].x));
  EXPECT_TRUE(torch::equal(by_threads[0].weight, by_threads[1].weight));
  EXPECT_TRUE(torch::equal(by_threads[0].bias, by_threads[1].bias));
}

TEST(ResidualNorm, ANanInTheBranchStaysANan) {
  auto norm = random_norm(32);
  auto branch = torch::zeros({2, 32}, torch::kBFloat16);
  branch[1][5] = std::numeric_limits<float>::quiet_NaN();
  const auto out = residual_layer_norm(torch::randn({2, 32}), branch, norm, torch::kBFloat16);
  EXPECT_FALSE(torch::isnan(out.normed[0]).any().item<bool>());
  EXPECT_TRUE(torch::isnan(out.normed[1]).all().item<bool>());  // the whole row: its mean is NaN
}

TEST(ResidualNorm, RejectsInputsItCannotTakeNamingTheMismatch) {
  auto norm = random_norm(192);
  try {
    residual_layer_norm(torch::randn({4, 100}), torch::Tensor(), norm, torch::kBFloat16);
    FAIL() << "a width other than the norm's was accepted";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("last dimension (100) is not the norm's width (192)"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(residual_layer_norm(torch::randn({4, 192}), torch::randn({4, 191}), norm, torch::kBFloat16), c10::Error);
  EXPECT_THROW(
      residual_layer_norm(torch::randn({4, 192}).to(torch::kBFloat16), torch::Tensor(), norm, torch::kBFloat16),
      c10::Error);
  EXPECT_THROW(residual_layer_norm(torch::randn({4, 192}), torch::Tensor(), norm, torch::kHalf), c10::Error);
}

// A block with its adds and norms fused, against the same block's modules, under CPU bf16 autocast: outputs and
// parameter gradients equal up to bf16 rounding.
TEST(ResidualNorm, AFusedBlockMatchesTheModulesUnderBf16Autocast) {
  torch::manual_seed(6);
  Block block(192, 3, 768);
  auto next_norm = random_norm(192);
  const auto x = torch::randn({4, 49, 192});
  const AutocastGuard autocast(c10::DeviceType::CPU, true);

  const auto modules = next_norm(block->forward(x));
  const auto into = torch::randn_like(modules);
  (modules * into).sum().backward();
  const auto qkv_grad = block->attn->qkv->weight.grad().clone(), norm1_grad = block->norm1->weight.grad().clone();
  block->zero_grad();

  const auto first = residual_layer_norm(x, torch::Tensor(), block->norm1, torch::kBFloat16);
  const auto fused = block->forward_fused(first, next_norm, torch::kFloat).normed;
  ASSERT_EQ(fused.scalar_type(), torch::kFloat);
  (fused * into).sum().backward();

  const auto difference = (fused - modules).abs();
  EXPECT_LT(difference.mean().item<double>(), 5e-3);
  EXPECT_LT(difference.max().item<double>(), 0.05);
  const auto relative = [](const torch::Tensor& a, const torch::Tensor& b) {
    return ((a - b).norm() / b.norm()).item<double>();
  };
  EXPECT_LT(relative(block->attn->qkv->weight.grad(), qkv_grad), 0.02);
  EXPECT_LT(relative(block->norm1->weight.grad(), norm1_grad), 0.02);
}

}  // namespace
}  // namespace ijepa::model
