// Whole-file reads of gzip-or-plain files through zlib.
#include "data/file_io.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "common/errors.h"

namespace ijepa::data {

std::string read_gzip_or_plain(const std::string& path) {
  std::unique_ptr<gzFile_s, int (*)(gzFile)> file(gzopen(path.c_str(), "rb"), gzclose);
  if (!file) throw common::InputError(path + ": cannot open (" + std::strerror(errno) + ")");
  std::string bytes;
  constexpr int kChunk = 1 << 20;
  for (;;) {
    const size_t old_size = bytes.size();
    bytes.resize(old_size + kChunk);
    const int got = gzread(file.get(), bytes.data() + old_size, kChunk);
    if (got < 0) break;
    bytes.resize(old_size + got);
    if (got < kChunk) break;
  }
  int code = Z_OK;
  const char* message = gzerror(file.get(), &code);
  if (code != Z_OK && code != Z_STREAM_END) {
    throw common::InputError(path + ": corrupt or truncated gzip data (" + message + ")");
  }
  return bytes;
}

}  // namespace ijepa::data
