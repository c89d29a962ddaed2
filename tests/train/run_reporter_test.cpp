// RunReporter: what one rank tells its /metrics (and the coordinator, which sums the ranks) about a step, and
// how a run that fails on an error reaches a real ijepa-coordinator.
#include <gtest/gtest.h>

#include "common/config.h"
#include "coord_test_util.h"
#include "coordinator_process.h"
#include "train/run_reporter.h"

namespace ijepa::train {
namespace {

TEST(RunReporter, EachRankReportsItsOwnThroughputNotTheJobs) {
  // Rank 0 of 2: the CSV row holds the job's 64 images/s (2 ranks x 16 images in 0.5 s); the rank's own
  // throughput is 32, and the coordinator adds the two ranks' figures.
  common::Config config;
  config.logging.folder = "/tmp/ijepa-run-reporter-test";
  const int port = ijepa::testing::free_port();
  config.metrics.listen = ijepa::testing::loopback(port);
  RunReporter reporter(config, /*rank=*/0, /*local_rank=*/0, /*world_size=*/2);
  CsvRow row;
  row.step = 7;
  row.step_ms = 500;
  row.images_per_second = 64;
  reporter.step(row, /*images=*/16, /*comm_wait_s=*/0.0);
  const std::string text = ijepa::testing::http_get(port, "/metrics");
  EXPECT_NE(text.find("ijepa_train_step{rank=\"0\",run=\"ijepa-run-reporter-test\"} 7"), std::string::npos) << text;
  EXPECT_NE(text.find("ijepa_train_images_per_second{rank=\"0\",run=\"ijepa-run-reporter-test\"} 32"),
            std::string::npos)
      << text;
}

TEST(RunReporter, AnErrorEndsTheRunAsFailedWithAStallEventSayingWhere) {
  ijepa::testing::TempDir dir;
  ijepa::testing::Coordinator coordinator(dir);
  common::Config config;
  config.logging.folder = dir / "failing-run";
  config.coordinator.address = coordinator.address();
  config.coordinator.heartbeat_s = 0.1;
  {
    RunReporter reporter(config, /*rank=*/0, /*local_rank=*/0, /*world_size=*/1);
    CsvRow row;
    row.step = 3;
    row.step_ms = 100;
    reporter.step(row, 16, 0.0);
    reporter.failed("all_reduce(fp32, 4 B) #9 did not complete within 5 s\x01 on rank 0 of 2; not arrived: rank 1", 3,
                    /*stalled=*/true);
  }
  const auto detail = ijepa::testing::show_json(coordinator.address(), "failing-run", dir);
  ASSERT_FALSE(detail.is_null()) << coordinator.log();
  EXPECT_EQ(detail["run"]["state"], "failed") << detail.dump(2);
  bool stall_seen = false;
  for (const auto& event : detail["events"]) {
    if (event["type"] != "stall") continue;
    stall_seen = true;
    EXPECT_EQ(event["step"], 3);
    EXPECT_NE(event["message"].get<std::string>().find("did not complete within 5 s  on rank 0 of 2"),
              std::string::npos)
        << "the control character is sent as a space";
  }
  EXPECT_TRUE(stall_seen) << detail.dump(2);
}

}  // namespace
}  // namespace ijepa::train
