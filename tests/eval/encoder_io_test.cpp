// Importing encoders: the reference's real checkpoint reproduces the outputs it was recorded with, shapes are
// inferred from the tensors, the random-init baseline is the reference initialisation, and bad files or
// contradicting hints are InputErrors that name the problem.
#include "eval/encoder_io.h"

#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <tuple>

#include "common/errors.h"
#include "eval/features.h"
#include "eval/safetensors.h"
#include "golden.h"
#include "input_error.h"
#include "model/checkpoint_file.h"
#include "model/vit_config.h"
#include "test_util.h"

namespace ijepa::eval {
namespace {

using ijepa::testing::input_error_of;
using ijepa::testing::TempDir;

const std::string kReferenceCheckpoint = ijepa::testing::shared_path("reference/checkpoint/jepa-latest.pth.tar");

nlohmann::json reference_expected() {
  std::ifstream in(ijepa::testing::shared_path("reference/checkpoint/jepa-latest.expected.json"));
  return nlohmann::json::parse(in);
}

// sin(0.01 * arange(2*3*64*64)) computed in float64, then float32: [2, 3, 64, 64].
torch::Tensor reference_input() {
  return torch::sin(0.01 * torch::arange(2 * 3 * 64 * 64, torch::kFloat64)).to(torch::kFloat32).reshape({2, 3, 64, 64});
}

void expect_relative(double actual, double expected, double rel, const std::string& what) {
  EXPECT_NEAR(actual, expected, rel * std::max(1.0, std::abs(expected))) << what;
}

TEST(ReferenceCheckpoint, BothEncodersReproduceTheRecordedOutputs) {
  const auto expected = reference_expected();
  ModelHints hints;
  hints.num_heads = 2;  // width 64 is outside the reference's size table
  auto context = import_encoder(kReferenceCheckpoint, EncoderChoice::kContext, hints);
  auto target = import_encoder(kReferenceCheckpoint, EncoderChoice::kTarget, hints);
  EXPECT_EQ(context.format, "reference");
  EXPECT_EQ(target.epoch, expected["epoch"].get<int64_t>());
  const auto& c = target.encoder->config();
  EXPECT_EQ(c.img_size, 64);
  EXPECT_EQ(c.patch_size, 8);
  EXPECT_EQ(c.in_chans, 3);
  EXPECT_EQ(c.embed_dim, 64);
  EXPECT_EQ(c.depth, 2);
  EXPECT_EQ(c.mlp_hidden, 256);
  ASSERT_TRUE(target.predictor.has_value());
  EXPECT_EQ(target.predictor->predictor_embed_dim, 32);
  EXPECT_EQ(target.predictor->depth, 1);

  torch::NoGradGuard no_grad;
  const auto x = reference_input();
  const auto out = context.encoder->forward(x).to(torch::kFloat64);
  EXPECT_EQ(out.sizes().vec(), expected["encoder_output_shape"].get<std::vector<int64_t>>());
  expect_relative(out.sum().item<double>(), expected["encoder_output_sum"], 1e-4, "encoder sum");
  expect_relative(out.abs().sum().item<double>(), expected["encoder_output_abs_sum"], 1e-4, "encoder abs sum");
  const auto target_out = target.encoder->forward(x).to(torch::kFloat64);
  expect_relative(target_out.sum().item<double>(), expected["target_encoder_output_sum"], 1e-4, "target sum");
  const auto pooled = pooled_features(target.encoder, x, Pooling::kAvg);
  const auto first4 = expected["target_encoder_avgpool_first4"].get<std::vector<double>>();
  for (size_t i = 0; i < first4.size(); ++i) {
    expect_relative(pooled[0][static_cast<int64_t>(i)].item<double>(), first4[i], 1e-4,
                    "avg pool " + std::to_string(i));
  }
}

TEST(ReferenceCheckpoint, ImportedEncoderIsFrozenAndLeavesTheGlobalGeneratorAlone) {
  torch::manual_seed(123);
  const auto before = torch::rand({4});
  torch::manual_seed(123);
  ModelHints hints;
  hints.num_heads = 2;
  auto imported = import_encoder(kReferenceCheckpoint, EncoderChoice::kTarget, hints);
  EXPECT_TRUE(torch::equal(torch::rand({4}), before));
  for (const auto& p : imported.encoder->parameters()) EXPECT_FALSE(p.requires_grad());
}

TEST(ReferenceCheckpoint, HeadCountOutsideTheSizeTableMustBeGiven) {
  const auto message = input_error_of([] { import_encoder(kReferenceCheckpoint, EncoderChoice::kTarget); });
  EXPECT_NE(message.find("--num-heads"), std::string::npos) << message;
}

TEST(ReferenceCheckpoint, ContradictingHintsAreModelMismatches) {
  ModelHints wrong_model;
  wrong_model.model_name = "vit_small";
  auto message = input_error_of([&] { import_encoder(kReferenceCheckpoint, EncoderChoice::kTarget, wrong_model); });
  EXPECT_NE(message.find("model mismatch"), std::string::npos) << message;
  ModelHints wrong_patch;
  wrong_patch.patch_size = 16;
  wrong_patch.num_heads = 2;
  message = input_error_of([&] { import_encoder(kReferenceCheckpoint, EncoderChoice::kTarget, wrong_patch); });
  EXPECT_NE(message.find("model mismatch"), std::string::npos) << message;
  ModelHints unknown;
  unknown.model_name = "vit_enormous";
  message = input_error_of([&] { import_encoder(kReferenceCheckpoint, EncoderChoice::kTarget, unknown); });
  EXPECT_NE(message.find("vit_enormous"), std::string::npos) << message;
}

TEST(ImportEncoder, MissingCorruptOrForeignFilesAreInputErrors) {
  TempDir dir;
  auto message = input_error_of([&] { import_encoder(dir / "none.pth.tar", EncoderChoice::kTarget); });
  EXPECT_NE(message.find("none.pth.tar"), std::string::npos) << message;

  const std::string bytes = ijepa::testing::read_file(kReferenceCheckpoint);
  ijepa::testing::write_file(dir / "truncated.pth.tar", bytes.substr(0, bytes.size() / 2));
  message = input_error_of([&] { import_encoder(dir / "truncated.pth.tar", EncoderChoice::kTarget); });
  EXPECT_NE(message.find("truncated.pth.tar"), std::string::npos) << message;

  ijepa::testing::write_file(dir / "noise.pth.tar", std::string(4096, '\x5a'));
  EXPECT_THROW(import_encoder(dir / "noise.pth.tar", EncoderChoice::kTarget), common::InputError);

  // A torch.save dictionary that is not an I-JEPA checkpoint.
  c10::impl::GenericDict other(c10::StringType::get(), c10::AnyType::get());
  other.insert("weights", torch::ones({2}));
  model::write_torch_file(dir / "other.pth.tar", other);
  message = input_error_of([&] { import_encoder(dir / "other.pth.tar", EncoderChoice::kTarget); });
  EXPECT_NE(message.find("target_encoder"), std::string::npos) << message;

  // An encoder state dict with a block missing a tensor.
  c10::impl::GenericDict broken(c10::StringType::get(), c10::AnyType::get());
  auto state = model::read_torch_file(kReferenceCheckpoint).at("target_encoder").toGenericDict();
  ASSERT_EQ(state.erase("module.blocks.1.mlp.fc2.bias"), 1u);
  broken.insert("target_encoder", state);
  model::write_torch_file(dir / "broken.pth.tar", broken);
  ModelHints hints;
  hints.num_heads = 2;
  message = input_error_of([&] { import_encoder(dir / "broken.pth.tar", EncoderChoice::kTarget, hints); });
  EXPECT_NE(message.find("blocks.1.mlp.fc2.bias"), std::string::npos) << message;
}

TEST(ImportEncoder, AnIjepaCheckpointIsEvaluatedOnlyWhenItsChecksumHolds) {
  TempDir dir;
  ModelHints hints;
  hints.num_heads = 2;
  auto checkpoint = model::read_torch_file(kReferenceCheckpoint);
  checkpoint.insert("ijepa", c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get()));
  model::seal_checkpoint(checkpoint);
  model::write_torch_file(dir / "sealed.pth.tar", checkpoint);
  EXPECT_EQ(import_encoder(dir / "sealed.pth.tar", EncoderChoice::kTarget, hints).format, "ijepa");

  // One weight changed after sealing: the file loads, but its features would be wrong, so it is refused.
  auto target = checkpoint.at("target_encoder").toGenericDict();
  target.insert_or_assign("module.blocks.0.mlp.fc1.bias",
                          torch::zeros_like(target.at("module.blocks.0.mlp.fc1.bias").toTensor()));
  model::write_torch_file(dir / "edited.pth.tar", checkpoint);
  const auto message = input_error_of([&] { import_encoder(dir / "edited.pth.tar", EncoderChoice::kTarget, hints); });
  EXPECT_NE(message.find("edited.pth.tar: checksum mismatch"), std::string::npos) << message;
}

TEST(ImportEncoder, SafetensorsExportImportsBackWithItsHeadCount) {
  TempDir dir;
  ModelHints hints;
  hints.num_heads = 2;
  auto imported = import_encoder(kReferenceCheckpoint, EncoderChoice::kTarget, hints);
  const std::string path = dir / "target.safetensors";
  export_safetensors(imported.encoder, path, {{"encoder", "target"}});
  const auto file = read_safetensors(path);
  EXPECT_EQ(file.metadata.at("num_heads"), "2");
  EXPECT_EQ(file.metadata.at("encoder"), "target");
  EXPECT_EQ(file.tensors.size(), imported.encoder->named_parameters().size());

  auto back = import_encoder(path, EncoderChoice::kTarget);  // heads from the metadata
  EXPECT_EQ(back.format, "safetensors");
  ijepa::testing::expect_input_error([&] { import_encoder(path, EncoderChoice::kContext); },
                                     {path, "holds the target encoder only", "--encoder"});
  const std::string context = dir / "context.safetensors";
  export_safetensors(imported.encoder, context, {{"encoder", "context"}});
  EXPECT_EQ(import_encoder(context, EncoderChoice::kContext).format, "safetensors");
  ijepa::testing::expect_input_error([&] { import_encoder(context, EncoderChoice::kTarget); },
                                     {context, "holds the context encoder only"});
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(back.encoder->forward(reference_input()), imported.encoder->forward(reference_input())));

  for (const std::string bad : {"two", "-2", "0", "2x"}) {
    const std::string edited = dir / ("heads_" + bad + ".safetensors");
    export_safetensors(imported.encoder, edited, {{"num_heads", bad}});
    ijepa::testing::expect_input_error([&] { import_encoder(edited, EncoderChoice::kTarget); },
                                       {edited, "num_heads '" + bad + "' is not a positive integer"});
  }
}

TEST(ImportEncoder, EmptyTensorsDescribeNoModel) {
  TempDir dir;
  const model::ViTConfig config{16, 4, 1, 32, 2, 2, 64};
  auto encoder = random_encoder(config, model::predictor_for(config, 16, 1), 0);
  const std::string path = dir / "encoder.safetensors";
  export_safetensors(encoder, path);
  for (const auto& [key, empty, why] :
       {std::tuple{"patch_embed.proj.weight", torch::zeros({32, 1, 0, 0}), "patch size"},
        std::tuple{"pos_embed", torch::zeros({1, 0, 32}), "token grid"}}) {
    auto file = read_safetensors(path);
    for (auto& [name, tensor] : file.tensors) {
      if (name == key) tensor = empty;
    }
    const std::string edited = dir / (std::string(why) + ".safetensors");
    write_safetensors(edited, file.tensors, file.metadata);
    ijepa::testing::expect_input_error([&] { import_encoder(edited, EncoderChoice::kTarget); },
                                       {edited, std::string(why) + " is 0"});
  }
}

TEST(InferVitConfig, ReferenceSizesNeedNoHints) {
  auto encoder = random_encoder(model::vit_preset("vit_small", 32, 8, 3),
                                model::predictor_for(model::vit_preset("vit_small", 32, 8, 3), 96, 1));
  const auto config = infer_vit_config(model::state_dict(*encoder), {}, "test");
  EXPECT_EQ(config.num_heads, 6);
  EXPECT_EQ(config.img_size, 32);
  EXPECT_EQ(preset_name(config), "vit_small");
}

TEST(RandomEncoder, IsTheReferenceInitialisation) {
  const auto& golden = ijepa::testing::golden()["train_fmnist_tiny4"];  // vit_tiny/4 at 28 px, predictor 96 x 2
  const auto config = model::vit_preset("vit_tiny", 28, 4, 1);
  torch::manual_seed(7);
  const auto before = torch::rand({3});
  torch::manual_seed(7);
  auto encoder = random_encoder(config, model::predictor_for(config, 96, 2), 0);
  EXPECT_TRUE(torch::equal(torch::rand({3}), before)) << "the global generator must be restored";
  for (const auto& p : encoder->named_parameters()) {
    const double expected = golden["encoder_param_sums"][p.key()].get<double>();
    // A different draw moves a sum by about sqrt(numel) * 0.02; float32 erfinv rounding by ~1e-6.
    EXPECT_NEAR(p.value().to(torch::kFloat64).sum().item<double>(), expected, 2e-5) << p.key();
  }
}

}  // namespace
}  // namespace ijepa::eval
