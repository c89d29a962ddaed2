// IDX reading and validation (http://yann.lecun.com/exdb/mnist/ describes the format).
#include "data/idx_dataset.h"

#include <filesystem>
#include <optional>
#include <stdexcept>

#include "common/errors.h"
#include "common/files.h"
#include "data/file_io.h"

namespace ijepa::data {

namespace {

constexpr uint8_t kTypeUnsignedByte = 0x08;

struct IdxFile {
  std::vector<int64_t> dims;
  std::string values;  // after the header
};

uint32_t read_be32(const std::string& bytes, size_t offset) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data()) + offset;
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// The number of values `dims` declare, or nothing past 2^40 (no real file holds as many: a corrupt header).
std::optional<int64_t> declared_values(const std::vector<int64_t>& dims) {
  constexpr int64_t kLimit = int64_t{1} << 40;
  int64_t values = 1;
  for (int64_t dim : dims) {
    if (dim != 0 && values > kLimit / dim) return std::nullopt;
    values *= dim;
  }
  return values;
}

// Reads the header, checks the magic number, then reads exactly the values the header declares (so that a
// compressed stream is never inflated further than that) and checks that nothing follows them.
IdxFile read_idx(const std::string& path, size_t expected_dims) {
  GzipOrPlainFile in(path);
  const std::string magic = in.read(4);
  if (magic.size() < 4 || magic[0] != 0 || magic[1] != 0) {
    throw common::InputError(path + ": not an IDX file (bad magic number)");
  }
  if (static_cast<uint8_t>(magic[2]) != kTypeUnsignedByte || static_cast<size_t>(magic[3]) != expected_dims) {
    throw common::InputError(path + ": bad magic number: expected unsigned bytes in " + std::to_string(expected_dims) +
                             " dimension(s), got type " + std::to_string(static_cast<uint8_t>(magic[2])) + " in " +
                             std::to_string(static_cast<uint8_t>(magic[3])));
  }
  const std::string header = in.read(4 * expected_dims);
  if (header.size() < 4 * expected_dims) throw common::InputError(path + ": truncated header");
  IdxFile file;
  for (size_t d = 0; d < expected_dims; ++d) file.dims.push_back(read_be32(header, 4 * d));
  const std::optional<int64_t> values = declared_values(file.dims);
  if (!values) throw common::InputError(path + ": header declares more than 2^40 values (truncated or corrupt)");
  const int64_t declared = *values;
  file.values = in.read(static_cast<size_t>(declared));
  if (static_cast<int64_t>(file.values.size()) < declared) {
    throw common::InputError(path + ": length does not match its header: " + std::to_string(declared) +
                             " values declared, " + std::to_string(file.values.size()) + " present (truncated)");
  }
  if (!in.at_end()) {
    throw common::InputError(path + ": length does not match its header: more than the " + std::to_string(declared) +
                             " values declared (trailing bytes)");
  }
  return file;
}

// `stem` ("train-images") and `idx` ("idx3") joined by '-' or '.', then "-ubyte", with or without ".gz".
std::string find_file(const std::string& folder, const std::string& stem, const std::string& idx) {
  namespace fs = std::filesystem;
  for (const char* sep : {"-", "."}) {
    for (const char* ext : {".gz", ""}) {
      const fs::path candidate = fs::path(folder) / (stem + sep + idx + "-ubyte" + ext);
      if (fs::is_regular_file(candidate)) return candidate.string();
    }
  }
  throw common::InputError(folder + ": no " + stem + "-" + idx + "-ubyte[.gz] file found");
}

}  // namespace

IdxDataset::IdxDataset(const std::string& images_file, const std::string& labels_file)
    : images_name_(std::filesystem::path(images_file).filename().string()) {
  IdxFile images = read_idx(images_file, 3);
  IdxFile labels = read_idx(labels_file, 1);
  count_ = images.dims[0];
  rows_ = static_cast<int>(images.dims[1]);
  cols_ = static_cast<int>(images.dims[2]);
  if (count_ == 0 || rows_ == 0 || cols_ == 0) throw common::InputError(images_file + ": holds no images");
  if (labels.dims[0] != count_) {
    throw common::InputError(labels_file + ": " + std::to_string(labels.dims[0]) + " labels for " +
                             std::to_string(count_) + " images in " + images_file);
  }
  labels_.assign(labels.values.begin(), labels.values.end());
  for (size_t i = 0; i < labels_.size(); ++i) {
    if (labels_[i] >= kNumClasses) {
      throw common::InputError(labels_file + ": label " + std::to_string(labels_[i]) + " of sample " +
                               std::to_string(i) + " is outside [0, " + std::to_string(kNumClasses) + ")");
    }
  }
  pixels_.assign(images.values.begin(), images.values.end());
}

std::unique_ptr<IdxDataset> IdxDataset::open(const std::string& folder, const std::string& split) {
  if (split != "train" && split != "test") {
    throw common::InputError("data.split: '" + split + "' is not train or test (IDX dataset " + folder + ")");
  }
  common::require_path("IDX folder", folder, common::PathKind::kFolder);
  const std::string prefix = split == "train" ? "train" : "t10k";
  return std::make_unique<IdxDataset>(find_file(folder, prefix + "-images", "idx3"),
                                      find_file(folder, prefix + "-labels", "idx1"));
}

Image IdxDataset::load(int64_t i) const {
  if (i < 0 || i >= count_) throw std::out_of_range(images_name_ + ": no sample " + std::to_string(i));
  Image image;
  image.height = rows_;
  image.width = cols_;
  image.channels = 1;
  const size_t plane = static_cast<size_t>(rows_) * cols_;
  const auto first = pixels_.begin() + static_cast<std::ptrdiff_t>(plane * static_cast<size_t>(i));
  image.pixels.assign(first, first + static_cast<std::ptrdiff_t>(plane));
  return image;
}

std::string IdxDataset::name(int64_t i) const { return images_name_ + "#" + std::to_string(i); }

}  // namespace ijepa::data
