// Piecewise reads of gzip-or-plain files through zlib.
#include "data/file_io.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/errors.h"

namespace ijepa::data {

GzipOrPlainFile::GzipOrPlainFile(const std::string& path) : path_(path), file_(gzopen(path.c_str(), "rb"), gzclose) {
  if (!file_) throw common::InputError(path + ": cannot open (" + std::strerror(errno) + ")");
}

void GzipOrPlainFile::check(const char* what) {
  int code = Z_OK;
  const char* message = gzerror(file_.get(), &code);
  if (code == Z_ERRNO) throw common::InputError(path_ + ": " + what + " (" + std::strerror(errno) + ")");
  // Z_BUF_ERROR is zlib's "unexpected end of file" within a compressed stream.
  if (code != Z_OK && code != Z_STREAM_END) {
    throw common::InputError(path_ + ": corrupt or truncated gzip data (" + message + ")");
  }
}

std::string GzipOrPlainFile::read(size_t count) {
  constexpr size_t kChunk = 1 << 20;
  std::string bytes;
  while (bytes.size() < count) {
    const size_t old_size = bytes.size();
    const size_t want = std::min(kChunk, count - old_size);
    bytes.resize(old_size + want);
    const int got = gzread(file_.get(), bytes.data() + old_size, static_cast<unsigned>(want));
    check("read error");
    bytes.resize(old_size + static_cast<size_t>(std::max(got, 0)));
    if (static_cast<size_t>(std::max(got, 0)) < want) break;
  }
  return bytes;
}

bool GzipOrPlainFile::at_end() { return read(1).empty(); }

}  // namespace ijepa::data
