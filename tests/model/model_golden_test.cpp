// The model against the reference's measured numbers: positional tables and the weights that torch::manual_seed(0)
// and the three initialisation stages produce.
#include <gtest/gtest.h>

#include "golden.h"
#include "model/init.h"
#include "model/pos_embed.h"

namespace ijepa::model {
namespace {

using ijepa::testing::golden;

TEST(PosEmbedGolden, MatchesTheReferenceTables) {
  const auto& g = golden()["pos_embed"];
  const auto d8 = sincos_pos_embed_2d(8, 2);
  for (int n = 0; n < 4; ++n) {
    for (int k = 0; k < 8; ++k) EXPECT_NEAR(d8[n * 8 + k], g["D8_G2"][n][k].get<double>(), 1e-15) << n << "," << k;
  }
  // "row" is a row of the table, i.e. a token: token 1 is (row 0, column 1), so only the column half varies.
  const auto d384 = sincos_pos_embed_2d(384, 16);
  for (int k = 0; k < 4; ++k) {
    EXPECT_NEAR(d384[1 * 384 + k], g["D384_G16_row1_dims0to3"][k].get<double>(), 1e-14);
    EXPECT_NEAR(d384[1 * 384 + 192 + k], g["D384_G16_row1_dims192to195"][k].get<double>(), 1e-14);
  }
  const auto d192 = sincos_pos_embed_2d(192, 7);
  for (int k = 0; k < 8; ++k) {
    EXPECT_NEAR(d192[8 * 192 + k], g["D192_G7_row8_dims0to7"][k].get<double>(), 1e-14);
    EXPECT_NEAR(d192[8 * 192 + 96 + k], g["D192_G7_row8_dims96to103"][k].get<double>(), 1e-14);
  }
}

void expect_sums(torch::nn::Module& module, const nlohmann::json& sums) {
  size_t seen = 0;
  for (const auto& p : module.named_parameters()) {
    ASSERT_TRUE(sums.contains(p.key())) << "no golden sum for " << p.key();
    const double sum = p.value().to(torch::kFloat64).sum().item<double>();
    // A different draw moves a sum by about sqrt(numel) * 0.02; float32 erfinv rounding by ~1e-6.
    EXPECT_NEAR(sum, sums[p.key()].get<double>(), 2e-5) << p.key();
    ++seen;
  }
  EXPECT_EQ(seen, sums.size()) << "parameter count differs from the reference";
}

struct InitCase {
  const char* key;
  int64_t img, patch, chans;
};

class InitGolden : public ::testing::TestWithParam<InitCase> {};

TEST_P(InitGolden, SeedZeroGivesTheReferenceWeights) {
  const auto& c = GetParam();
  const auto& g = golden()[c.key];
  torch::manual_seed(0);
  const ViTConfig enc = vit_preset("vit_tiny", c.img, c.patch, c.chans);
  Models m = build_models(enc, predictor_for(enc, 96, 2));
  expect_sums(*m.encoder, g["encoder_param_sums"]);
  expect_sums(*m.predictor, g["predictor_param_sums"]);

  const auto& first = g["first_values"];
  auto expect_first = [&](const torch::Tensor& t, const char* name) {
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(t[i].item<double>(), first[name][i].get<double>(), 1e-8) << name;
  };
  expect_first(m.encoder->patch_embed->proj->weight[0][0][0], "patch_embed.proj.weight[0,0,0,:4]");
  expect_first(m.encoder->blocks[0]->as<BlockImpl>()->attn->qkv->weight[0], "blocks.0.attn.qkv.weight[0,:4]");
  expect_first(m.predictor->mask_token[0][0], "mask_token[0,0,:4]");
}

INSTANTIATE_TEST_SUITE_P(Reference, InitGolden,
                         ::testing::Values(InitCase{"train_in224_tiny16", 224, 16, 3},
                                           InitCase{"train_fmnist_tiny4", 28, 4, 1}),
                         [](const auto& info) { return std::string(info.param.key); });

}  // namespace
}  // namespace ijepa::model
