// Reading files that may be gzip-compressed, piece by piece, so that a header is checked before the data it
// declares is read (plain whole-file reads: common::read_file).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

struct gzFile_s;  // zlib's file handle

namespace ijepa::data {

// A gzip-compressed or plain file (zlib reads plain files unchanged), read from its start.
class GzipOrPlainFile {
 public:
  // Throws InputError naming the file when it cannot be opened.
  explicit GzipOrPlainFile(const std::string& path);

  // The next `count` bytes, or fewer at the end of the data; memory grows with what is read, not with `count`.
  // Throws InputError naming the file when it cannot be read or its compressed stream is truncated or corrupt.
  std::string read(size_t count);
  // Whether all the data has been read (InputError as read()).
  bool at_end();

 private:
  void check(const char* what);  // InputError when zlib reports an error

  std::string path_;
  std::unique_ptr<gzFile_s, int (*)(gzFile_s*)> file_;
};

}  // namespace ijepa::data
