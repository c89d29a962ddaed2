// Storage on SQLite.
#include "coord/storage.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <filesystem>
#include <stdexcept>

#include "common/errors.h"

namespace ijepa::coord {
namespace {

// Version 1: the tables below. A database with a newer version is refused rather than misread.
constexpr int kSchemaVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS runs(
  name TEXT PRIMARY KEY,
  state INTEGER NOT NULL,
  updated_time REAL NOT NULL,
  record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS configs(
  name TEXT PRIMARY KEY,
  config_text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS workers(
  run TEXT NOT NULL,
  rank INTEGER NOT NULL,
  record BLOB NOT NULL,
  PRIMARY KEY(run, rank));
CREATE TABLE IF NOT EXISTS events(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run TEXT NOT NULL,
  rank INTEGER NOT NULL,
  type INTEGER NOT NULL,
  time REAL NOT NULL,
  step INTEGER NOT NULL,
  value REAL NOT NULL,
  message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_run ON events(run, id);
)sql";

void bind_text(sqlite3_stmt* s, int index, const std::string& text) {
  sqlite3_bind_text(s, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
}

void bind_blob(sqlite3_stmt* s, int index, const std::string& bytes) {
  sqlite3_bind_blob(s, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
}

std::string column_bytes(sqlite3_stmt* s, int index) {
  const void* data = sqlite3_column_blob(s, index);
  return data ? std::string(static_cast<const char*>(data), sqlite3_column_bytes(s, index)) : std::string();
}

// Resets a cached statement however the scope ends, so the next use starts clean.
struct Reset {
  sqlite3_stmt* statement;
  ~Reset() {
    sqlite3_reset(statement);
    sqlite3_clear_bindings(statement);
  }
};

}  // namespace

void Storage::StatementDeleter::operator()(sqlite3_stmt* statement) const { sqlite3_finalize(statement); }

Storage::Storage(const std::string& path) : path_(path), db_(nullptr, sqlite3_close) {
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) {
    throw common::InputError("database '" + path + "' is a directory, not a file");
  }
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  db_.reset(raw);
  if (rc != SQLITE_OK) {
    throw common::InputError("database '" + path + "': cannot open (" +
                             (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)) + ")");
  }
  try {
    sqlite3_busy_timeout(db_.get(), 5000);
    check_schema();  // before anything is written: a file that is not one of ours stays as it was
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");
    exec(kSchema);
    exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str());
  } catch (const std::runtime_error& e) {
    if (dynamic_cast<const common::InputError*>(&e)) throw;
    throw common::InputError(e.what());
  }
  struct stat opened {};
  if (path != ":memory:" && stat(path.c_str(), &opened) == 0) {
    device_ = opened.st_dev;
    inode_ = opened.st_ino;
  }
  save_run_ = prepare(
      "INSERT INTO runs(name, state, updated_time, record) VALUES(?1, ?2, ?3, ?4) ON CONFLICT(name) DO UPDATE SET "
      "state=excluded.state, updated_time=excluded.updated_time, record=excluded.record");
  save_worker_ = prepare("INSERT OR REPLACE INTO workers(run, rank, record) VALUES(?1, ?2, ?3)");
  delete_worker_ = prepare("DELETE FROM workers WHERE run=?1 AND rank=?2");
  save_config_ = prepare("INSERT OR REPLACE INTO configs(name, config_text) VALUES(?1, ?2)");
  load_config_ = prepare("SELECT config_text FROM configs WHERE name=?1");
  append_event_ =
      prepare("INSERT INTO events(run, rank, type, time, step, value, message) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  events_ = prepare(
      "SELECT id, rank, type, time, step, value, message FROM (SELECT * FROM events WHERE run=?1 AND id>?2 "
      "ORDER BY id DESC LIMIT ?3) ORDER BY id");
}

Storage::~Storage() = default;

bool Storage::file_replaced() const {
  if (device_ == 0 && inode_ == 0) return false;
  struct stat now {};
  return stat(path_.c_str(), &now) != 0 || now.st_dev != device_ || now.st_ino != inode_;
}

void Storage::check_schema() {
  Statement version = prepare("PRAGMA user_version");
  const int found = sqlite3_step(version.get()) == SQLITE_ROW ? sqlite3_column_int(version.get(), 0) : 0;
  if (found > kSchemaVersion) {
    throw common::InputError("database '" + path_ + "': schema version " + std::to_string(found) +
                             " is newer than this coordinator's " + std::to_string(kSchemaVersion));
  }
  if (found > 0) return;
  // Version 0 is a new database, or another program's: every coordinator database has carried its version.
  Statement tables = prepare("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name");
  std::string names;
  while (sqlite3_step(tables.get()) == SQLITE_ROW) {
    const auto* name = reinterpret_cast<const char*>(sqlite3_column_text(tables.get(), 0));
    names += (names.empty() ? "" : ", ") + std::string(name ? name : "");
  }
  if (!names.empty()) {
    throw common::InputError("database '" + path_ + "' holds tables that ijepa-coordinator did not make (" + names +
                             "); give --db a new file or one a coordinator made");
  }
}

void Storage::fail(const std::string& what) {
  throw std::runtime_error("database '" + path_ + "': " + what + ": " + sqlite3_errmsg(db_.get()));
}

void Storage::corrupt(const std::string& record) {
  throw common::InputError("database '" + path_ + "': the record of " + record +
                           " does not parse; the file is damaged (restore it from a backup, or move it away to "
                           "start afresh)");
}

void Storage::exec(const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_.get(), sql, nullptr, nullptr, &message) != SQLITE_OK) {
    const std::string text = message ? message : "unknown error";
    sqlite3_free(message);
    throw std::runtime_error("database '" + path_ + "': " + text);
  }
}

Storage::Statement Storage::prepare(const char* sql) {
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v2(db_.get(), sql, -1, &statement, nullptr) != SQLITE_OK) fail("cannot prepare a statement");
  return Statement(statement);
}

void Storage::step_done(sqlite3_stmt* statement) {
  Reset reset{statement};
  if (sqlite3_step(statement) != SQLITE_DONE) fail("write failed");
}

std::vector<v1::Run> Storage::load_runs() {
  Statement select = prepare("SELECT record, name FROM runs ORDER BY name");
  std::vector<v1::Run> runs;
  while (sqlite3_step(select.get()) == SQLITE_ROW) {
    v1::Run run;
    if (!run.ParseFromString(column_bytes(select.get(), 0))) {
      corrupt("run '" + column_bytes(select.get(), 1) + "'");
    }
    runs.push_back(std::move(run));
  }
  return runs;
}

std::vector<v1::Worker> Storage::load_workers() {
  Statement select = prepare("SELECT record, run, rank FROM workers ORDER BY run, rank");
  std::vector<v1::Worker> workers;
  while (sqlite3_step(select.get()) == SQLITE_ROW) {
    v1::Worker worker;
    if (!worker.ParseFromString(column_bytes(select.get(), 0))) {
      corrupt("rank " + std::to_string(sqlite3_column_int(select.get(), 2)) + " of run '" +
              column_bytes(select.get(), 1) + "'");
    }
    workers.push_back(std::move(worker));
  }
  return workers;
}

void Storage::save_run(const v1::Run& run) {
  sqlite3_stmt* s = save_run_.get();
  bind_text(s, 1, run.name());
  sqlite3_bind_int(s, 2, run.state());
  sqlite3_bind_double(s, 3, run.updated_time());
  bind_blob(s, 4, run.SerializeAsString());
  step_done(s);
}

void Storage::save_worker(const v1::Worker& worker) {
  sqlite3_stmt* s = save_worker_.get();
  bind_text(s, 1, worker.run());
  sqlite3_bind_int(s, 2, worker.rank());
  bind_blob(s, 3, worker.SerializeAsString());
  step_done(s);
}

void Storage::delete_worker(const std::string& run, int32_t rank) {
  sqlite3_stmt* s = delete_worker_.get();
  bind_text(s, 1, run);
  sqlite3_bind_int(s, 2, rank);
  step_done(s);
}

void Storage::delete_run(const std::string& run) {
  for (const char* sql : {"DELETE FROM events WHERE run=?1", "DELETE FROM workers WHERE run=?1",
                          "DELETE FROM configs WHERE name=?1", "DELETE FROM runs WHERE name=?1"}) {
    Statement statement = prepare(sql);  // rare: once per forgotten run
    bind_text(statement.get(), 1, run);
    step_done(statement.get());
  }
}

void Storage::save_config(const std::string& run, const std::string& config_text) {
  sqlite3_stmt* s = save_config_.get();
  bind_text(s, 1, run);
  bind_text(s, 2, config_text);
  step_done(s);
}

std::string Storage::load_config(const std::string& run) {
  sqlite3_stmt* s = load_config_.get();
  Reset reset{s};
  bind_text(s, 1, run);
  if (sqlite3_step(s) != SQLITE_ROW) return {};
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  return text ? std::string(text, sqlite3_column_bytes(s, 0)) : std::string();
}

void Storage::append_event(v1::Event& event) {
  sqlite3_stmt* s = append_event_.get();
  bind_text(s, 1, event.run());
  sqlite3_bind_int(s, 2, event.rank());
  sqlite3_bind_int(s, 3, event.type());
  sqlite3_bind_double(s, 4, event.time());
  sqlite3_bind_int64(s, 5, event.step());
  sqlite3_bind_double(s, 6, event.value());
  bind_text(s, 7, event.message());
  step_done(s);
  event.set_id(sqlite3_last_insert_rowid(db_.get()));
}

std::vector<v1::Event> Storage::events(const std::string& run, int64_t after_id, int limit) {
  sqlite3_stmt* s = events_.get();
  Reset reset{s};
  bind_text(s, 1, run);
  sqlite3_bind_int64(s, 2, after_id);
  sqlite3_bind_int(s, 3, limit);
  std::vector<v1::Event> events;
  while (sqlite3_step(s) == SQLITE_ROW) {
    v1::Event& e = events.emplace_back();
    e.set_id(sqlite3_column_int64(s, 0));
    e.set_run(run);
    e.set_rank(sqlite3_column_int(s, 1));
    e.set_type(static_cast<v1::EventType>(sqlite3_column_int(s, 2)));
    e.set_time(sqlite3_column_double(s, 3));
    e.set_step(sqlite3_column_int64(s, 4));
    e.set_value(sqlite3_column_double(s, 5));
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(s, 6));
    if (text) e.set_message(std::string(text, sqlite3_column_bytes(s, 6)));
  }
  return events;
}

Storage::Transaction::Transaction(Storage& storage) : storage_(storage) { storage_.exec("BEGIN IMMEDIATE"); }

Storage::Transaction::~Transaction() {
  if (open_) sqlite3_exec(storage_.db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Storage::Transaction::commit() {
  storage_.exec("COMMIT");
  open_ = false;
}

}  // namespace ijepa::coord
