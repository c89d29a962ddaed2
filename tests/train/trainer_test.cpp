// The trainer end to end on a tiny synthetic IDX dataset: exact resume, checkpoints that are refused when
// corrupt, the CSV, and a non-finite loss that stops without overwriting the last good checkpoint.
#include "train/trainer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdio>
#include <map>
#include <sstream>

#include "common/config.h"
#include "common/errors.h"
#include "common/sha256.h"
#include "common/signals.h"
#include "input_error.h"
#include "model/autocast.h"
#include "model/checkpoint_file.h"
#include "model/state_dict.h"
#include "test_util.h"
#include "tiny_trainer.h"

namespace ijepa::train {
namespace {

using ijepa::testing::read_file;
using TrainerTest = testing::TinyTrainerTest;
using testing::leading_columns;

// epoch, itr, step, lr, wd and momentum of a CSV row: the columns that do not depend on the data or timing.
std::string schedule_columns(const std::string& row) {
  std::vector<std::string> fields;
  std::istringstream in(row);
  for (std::string field; std::getline(in, field, ',');) fields.push_back(field);
  std::string kept;
  for (const size_t i : {0u, 1u, 6u, 7u, 8u, 9u})
    kept += (kept.empty() ? "" : ",") + (i < fields.size() ? fields[i] : "");
  return kept;
}

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

// On two threads each takes a part of every batch (JepaStep): still the same bits with and without a stop.
TEST_F(TrainerTest, OnTwoThreadsAResumedRunIsStillBitIdentical) {
  const auto straight = train(config("straight2", {"optimization.max_steps=9", "meta.threads=2"}));
  EXPECT_EQ(straight.steps, 9);
  EXPECT_EQ(train(config("resumed2", {"optimization.max_steps=4", "meta.threads=2"})).steps, 4);
  const auto resumed =
      train(config("resumed2", {"optimization.max_steps=9", "meta.threads=2", "meta.load_checkpoint=true"}));
  EXPECT_EQ(resumed.steps, 9);
  const auto a = summary("straight2"), b = summary("resumed2");
  EXPECT_EQ(a["encoder_sha256"], b["encoder_sha256"]);
  EXPECT_EQ(a["target_encoder_sha256"], b["target_encoder_sha256"]);
  EXPECT_EQ(a["last_loss"], b["last_loss"]);
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

// A fresh run where an earlier run left its checkpoints would take over its latest and, with keep_last 2, delete its
// own rolling checkpoints as soon as they were written (the earlier run's steps 8 and 10 sort after them).
TEST_F(TrainerTest, AFreshStartDoesNotReplaceAnEarlierRunsCheckpointsUnlessAskedTo) {
  train(config("earlier", {"optimization.max_steps=10"}));
  const auto hashes = [&] {  // every file of the folder, by name
    std::map<std::string, std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir_ / "earlier")) {
      out[e.path().filename().string()] = common::sha256_file(e.path());
    }
    return out;
  };
  const auto before = hashes();
  try {
    train(config("earlier", {"optimization.max_steps=4"}));
    FAIL() << "a fresh start replaced an earlier run's checkpoints";
  } catch (const common::InputError& e) {
    const std::string message = e.what();
    for (const char* named : {"earlier", "jepa-latest.pth.tar", "meta.load_checkpoint=true", "logging.folder",
                              "checkpoint.overwrite=true"}) {
      EXPECT_NE(message.find(named), std::string::npos) << named << " not in: " << message;
    }
  }
  EXPECT_EQ(hashes(), before);

  // Another tag in the same folder is another run; checkpoint.overwrite starts afresh over this tag's.
  EXPECT_NO_THROW(train(config("earlier", {"optimization.max_steps=4", "logging.write_tag=other"})));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "earlier/other-latest.pth.tar"));
  train(config("earlier", {"optimization.max_steps=4", "checkpoint.overwrite=true"}));
  EXPECT_EQ(summary("earlier")["steps"], 4);
  EXPECT_TRUE(std::filesystem::exists(dir_ / "earlier/jepa-step00000004.pth.tar"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "earlier/jepa-step00000008.pth.tar"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "earlier/jepa-step00000010.pth.tar"));
  EXPECT_EQ(common::sha256_file(dir_ / "earlier/jepa-latest.pth.tar"),
            common::sha256_file(dir_ / "earlier/jepa-step00000004.pth.tar"));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "earlier/other-latest.pth.tar"));  // not this tag's
  // Resuming is what the folder's checkpoints are for: checkpoint.overwrite does not remove them then.
  train(config("earlier", {"optimization.max_steps=8", "meta.load_checkpoint=true", "checkpoint.overwrite=true"}));
  EXPECT_EQ(summary("earlier")["steps"], 8);
  EXPECT_TRUE(std::filesystem::exists(dir_ / "earlier/jepa-step00000004.pth.tar"));
}

// Another run whose tag merely starts with this one's ("jepa-stepper", "jepa-ep" for "jepa") is another run: a
// fresh "jepa" run neither refuses to start over their files nor removes them in its clean-up.
TEST_F(TrainerTest, ATagThatStartsWithThisOneIsAnotherRunsTag) {
  train(config("tags", {"optimization.max_steps=4", "logging.write_tag=jepa-stepper"}));
  train(config("tags", {"optimization.max_steps=4", "logging.write_tag=jepa-ep"}));
  EXPECT_NO_THROW(train(config("tags", {"optimization.max_steps=10"})));
  for (const char* name : {"jepa-stepper-latest.pth.tar", "jepa-stepper-step00000004.pth.tar", "jepa-ep-latest.pth.tar",
                           "jepa-ep-step00000004.pth.tar", "jepa-step00000008.pth.tar", "jepa-step00000010.pth.tar"}) {
    EXPECT_TRUE(std::filesystem::exists(dir_ / (std::string("tags/") + name))) << name;
  }
}

// A run resumed from an earlier checkpoint keeps the newest of its own: the abandoned run's later checkpoints are
// neither counted as newer nor removed until this run writes its own of those steps.
TEST_F(TrainerTest, ResumingFromAnEarlierCheckpointKeepsTheCheckpointsItWrites) {
  const auto exists = [&](int step) {
    char name[64];
    std::snprintf(name, sizeof name, "older/jepa-step%08d.pth.tar", step);
    return std::filesystem::exists(dir_ / name);
  };
  train(config("older", {"optimization.max_steps=16", "checkpoint.keep_last=3"}));
  const std::vector<std::string> resume = {"checkpoint.keep_last=3", "checkpoint.every_steps=1",
                                           "meta.load_checkpoint=true"};
  auto from_step8 = resume;
  from_step8.insert(from_step8.end(), {"optimization.max_steps=10", "meta.read_checkpoint=jepa-step00000008.pth.tar"});
  EXPECT_EQ(train(config("older", from_step8)).steps, 10);
  for (int step : {8, 9, 10, 12, 16}) EXPECT_TRUE(exists(step)) << step;
  EXPECT_EQ(common::sha256_file(dir_ / "older/jepa-latest.pth.tar"),
            common::sha256_file(dir_ / "older/jepa-step00000010.pth.tar"));

  auto on_to_12 = resume;
  on_to_12.push_back("optimization.max_steps=12");
  EXPECT_EQ(train(config("older", on_to_12)).steps, 12);  // from the latest, step 10
  for (int step : {10, 11, 12, 16}) EXPECT_TRUE(exists(step)) << step;
  for (int step : {8, 9}) EXPECT_FALSE(exists(step)) << step;
}

// An epoch's checkpoint (with its periodic copy) and evaluation come with its last batch, also when that step was
// checkpointed already (every_steps = one epoch) and when it is the run's last (max_steps).
TEST_F(TrainerTest, AnEpochEndsWithItsLastBatchWhateverElseThatStepDoes) {
  const auto result =
      train(config("epochs", {"checkpoint.every_steps=12", "checkpoint.periodic_epochs=1", "optimization.max_steps=24"},
                   "eval: {protocol: knn, every_epochs: 1}\n"));
  EXPECT_EQ(result.reason, ExitReason::kCompleted);
  EXPECT_EQ(summary("epochs")["exit_reason"], "completed");
  for (int epochs = 1; epochs <= 2; ++epochs) {
    const auto path = dir_ / ("epochs/jepa-ep" + std::to_string(epochs) + ".pth.tar");
    ASSERT_TRUE(std::filesystem::exists(path)) << path;
    // The reference's "epoch": epochs completed, so that its code resumes at the next one.
    EXPECT_EQ(model::read_checkpoint_file(path).content.at("epoch").toInt(), epochs);
  }
  EXPECT_EQ(leading_columns(read_file(dir_ / "epochs/jepa_eval.csv"), 4),
            (std::vector<std::string>{"epoch,step,features,protocol", "1,12,target,knn", "2,24,target,knn"}));
}

// A run refused for its evaluation data (no test split) leaves the earlier run it would replace untouched.
TEST_F(TrainerTest, ARefusedRunRemovesNothing) {
  train(config("kept", {"optimization.max_steps=4"}));
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "data")) {
    if (e.path().filename().string().rfind("t10k", 0) == 0) std::filesystem::remove(e.path());
  }
  EXPECT_THROW(train(config("kept", {"optimization.max_steps=4", "checkpoint.overwrite=true", "eval.at_end=true"})),
               common::InputError);
  EXPECT_TRUE(std::filesystem::exists(dir_ / "kept/jepa-step00000004.pth.tar"));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "kept/jepa-latest.pth.tar"));
}

// A stop before the first step saves nothing: the same command runs again without being refused.
TEST_F(TrainerTest, AStopBeforeTheFirstStepLeavesNoCheckpoint) {
  common::request_stop(SIGTERM);
  const auto stopped = train(config("early", {"optimization.max_steps=4"}));
  common::request_stop(0);
  EXPECT_EQ(stopped.reason, ExitReason::kSignal);
  EXPECT_EQ(stopped.steps, 0);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "early/jepa-latest.pth.tar"));
  EXPECT_EQ(train(config("early", {"optimization.max_steps=4"})).steps, 4);
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

TEST_F(TrainerTest, AReferenceFormatCheckpointContinuesTrainingAtItsNextEpoch) {
  const auto straight = train(config("straight", {"optimization.max_steps=14"}));
  train(config("ref", {"optimization.max_steps=12"}));  // one whole epoch of 12 steps
  const std::string latest = dir_ / "ref/jepa-latest.pth.tar";
  // What the reference saves: no "ijepa" entry or checksum; AdamW's step as a number, as torch before 1.12 wrote it.
  auto reference = model::read_torch_file(latest);
  ASSERT_EQ(reference.erase("ijepa"), 1u);
  ASSERT_EQ(reference.erase("ijepa_sha256"), 1u);
  for (const auto& entry : reference.at("opt").toGenericDict().at("state").toGenericDict()) {
    entry.value().toGenericDict().insert_or_assign("step", int64_t{12});
  }
  model::write_torch_file(latest, reference);

  const auto resumed = train(config("ref", {"optimization.max_steps=14", "meta.load_checkpoint=true"}));
  EXPECT_EQ(resumed.steps, 14);
  // Steps 13 and 14 are epoch 2's first batches, at the schedules' values of the uninterrupted run.
  const auto rows = testing::lines_of(read_file(dir_ / "ref/jepa_r0.csv"));
  const auto straight_rows = testing::lines_of(read_file(dir_ / "straight/jepa_r0.csv"));
  ASSERT_EQ(rows.size(), 15u);
  ASSERT_EQ(straight_rows.size(), 15u);
  for (const size_t row : {13u, 14u}) {
    EXPECT_EQ(schedule_columns(rows[row]), schedule_columns(straight_rows[row])) << rows[row];
  }
  EXPECT_EQ(schedule_columns(rows[13]).substr(0, 5), "2,0,1");
}

TEST_F(TrainerTest, OptimizerStateThatDoesNotFitIsNamed) {
  train(config("opt", {"optimization.max_steps=4"}));
  const std::string latest = dir_ / "opt/jepa-latest.pth.tar";
  auto checkpoint = model::read_torch_file(latest);
  // State 1 is patch_embed.proj.weight's (state 0, pos_embed's, is never read: that table is fixed).
  auto state = checkpoint.at("opt").toGenericDict().at("state").toGenericDict().at(1).toGenericDict();
  ASSERT_EQ(state.erase("exp_avg"), 1u);
  model::seal_checkpoint(checkpoint);  // its checksum holds: only the optimizer state is wrong
  model::write_torch_file(latest, checkpoint);
  ijepa::testing::expect_input_error(
      [&] {
        train(config("opt", {"optimization.max_steps=8", "meta.load_checkpoint=true"}));
      },
      {latest, "optimizer state of patch_embed.proj.weight has no tensor 'exp_avg'"});
}

// An epoch is 48 samples (12 steps of batch 4) in one permutation whatever the batch size: a resume with another
// batch size goes on at the sample where the checkpoint's run stopped, when one of its steps starts there.
TEST_F(TrainerTest, ResumingInsideAnEpochWithAnotherBatchSizeGoesOnAtTheSampleWhereItStopped) {
  train(config("batch", {"optimization.max_steps=6"}));  // 24 samples: step 3 of batch 8 starts there
  EXPECT_EQ(
      train(config("batch", {"data.batch_size=8", "meta.load_checkpoint=true", "optimization.max_steps=8"})).steps, 8);
  const std::string csv = read_file(dir_ / "batch/jepa_r0.csv");
  std::vector<std::string> rows;
  std::istringstream in(csv);
  for (std::string row; std::getline(in, row);) rows.push_back(row);
  ASSERT_EQ(rows.size(), 9u) << csv;                   // the header, 6 steps of batch 4, 2 of batch 8
  EXPECT_EQ(rows[7].rfind("1,3,", 0), 0u) << rows[7];  // epoch 1, its step 3 (from 0) of 6
  EXPECT_EQ(rows[8].rfind("1,4,", 0), 0u) << rows[8];
}

TEST_F(TrainerTest, ResumingInsideAnEpochWithABatchWhoseStepsDoNotStartWhereItStoppedIsNamed) {
  train(config("batch", {"optimization.max_steps=7"}));  // 28 samples: batch 8's steps start at 0, 8, 16, 24, 32
  ijepa::testing::expect_input_error(
      [&] {
        train(config("batch", {"data.batch_size=8", "meta.load_checkpoint=true"}));
      },
      {dir_ / "batch/jepa-latest.pth.tar", "after 28 samples", "data.batch_size 8", "no batch starts there"});
}

TEST_F(TrainerTest, MoreStepsThanTheSchedulesCanCountAreNamed) {
  // 1e17 epochs of 12 steps: 1.2e18 steps, past the 2^53 that a double counts exactly (its schedule values were
  // garbage, and at 1e18 epochs the step count overflowed int64).
  ijepa::testing::expect_input_error([&] { train(config("long", {"optimization.epochs=100000000000000000"})); },
                                     {"optimization.epochs", "100000000000000000 epochs of 12 steps", "2^53"});
  EXPECT_FALSE(std::filesystem::exists(dir_ / "long/jepa_r0.csv"));
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

TEST_F(TrainerTest, WeightsThatOverflowAfterAFiniteLossAreNeverCheckpointed) {
  // Step 1's loss comes from the initial weights and is finite; its update, at a learning rate that is infinite in
  // fp32, leaves the weights non-finite before the checkpoint due after that step.
  const auto result = train(config("inf", {"checkpoint.every_steps=1", "optimization.lr=1.0e+39",
                                           "optimization.start_lr=1.0e+39", "optimization.final_lr=1.0e+39"}));
  EXPECT_EQ(result.reason, ExitReason::kNonFiniteLoss);
  EXPECT_EQ(result.steps, 1);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "inf/jepa-latest.pth.tar"));
  EXPECT_EQ(summary("inf")["exit_reason"], "non_finite_loss");
}

}  // namespace
}  // namespace ijepa::train
