// ijepa-train's evaluation (eval.*) as users meet it: bad eval keys exit 2 naming each, the at-end table beside
// its baselines and summary.json's "eval" object, and the top-1 gauge in a rank's /metrics while it trains.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "data/data_test_util.h"
#include "test_util.h"
#include "tiny_config.h"
#ifdef IJEPA_TEST_WITH_METRICS
#include "coord_test_util.h"
#endif

namespace ijepa::train {
namespace {

using ijepa::testing::binary_path;
using ijepa::testing::read_file;
using ijepa::testing::run_command;
using ijepa::testing::TempDir;

class TrainEvalCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_ / "data");
    data::testing::write_idx_pair(dir_ / "data", "train", 64, 28, 28, /*gzip=*/true);
    data::testing::write_idx_pair(dir_ / "data", "t10k", 20, 28, 28, /*gzip=*/true);
    ijepa::testing::write_file(dir_ / "config.yaml",
                               train::testing::tiny_config(dir_ / "data") + "logging: {folder: " + (dir_ / "run") +
                                   ", log_every: 1}\n"
                                   "eval: {protocol: both, max_train_samples: 40, max_test_samples: 0}\n");
  }
  std::string train(const std::string& args) const {
    return binary_path("ijepa-train") + " --config " + (dir_ / "config.yaml") + " " + args;
  }
  TempDir dir_;
};

TEST_F(TrainEvalCliTest, BadEvalKeysExitTwoNamingEachKey) {
  const auto r =
      run_command(train("--set eval.protocol=svm --set eval.pooling=cls --set eval.max_train_samples=-5 "
                        "--set eval.max_test_samples=-1 --set eval.baselines=true --set eval.every_epochs=-2"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  for (const char* message :
       {"eval.protocol: 'svm' is not one of linear, knn, both", "eval.pooling: 'cls' is not one of avg, avg4, grid",
        "eval.max_train_samples: must not be negative", "eval.max_test_samples: must not be negative",
        "eval.baselines: needs eval.at_end: true", "eval.every_epochs: must not be negative"}) {
    EXPECT_NE(r.output.find(message), std::string::npos) << message << "\n" << r.output;
  }
  EXPECT_EQ(run_command(train("--set eval.at_end=maybe")).exit_code, 2);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "run")) << "training started";
}

TEST_F(TrainEvalCliTest, AtTheEndItPrintsTheTableBesideTheBaselinesAndWritesThemToTheSummary) {
  const auto r = run_command(train("--set optimization.max_steps=2 --set eval.at_end=true --set eval.baselines=true"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("top-1 on 20 test images, probes fitted on 40 train images"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("                 linear      knn\n  pretrained "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\n  random init "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\n  raw pixels "), std::string::npos) << r.output;

  const auto summary = nlohmann::json::parse(read_file(dir_ / "run/summary.json"));
  ASSERT_TRUE(summary.contains("eval")) << summary.dump(1);
  const auto& e = summary["eval"];
  EXPECT_EQ(e["step"], 2);
  for (const char* features : {"target", "random_init", "raw_pixels"}) {
    EXPECT_TRUE(e[features]["linear"].contains("top1")) << e.dump(1);
    EXPECT_TRUE(e[features]["knn"].contains("top1")) << e.dump(1);
  }
}

TEST_F(TrainEvalCliTest, GridPoolingProbesTheWholeTokenMap) {
  const auto r = run_command(train("--set optimization.max_steps=1 --set eval.at_end=true --set eval.pooling=grid"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // ViT-tiny on 28x28 images in 4x4 patches: 7x7 tokens of 192, kept as they are (avg pooling: 192 features)
  EXPECT_NE(r.output.find("target (9408 features): linear top-1 "), std::string::npos) << r.output;
  EXPECT_EQ(nlohmann::json::parse(read_file(dir_ / "run/summary.json"))["eval"]["pooling"], "grid");
}

TEST_F(TrainEvalCliTest, SigtermDuringTheFinalEvaluationAbandonsItAndExits143) {
  // Enough test images that the evaluation outlasts the test's patience by far: without a stop it takes minutes.
  data::testing::write_idx_pair(dir_ / "data", "t10k", 4000, 28, 28, /*gzip=*/true);
  const pid_t pid = ijepa::testing::spawn({binary_path("ijepa-train"), "--config", dir_ / "config.yaml", "--set",
                                           "optimization.max_steps=1", "--set", "eval.at_end=true"},
                                          dir_ / "log");
  // The checkpoint of the last step is written before the evaluation starts.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!std::filesystem::exists(dir_ / "run/jepa-latest.pth.tar") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  kill(pid, SIGTERM);
  const auto signalled = std::chrono::steady_clock::now();
  EXPECT_EQ(ijepa::testing::wait_exit_code(pid), 143) << read_file(dir_ / "log");
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, std::chrono::seconds(30)) << read_file(dir_ / "log");
  const std::string log = read_file(dir_ / "log");
  EXPECT_NE(log.find("evaluation abandoned during "), std::string::npos) << log;
  const auto summary = nlohmann::json::parse(read_file(dir_ / "run/summary.json"));
  EXPECT_EQ(summary["exit_reason"], "signal") << summary.dump(1);
  EXPECT_EQ(summary["steps"], 1);
}

#ifdef IJEPA_TEST_WITH_METRICS
TEST_F(TrainEvalCliTest, ARanksMetricsShowTheLastTop1ByProtocolWhileItTrains) {
  const int port = ijepa::testing::free_port();
  const pid_t pid =
      ijepa::testing::spawn({binary_path("ijepa-train"), "--config", dir_ / "config.yaml", "--set",
                             "eval.every_epochs=1", "--set", "metrics.listen=" + ijepa::testing::loopback(port)},
                            dir_ / "log");
  // One epoch is 16 steps; the gauge appears after the first evaluation and stays while training goes on.
  std::string metrics;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline) {
    metrics = ijepa::testing::http_get(port, "/metrics");
    if (metrics.find("ijepa_train_eval_top1_ratio{protocol=\"knn\"") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill(pid, SIGTERM);
  EXPECT_EQ(ijepa::testing::wait_exit_code(pid), 143) << read_file(dir_ / "log");
  EXPECT_NE(metrics.find("ijepa_train_eval_top1_ratio{protocol=\"knn\",rank=\"0\",run=\"run\"}"), std::string::npos)
      << metrics << read_file(dir_ / "log");
  EXPECT_NE(metrics.find("ijepa_train_eval_top1_ratio{protocol=\"linear\",rank=\"0\",run=\"run\"}"), std::string::npos)
      << metrics;
  const std::string csv = read_file(dir_ / "run/jepa_eval.csv");
  EXPECT_NE(csv.find("\n1,16,target,knn,"), std::string::npos) << csv;
}
#endif

}  // namespace
}  // namespace ijepa::train
