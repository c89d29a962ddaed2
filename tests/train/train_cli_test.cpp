// ijepa-train as users run it: exit codes, --validate, config errors, SIGTERM and bad checkpoints.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "data/data_test_util.h"
#include "test_util.h"
#include "tiny_config.h"

namespace ijepa::train {
namespace {

using ijepa::testing::binary_path;
using ijepa::testing::read_file;
using ijepa::testing::run_command;
using ijepa::testing::TempDir;

class TrainCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_ / "data");
    data::testing::write_idx_pair(dir_ / "data", "train", 64, 28, 28, /*gzip=*/true);
    ijepa::testing::write_file(dir_ / "config.yaml", train::testing::tiny_config(dir_ / "data") +
                                                         "logging: {folder: " + (dir_ / "run") + ", log_every: 1}\n");
  }
  std::string train(const std::string& args) const {
    return binary_path("ijepa-train") + " --config " + (dir_ / "config.yaml") + " " + args;
  }
  TempDir dir_;
};

TEST_F(TrainCliTest, ValidatePrintsTheResolvedConfigAndExitsZero) {
  const auto r = run_command(train("--validate --set optimization.lr=0.005"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("lr: 0.005"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("write_tag: jepa"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "run")) << "--validate must not start any work";
}

TEST_F(TrainCliTest, ConfigErrorsExitTwoNamingEveryKey) {
  const auto r = run_command(train("--set optimization.lr=fast --set data.crop_size=30 --set meta.bogus=1"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("optimization.lr: expected a number"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("mask.patch_size: data.crop_size 30 is not divisible"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("meta.bogus: unknown key"), std::string::npos) << r.output;
  EXPECT_EQ(run_command(binary_path("ijepa-train") + " --config " + (dir_ / "missing.yaml")).exit_code, 2);
}

TEST_F(TrainCliTest, AMalformedDatasetIsAClearErrorAtStart) {
  ijepa::testing::write_file(dir_ / "data/train-labels-idx1-ubyte.gz", "not gzip at all");
  const auto r = run_command(train(""));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("train-labels-idx1-ubyte"), std::string::npos) << r.output;
}

TEST_F(TrainCliTest, ARunFolderThatCannotBeCreatedIsAnInputErrorNamingTheKey) {
  ijepa::testing::write_file(dir_ / "taken", "a file where the run folder's parent should be");
  const auto r = run_command(train("--set logging.folder=" + (dir_ / "taken/run")));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("logging.folder: cannot create " + (dir_ / "taken/run")), std::string::npos) << r.output;
}

// A resume with settings that change the trajectory says which, once; settings that do not (max_steps) go unnamed.
TEST_F(TrainCliTest, ResumingWithOtherSettingsNamesThem) {
  ASSERT_EQ(run_command(train("--set optimization.max_steps=2")).exit_code, 0);
  const auto same = run_command(train("--set meta.load_checkpoint=true --set optimization.max_steps=3"));
  EXPECT_EQ(same.exit_code, 0) << same.output;
  EXPECT_EQ(same.output.find("other settings"), std::string::npos) << same.output;
  const auto changed =
      run_command(train("--set meta.load_checkpoint=true --set optimization.max_steps=4 --set optimization.epochs=60"));
  EXPECT_EQ(changed.exit_code, 0) << changed.output;
  EXPECT_NE(changed.output.find("was written with other settings, so the run does not continue as it would have: "
                                "optimization.epochs: 50 -> 60"),
            std::string::npos)
      << changed.output;
  EXPECT_EQ(changed.output.find("max_steps:"), std::string::npos) << changed.output;
}

TEST_F(TrainCliTest, SigtermFinishesTheStepCheckpointsAndExits143) {
  const pid_t pid = ijepa::testing::spawn({binary_path("ijepa-train"), "--config", dir_ / "config.yaml"}, dir_ / "log");
  // Wait until a few steps are logged, then ask it to stop.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  bool training = false;
  while (!training && std::chrono::steady_clock::now() < deadline) {
    const std::string csv = read_file(dir_ / "run/jepa_r0.csv");
    training = std::count(csv.begin(), csv.end(), '\n') >= 4;
    if (!training) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!training) {
    kill(pid, SIGKILL);
    ijepa::testing::wait_exit_code(pid);
    FAIL() << "no 3 steps logged within 120 s: " << read_file(dir_ / "log");
  }
  kill(pid, SIGTERM);
  EXPECT_EQ(ijepa::testing::wait_exit_code(pid), 143) << read_file(dir_ / "log");
  const auto summary = nlohmann::json::parse(read_file(dir_ / "run/summary.json"));
  EXPECT_EQ(summary["exit_reason"], "signal");
  const int64_t steps = summary["steps"];
  EXPECT_GE(steps, 3);
  char name[64];
  std::snprintf(name, sizeof name, "run/jepa-step%08lld.pth.tar", static_cast<long long>(steps));
  EXPECT_TRUE(std::filesystem::exists(dir_ / name)) << "no checkpoint of the last completed step";

  // It resumes from there; a corrupt checkpoint is refused with exit code 2.
  const auto resumed =
      run_command(train("--set meta.load_checkpoint=true --set optimization.max_steps=" + std::to_string(steps + 1)));
  EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resumed from"), std::string::npos);
  ijepa::testing::write_file(dir_ / "run/jepa-latest.pth.tar", "garbage");
  const auto corrupt = run_command(train("--set meta.load_checkpoint=true"));
  EXPECT_EQ(corrupt.exit_code, 2) << corrupt.output;
  EXPECT_NE(corrupt.output.find("jepa-latest.pth.tar"), std::string::npos) << corrupt.output;
}

}  // namespace
}  // namespace ijepa::train
