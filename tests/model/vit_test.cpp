// Shapes, names and semantics of the encoder and predictor beyond the golden numbers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "input_error.h"
#include "model/autocast.h"
#include "model/init.h"
#include "model/linear.h"
#include "model/residual_norm.h"
#include "model/state_dict.h"
#include "model/vit.h"

namespace ijepa::model {
namespace {

// Trainable parameters of an encoder of this shape: patch embedding, per block two LayerNorms, qkv, proj and
// the MLP, and the final LayerNorm (the sin-cos table is fixed).
int64_t trainable_parameter_count(const ViTConfig& c) {
  const int64_t d = c.embed_dim, h = c.mlp_hidden, p = c.patch_size;
  const int64_t patch_embed = d * c.in_chans * p * p + d;
  const int64_t block = 2 * (2 * d) + (3 * d * d + 3 * d) + (d * d + d) + (h * d + h) + (d * h + d);
  return patch_embed + c.depth * block + 2 * d;
}

TEST(VitPresets, ParameterCountsMatchTheReference) {
  // Trainable encoder parameters at 224 px from IJEPA_REFERENCE.md (millions, rounded to 0.01; the fixed
  // positional table is not counted).
  const std::vector<std::tuple<const char*, int64_t, double>> built = {
      {"vit_tiny", 16, 5.49}, {"vit_small", 16, 21.59}, {"vit_base", 16, 85.65}};
  for (const auto& [name, patch, millions] : built) {
    VisionTransformer vit(vit_preset(name, 224, patch, 3));
    int64_t count = 0;
    for (const auto& p : vit->parameters()) count += p.requires_grad() ? p.numel() : 0;
    EXPECT_NEAR(static_cast<double>(count) / 1e6, millions, 0.006) << name;
    EXPECT_EQ(count, trainable_parameter_count(vit->config())) << name;
  }
  // The large sizes are counted from their shapes (building them would take gigabytes); the formula is
  // checked against the built models above.
  const std::vector<std::tuple<const char*, int64_t, double>> counted = {
      {"vit_large", 16, 303.10}, {"vit_huge", 14, 630.43}, {"vit_giant", 16, 1011.09}};
  for (const auto& [name, patch, millions] : counted) {
    EXPECT_NEAR(static_cast<double>(trainable_parameter_count(vit_preset(name, 224, patch, 3))) / 1e6, millions, 0.006)
        << name;
  }
  EXPECT_THROW(vit_preset("vit_enormous", 224, 16, 3), std::invalid_argument);
}

TEST(VitNames, StateDictKeysAreTheReferences) {
  torch::manual_seed(0);
  const ViTConfig enc = vit_preset("vit_tiny", 32, 8, 3);
  Models m = build_models(enc, predictor_for(enc, 96, 1));
  const auto enc_keys = m.encoder->named_parameters().keys();
  EXPECT_EQ(enc_keys.front(), "pos_embed");
  EXPECT_EQ(enc_keys[1], "patch_embed.proj.weight");
  EXPECT_EQ(enc_keys[5], "blocks.0.attn.qkv.weight");
  EXPECT_EQ(enc_keys.back(), "norm.bias");
  const auto pred_keys = m.predictor->named_parameters().keys();
  EXPECT_EQ(pred_keys[0], "mask_token");
  EXPECT_EQ(pred_keys[1], "predictor_pos_embed");
  EXPECT_EQ(pred_keys[2], "predictor_embed.weight");
  EXPECT_EQ(pred_keys.back(), "predictor_proj.bias");
  EXPECT_FALSE(m.encoder->pos_embed.requires_grad());
}

// The reference's apply_masks: torch.gather along the tokens, mask-major; here by index_select over the rows.
TEST(ApplyMasks, IsTheReferencesGatherForwardAndBackwardAlsoForATableBroadcastOverTheBatch) {
  torch::manual_seed(6);
  const auto x = torch::randn({3, 10, 4}).requires_grad_();
  const std::vector<torch::Tensor> masks{torch::tensor({{0, 9}, {4, 5}, {7, 1}}),
                                         torch::tensor({{2, 3}, {3, 2}, {0, 9}})};
  const auto reference = [&](const torch::Tensor& t) {
    std::vector<torch::Tensor> kept;
    for (const auto& m : masks) kept.push_back(torch::gather(t, 1, m.unsqueeze(-1).expand({3, 2, t.size(-1)})));
    return torch::cat(kept, 0);
  };
  const auto ours = apply_masks(x, masks);
  const auto expected = reference(x);
  ASSERT_EQ(ours.sizes(), expected.sizes());
  EXPECT_TRUE(torch::equal(ours, expected));
  const auto upstream = torch::randn_like(ours);
  const auto ours_grad = torch::autograd::grad({ours}, {x}, {upstream})[0];
  EXPECT_TRUE(torch::equal(ours_grad, torch::autograd::grad({expected}, {x}, {upstream})[0]));
  const auto table = torch::randn({1, 10, 4}).expand({3, -1, -1});  // as the positions are passed
  EXPECT_TRUE(torch::equal(apply_masks(table, masks), reference(table)));
}

TEST(VitForward, MaskedForwardKeepsTheListedTokens) {
  torch::manual_seed(1);
  const ViTConfig cfg = vit_preset("vit_tiny", 16, 4, 1);
  Models m = build_models(cfg, predictor_for(cfg, 96, 1));
  auto x = torch::randn({2, 1, 16, 16});
  auto masks =
      std::vector<torch::Tensor>{torch::tensor({{0, 5, 7}, {1, 2, 15}}), torch::tensor({{3, 4, 6}, {8, 9, 10}})};
  auto out = m.encoder->forward(x, masks);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{4, 3, 192}));
  auto full = m.encoder->forward(x);
  EXPECT_EQ(full.sizes(), (std::vector<int64_t>{2, 16, 192}));

  // Target blocks are separate sequences: changing one block's mask leaves another block's prediction alone.
  auto z = m.predictor->forward(out.narrow(0, 0, 2), {masks[0]}, {masks[1], torch::tensor({{11, 12, 13}, {0, 1, 2}})});
  auto z2 = m.predictor->forward(out.narrow(0, 0, 2), {masks[0]}, {masks[1], torch::tensor({{14, 12, 13}, {3, 1, 2}})});
  EXPECT_EQ(z.sizes(), (std::vector<int64_t>{4, 3, 192}));
  EXPECT_TRUE(torch::allclose(z.narrow(0, 0, 2), z2.narrow(0, 0, 2)));
  EXPECT_FALSE(torch::allclose(z.narrow(0, 2, 2), z2.narrow(0, 2, 2)));
}

// On CPU the context encoder projects only the patches its masks keep (vit.cpp): with no blocks (the output is the
// final norm of the embedded tokens, token by token), that is the full encoding with the masks applied after,
// forward and backward, in fp32 and under bf16 autocast with autograd recording.
TEST(VitForward, ProjectingOnlyTheKeptPatchesGivesTheKeptTokensOfTheFullEmbedding) {
  torch::manual_seed(5);
  ViTConfig cfg = vit_preset("vit_tiny", 16, 4, 3);
  cfg.depth = 0;
  VisionTransformer vit(cfg);
  const auto x = torch::randn({2, 3, 16, 16});
  const std::vector<torch::Tensor> masks{torch::tensor({{0, 5, 7, 9}, {1, 2, 15, 3}}),
                                         torch::tensor({{3, 4, 6, 8}, {8, 9, 10, 0}})};
  const auto upstream = torch::randn({4, 4, 192});
  for (const bool bf16 : {false, true}) {
    const auto run = [&](bool masked_inside) {
      vit->zero_grad();
      torch::Tensor out;
      {
        const AutocastGuard autocast(c10::DeviceType::CPU, bf16);
        out = masked_inside ? vit->forward(x, masks) : apply_masks(vit->forward(x), masks);
      }
      (out.to(torch::kFloat) * upstream).sum().backward();
      return std::pair{out.detach().to(torch::kFloat), vit->patch_embed->proj->weight.grad().clone()};
    };
    const auto [kept, kept_grad] = run(true);
    const auto [all, all_grad] = run(false);
    ASSERT_EQ(kept.sizes(), all.sizes());
    // The tokens are the same sums; the weight's gradient adds the kept tokens' terms without the others' zeros,
    // in another order.
    EXPECT_TRUE(torch::allclose(kept, all, 1e-6, 1e-6)) << "bf16 " << bf16;
    const double scale = all_grad.abs().max().item<double>();
    EXPECT_TRUE(torch::allclose(kept_grad, all_grad, bf16 ? 1.0 / 64 : 1e-5, scale * (bf16 ? 1.0 / 64 : 1e-6)))
        << "bf16 " << bf16;
  }
}

TEST(VitForward, OtherResolutionsUseTheirOwnSinCosTable) {
  torch::manual_seed(2);
  VisionTransformer vit(vit_preset("vit_tiny", 16, 4, 3));
  EXPECT_EQ(vit->forward(torch::randn({1, 3, 24, 24})).sizes(), (std::vector<int64_t>{1, 36, 192}));
}

// Without autograd under CPU bf16 autocast (the target encoder, evaluation) the encoder computes what the context
// path computes with autograd, op for op: the same linears (oneDNN's, the bias added to the accumulator, where the
// CPU has native bf16), the same GELU over the bf16 products (model/gelu.h), bit for bit. (With GELU fused into the
// product instead, on the fp32 accumulator, outputs near unit scale differed by 0.0011 on average and up to 0.0095.)
TEST(VitForward, InferenceUnderBf16AutocastIsTheAutogradPathBitForBit) {
  torch::manual_seed(3);
  ViTConfig cfg = vit_preset("vit_tiny", 28, 4, 1);
  cfg.depth = 2;
  VisionTransformer vit(cfg);
  const auto x = torch::randn({8, 1, 28, 28});
  const AutocastGuard autocast(c10::DeviceType::CPU, true);
  const auto recorded = vit->forward(x).detach();  // grad mode on: the linears autograd records, as in the context path
  torch::Tensor inference;
  {
    const torch::NoGradGuard no_grad;
    inference = vit->forward(x);
  }
  EXPECT_FALSE(inference.requires_grad());
  EXPECT_TRUE(torch::equal(inference, recorded));
}

struct MlpRun {
  torch::Tensor y, grad_x;
  std::vector<torch::Tensor> grads;  // fc1 weight and bias, fc2 weight and bias
  std::string last_node;             // what autograd recorded for the output
};

// Forward and backward of mlp, under CPU bf16 autocast or in fp32: its own linears (ours) or ATen's linear and
// GELU, as the reference's block.
MlpRun run_mlp(Mlp& mlp, const torch::Tensor& x_in, const torch::Tensor& upstream, bool ours, bool bf16) {
  for (auto& p : mlp->parameters()) p.mutable_grad().reset();
  const auto x = x_in.clone().requires_grad_();
  torch::Tensor y;
  {
    const AutocastGuard autocast(c10::DeviceType::CPU, bf16);
    y = ours ? mlp(x)
             : at::linear(torch::gelu(at::linear(x, mlp->fc1->weight, mlp->fc1->bias)), mlp->fc2->weight,
                          mlp->fc2->bias);
  }
  y.backward(upstream.to(y.scalar_type()));
  return {y.detach(),
          x.grad(),
          {mlp->fc1->weight.grad(), mlp->fc1->bias.grad(), mlp->fc2->weight.grad(), mlp->fc2->bias.grad()},
          y.grad_fn()->name()};
}

// got within `steps` rounding steps of a format with `bits` significant bits, relative to expected's largest value.
bool close_in(int bits, double steps, const torch::Tensor& got, const torch::Tensor& expected) {
  const double tolerance = steps * std::ldexp(1.0, -bits);
  const double scale = expected.abs().max().item<double>();
  return torch::allclose(got.to(torch::kFloat), expected.to(torch::kFloat), tolerance, scale * tolerance);
}

void expect_same_mlp_up_to(int bits, double steps, const MlpRun& ours, const MlpRun& aten) {
  EXPECT_TRUE(close_in(bits, steps, ours.y, aten.y));
  EXPECT_TRUE(close_in(bits, steps, ours.grad_x, aten.grad_x));
  EXPECT_EQ(ours.grad_x.scalar_type(), torch::kFloat);
  for (size_t i = 0; i < ours.grads.size(); ++i) {
    ASSERT_TRUE(ours.grads[i].defined()) << i;
    EXPECT_EQ(ours.grads[i].scalar_type(), torch::kFloat) << i;
    EXPECT_TRUE(close_in(bits, steps, ours.grads[i], aten.grads[i])) << i;
  }
}

// Under CPU bf16 autocast where autograd records (the context path), on a CPU with native bf16 products, each linear
// runs as oneDNN's kernel with the bias added to the accumulator and addmm's backward (model/linear.h), in place of
// ATen's addmm over a copy of the bias: the same outputs and gradients up to bf16 rounding (a few of its steps:
// bf16 keeps 8 significant bits), gradients of fp32 parameters and inputs in fp32.
TEST(VitLinear, TrainingUnderBf16AutocastMatchesAtensLinearUpToBf16Rounding) {
  torch::manual_seed(4);
  Mlp mlp(192, 768);
  const auto x = torch::randn({4, 50, 192}), upstream = torch::randn({4, 50, 192});
  const auto ours = run_mlp(mlp, x, upstream, true, true), aten = run_mlp(mlp, x, upstream, false, true);
  EXPECT_EQ(ours.last_node.find("OnednnLinear") != std::string::npos, cpu_has_native_bf16()) << ours.last_node;
  ASSERT_EQ(ours.y.scalar_type(), torch::kBFloat16);
  expect_same_mlp_up_to(8, 4, ours, aten);
}

// In fp32 on a CPU, the linears' products and input gradients run on oneDNN's fp32 kernel in place of MKL's sgemm:
// the same values up to the order of the sums (fp32 keeps 24 significant bits; sums of 192 to 768 products).
TEST(VitLinear, Fp32TrainingMatchesAtensLinearUpToTheOrderOfTheSums) {
  torch::manual_seed(5);
  Mlp mlp(192, 768);
  const auto x = torch::randn({4, 50, 192}), upstream = torch::randn({4, 50, 192});
  const auto ours = run_mlp(mlp, x, upstream, true, false), aten = run_mlp(mlp, x, upstream, false, false);
  EXPECT_EQ(ours.last_node.find("OnednnLinear") != std::string::npos, at::hasMKLDNN()) << ours.last_node;
  ASSERT_EQ(ours.y.scalar_type(), torch::kFloat);
  expect_same_mlp_up_to(24, 64, ours, aten);
}

// Where nothing is recorded (the target encoder, evaluation), fp32 too: GELU applied on oneDNN's accumulator.
TEST(VitLinear, Fp32InferenceWithGeluOnTheAccumulatorMatchesAtens) {
  torch::manual_seed(6);
  Mlp mlp(192, 768);
  const auto x = torch::randn({4, 50, 192});
  const torch::NoGradGuard no_grad;
  const auto aten =
      at::linear(torch::gelu(at::linear(x, mlp->fc1->weight, mlp->fc1->bias)), mlp->fc2->weight, mlp->fc2->bias);
  EXPECT_TRUE(close_in(24, 64, mlp(x), aten));
  EXPECT_TRUE(close_in(24, 64, linear_gelu(mlp->fc1, x), torch::gelu(at::linear(x, mlp->fc1->weight, mlp->fc1->bias))));
}

TEST(VitPatchEmbed, TheMatrixProductMatchesTheConvolutionAndRaggedImagesStillWork) {
  torch::manual_seed(0);
  PatchEmbed embed(4, 3, 192);
  const auto x = torch::randn({2, 3, 28, 28});
  auto ours_in = x.clone().requires_grad_(), conv_in = x.clone().requires_grad_();
  const auto ours = embed(ours_in);
  const auto conv = embed->proj(conv_in).flatten(2).transpose(1, 2);
  ASSERT_EQ(ours.sizes(), conv.sizes());
  EXPECT_TRUE(torch::allclose(ours, conv, 1e-5, 1e-6));
  ours.sum().backward();
  const auto weight_grad = embed->proj->weight.grad().clone();
  embed->proj->weight.mutable_grad().zero_();
  conv.sum().backward();
  EXPECT_TRUE(torch::allclose(weight_grad, embed->proj->weight.grad(), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(ours_in.grad(), conv_in.grad(), 1e-5, 1e-6));
  // 30 px is not a multiple of the patch: the convolution (which drops the last two rows and columns) is used.
  EXPECT_EQ(embed(torch::randn({1, 3, 30, 30})).sizes(), (std::vector<int64_t>{1, 49, 192}));
}

// The attention as the reference writes it, with the scores scaled after q k^T (and the module's linears, so that
// only the scale's place differs).
torch::Tensor reference_attention(Attention& attn, const torch::Tensor& x, int64_t heads) {
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2);
  const auto qkv =
      linear(attn->qkv, x).reshape({B, N, 3, heads, C / heads}).permute({2, 0, 3, 1, 4}).contiguous().unbind(0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(C / heads));
  const auto scores = torch::matmul(qkv[0], qkv[1].transpose(-2, -1)) * scale;
  const auto out = torch::matmul(torch::softmax(scores, -1), qkv[2]).transpose(1, 2).reshape({B, N, C});
  return linear(attn->proj, out);
}

TEST(VitAttention, ScalingTheQueriesGivesTheReferencesBitsForwardAndBackward) {
  // Heads 64 wide (scale 1/8, a power of two) over 100 tokens: the module scales q, the reference the scores.
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    torch::manual_seed(0);
    Attention attn(192, 3);
    attn->to(dtype);
    const auto x = torch::randn({2, 100, 192}).to(dtype);
    const auto upstream = torch::randn({2, 100, 192}).to(dtype);
    auto ours_in = x.clone().requires_grad_(), reference_in = x.clone().requires_grad_();
    const auto ours = attn(ours_in), reference = reference_attention(attn, reference_in, 3);
    EXPECT_TRUE(torch::equal(ours, reference)) << dtype;
    (ours * upstream).sum().backward();
    (reference * upstream).sum().backward();
    EXPECT_TRUE(torch::equal(ours_in.grad(), reference_in.grad())) << dtype;
  }
}

struct BlockRun {
  torch::Tensor y, grad_x;
  std::vector<torch::Tensor> grads;  // the block's parameters, in order
};

// Forward and backward of a block's output for the tokens `outputs` of each image, computed for those alone or
// picked from the whole block's output: in fp32 (BlockImpl::forward), or under CPU bf16 autocast with the residual
// adds fused with the norms (forward_fused), as the predictor runs it there.
BlockRun run_block_for(Block& block, const torch::Tensor& x_in, const torch::Tensor& upstream,
                       const torch::Tensor& outputs, bool alone, bool bf16) {
  for (auto& p : block->parameters()) p.mutable_grad().reset();
  const auto x = x_in.clone().requires_grad_();
  torch::Tensor y;
  {
    const AutocastGuard autocast(c10::DeviceType::CPU, bf16);
    if (bf16) {
      const auto in = residual_layer_norm(x, torch::Tensor(), block->norm1, torch::kBFloat16);
      const auto out = block->forward_fused(in, block->norm2, torch::kFloat, alone ? outputs : torch::Tensor());
      y = alone ? out.normed + out.residual : pick_tokens(out.normed, outputs) + pick_tokens(out.residual, outputs);
    } else {
      y = alone ? block->forward(x, outputs) : pick_tokens(block->forward(x), outputs);
    }
  }
  (y * upstream).sum().backward();
  BlockRun run{y.detach(), x.grad(), {}};
  for (const auto& p : block->parameters()) run.grads.push_back(p.grad());
  return run;
}

// Where only some tokens' outputs are read (the predictor's mask tokens, the target encoder's tokens in target
// blocks), a block projects only their queries and runs the attention's output, the residual adds and the MLP for
// them alone, over the keys and values of all. The same outputs and gradients as the whole block's picked at those
// tokens, up to the order of the sums (the whole block's gradients add the other tokens' zeros); here the last
// tokens of each sequence, as in the predictor, and tokens of each image in any order with repeats.
TEST(VitBlock, SomeTokensAloneAreTheWholeBlocksOutputAtThoseTokensForwardAndBackward) {
  const auto last_twelve = torch::arange(25, 37).expand({4, -1});
  // Twelve tokens of each image in no order, with repeats, others for each image.
  const auto scattered =
      (torch::tensor({3, 36, 0, 17, 17, 8, 30, 2, 36, 5, 11, 20}) + 7 * torch::arange(4).view({4, 1})) % 37;
  for (const auto& outputs : {last_twelve, scattered}) {
    for (const bool bf16 : {false, true}) {
      torch::manual_seed(7);
      Block block(96, 3, 384);
      const auto x = torch::randn({4, 37, 96}), upstream = torch::randn({4, 12, 96});
      const auto alone = run_block_for(block, x, upstream, outputs, true, bf16);
      const auto whole = run_block_for(block, x, upstream, outputs, false, bf16);
      ASSERT_EQ(alone.y.sizes(), (std::vector<int64_t>{4, 12, 96}));
      const int bits = bf16 ? 8 : 24;
      const double steps = bf16 ? 4 : 64;
      EXPECT_TRUE(close_in(bits, steps, alone.y, whole.y)) << "bf16 " << bf16;
      EXPECT_TRUE(close_in(bits, steps, alone.grad_x, whole.grad_x)) << "bf16 " << bf16;
      ASSERT_EQ(alone.grads.size(), whole.grads.size());
      for (size_t i = 0; i < alone.grads.size(); ++i) {
        ASSERT_TRUE(alone.grads[i].defined()) << i;
        EXPECT_TRUE(close_in(bits, steps, alone.grads[i], whole.grads[i])) << "bf16 " << bf16 << ", parameter " << i;
      }
      // Every token still reaches the outputs through the keys and values.
      EXPECT_GT(alone.grad_x.abs().sum(-1).min().item<double>(), 0);
    }
  }
}

// The target encoder computes its last block only for the tokens that the target blocks read (without autograd,
// in fp32 and under bf16 autocast): the same as those tokens of the whole output.
TEST(VitForward, OutputsForSomeTokensAreThoseTokensOfTheWholeOutput) {
  torch::manual_seed(8);
  ViTConfig cfg = vit_preset("vit_tiny", 28, 4, 1);
  cfg.depth = 2;
  VisionTransformer vit(cfg);
  const auto x = torch::randn({3, 1, 28, 28});
  const auto outputs = torch::randint(0, 49, {3, 20});
  const torch::NoGradGuard no_grad;
  for (const bool bf16 : {false, true}) {
    const AutocastGuard autocast(c10::DeviceType::CPU, bf16);
    const auto picked = vit->forward(x, {}, outputs);
    ASSERT_EQ(picked.sizes(), (std::vector<int64_t>{3, 20, 192}));
    EXPECT_TRUE(close_in(bf16 ? 8 : 24, bf16 ? 4 : 64, picked, pick_tokens(vit->forward(x), outputs))) << bf16;
  }
  EXPECT_THROW(vit->forward(x, {torch::randint(0, 49, {3, 10})}, outputs), std::invalid_argument);
}

TEST(MaskUnion, PicksEachImagesKeptTokensOnceAndTheMasksFindTheirTokensAmongThem) {
  torch::manual_seed(9);
  const int64_t batch = 5, tokens = 40;
  std::vector<torch::Tensor> masks;
  for (int i = 0; i < 3; ++i) {  // 7 distinct tokens per image, ascending, as the sampler gives them
    masks.push_back(std::get<0>(torch::rand({batch, tokens}).argsort(/*dim=*/int64_t{1}).narrow(1, 0, 7).sort(1)));
  }
  const auto u = union_of_masks(masks, tokens);
  ASSERT_TRUE(u.tokens.defined());
  const auto x = torch::randn({batch, tokens, 8});
  EXPECT_TRUE(torch::equal(apply_masks(pick_tokens(x, u.tokens), u.within), apply_masks(x, masks)));
  int64_t longest = 0;
  for (int64_t b = 0; b < batch; ++b) {
    std::set<int64_t> kept;
    for (const auto& m : masks) {
      for (int64_t k = 0; k < m.size(1); ++k) kept.insert(m[b][k].item<int64_t>());
    }
    longest = std::max<int64_t>(longest, static_cast<int64_t>(kept.size()));
    std::vector<int64_t> first;  // the row's first |kept| tokens: the kept ones, ascending
    for (size_t k = 0; k < kept.size(); ++k) first.push_back(u.tokens[b][static_cast<int64_t>(k)].item<int64_t>());
    EXPECT_EQ(first, std::vector<int64_t>(kept.begin(), kept.end())) << "image " << b;
  }
  EXPECT_EQ(u.tokens.size(1), longest);
  // Masks that keep every token of some image: all tokens are read, and the masks stay as they are.
  const auto all = union_of_masks({torch::arange(tokens).expand({batch, -1}), masks[0]}, tokens);
  EXPECT_FALSE(all.tokens.defined());
  EXPECT_TRUE(torch::equal(all.within[1], masks[0]));
}

TEST(TargetEncoder, IsAnExactFrozenCopyAndDrawsNothing) {
  torch::manual_seed(3);
  VisionTransformer vit(vit_preset("vit_tiny", 16, 4, 1));
  const auto before = torch::rand({1}).item<double>();
  torch::manual_seed(3);
  VisionTransformer vit2(vit_preset("vit_tiny", 16, 4, 1));
  auto target = clone_as_target(vit2);
  EXPECT_EQ(torch::rand({1}).item<double>(), before) << "cloning consumed random numbers";
  for (const auto& p : target->named_parameters()) {
    EXPECT_FALSE(p.value().requires_grad());
    EXPECT_TRUE(torch::equal(p.value(), vit2->named_parameters()[p.key()])) << p.key();
  }
}

TEST(StateDict, LoadsWithOrWithoutTheDdpPrefixAndNamesEveryKeyThatDoesNotFit) {
  torch::manual_seed(4);
  VisionTransformer source(vit_preset("vit_tiny", 16, 4, 1));
  VisionTransformer loaded(vit_preset("vit_tiny", 16, 4, 1));
  load_state_dict(*loaded, state_dict(*source), "prefixed");
  EXPECT_EQ(parameters_sha256(*loaded), parameters_sha256(*source));
  torch::manual_seed(5);
  VisionTransformer other(vit_preset("vit_tiny", 16, 4, 1));
  load_state_dict(*loaded, state_dict(*other, ""), "bare");
  EXPECT_EQ(parameters_sha256(*loaded), parameters_sha256(*other));

  auto broken = state_dict(*source);
  ASSERT_EQ(broken.erase("module.norm.bias"), 1u);
  broken.insert_or_assign("module.norm.weight", torch::zeros({7}));
  broken.insert("module.head.weight", torch::zeros({1}));
  const std::string before = parameters_sha256(*loaded);
  ijepa::testing::expect_input_error([&] { load_state_dict(*loaded, broken, "checkpoint c.pt, encoder"); },
                                     {"checkpoint c.pt, encoder", "missing: norm.bias;",
                                      "shape mismatch: norm.weight [7] vs model [192];", "unexpected: head.weight;"});
  EXPECT_EQ(parameters_sha256(*loaded), before) << "a dict that does not fit must leave the module untouched";
}

}  // namespace
}  // namespace ijepa::model
