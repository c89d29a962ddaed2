// Evaluation during and after pretraining (eval.*) on a tiny synthetic IDX dataset: it leaves the training
// trajectory untouched (also across a resume), writes {write_tag}_eval.csv and summary.json's "eval" object, and
// the at-end table; the table formatting itself.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <tuple>

#include "common/config.h"
#include "common/errors.h"
#include "input_error.h"
#include "test_util.h"
#include "tiny_trainer.h"
#include "train/report.h"
#include "train/trainer.h"

namespace ijepa::train {
namespace {

using ijepa::testing::read_file;
using testing::leading_columns;
using testing::lines_of;

// Probes on all 48 train and 20 test images.
class TrainerEvalTest : public testing::TinyTrainerTest {
 protected:
  common::Config config(const std::string& run, const std::vector<std::string>& overrides = {}) const {
    return TinyTrainerTest::config(run, overrides,
                                   "eval: {protocol: both, max_train_samples: 0, max_test_samples: 0}\n");
  }
};

TEST_F(TrainerEvalTest, EvaluatingLeavesTheTrajectoryUnchangedAndWritesTheEvalCsv) {
  train(config("plain", {"optimization.max_steps=18"}));
  // Evaluations after epoch 1 (step 12) and at the end (step 18, inside epoch 2).
  train(config("probed", {"optimization.max_steps=18", "eval.every_epochs=1", "eval.at_end=true"}));

  const auto plain = summary("plain"), probed = summary("probed");
  EXPECT_EQ(plain["encoder_sha256"], probed["encoder_sha256"]);
  EXPECT_EQ(plain["target_encoder_sha256"], probed["target_encoder_sha256"]);
  EXPECT_EQ(plain["last_loss"], probed["last_loss"]);
  EXPECT_EQ(leading_columns(read_file(dir_ / "plain/jepa_r0.csv"), 5),
            leading_columns(read_file(dir_ / "probed/jepa_r0.csv"), 5));
  EXPECT_FALSE(plain.contains("eval"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "plain/jepa_eval.csv"));

  EXPECT_EQ(leading_columns(read_file(dir_ / "probed/jepa_eval.csv"), 4),
            (std::vector<std::string>{"epoch,step,features,protocol", "1,12,target,linear", "1,12,target,knn",
                                      "2,18,target,linear", "2,18,target,knn"}));
  const auto& e = probed["eval"];
  EXPECT_EQ(e["step"], 18);
  EXPECT_EQ(e["epoch"], 2);
  EXPECT_EQ(e["train_samples"], 48);
  EXPECT_EQ(e["test_samples"], 20);
  for (const char* protocol : {"linear", "knn"}) {
    const double top1 = e["target"][protocol]["top1"];
    EXPECT_GE(top1, 0.0);
    EXPECT_LE(top1, 1.0);
    EXPECT_GT(e["target"][protocol]["seconds"].get<double>(), 0.0);
  }
  EXPECT_FALSE(e.contains("random_init"));
}

TEST_F(TrainerEvalTest, AResumedRunWithEvaluationsMatchesAnUninterruptedOneWithout) {
  train(config("plain", {"optimization.max_steps=18"}));
  const std::vector<std::string> every_epoch = {"eval.every_epochs=1", "eval.protocol=knn"};
  auto first = every_epoch, second = every_epoch;
  first.push_back("optimization.max_steps=7");
  second.insert(second.end(), {"optimization.max_steps=18", "meta.load_checkpoint=true"});
  train(config("resumed", first));
  EXPECT_EQ(read_file(dir_ / "resumed/jepa_eval.csv"), std::string(EvalCsvLog::header()) + "\n");
  train(config("resumed", second));

  EXPECT_EQ(summary("plain")["encoder_sha256"], summary("resumed")["encoder_sha256"]);
  EXPECT_EQ(summary("plain")["target_encoder_sha256"], summary("resumed")["target_encoder_sha256"]);
  EXPECT_EQ(leading_columns(read_file(dir_ / "resumed/jepa_eval.csv"), 4),
            (std::vector<std::string>{"epoch,step,features,protocol", "1,12,target,knn"}));
}

TEST_F(TrainerEvalTest, AtTheEndTheBaselinesAreProbedTheSameWay) {
  train(config("end", {"optimization.max_steps=3", "eval.at_end=true", "eval.baselines=true",
                       "eval.max_train_samples=30", "eval.max_test_samples=10"}));
  const auto e = summary("end")["eval"];
  EXPECT_EQ(e["step"], 3);
  EXPECT_EQ(e["train_samples"], 30);
  EXPECT_EQ(e["test_samples"], 10);
  EXPECT_EQ(e["pooling"], "avg");
  for (const char* features : {"target", "random_init", "raw_pixels"}) {
    for (const char* protocol : {"linear", "knn"}) {
      ASSERT_TRUE(e[features].contains(protocol)) << features << " " << protocol << ": " << e.dump();
      const double top1 = e[features][protocol]["top1"];
      EXPECT_GE(top1, 0.0);
      EXPECT_LE(top1, 1.0);
    }
  }
  EXPECT_EQ(lines_of(read_file(dir_ / "end/jepa_eval.csv")).size(), 7u);  // header + 3 features x 2 protocols
}

TEST_F(TrainerEvalTest, AMissingTestSplitIsAnErrorBeforeTraining) {
  std::filesystem::remove(dir_ / "data/t10k-images-idx3-ubyte");
  try {
    train(config("missing", {"eval.every_epochs=1"}));
    FAIL() << "training started without a test split to score the probes on";
  } catch (const common::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("test split"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir_ / "missing/jepa_r0.csv"));
  // Without evaluation the test split is not needed.
  EXPECT_EQ(train(config("missing", {"optimization.max_steps=1"})).steps, 1);
}

// Image folders label classes by their sorted folder names: a test split that names other classes would be scored
// against the wrong labels, and is refused at start.
TEST_F(TrainerEvalTest, ImageFolderSplitsNamingOtherClassesAreRefusedAtStart) {
  const std::string png = data::testing::encode_png(28, 28, PNG_COLOR_TYPE_GRAY, 8, std::vector<uint8_t>(28 * 28, 9));
  for (const char* file : {"train/cat/1.png", "train/dog/2.png", "val/cat/3.png", "val/dot/4.png"}) {
    ijepa::testing::write_file(dir_ / (std::string("folders/") + file), png);
  }
  const auto c = config("folders_run", {"data.dataset=imagefolder", "data.root_path=" + (dir_ / "folders"),
                                        "data.batch_size=1", "eval.every_epochs=1"});
  ijepa::testing::expect_input_error([&] { train(c); }, {"differ, first at " + (dir_ / "folders/train/dog")});
  EXPECT_FALSE(std::filesystem::exists(dir_ / "folders_run/jepa_r0.csv"));
}

TEST(EvalTable, OneLinePerFeaturesAndAColumnPerProtocol) {
  std::vector<EvalRow> rows;
  for (const auto& [features, protocol, top1] :
       {std::tuple{"target", "linear", 0.8123}, std::tuple{"target", "knn", 0.8},
        std::tuple{"random_init", "linear", 0.65}, std::tuple{"raw_pixels", "knn", 0.84567}}) {
    EvalRow r;
    r.epoch = 1;
    r.step = 937;
    r.features = features;
    r.protocol = protocol;
    r.top1 = top1;
    r.train_samples = 10000;
    r.test_samples = 10000;
    rows.push_back(r);
  }
  const auto lines = lines_of(format_eval_table(rows));
  ASSERT_EQ(lines.size(), 5u) << format_eval_table(rows);
  EXPECT_NE(lines[0].find("step 937 (epoch 1)"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[1], "                 linear      knn");
  EXPECT_EQ(lines[2], "  pretrained     81.23%   80.00%");
  EXPECT_EQ(lines[3], "  random init    65.00%        -");
  EXPECT_EQ(lines[4], "  raw pixels          -   84.57%");
}

}  // namespace
}  // namespace ijepa::train
