// Validation: names, ranks, sizes and numbers that must be refused, and ones that must pass.
#include "coord/validation.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/errors.h"

namespace ijepa::coord {
namespace {

using common::InputError;

TEST(Validation, RunNames) {  // the rule itself: common::is_valid_run_name (tests/common/checks_test.cpp)
  for (const std::string& good : std::vector<std::string>{"a", "jepa-fmnist_v1.2", std::string(128, 'x')}) {
    EXPECT_NO_THROW(validate_run_name(good)) << good;
  }
  for (const std::string& bad :
       std::vector<std::string>{"", "-x", ".x", "a b", "a/b", "a\nb", "ä", std::string(129, 'x')}) {
    EXPECT_THROW(validate_run_name(bad), InputError);
  }
}

TEST(Validation, RankAndWorldSize) {
  EXPECT_NO_THROW(validate_rank(0, 1));
  EXPECT_THROW(validate_rank(1, 1), InputError);
  EXPECT_THROW(validate_rank(-1, 4), InputError);
  EXPECT_THROW(validate_world_size(0), InputError);
  EXPECT_THROW(validate_world_size(kMaxWorldSize + 1), InputError);
}

TEST(Validation, CreateRunRequest) {
  v1::CreateRunRequest request;
  request.set_name("r");
  request.set_world_size(2);
  request.set_rank(1);
  request.set_host("node-1");
  EXPECT_NO_THROW(validate(request));
  request.set_host("bad host");
  EXPECT_THROW(validate(request), InputError);
  request.set_host("h");
  request.set_config_text(std::string(kMaxConfigBytes + 1, 'a'));
  EXPECT_THROW(validate(request), InputError);
  request.set_config_text("ok");
  request.set_rank(2);
  EXPECT_THROW(validate(request), InputError);
}

TEST(Validation, HeartbeatMetrics) {
  v1::HeartbeatRequest request;
  request.set_run("r");
  request.set_state(v1::WORKER_STATE_TRAINING);
  v1::StepMetrics* m = request.add_metrics();
  m->set_step(1);
  m->set_loss(std::nan(""));  // a NaN loss is news, not bad input
  EXPECT_NO_THROW(validate(request));
  m->set_step_seconds(-1);
  EXPECT_THROW(validate(request), InputError);
  m->set_step_seconds(std::numeric_limits<double>::infinity());
  EXPECT_THROW(validate(request), InputError);
  m->set_step_seconds(0.1);
  m->set_lr(std::nan(""));
  EXPECT_THROW(validate(request), InputError);
  m->set_lr(0.1);
  request.set_state(v1::WORKER_STATE_LOST);
  EXPECT_THROW(validate(request), InputError);
  request.set_state(static_cast<v1::WorkerState>(99));
  EXPECT_THROW(validate(request), InputError);
  request.set_state(v1::WORKER_STATE_TRAINING);
  for (int i = 0; i < kMaxMetricsPerHeartbeat; ++i) request.add_metrics();
  EXPECT_THROW(validate(request), InputError);
}

TEST(Validation, EventsAWorkerMayReport) {
  v1::ReportEventsRequest request;
  request.set_run("r");
  v1::Event* e = request.add_events();
  e->set_type(v1::EVENT_TYPE_CHECKPOINT_WRITTEN);
  EXPECT_NO_THROW(validate(request));
  e->set_type(v1::EVENT_TYPE_WORKER_LOST);  // the coordinator's verdict only
  EXPECT_THROW(validate(request), InputError);
  e->set_type(v1::EVENT_TYPE_EVALUATION_RESULT);
  e->set_value(std::nan(""));
  EXPECT_THROW(validate(request), InputError);
  e->set_value(0.5);
  e->set_message(std::string(kMaxTextBytes + 1, 'm'));
  EXPECT_THROW(validate(request), InputError);
  e->set_message(std::string("bell\a"));
  EXPECT_THROW(validate(request), InputError);
}

TEST(Validation, FinishNeedsAnOutcome) {
  v1::FinishRunRequest request;
  request.set_run("r");
  EXPECT_THROW(validate(request), InputError);
  request.set_outcome(v1::RUN_OUTCOME_FINISHED);
  EXPECT_NO_THROW(validate(request));
}

TEST(Validation, ListAndGetLimits) {
  v1::ListRunsRequest list;
  list.set_limit(-1);
  EXPECT_THROW(validate(list), InputError);
  v1::GetRunRequest get;
  get.set_name("r");
  get.set_max_events(kMaxEventsShown + 1);
  EXPECT_THROW(validate(get), InputError);
}

}  // namespace
}  // namespace ijepa::coord
