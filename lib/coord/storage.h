// The coordinator's SQLite database: runs, workers and events, so that a restarted coordinator knows every
// run it tracked. Opened in WAL mode with synchronous=NORMAL: a commit survives a killed process (the case
// that matters here) without an fsync per heartbeat.
//
// Runs and workers are stored as their serialized protobuf records next to key columns (the proto is the
// schema of record; the columns serve lookups); a run's config text has its own table so that saving the run
// does not rewrite it. Not thread-safe: the run registry serializes every call.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ijepa/coordinator/v1/coordinator.pb.h"

struct sqlite3;
struct sqlite3_stmt;

namespace ijepa::coord {

namespace v1 = ::ijepa::coordinator::v1;

class Storage {
 public:
  // Opens or creates the database at PATH (":memory:" for tests). Throws common::InputError naming the path
  // when it cannot be opened or holds something else (another program's tables, a newer schema), leaving such a
  // file untouched.
  explicit Storage(const std::string& path);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  // Throw common::InputError naming the record when one does not parse.
  // True once PATH no longer names the file opened (deleted, or replaced by another): SQLite goes on writing to the
  // open file, which is gone with everything in it when the process ends. Reads no SQLite state: safe from any
  // thread.
  bool file_replaced() const;

  std::vector<v1::Run> load_runs();
  std::vector<v1::Worker> load_workers();

  // Inserts or replaces.
  void save_run(const v1::Run& run);
  void save_worker(const v1::Worker& worker);
  void delete_worker(const std::string& run, int32_t rank);
  void save_config(const std::string& run, const std::string& config_text);
  // Removes the run with its workers, events and config.
  void delete_run(const std::string& run);
  std::string load_config(const std::string& run);

  // Stores EVENT and sets its id.
  void append_event(v1::Event& event);
  // The run's newest `limit` events with id > after_id, oldest first.
  std::vector<v1::Event> events(const std::string& run, int64_t after_id, int limit);

  // Groups writes into one transaction: commit() makes them durable (throws when it cannot); leaving the
  // scope without commit() rolls them back.
  class Transaction {
   public:
    explicit Transaction(Storage& storage);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void commit();

   private:
    Storage& storage_;
    bool open_ = true;
  };

 private:
  struct StatementDeleter {
    void operator()(sqlite3_stmt* statement) const;
  };
  using Statement = std::unique_ptr<sqlite3_stmt, StatementDeleter>;

  // Throws common::InputError when the database has a newer schema or is not a coordinator's (tables without our
  // schema version); reads only.
  void check_schema();
  void exec(const char* sql);
  Statement prepare(const char* sql);
  [[noreturn]] void fail(const std::string& what);
  [[noreturn]] void corrupt(const std::string& record);  // an InputError naming the record that does not parse
  void step_done(sqlite3_stmt* statement);               // runs a write statement, then resets it

  std::string path_;
  dev_t device_ = 0;  // of the file opened; 0 for ":memory:"
  ino_t inode_ = 0;
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db_;
  Statement save_run_, save_worker_, delete_worker_, save_config_, load_config_, append_event_, events_;
};

}  // namespace ijepa::coord
