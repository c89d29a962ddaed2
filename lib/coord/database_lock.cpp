// DatabaseLock.
#include "coord/database_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/errors.h"

namespace ijepa::coord {
namespace {

// The pid the holder wrote into the lock file; empty when there is none to read.
std::string holder_pid(int fd) {
  char buffer[32] = {};
  const ssize_t n = pread(fd, buffer, sizeof(buffer) - 1, 0);
  std::string pid(buffer, n > 0 ? static_cast<size_t>(n) : 0);
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
  return pid;
}

}  // namespace

DatabaseLock::DatabaseLock(const std::string& database) {
  if (database == ":memory:") return;
  std::error_code error;
  const std::filesystem::path resolved = std::filesystem::weakly_canonical(database, error);
  const std::string path = (error ? database : resolved.string()) + ".lock";
  fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw common::InputError("database '" + database + "': cannot open its lock file '" + path +
                             "': " + std::strerror(errno));
  }
  if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    const std::string pid = holder_pid(fd_);
    close(fd_);
    fd_ = -1;
    if (error != EWOULDBLOCK) {
      throw common::InputError("database '" + database + "': cannot lock '" + path + "': " + std::strerror(error));
    }
    throw common::InputError("database '" + database + "' is in use by another coordinator" +
                             (pid.empty() ? "" : " (pid " + pid + ")") + ": each needs its own --db");
  }
  // The pid only names the holder in a second coordinator's error: a failed write costs that, not the lock.
  const std::string pid = std::to_string(getpid()) + "\n";
  [[maybe_unused]] const bool noted = ftruncate(fd_, 0) == 0 && pwrite(fd_, pid.data(), pid.size(), 0) > 0;
}

DatabaseLock::~DatabaseLock() {
  if (fd_ >= 0) close(fd_);  // releases the lock
}

}  // namespace ijepa::coord
