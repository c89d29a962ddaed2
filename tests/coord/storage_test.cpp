// Storage: records survive reopening, WAL mode is on, bad paths are input errors, transactions roll back.
#include "coord/storage.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "common/errors.h"
#include "test_util.h"

namespace ijepa::coord {
namespace {

v1::Run sample_run(const std::string& name) {
  v1::Run run;
  run.set_name(name);
  run.set_state(v1::RUN_STATE_RUNNING);
  run.set_world_size(2);
  run.mutable_latest()->set_step(7);
  return run;
}

TEST(Storage, KeepsRunsWorkersEventsAndConfigAcrossReopening) {
  testing::TempDir dir;
  const std::string path = dir / "c.db";
  {
    Storage storage(path);
    storage.save_run(sample_run("a"));
    storage.save_config("a", "meta:\n  seed: 1\n");
    v1::Worker worker;
    worker.set_run("a");
    worker.set_rank(1);
    worker.set_step(7);
    storage.save_worker(worker);
    v1::Event event;
    event.set_run("a");
    event.set_type(v1::EVENT_TYPE_CHECKPOINT_WRITTEN);
    event.set_message("ckpt.pt");
    storage.append_event(event);
    EXPECT_GT(event.id(), 0);
  }
  Storage storage(path);
  const auto runs = storage.load_runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].latest().step(), 7);
  EXPECT_EQ(storage.load_config("a"), "meta:\n  seed: 1\n");
  const auto workers = storage.load_workers();
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(workers[0].rank(), 1);
  const auto events = storage.events("a", 0, 10);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].message(), "ckpt.pt");
  EXPECT_EQ(events[0].type(), v1::EVENT_TYPE_CHECKPOINT_WRITTEN);
}

TEST(Storage, UsesWriteAheadLogging) {
  testing::TempDir dir;
  const std::string path = dir / "c.db";
  { Storage storage(path); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* statement = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &statement, nullptr);
  ASSERT_EQ(sqlite3_step(statement), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(statement, 0)), "wal");
  sqlite3_finalize(statement);
  sqlite3_close(db);
}

TEST(Storage, EventsComeNewestLimitedOldestFirst) {
  Storage storage(":memory:");
  for (int i = 0; i < 5; ++i) {
    v1::Event event;
    event.set_run("a");
    event.set_step(i);
    storage.append_event(event);
  }
  const auto last_two = storage.events("a", 0, 2);
  ASSERT_EQ(last_two.size(), 2u);
  EXPECT_EQ(last_two[0].step(), 3);
  EXPECT_EQ(last_two[1].step(), 4);
  EXPECT_EQ(storage.events("a", last_two[0].id(), 10).size(), 1u);
  EXPECT_TRUE(storage.events("b", 0, 10).empty());
}

TEST(Storage, UncommittedTransactionRollsBack) {
  Storage storage(":memory:");
  {
    Storage::Transaction transaction(storage);
    storage.save_run(sample_run("gone"));
  }
  EXPECT_TRUE(storage.load_runs().empty());
  {
    Storage::Transaction transaction(storage);
    storage.save_run(sample_run("kept"));
    transaction.commit();
  }
  EXPECT_EQ(storage.load_runs().size(), 1u);
}

TEST(Storage, UnopenablePathIsAnInputError) { EXPECT_THROW(Storage("/nonexistent-dir/sub/c.db"), common::InputError); }

TEST(Storage, FileThatIsNotADatabaseIsAnInputError) {
  testing::TempDir dir;
  testing::write_file(dir / "junk.db", std::string(4096, 'x'));
  EXPECT_THROW(Storage(dir / "junk.db"), common::InputError);
}

}  // namespace
}  // namespace ijepa::coord
