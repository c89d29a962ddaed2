// The trainer end to end on a tiny synthetic IDX dataset: exact resume, checkpoints that are refused when
// corrupt, the CSV, and a non-finite loss that stops without overwriting the last good checkpoint.
#include "train/trainer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/config.h"
#include "common/errors.h"
#include "common/sha256.h"
#include "model/autocast.h"
#include "model/state_dict.h"
#include "test_util.h"
#include "tiny_trainer.h"

namespace ijepa::train {
namespace {

using ijepa::testing::read_file;
using TrainerTest = testing::TinyTrainerTest;
using testing::leading_columns;

TEST_F(TrainerTest, AResumedRunIsBitIdenticalToAnUninterruptedOne) {
  const auto straight = train(config("straight", {"optimization.max_steps=17"}));
  EXPECT_EQ(straight.reason, ExitReason::kMaxSteps);
  EXPECT_EQ(straight.steps, 17);

  // Stopped inside the first epoch, resumed across the epoch boundary.
  EXPECT_EQ(train(config("resumed", {"optimization.max_steps=7"})).steps, 7);
  const auto resumed = train(config("resumed", {"optimization.max_steps=17", "meta.load_checkpoint=true"}));
  EXPECT_EQ(resumed.steps, 17);

  const auto a = summary("straight"), b = summary("resumed");
  EXPECT_EQ(a["encoder_sha256"], b["encoder_sha256"]);
  EXPECT_EQ(a["target_encoder_sha256"], b["target_encoder_sha256"]);
  EXPECT_EQ(a["last_loss"], b["last_loss"]);
  EXPECT_EQ(b["exit_reason"], "max_steps");
  EXPECT_EQ(b["world_size"], 1);

  // The resumed CSV reads as one run: one row per step, the reference's columns first.
  const std::string csv = read_file(dir_ / "resumed/jepa_r0.csv");
  EXPECT_EQ(csv.rfind("epoch,itr,loss,mask-A,mask-B,time (ms),step,lr,wd,momentum,images/s,step ms,data-wait ms\n", 0),
            0u);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 18);
  EXPECT_EQ(leading_columns(read_file(dir_ / "straight/jepa_r0.csv"), 5), leading_columns(csv, 5));
}

TEST_F(TrainerTest, Bf16AutoRunsWhatThisCpuDoesNativelyAndRecordsIt) {
  EXPECT_EQ(train(config("auto", {"optimization.max_steps=2", "meta.use_bfloat16=auto"})).steps, 2);
  const bool native = model::cpu_has_native_bf16();
  EXPECT_EQ(summary("auto")["dtype"], native ? "bf16" : "fp32");
  // The run folder's config says what ran, not auto.
  const std::string saved = read_file(dir_ / "auto/params-ijepa.yaml");
  EXPECT_NE(saved.find(std::string("use_bfloat16: ") + (native ? "true" : "false")), std::string::npos) << saved;
}

TEST_F(TrainerTest, CheckpointsRollAndTheLatestIsTheLastStep) {
  train(config("roll", {"optimization.max_steps=10"}));
  int steps = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "roll")) {
    steps += e.path().filename().string().rfind("jepa-step", 0) == 0;
  }
  EXPECT_EQ(steps, 2);  // keep_last
  EXPECT_TRUE(std::filesystem::exists(dir_ / "roll/jepa-step00000010.pth.tar"));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "roll/jepa-step00000008.pth.tar"));
  EXPECT_EQ(common::sha256_file(dir_ / "roll/jepa-latest.pth.tar"),
            common::sha256_file(dir_ / "roll/jepa-step00000010.pth.tar"));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "roll/params-ijepa.yaml"));
}

TEST_F(TrainerTest, ACorruptTruncatedOrMissingCheckpointIsAnErrorNeverAFreshStart) {
  train(config("c", {"optimization.max_steps=4"}));
  const std::string latest = dir_ / "c/jepa-latest.pth.tar";
  const std::string bytes = read_file(latest);
  const auto resume = [&] { return train(config("c", {"optimization.max_steps=8", "meta.load_checkpoint=true"})); };

  // A flipped byte inside the tensor data: the file still loads, the checksum does not match.
  std::string flipped = bytes;
  flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 0x40);
  ijepa::testing::write_file(latest, flipped);
  try {
    resume();
    FAIL() << "a corrupt checkpoint was accepted";
  } catch (const common::InputError& e) {
    EXPECT_NE(std::string(e.what()).find(latest), std::string::npos) << e.what();
  }

  ijepa::testing::write_file(latest, bytes.substr(0, bytes.size() / 3));
  EXPECT_THROW(resume(), common::InputError);

  // Our own format with its checksum taken out is not loaded unverified as if it came from the reference.
  ijepa::testing::write_file(latest, bytes);
  auto unchecked = model::read_torch_file(latest);
  ASSERT_EQ(unchecked.erase("ijepa_sha256"), 1u);
  model::write_torch_file(latest, unchecked);
  try {
    resume();
    FAIL() << "a checkpoint without its checksum was accepted";
  } catch (const common::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("checksum is missing"), std::string::npos) << e.what();
  }

  std::filesystem::remove(latest);
  try {
    resume();
    FAIL() << "a missing checkpoint was accepted";
  } catch (const common::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("no checkpoint to resume from"), std::string::npos) << e.what();
  }
  EXPECT_THROW(train(config("c", {"meta.load_checkpoint=true", "meta.read_checkpoint=nope.pth.tar"})),
               common::InputError);
}

TEST_F(TrainerTest, ANonFiniteLossStopsTheRunAndKeepsTheLastGoodCheckpoint) {
  train(config("nan", {"optimization.max_steps=4"}));
  const std::string latest = dir_ / "nan/jepa-latest.pth.tar";
  const std::string good = common::sha256_file(latest);
  const auto result = train(config("nan", {"optimization.max_steps=12", "meta.load_checkpoint=true",
                                           "optimization.lr=1.0e+38", "optimization.start_lr=1.0e+38"}));
  EXPECT_EQ(result.reason, ExitReason::kNonFiniteLoss);
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(common::sha256_file(latest), good);
  EXPECT_EQ(summary("nan")["exit_reason"], "non_finite_loss");
}

}  // namespace
}  // namespace ijepa::train
