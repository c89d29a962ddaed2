#include "common/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <vector>

#include "common/errors.h"

namespace ijepa::common {

namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path) {
  throw std::runtime_error(path + ": " + what + " failed: " + std::strerror(errno));
}

std::string temporary_beside(const std::string& path) { return path + ".tmp." + std::to_string(::getpid()); }

void fsync_folder_of(const std::string& path) {
  const auto folder = std::filesystem::path(path).parent_path();
  const int fd = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;  // best effort: some filesystems do not allow opening folders
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

std::string path_problem(const std::string& path, PathKind kind) {
  namespace fs = std::filesystem;
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  // A path through a file (file.txt/x) does not exist either.
  const bool absent = error == std::errc::no_such_file_or_directory || error == std::errc::not_a_directory;
  if (error && !absent) return "cannot be examined (" + error.message() + ")";
  if (!fs::exists(status)) {
    std::error_code link_error;
    if (fs::is_symlink(fs::symlink_status(path, link_error))) {
      return "is a link to " + fs::read_symlink(path, link_error).string() + ", which does not exist";
    }
    return "does not exist";
  }
  if (kind == PathKind::kFolder && !fs::is_directory(status)) return "is a file, not a folder";
  if (kind == PathKind::kFile && fs::is_directory(status)) return "is a folder, not a file";
  return "";
}

void require_path(const std::string& what, const std::string& path, PathKind kind) {
  const std::string problem = path_problem(path, kind);
  if (!problem.empty()) throw InputError(what + " " + path + ": " + problem);
}

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  const std::string tmp = temporary_beside(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("creating a temporary file", tmp);
  const auto* bytes = static_cast<const char*>(data);
  size_t written = 0;
  while (written < size) {
    const ssize_t n = ::write(fd, bytes + written, size - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int saved = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      errno = saved;
      fail("writing", tmp);
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    fail("flushing", tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    fail("renaming into place", path);
  }
  fsync_folder_of(path);
}

void link_file_atomic(const std::string& target, const std::string& link) {
  const std::string tmp = temporary_beside(link);
  ::unlink(tmp.c_str());
  if (::link(target.c_str(), tmp.c_str()) != 0) {
    std::error_code ec;
    std::filesystem::copy_file(target, tmp, std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) throw std::runtime_error(link + ": cannot link or copy " + target + ": " + ec.message());
  }
  if (::rename(tmp.c_str(), link.c_str()) != 0) {
    ::unlink(tmp.c_str());
    fail("renaming into place", link);
  }
  fsync_folder_of(link);
}

// With stdio rather than a std::ifstream, whose filebuf throws an unnamed std::ios_base::failure on a read error.
void read_file_in_pieces(const std::string& path, const std::function<void(const char*, size_t)>& take) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!file) throw InputError(path + ": cannot be opened (" + std::strerror(errno) + ")");
  std::vector<char> buffer(size_t{1} << 16);
  for (;;) {
    const size_t got = std::fread(buffer.data(), 1, buffer.size(), file.get());
    if (got < buffer.size() && std::ferror(file.get())) {
      throw InputError(path + ": read error (" + std::strerror(errno) + ")");
    }
    if (got > 0) take(buffer.data(), got);
    if (got < buffer.size()) return;
  }
}

std::string read_file(const std::string& path) {
  std::string bytes;
  read_file_in_pieces(path, [&](const char* data, size_t size) { bytes.append(data, size); });
  return bytes;
}

}  // namespace ijepa::common
