// The exclusive claim one coordinator holds on its database while it runs, so that a second coordinator started
// on the same --db fails at once instead of overwriting the first one's records.
//
// flock(2) on "<database>.lock" beside the database, not on the database itself: SQLite keeps its own POSIX locks
// on that file, and on NFS flock is emulated with the same kind of lock. The kernel drops the lock when the
// process ends, however it ends, so a crashed coordinator never leaves a stale one behind. The lock file sits beside
// the file the path resolves to, so that a symlink to a database is the same claim as the database itself.
#pragma once

#include <string>

namespace ijepa::coord {

class DatabaseLock {
 public:
  // Takes the lock without waiting. Throws common::InputError naming the database when another process holds it
  // (with that process's pid when known) or the lock file cannot be opened. ":memory:" takes no lock.
  explicit DatabaseLock(const std::string& database);
  ~DatabaseLock();
  DatabaseLock(const DatabaseLock&) = delete;
  DatabaseLock& operator=(const DatabaseLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace ijepa::coord
