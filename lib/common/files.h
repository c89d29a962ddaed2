// Crash-safe file writes (a reader sees the old file or the complete new one, never a torn one), and whole-file
// reads whose every failure is an InputError naming the file.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace ijepa::common {

// Writes to a temporary file beside `path`, fsyncs it, renames it over `path`, then fsyncs the folder.
// Throws std::runtime_error naming the file on any failure (the old file is left as it was).
void write_file_atomic(const std::string& path, const void* data, size_t size);
inline void write_file_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, text.data(), text.size());
}

// Makes `link` name the same file as `target` atomically (a hard link, or a copy where links are not
// supported), replacing any previous `link`.
void link_file_atomic(const std::string& target, const std::string& link);

enum class PathKind { kFile, kFolder };

// Why `path` is not an existing `kind` ("does not exist", "is a folder, not a file", "is a link to T, which does not
// exist", ...), or empty when it is one (links followed).
std::string path_problem(const std::string& path, PathKind kind);

// Throws InputError "<what> <path>: <problem>" unless `path` is an existing `kind` (see path_problem).
void require_path(const std::string& what, const std::string& path, PathKind kind);

// The whole file; throws InputError naming it (and the system's reason) when it cannot be opened or read.
std::string read_file(const std::string& path);

// The file in pieces of up to 64 KiB, each handed to `take` in order (for files too large to hold); throws as
// read_file does.
void read_file_in_pieces(const std::string& path, const std::function<void(const char*, size_t)>& take);

}  // namespace ijepa::common
