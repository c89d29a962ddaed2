// RunReporter: what one rank tells its /metrics (and the coordinator, which sums the ranks) about a step.
#include <gtest/gtest.h>

#include "common/config.h"
#include "coord_test_util.h"
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

}  // namespace
}  // namespace ijepa::train
