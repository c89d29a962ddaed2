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

// Runs SQL on the SQLite file at PATH; returns the first column of the first row ("" when none).
std::string sqlite(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  std::string value;
  sqlite3_exec(
      db, sql.c_str(),
      [](void* out, int, char** columns, char**) {
        if (static_cast<std::string*>(out)->empty() && columns[0]) *static_cast<std::string*>(out) = columns[0];
        return 0;
      },
      &value, nullptr);
  sqlite3_close(db);
  return value;
}

// Another program's database given as --db by mistake is refused and left exactly as it was: no tables added,
// not switched to WAL, no schema version written.
TEST(Storage, ADatabaseOfAnotherProgramIsRefusedUntouched) {
  testing::TempDir dir;
  const std::string path = dir / "shop.db";
  sqlite(path, "CREATE TABLE customers(id INTEGER); CREATE TABLE runs(name TEXT, foo INTEGER)");
  try {
    Storage storage(path);
    ADD_FAILURE() << "opened another program's database";
  } catch (const common::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("database '" + path +
                                         "' holds tables that ijepa-coordinator did not make "
                                         "(customers, runs)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(sqlite(path, "SELECT group_concat(name) FROM sqlite_master WHERE type='table'"), "customers,runs");
  EXPECT_EQ(sqlite(path, "PRAGMA journal_mode"), "delete");
  EXPECT_EQ(sqlite(path, "PRAGMA user_version"), "0");
}

TEST(Storage, ANewerSchemaIsRefused) {
  testing::TempDir dir;
  const std::string path = dir / "c.db";
  { Storage storage(path); }
  sqlite(path, "PRAGMA user_version=2");
  EXPECT_THROW(Storage{path}, common::InputError);
  EXPECT_EQ(sqlite(path, "PRAGMA user_version"), "2");
}

// An empty file (touched in advance, as some deployments do) is a new database.
TEST(Storage, AnEmptyFileBecomesANewDatabase) {
  testing::TempDir dir;
  testing::write_file(dir / "c.db", "");
  Storage storage(dir / "c.db");
  storage.save_run(sample_run("a"));
  EXPECT_EQ(storage.load_runs().size(), 1u);
}

// A damaged record is an input error naming it (exit 2 from the coordinator), not a failure with SQLite's unrelated
// last message.
TEST(Storage, ARecordThatDoesNotParseIsAnInputErrorNamingIt) {
  testing::TempDir dir;
  const std::string path = dir / "c.db";
  { Storage storage(path); }
  sqlite(path, "INSERT INTO runs VALUES('bad', 1, 0, X'FFFFFFFF')");
  try {
    Storage(path).load_runs();
    ADD_FAILURE() << "a damaged record parsed";
  } catch (const common::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("the record of run 'bad' does not parse"), std::string::npos) << e.what();
  }
}

TEST(Storage, ADirectoryIsAnInputErrorSayingSo) {
  testing::TempDir dir;
  try {
    Storage storage(dir.path().string());
    ADD_FAILURE() << "opened a directory";
  } catch (const common::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ijepa::coord
