// Whole-file reads for the datasets: plain, and gzip-or-plain through zlib.
#pragma once

#include <string>

namespace ijepa::data {

// The bytes of a file. Throws InputError naming the file when it cannot be opened or read.
std::string read_file_bytes(const std::string& path);

// The bytes of a file that may be gzip-compressed (zlib reads plain files unchanged). Throws InputError naming
// the file when it cannot be read or its compressed stream is truncated or corrupt.
std::string read_gzip_or_plain(const std::string& path);

}  // namespace ijepa::data
