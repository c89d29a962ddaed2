// RunRegistry: the state rules, lost-worker detection, the failure of runs left without a live worker and their
// takeover by a new job, stop delivery, persistence across a restart, the removal of ended runs' metric series and
// the forgetting of ended runs, on a fake clock.
#include "coord/run_registry.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <sqlite3.h>

#include <future>
#include <thread>

#include "common/errors.h"
#include "coord/ctl_format.h"
#include "metrics/coordinator_metrics.h"
#include "metrics/exporter.h"
#include "test_util.h"

namespace ijepa::coord {
namespace {

// Makes every write to TABLES fail while it lives: triggers added through a second connection.
class FailingWrites {
 public:
  explicit FailingWrites(const std::string& path, std::vector<std::string> tables = {"runs", "workers"})
      : tables_(std::move(tables)) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    for (const std::string& table : tables_) {
      for (const char* operation : {"INSERT", "UPDATE"}) {
        exec(std::string("CREATE TRIGGER fail_") + operation + "_" + table + " BEFORE " + operation + " ON " + table +
             " BEGIN SELECT RAISE(ABORT, 'injected write failure'); END");
      }
    }
  }
  ~FailingWrites() {
    for (const std::string& table : tables_) {
      for (const char* operation : {"INSERT", "UPDATE"})
        exec(std::string("DROP TRIGGER fail_") + operation + "_" + table);
    }
    sqlite3_close(db_);
  }
  FailingWrites(const FailingWrites&) = delete;
  FailingWrites& operator=(const FailingWrites&) = delete;

 private:
  void exec(const std::string& sql) {
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sql;
  }
  std::vector<std::string> tables_;
  sqlite3* db_ = nullptr;
};

class RegistryTest : public ::testing::Test {
 protected:
  RegistryTest()
      : storage_(std::make_unique<Storage>(dir_ / "c.db")),
        prometheus_(std::make_shared<prometheus::Registry>()),
        metrics_(prometheus_) {
    restart();
  }

  void restart() {
    registry_.reset();
    storage_ = std::make_unique<Storage>(dir_ / "c.db");
    registry_ = std::make_unique<RunRegistry>(*storage_, &metrics_,
                                              RegistryOptions{10.0, 100.0, 60.0, [this] { return now_; }});
  }

  v1::CreateRunResponse create(const std::string& name, int world_size, int rank = 0) {
    v1::CreateRunRequest request;
    request.set_name(name);
    request.set_world_size(world_size);
    request.set_rank(rank);
    request.set_config_text("meta: {}");
    return registry_->create_run(request);
  }

  void register_rank(const std::string& run, int rank, const std::string& host = "node", int64_t pid = 0) {
    v1::RegisterWorkerRequest request;
    request.set_run(run);
    request.set_rank(rank);
    request.set_host(host);
    request.set_pid(pid);
    registry_->register_worker(request);
  }

  v1::HeartbeatResponse beat(const std::string& run, int rank, int64_t step) {
    v1::HeartbeatRequest request;
    request.set_run(run);
    request.set_rank(rank);
    request.set_state(v1::WORKER_STATE_TRAINING);
    request.set_step(step);
    v1::StepMetrics* m = request.add_metrics();
    m->set_step(step);
    m->set_loss(0.5);
    m->set_images_per_second(100);
    m->set_step_seconds(0.1);
    m->set_data_wait_seconds(0.02);
    return registry_->heartbeat(request);
  }

  v1::GetRunResponse get(const std::string& name) {
    v1::GetRunRequest request;
    request.set_name(name);
    return registry_->get_run(request);
  }

  void finish(const std::string& run, int rank, v1::RunOutcome outcome, const std::string& reason = "") {
    v1::FinishRunRequest request;
    request.set_run(run);
    request.set_rank(rank);
    request.set_outcome(outcome);
    request.set_reason(reason);
    registry_->finish_run(request);
  }

  bool has_event(const std::string& run, v1::EventType type) { return !event_message(run, type).empty(); }

  // The message of the run's latest event of TYPE; empty when there is none.
  std::string event_message(const std::string& run, v1::EventType type) {
    const v1::GetRunResponse detail = get(run);
    std::string message;
    for (const v1::Event& e : detail.events()) {
      if (e.type() == type) message = e.message().empty() ? "-" : e.message();
    }
    return message;
  }

  std::string scrape() { return metrics::serialize(*prometheus_); }

  testing::TempDir dir_;
  double now_ = 1000.0;
  std::unique_ptr<Storage> storage_;
  std::shared_ptr<prometheus::Registry> prometheus_;
  metrics::CoordinatorMetrics metrics_;
  std::unique_ptr<RunRegistry> registry_;
};

TEST_F(RegistryTest, CreateThenJoin) {
  EXPECT_TRUE(create("r", 2).created());
  const auto joined = create("r", 2, 1);
  EXPECT_FALSE(joined.created());
  EXPECT_EQ(joined.run().state(), v1::RUN_STATE_RUNNING);
  EXPECT_THROW(create("r", 4), ConflictError);
}

TEST_F(RegistryTest, HeartbeatsCarryProgressIntoTheRunAndMetrics) {
  create("r", 2);
  register_rank("r", 0);
  register_rank("r", 1);
  beat("r", 0, 5);
  beat("r", 1, 6);
  const auto detail = get("r");
  EXPECT_EQ(detail.run().latest().step(), 6);
  EXPECT_EQ(detail.run().live_workers(), 2);
  EXPECT_DOUBLE_EQ(detail.run().images_per_second(), 200.0);
  EXPECT_DOUBLE_EQ(detail.workers(0).data_wait_seconds_total(), 0.02);
  const std::string text = scrape();
  EXPECT_NE(text.find("ijepa_train_step{run=\"r\"} 6"), std::string::npos) << text;
  EXPECT_NE(text.find("ijepa_train_step_duration_seconds_count{run=\"r\"} 2"), std::string::npos);
  EXPECT_NE(text.find("ijepa_coordinator_runs{state=\"running\"} 1"), std::string::npos);
  EXPECT_NE(text.find("ijepa_coordinator_workers{state=\"live\"} 2"), std::string::npos);
}

TEST_F(RegistryTest, AResentHeartbeatCountsItsStepsOnce) {
  create("r", 1);
  register_rank("r", 0);
  beat("r", 0, 5);
  beat("r", 0, 5);  // the reply to the first was lost and the rank sent it again
  EXPECT_DOUBLE_EQ(get("r").workers(0).data_wait_seconds_total(), 0.02);
  std::string text = scrape();
  EXPECT_NE(text.find("ijepa_train_step_duration_seconds_count{run=\"r\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("ijepa_train_data_wait_seconds_total{rank=\"0\",run=\"r\"} 0.02\n"), std::string::npos) << text;
  beat("r", 0, 6);
  EXPECT_DOUBLE_EQ(get("r").workers(0).data_wait_seconds_total(), 0.04);

  register_rank("r", 0);  // the rank restarted from an earlier checkpoint: its steps count again
  beat("r", 0, 3);
  EXPECT_DOUBLE_EQ(get("r").workers(0).data_wait_seconds_total(), 0.06);
  EXPECT_EQ(get("r").workers(0).latest().step(), 3);
  text = scrape();
  EXPECT_NE(text.find("ijepa_train_step_duration_seconds_count{run=\"r\"} 3\n"), std::string::npos) << text;
}

TEST_F(RegistryTest, HeartbeatsReachTheDatabaseOnFlushOtherChangesAtOnce) {
  create("r", 1);
  register_rank("r", 0);
  beat("r", 0, 5);
  Storage reader(dir_ / "c.db");
  ASSERT_EQ(reader.load_runs().size(), 1u);  // the creation is written through
  EXPECT_EQ(reader.load_runs()[0].latest().step(), 0);
  registry_->flush();
  EXPECT_EQ(reader.load_runs()[0].latest().step(), 5);
  EXPECT_EQ(reader.load_workers()[0].step(), 5);
}

TEST_F(RegistryTest, RecordsOfAFailedWriteGoWithTheNextSuccessfulOne) {
  create("r", 1);
  register_rank("r", 0);
  beat("r", 0, 5);
  v1::StopRunRequest stop;
  stop.set_name("r");
  {
    const FailingWrites failing(dir_ / "c.db");
    EXPECT_THROW(registry_->flush(), std::runtime_error);
    EXPECT_THROW(registry_->stop_run(stop), std::runtime_error);  // written through: fails at once
  }
  Storage reader(dir_ / "c.db");
  EXPECT_EQ(reader.load_runs()[0].latest().step(), 0) << "nothing of the failed writes reached the database";
  registry_->flush();
  EXPECT_EQ(reader.load_runs()[0].latest().step(), 5);
  EXPECT_EQ(reader.load_runs()[0].state(), v1::RUN_STATE_STOPPING);
  EXPECT_EQ(reader.load_workers()[0].step(), 5);
}

// A run's end and its run_ended event go in one transaction: when the event cannot be written, neither is the
// end, and both go with the next successful write; watchers see the end at once.
TEST_F(RegistryTest, EventsAndTheChangeThatCausedThemAreWrittenTogether) {
  create("r", 1);
  register_rank("r", 0);
  WatchCursor cursor;
  v1::WatchRunResponse update;
  ASSERT_TRUE(registry_->next_update("r", cursor, std::chrono::milliseconds(0), update));
  Storage reader(dir_ / "c.db");
  {
    const FailingWrites failing(dir_ / "c.db", {"events"});
    EXPECT_THROW(finish("r", 0, v1::RUN_OUTCOME_FINISHED), std::runtime_error);
    EXPECT_EQ(reader.load_runs()[0].state(), v1::RUN_STATE_RUNNING);
    EXPECT_THROW(registry_->flush(), std::runtime_error);
  }
  ASSERT_TRUE(registry_->next_update("r", cursor, std::chrono::milliseconds(0), update));
  EXPECT_EQ(update.run().state(), v1::RUN_STATE_FINISHED);
  registry_->flush();
  EXPECT_EQ(reader.load_runs()[0].state(), v1::RUN_STATE_FINISHED);
  EXPECT_EQ(reader.load_workers()[0].state(), v1::WORKER_STATE_FINISHED);
  EXPECT_TRUE(has_event("r", v1::EVENT_TYPE_RUN_ENDED));
}

TEST_F(RegistryTest, UnknownRunOrRankIsNotFound) {
  EXPECT_THROW(get("nope"), NotFoundError);
  create("r", 2);
  EXPECT_THROW(beat("r", 1, 1), NotFoundError);
  EXPECT_THROW(register_rank("r", 2), common::InputError);
  EXPECT_THROW(beat("r", 2, 1), common::InputError) << "out of range: invalid, whoever registered";
}

TEST_F(RegistryTest, SilentWorkerIsLostAndStallsTheRunUntilItReturns) {
  create("r", 2);
  register_rank("r", 0);
  register_rank("r", 1);
  now_ += 8;
  beat("r", 0, 1);
  now_ += 5;  // rank 1 silent for 13 s > 10 s
  registry_->tick();
  auto detail = get("r");
  EXPECT_EQ(detail.run().state(), v1::RUN_STATE_STALLED);
  EXPECT_NE(detail.run().reason().find("rank 1 lost"), std::string::npos) << detail.run().reason();
  EXPECT_EQ(detail.workers(1).state(), v1::WORKER_STATE_LOST);
  EXPECT_TRUE(has_event("r", v1::EVENT_TYPE_WORKER_LOST));
  EXPECT_NE(scrape().find("ijepa_coordinator_workers{state=\"lost\"} 1"), std::string::npos);

  beat("r", 1, 1);
  detail = get("r");
  EXPECT_EQ(detail.run().state(), v1::RUN_STATE_RUNNING);
  EXPECT_TRUE(detail.run().reason().empty());
  EXPECT_TRUE(has_event("r", v1::EVENT_TYPE_WORKER_RECOVERED));
}

TEST_F(RegistryTest, StopReachesWorkersInTheirNextHeartbeat) {
  create("r", 1);
  register_rank("r", 0);
  EXPECT_FALSE(beat("r", 0, 1).stop_requested());
  v1::StopRunRequest stop;
  stop.set_name("r");
  stop.set_reason("maintenance");
  EXPECT_EQ(registry_->stop_run(stop).run().state(), v1::RUN_STATE_STOPPING);
  const auto reply = beat("r", 0, 2);
  EXPECT_TRUE(reply.stop_requested());
  EXPECT_EQ(reply.stop_reason(), "maintenance");
  finish("r", 0, v1::RUN_OUTCOME_STOPPED);
  EXPECT_EQ(get("r").run().state(), v1::RUN_STATE_STOPPED);
  EXPECT_THROW(registry_->stop_run(stop), ConflictError);
}

// A rank registered again by another process while still live (a requeued job, or two jobs with one run name) is
// taken over, with a warning in the history; the same process registering again is no news.
TEST_F(RegistryTest, ALiveRankRegisteredByAnotherProcessLeavesAWarning) {
  create("r", 1);
  register_rank("r", 0, "node-a", 100);
  register_rank("r", 0, "node-a", 100);
  EXPECT_FALSE(has_event("r", v1::EVENT_TYPE_MESSAGE));
  register_rank("r", 0, "node-b", 200);
  EXPECT_EQ(event_message("r", v1::EVENT_TYPE_MESSAGE),
            "warning: rank 0 registered again from host node-b pid 200 while host node-a pid 100 was live (a requeued "
            "job, or two jobs with one run name?)");
  const v1::GetRunResponse detail = get("r");
  EXPECT_EQ(detail.workers(0).host(), "node-b");
  EXPECT_EQ(detail.run().live_workers(), 1);
}

TEST_F(RegistryTest, RankZeroFinishesTheRunAnyRankFailsIt) {
  create("ok", 2);
  register_rank("ok", 0);
  register_rank("ok", 1);
  finish("ok", 1, v1::RUN_OUTCOME_FINISHED);
  EXPECT_EQ(get("ok").run().state(), v1::RUN_STATE_RUNNING);
  finish("ok", 0, v1::RUN_OUTCOME_FINISHED);
  EXPECT_EQ(get("ok").run().state(), v1::RUN_STATE_FINISHED);
  EXPECT_TRUE(has_event("ok", v1::EVENT_TYPE_RUN_ENDED));

  create("bad", 2);
  register_rank("bad", 1);
  finish("bad", 1, v1::RUN_OUTCOME_FAILED, "out of memory");
  const auto run = get("bad").run();
  EXPECT_EQ(run.state(), v1::RUN_STATE_FAILED);
  EXPECT_EQ(run.reason(), "rank 1: out of memory");
}

TEST_F(RegistryTest, OnlyRankZeroReopensAnEndedRun) {
  create("r", 1);
  register_rank("r", 0);
  finish("r", 0, v1::RUN_OUTCOME_FINISHED);
  EXPECT_EQ(create("r", 1, 0).run().state(), v1::RUN_STATE_RUNNING);
  finish("r", 0, v1::RUN_OUTCOME_FINISHED);

  create("s", 2);
  finish("s", 0, v1::RUN_OUTCOME_FINISHED);
  EXPECT_EQ(create("s", 2, 1).run().state(), v1::RUN_STATE_FINISHED);
  EXPECT_THROW(register_rank("s", 1), ConflictError);
}

// A job resumed from an earlier checkpoint, with fewer ranks: the run shows the new job's progress at once, and the
// old job's workers and their series are gone.
TEST_F(RegistryTest, AReopenedRunForgetsTheOldJobsWorkersAndProgress) {
  create("r", 2);
  register_rank("r", 0);
  register_rank("r", 1);
  beat("r", 0, 100);
  beat("r", 1, 100);
  registry_->tick();
  finish("r", 0, v1::RUN_OUTCOME_FINISHED);
  ASSERT_NE(scrape().find("ijepa_worker_heartbeat_age_seconds{rank=\"1\",run=\"r\"}"), std::string::npos);

  create("r", 1);
  v1::GetRunResponse detail = get("r");
  EXPECT_FALSE(detail.run().has_latest());
  EXPECT_EQ(detail.workers_size(), 0);
  std::string text = scrape();
  EXPECT_EQ(text.find("rank=\"1\""), std::string::npos) << text;
  EXPECT_EQ(text.find("rank=\"0\""), std::string::npos) << text;
  restart();
  EXPECT_EQ(get("r").workers_size(), 0) << "the old workers are gone from the database too";

  register_rank("r", 0);
  beat("r", 0, 60);
  detail = get("r");
  EXPECT_EQ(detail.run().latest().step(), 60);
  EXPECT_EQ(detail.workers(0).latest().step(), 60);
  text = scrape();
  EXPECT_NE(text.find("ijepa_train_step{run=\"r\"} 60\n"), std::string::npos) << text;
  EXPECT_NE(text.find("ijepa_train_data_wait_seconds_total{rank=\"0\",run=\"r\"} 0.02\n"), std::string::npos) << text;
}

TEST_F(RegistryTest, StoppingRunWhoseWorkersAllVanishedEndsStopped) {
  create("r", 1);
  register_rank("r", 0);
  v1::StopRunRequest stop;
  stop.set_name("r");
  registry_->stop_run(stop);
  now_ += 11;
  registry_->tick();
  EXPECT_EQ(get("r").run().state(), v1::RUN_STATE_STOPPED);
}

TEST_F(RegistryTest, RunWhoseWorkersAreAllLostFailsAfterTheGracePeriodAndLeavesTheMetrics) {
  create("r", 2);
  register_rank("r", 0);
  register_rank("r", 1);
  for (int i = 0; i < 10; ++i) {  // rank 1 lost, rank 0 alive far past the grace period: only stalled
    now_ += 9;
    beat("r", 0, i + 1);
    registry_->tick();
  }
  EXPECT_EQ(get("r").run().state(), v1::RUN_STATE_STALLED);
  const double last_heartbeat = now_;
  now_ += 11;  // rank 0 lost too
  registry_->tick();
  EXPECT_EQ(get("r").run().state(), v1::RUN_STATE_STALLED);
  now_ += 60;  // not longer than the 60 s grace period
  registry_->tick();
  EXPECT_EQ(get("r").run().state(), v1::RUN_STATE_STALLED);
  EXPECT_NE(scrape().find("ijepa_coordinator_runs{state=\"stalled\"} 1"), std::string::npos);

  now_ += 1;
  registry_->tick();
  const v1::Run failed = get("r").run();
  EXPECT_EQ(failed.state(), v1::RUN_STATE_FAILED);
  EXPECT_DOUBLE_EQ(failed.ended_time(), now_);
  EXPECT_EQ(last_heartbeat, 1090.0);
  const std::string reason = "all workers lost: no heartbeat since 1970-01-01T00:18:10Z (72.0 s ago)";
  EXPECT_EQ(failed.reason(), reason + "; none came back within 60.0 s");
  EXPECT_EQ(event_message("r", v1::EVENT_TYPE_RUN_ENDED), "failed: " + failed.reason());
  const std::string text = scrape();
  EXPECT_NE(text.find("ijepa_coordinator_runs{state=\"failed\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("ijepa_coordinator_runs{state=\"stalled\"} 0"), std::string::npos) << text;
  EXPECT_NE(text.find("ijepa_train_step{run=\"r\"} 10"), std::string::npos) << text;

  restart();  // the end is in the database
  EXPECT_EQ(get("r").run().state(), v1::RUN_STATE_FAILED);
  EXPECT_EQ(get("r").run().reason(), failed.reason());
  now_ += 101;
  registry_->tick();
  EXPECT_EQ(scrape().find("run=\"r\""), std::string::npos) << scrape();

  // The name is free again: a resumed job of another world size reopens it.
  const v1::Run reopened = create("r", 3).run();
  EXPECT_EQ(reopened.state(), v1::RUN_STATE_RUNNING);
  EXPECT_EQ(reopened.world_size(), 3);
  register_rank("r", 2);
  EXPECT_EQ(beat("r", 2, 11).run_state(), v1::RUN_STATE_RUNNING);
}

// A run that no rank ever joined, or whose only live ranks finished without rank 0, is abandoned after a heartbeat
// timeout as if its workers were lost: it stalls, fails after the grace period, and a job of another world size
// may take it over.
TEST_F(RegistryTest, ARunWithoutALiveWorkerIsAbandonedAfterTheHeartbeatTimeout) {
  create("r", 2);
  now_ += 10;
  registry_->tick();
  EXPECT_EQ(get("r").run().state(), v1::RUN_STATE_RUNNING) << "its ranks may still be starting";
  EXPECT_THROW(create("r", 4), ConflictError);
  now_ += 1;
  registry_->tick();
  EXPECT_EQ(get("r").run().state(), v1::RUN_STATE_STALLED);
  EXPECT_EQ(get("r").run().reason(), "no worker registered for 11.0 s (timeout 10.0 s)");
  now_ += 61;
  registry_->tick();
  EXPECT_EQ(get("r").run().state(), v1::RUN_STATE_FAILED);
  EXPECT_EQ(get("r").run().reason(),
            "no worker registered since 1970-01-01T00:16:40Z (72.0 s ago); none came back within 60.0 s");

  create("q", 2);
  register_rank("q", 1);
  finish("q", 1, v1::RUN_OUTCOME_FINISHED);  // rank 0 never came
  now_ += 11;
  registry_->tick();
  EXPECT_EQ(get("q").run().state(), v1::RUN_STATE_STALLED);
  const v1::Run taken = create("q", 1).run();
  EXPECT_EQ(taken.state(), v1::RUN_STATE_RUNNING);
  EXPECT_EQ(taken.world_size(), 1);
  EXPECT_EQ(event_message("q", v1::EVENT_TYPE_RUN_ENDED),
            "failed: no live worker since 1970-01-01T00:17:52Z (11.0 s ago); taken over by a job with world size 1");
}

TEST_F(RegistryTest, ARestoredRunWithoutALiveWorkerIsAbandonedAndAStopEndsSuchARun) {
  create("r", 1);
  now_ += 100;
  restart();  // the timeout counts from the restart
  registry_->tick();
  EXPECT_EQ(get("r").run().state(), v1::RUN_STATE_RUNNING);
  now_ += 11;
  registry_->tick();
  EXPECT_EQ(get("r").run().state(), v1::RUN_STATE_STALLED);

  create("s", 1);
  v1::StopRunRequest stop;
  stop.set_name("s");
  EXPECT_EQ(registry_->stop_run(stop).run().state(), v1::RUN_STATE_STOPPING);
  now_ += 11;
  registry_->tick();
  EXPECT_EQ(get("s").run().state(), v1::RUN_STATE_STOPPED);
  EXPECT_EQ(get("s").run().reason(), "stop requested; no live worker left");
}

TEST_F(RegistryTest, RestartStartsTheGracePeriodOfALostRunAgain) {
  create("r", 1);
  register_rank("r", 0);
  now_ += 11;
  registry_->tick();
  ASSERT_EQ(get("r").run().state(), v1::RUN_STATE_STALLED);
  now_ += 50;
  restart();
  now_ += 50;  // 100 s since all were lost, 50 s since the restart
  registry_->tick();
  EXPECT_EQ(get("r").run().state(), v1::RUN_STATE_STALLED);
  now_ += 11;
  registry_->tick();
  EXPECT_EQ(get("r").run().state(), v1::RUN_STATE_FAILED);
}

TEST_F(RegistryTest, NewJobOfAnotherWorldSizeTakesOverARunWhoseWorkersAreAllLost) {
  create("r", 2);
  register_rank("r", 0);
  register_rank("r", 1);
  beat("r", 0, 7);
  now_ += 8;
  beat("r", 0, 8);
  now_ += 3;
  registry_->tick();
  ASSERT_EQ(get("r").run().state(), v1::RUN_STATE_STALLED);
  EXPECT_THROW(create("r", 4), ConflictError) << "rank 0 is still live";

  now_ += 9;
  registry_->tick();
  ASSERT_EQ(get("r").run().state(), v1::RUN_STATE_STALLED);
  EXPECT_THROW(create("r", 4, 1), ConflictError) << "only the new job's rank 0 takes over";
  EXPECT_THROW(register_rank("r", 3), common::InputError);

  const v1::CreateRunResponse taken = create("r", 4);
  EXPECT_FALSE(taken.created());
  EXPECT_EQ(taken.run().state(), v1::RUN_STATE_RUNNING);
  EXPECT_EQ(taken.run().world_size(), 4);
  EXPECT_TRUE(taken.run().reason().empty());
  EXPECT_EQ(event_message("r", v1::EVENT_TYPE_RUN_ENDED),
            "failed: all workers lost: no heartbeat since 1970-01-01T00:16:48Z (12.0 s ago); taken over by a job "
            "with world size 4");
  EXPECT_EQ(event_message("r", v1::EVENT_TYPE_RUN_CREATED), "reopened (was failed) with world size 4");
  EXPECT_FALSE(create("r", 4, 3).created());
  for (int rank = 0; rank < 4; ++rank) register_rank("r", rank);
  EXPECT_EQ(beat("r", 3, 9).run_state(), v1::RUN_STATE_RUNNING);
  EXPECT_EQ(get("r").run().live_workers(), 4);
}

TEST_F(RegistryTest, RestartKeepsEverythingAndGivesWorkersAGracePeriod) {
  create("r", 1);
  register_rank("r", 0);
  beat("r", 0, 42);
  const double created = get("r").run().created_time();
  now_ += 1000;  // the coordinator was down far longer than the timeout
  restart();
  auto detail = get("r");
  EXPECT_EQ(detail.run().created_time(), created);
  EXPECT_EQ(detail.run().latest().step(), 42);
  EXPECT_EQ(detail.workers_size(), 1);
  EXPECT_TRUE(has_event("r", v1::EVENT_TYPE_RUN_CREATED));
  registry_->tick();
  EXPECT_EQ(get("r").run().state(), v1::RUN_STATE_RUNNING);
  EXPECT_EQ(beat("r", 0, 43).run_state(), v1::RUN_STATE_RUNNING);
}

TEST_F(RegistryTest, EndedRunsLeaveTheMetricsAfterRetention) {
  create("r", 1);
  register_rank("r", 0);
  beat("r", 0, 3);
  finish("r", 0, v1::RUN_OUTCOME_FINISHED);
  registry_->tick();
  EXPECT_NE(scrape().find("run=\"r\""), std::string::npos);
  now_ += 101;
  registry_->tick();
  EXPECT_EQ(scrape().find("run=\"r\""), std::string::npos) << scrape();
  EXPECT_EQ(get("r").run().latest().step(), 3);  // the record stays
}

TEST_F(RegistryTest, ReportedEventsAreRecorded) {
  create("r", 1);
  register_rank("r", 0);
  v1::ReportEventsRequest request;
  request.set_run("r");
  v1::Event* e = request.add_events();
  e->set_type(v1::EVENT_TYPE_NAN_LOSS);
  e->set_step(9);
  e->set_message("loss is nan");
  registry_->report_events(request);
  const auto detail = get("r");
  const v1::Event& last = detail.events(detail.events_size() - 1);
  EXPECT_EQ(last.type(), v1::EVENT_TYPE_NAN_LOSS);
  EXPECT_EQ(last.step(), 9);
  EXPECT_NE(scrape().find("ijepa_coordinator_events_total{run=\"r\",type=\"nan_loss\"} 1"), std::string::npos);
}

// Late events of an ended run go into its history, but never bring back its series once retention removed them.
TEST_F(RegistryTest, EventsOfARunPastRetentionAreKeptButNotCounted) {
  create("r", 1);
  register_rank("r", 0);
  finish("r", 0, v1::RUN_OUTCOME_FINISHED);
  now_ += 101;
  registry_->tick();
  ASSERT_EQ(scrape().find("run=\"r\""), std::string::npos);
  v1::ReportEventsRequest request;
  request.set_run("r");
  v1::Event* e = request.add_events();
  e->set_type(v1::EVENT_TYPE_CHECKPOINT_WRITTEN);
  e->set_message("/runs/r/jepa-latest.pth.tar");
  registry_->report_events(request);
  EXPECT_EQ(event_message("r", v1::EVENT_TYPE_CHECKPOINT_WRITTEN), "/runs/r/jepa-latest.pth.tar");
  EXPECT_EQ(scrape().find("run=\"r\""), std::string::npos) << scrape();
}

// An ended run leaves memory and the database forget_after_s after its end, with its workers, events and config;
// a running one never does, and the name is free again.
TEST_F(RegistryTest, EndedRunsAreForgottenAfterForgetAfter) {
  registry_ = std::make_unique<RunRegistry>(*storage_, &metrics_,
                                            RegistryOptions{10.0, 100.0, 60.0, [this] { return now_; }, 1000.0});
  create("old", 1);
  register_rank("old", 0);
  finish("old", 0, v1::RUN_OUTCOME_FINISHED);
  create("live", 1);
  register_rank("live", 0);
  // A watcher of the ended run waits while it is forgotten: the wait ends without an update.
  WatchCursor cursor;
  v1::WatchRunResponse update;
  ASSERT_TRUE(registry_->next_update("old", cursor, std::chrono::milliseconds(0), update));
  std::promise<bool> watched;
  std::thread watcher([&] {
    try {
      watched.set_value(registry_->next_update("old", cursor, std::chrono::seconds(30), update));
    } catch (const NotFoundError&) {  // started only after the run was forgotten
      watched.set_value(false);
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // most likely waiting by now
  const auto names = [&] {
    std::vector<std::string> out;
    const v1::ListRunsResponse listed = registry_->list_runs({});
    for (const v1::Run& run : listed.runs()) out.push_back(run.name());
    return out;
  };
  for (int64_t step = 1; step <= 2; ++step) {  // 500 s, then 1001 s after the end
    now_ += 500 + (step - 1);
    beat("live", 0, step);
    registry_->tick();
  }
  EXPECT_EQ(names(), std::vector<std::string>{"live"});
  watcher.join();
  EXPECT_FALSE(watched.get_future().get());
  EXPECT_THROW(get("old"), NotFoundError);
  EXPECT_TRUE(storage_->events("old", 0, 100).empty());
  EXPECT_TRUE(storage_->load_config("old").empty());
  restart();  // nor does a restarted coordinator find it
  EXPECT_EQ(names(), std::vector<std::string>{"live"});
  EXPECT_EQ(create("old", 2).run().world_size(), 2);
}

TEST_F(RegistryTest, WatchSeesTheFirstStateAtOnceThenChanges) {
  create("r", 1);
  WatchCursor cursor;
  v1::WatchRunResponse update;
  ASSERT_TRUE(registry_->next_update("r", cursor, std::chrono::milliseconds(0), update));
  EXPECT_GT(update.events_size(), 0);
  EXPECT_FALSE(registry_->next_update("r", cursor, std::chrono::milliseconds(1), update));
  register_rank("r", 0);
  ASSERT_TRUE(registry_->next_update("r", cursor, std::chrono::milliseconds(1), update));
  ASSERT_EQ(update.events_size(), 1);
  EXPECT_EQ(update.events(0).type(), v1::EVENT_TYPE_WORKER_REGISTERED);
  registry_->shutdown();
  register_rank("r", 0);
  EXPECT_FALSE(registry_->next_update("r", cursor, std::chrono::milliseconds(1000), update));
}

TEST_F(RegistryTest, ListIsNewestFirstAndFilters) {
  create("old", 1);
  now_ += 1;
  create("new", 1);
  finish("old", 0, v1::RUN_OUTCOME_FINISHED);
  v1::ListRunsRequest request;
  auto all = registry_->list_runs(request);
  ASSERT_EQ(all.runs_size(), 2);
  EXPECT_EQ(all.runs(0).name(), "new");
  EXPECT_EQ(all.total(), 2);
  request.set_active_only(true);
  EXPECT_EQ(registry_->list_runs(request).runs_size(), 1);
  // A limit keeps the newest and says how many matched.
  request.set_active_only(false);
  request.set_limit(1);
  const auto newest = registry_->list_runs(request);
  ASSERT_EQ(newest.runs_size(), 1);
  EXPECT_EQ(newest.runs(0).name(), "new");
  EXPECT_EQ(newest.total(), 2);
  // ijepa-ctl's table says that runs were left out.
  EXPECT_NE(runs_table(newest, now_).find("(the newest 1 of 2 runs; --limit N shows more)"), std::string::npos)
      << runs_table(newest, now_);
  EXPECT_EQ(runs_table(all, now_).find("--limit"), std::string::npos);
}

}  // namespace
}  // namespace ijepa::coord
