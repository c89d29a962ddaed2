// Round trips with the PyTorch ecosystem: a checkpoint that the reference's eager port wrote with torch
// (fixture eval_reference_checkpoint) imports with identical outputs and pooled features, also when its tensors
// were saved from a GPU, and its encoder exported to safetensors is read by the Python safetensors package with
// the same names and values, and loads strictly into the reference model.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "eval/encoder_io.h"
#include "eval/features.h"
#include "test_util.h"

namespace ijepa::eval {
namespace {

const std::string kFixture = IJEPA_EVAL_FIXTURE_DIR;
const std::string kCheckpoint = kFixture + "/jepa-latest.pth.tar";

nlohmann::json expected() {
  std::ifstream in(kFixture + "/expected.json");
  if (!in) throw std::runtime_error("no " + kFixture + "/expected.json: run through ctest (fixture eval_reference)");
  return nlohmann::json::parse(in);
}

torch::Tensor fixed_input(const nlohmann::json& model) {
  const int64_t size = model["img_size"], chans = model["in_chans"];
  return torch::sin(0.01 * torch::arange(2 * chans * size * size, torch::kFloat64))
      .to(torch::kFloat32)
      .reshape({2, chans, size, size});
}

double max_difference(const torch::Tensor& actual, const nlohmann::json& values) {
  const auto want = torch::tensor(values.get<std::vector<float>>());
  EXPECT_EQ(actual.numel(), want.numel());
  return (actual.flatten() - want).abs().max().item<double>();
}

ModelHints fixture_hints(const nlohmann::json& e) {
  ModelHints hints;
  hints.num_heads = e["model"]["num_heads"];
  return hints;
}

TEST(Interop, ReferenceFormatCheckpointImportsWithIdenticalOutputs) {
  const auto e = expected();
  const auto x = fixed_input(e["model"]);
  torch::NoGradGuard no_grad;
  for (const auto which : {EncoderChoice::kContext, EncoderChoice::kTarget}) {
    const std::string key = which == EncoderChoice::kTarget ? "target_encoder" : "encoder";
    auto imported = import_encoder(kCheckpoint, which, fixture_hints(e));
    EXPECT_EQ(imported.format, "reference");
    EXPECT_EQ(imported.encoder->config().depth, e["model"]["depth"].get<int64_t>());
    ASSERT_TRUE(imported.predictor.has_value());
    EXPECT_EQ(imported.predictor->predictor_embed_dim, e["model"]["pred_dim"].get<int64_t>());
    EXPECT_LT(max_difference(imported.encoder->forward(x), e[key]["output"]), 1e-5) << key;
    EXPECT_LT(max_difference(pooled_features(imported.encoder, x, Pooling::kAvg), e[key]["avg"]), 1e-5) << key;
    EXPECT_LT(max_difference(pooled_features(imported.encoder, x, Pooling::kAvgLast4), e[key]["avg4"]), 1e-5) << key;
  }
  // The two encoders differ (two EMA steps), so the choice is honoured.
  auto context = import_encoder(kCheckpoint, EncoderChoice::kContext, fixture_hints(e));
  auto target = import_encoder(kCheckpoint, EncoderChoice::kTarget, fixture_hints(e));
  EXPECT_FALSE(torch::equal(context.encoder->blocks[0]->named_parameters()["attn.qkv.weight"],
                            target.encoder->blocks[0]->named_parameters()["attn.qkv.weight"]));
}

TEST(Interop, ACheckpointSavedFromGpuTensorsLoadsOnTheCpu) {
  // The reference saves its state dicts from CUDA modules: each tensor's location reads "cuda:0". Loading
  // must not need (or fill) a GPU.
  const auto e = expected();
  const auto x = fixed_input(e["model"]);
  auto imported = import_encoder(kFixture + "/jepa-latest-gpu.pth.tar", EncoderChoice::kTarget, fixture_hints(e));
  EXPECT_TRUE(imported.encoder->named_parameters()["pos_embed"].device().is_cpu());
  torch::NoGradGuard no_grad;
  EXPECT_LT(max_difference(imported.encoder->forward(x), e["target_encoder"]["output"]), 1e-5);
}

TEST(Interop, SafetensorsExportReadsBackInPython) {
  const auto e = expected();
  ijepa::testing::TempDir dir;
  for (const auto which : {EncoderChoice::kContext, EncoderChoice::kTarget}) {
    const std::string key = which == EncoderChoice::kTarget ? "target_encoder" : "encoder";
    auto imported = import_encoder(kCheckpoint, which, fixture_hints(e));
    const std::string path = dir / (key + ".safetensors");
    export_safetensors(imported.encoder, path, {{"encoder", to_string(which)}});
    const std::string command = std::string(IJEPA_VENV_PYTHON) + " " + IJEPA_SOURCE_DIR +
                                "/tests/reference/check_safetensors.py " + path + " " + kCheckpoint + " " + key + " " +
                                kFixture + "/expected.json";
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
  }
}

}  // namespace
}  // namespace ijepa::eval
