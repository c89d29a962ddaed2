// Whole-file reads of gzip-or-plain files through zlib, for the datasets (plain files: common::read_file).
#pragma once

#include <string>

namespace ijepa::data {

// The bytes of a file that may be gzip-compressed (zlib reads plain files unchanged). Throws InputError naming
// the file when it cannot be read or its compressed stream is truncated or corrupt.
std::string read_gzip_or_plain(const std::string& path);

}  // namespace ijepa::data
