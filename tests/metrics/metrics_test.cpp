// Metrics: a rank's TrainerMetrics and the coordinator's families show the agreed names and labels, series
// leave with their run, the exporter serves /metrics over HTTP, and addresses are checked.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "common/errors.h"
#include "coord_test_util.h"
#include "metrics/coordinator_metrics.h"
#include "metrics/exporter.h"
#include "metrics/trainer_metrics.h"

namespace ijepa::metrics {
namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

StepReport sample_step() {
  StepReport r;
  r.step = 12;
  r.epoch = 1;
  r.loss = 0.25;
  r.lr = 1e-3;
  r.wd = 0.04;
  r.images_per_second = 640;
  r.step_seconds = 0.1;
  r.data_wait_seconds = 0.01;
  r.comm_wait_seconds = 0.02;
  r.images = 64;
  return r;
}

TEST(TrainerMetrics, ExportsTheTrainFamiliesWithRunAndRank) {
  TrainerMetrics metrics("fmnist", 1, "", 1);
  metrics.observe(sample_step());
  metrics.observe(sample_step());
  metrics.set_client_dropped(3);
  metrics.set_client_dropped(5);
  const std::string text = serialize(metrics.registry());
  EXPECT_TRUE(contains(text, "ijepa_train_step{rank=\"1\",run=\"fmnist\"} 12")) << text;
  EXPECT_TRUE(contains(text, "ijepa_train_loss{rank=\"1\",run=\"fmnist\"} 0.25"));
  // The trainer reports epochs counted from 1 (its CSV column), and the help text says so.
  EXPECT_TRUE(contains(text, "# HELP ijepa_train_epoch Current epoch, counted from 1")) << text;
  EXPECT_TRUE(contains(text, "ijepa_train_images_per_second{rank=\"1\",run=\"fmnist\"} 640"));
  EXPECT_TRUE(contains(text, "ijepa_train_step_duration_seconds_count{rank=\"1\",run=\"fmnist\"} 2"));
  EXPECT_TRUE(contains(text, "ijepa_train_images_total{rank=\"1\",run=\"fmnist\"} 128"));
  EXPECT_TRUE(contains(text, "ijepa_train_comm_wait_seconds_total{rank=\"1\",run=\"fmnist\"} 0.04"));
  EXPECT_TRUE(contains(text, "ijepa_coordinator_client_dropped_reports_total{rank=\"1\",run=\"fmnist\"} 5"));
  EXPECT_EQ(metrics.port(), 0);
}

TEST(TrainerMetrics, ServesOverHttpAtPortPlusOffset) {
  const int base = testing::free_port();
  TrainerMetrics metrics("r", 0, testing::loopback(base), 0);
  EXPECT_EQ(metrics.port(), base);
  metrics.observe(sample_step());
  EXPECT_TRUE(contains(testing::http_get(metrics.port(), "/metrics"), "ijepa_train_step{rank=\"0\",run=\"r\"} 12"));
  // Rank 3 as the first rank of its pod (metrics.port_offset: local_rank): the pod's fixed port, labelled rank 3.
  const int pod_port = testing::free_port();
  TrainerMetrics pod_first("r", 3, testing::loopback(pod_port), 0);
  EXPECT_EQ(pod_first.port(), pod_port);
  pod_first.observe(sample_step());
  EXPECT_TRUE(contains(testing::http_get(pod_first.port(), "/metrics"), "ijepa_train_step{rank=\"3\",run=\"r\"} 12"));
}

TEST(CoordinatorMetrics, RunSeriesComeAndGo) {
  auto registry = std::make_shared<prometheus::Registry>();
  CoordinatorMetrics metrics(registry);
  metrics.set_run_progress("a", sample_step(), 1280, 2);
  metrics.observe_worker_step("a", 0, sample_step());
  metrics.set_heartbeat_age("a", 0, 1.5);
  metrics.observe_rpc("Heartbeat", "OK", 0.001);
  metrics.count_event("a", "nan_loss");
  metrics.count_event("a", "nan_loss");
  metrics.count_event("b", "nan_loss");
  std::string text = serialize(*registry);
  EXPECT_TRUE(contains(text, "ijepa_train_step{run=\"a\"} 12")) << text;
  EXPECT_TRUE(contains(text, "ijepa_train_images_per_second{run=\"a\"} 1280"));
  EXPECT_TRUE(contains(text, "ijepa_run_live_workers{run=\"a\"} 2"));
  EXPECT_TRUE(contains(text, "ijepa_train_data_wait_seconds_total{rank=\"0\",run=\"a\"} 0.01"));
  EXPECT_TRUE(contains(text, "ijepa_worker_heartbeat_age_seconds{rank=\"0\",run=\"a\"} 1.5"));
  EXPECT_TRUE(contains(text, "ijepa_coordinator_rpcs_total{code=\"OK\",method=\"Heartbeat\"} 1"));
  EXPECT_TRUE(contains(text, "ijepa_coordinator_rpc_duration_seconds_count{method=\"Heartbeat\"} 1"));
  EXPECT_TRUE(contains(text, "ijepa_coordinator_events_total{run=\"a\",type=\"nan_loss\"} 2"));
  metrics.observe_worker_step("a", 1, sample_step());
  metrics.remove_worker("a", 0);
  text = serialize(*registry);
  EXPECT_FALSE(contains(text, "rank=\"0\"")) << text;
  EXPECT_TRUE(contains(text, "ijepa_train_data_wait_seconds_total{rank=\"1\",run=\"a\"} 0.01"));
  EXPECT_TRUE(contains(text, "ijepa_train_step{run=\"a\"} 12"));
  metrics.remove_run("a");
  text = serialize(*registry);
  EXPECT_FALSE(contains(text, "run=\"a\"")) << text;
  EXPECT_TRUE(contains(text, "ijepa_coordinator_events_total{run=\"b\",type=\"nan_loss\"} 1"));
  EXPECT_TRUE(contains(text, "ijepa_coordinator_rpcs_total"));
}

TEST(Exporter, ListenAddressForRank) {  // host:port parsing itself: tests/common/checks_test.cpp
  EXPECT_EQ(listen_address_for_rank("127.0.0.1:9000", 3), "127.0.0.1:9003");
  EXPECT_EQ(listen_address_for_rank("[::1]:0", 3), "[::1]:0");
  EXPECT_THROW(listen_address_for_rank("127.0.0.1:65535", 1), common::InputError);
  EXPECT_THROW(listen_address_for_rank("127.0.0.1:70000", 0), common::InputError);
}

// A client that sends its request a byte at a time, each well within any per-read timeout, is cut off at the
// request deadline, so a scrape queued behind it still gets its answer.
TEST(Exporter, SlowClientDelaysAScrapeByAtMostTheRequestDeadline) {
  auto registry = std::make_shared<prometheus::Registry>();
  CoordinatorMetrics metrics(registry);
  metrics.observe_rpc("Heartbeat", "OK", 0.001);
  MetricsExporter exporter("127.0.0.1:0", registry);
  const int slow = testing::connect_loopback(exporter.port());
  ASSERT_GE(slow, 0);
  std::atomic<bool> cut_off{false};
  std::thread trickle([&] {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < give_up) {
      if (::send(slow, "G", 1, MSG_NOSIGNAL) != 1) {
        cut_off = true;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the server is now busy with the slow client
  const auto start = std::chrono::steady_clock::now();
  const std::string body = testing::http_get(exporter.port(), "/metrics");
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  trickle.join();
  ::close(slow);
  EXPECT_TRUE(contains(body, "ijepa_coordinator_rpcs_total")) << body;
  EXPECT_LT(waited, 6.0) << "a scrape waited behind a trickling client";
  EXPECT_TRUE(cut_off.load()) << "the slow client was never disconnected";
}

TEST(Exporter, BusyPortIsAnInputError) {
  auto registry = std::make_shared<prometheus::Registry>();
  MetricsExporter first("127.0.0.1:0", registry);
  EXPECT_THROW(MetricsExporter("127.0.0.1:" + std::to_string(first.port()), registry), common::InputError);
}

}  // namespace
}  // namespace ijepa::metrics
