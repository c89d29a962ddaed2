// CIFAR binary reading and validation.
#include "data/cifar_dataset.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "common/errors.h"
#include "common/files.h"

namespace ijepa::data {

namespace {

constexpr size_t kPixels = 3 * CifarDataset::kSide * CifarDataset::kSide;

std::vector<std::string> split_files(CifarDataset::Variant variant, const std::string& split) {
  if (split != "train" && split != "test") throw common::InputError("data.split: '" + split + "' is not train or test");
  if (variant == CifarDataset::Variant::kCifar100) return {split + ".bin"};
  if (split == "test") return {"test_batch.bin"};
  return {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"};
}

// The folder itself, or the subfolder the official archive extracts into when the folder holds it.
std::filesystem::path resolve_folder(const std::string& folder, CifarDataset::Variant variant) {
  const std::filesystem::path inner =
      std::filesystem::path(folder) /
      (variant == CifarDataset::Variant::kCifar10 ? "cifar-10-batches-bin" : "cifar-100-binary");
  return std::filesystem::is_directory(inner) ? inner : std::filesystem::path(folder);
}

}  // namespace

CifarDataset::CifarDataset(const std::string& folder, Variant variant, const std::string& split) : variant_(variant) {
  common::require_path("CIFAR folder", folder, common::PathKind::kFolder);
  const std::filesystem::path root = resolve_folder(folder, variant);
  for (const std::string& file : split_files(variant, split)) read_file((root / file).string());
}

void CifarDataset::read_file(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw common::InputError(path + ": CIFAR file missing");
  const std::string bytes = common::read_file(path);
  const size_t label_bytes = variant_ == Variant::kCifar10 ? 1 : 2;
  const size_t record = label_bytes + kPixels;
  if (bytes.empty() || bytes.size() % record != 0) {
    throw common::InputError(path + ": truncated or not a CIFAR file: " + std::to_string(bytes.size()) +
                             " bytes is not a whole number of " + std::to_string(record) + "-byte records");
  }
  const size_t count = bytes.size() / record;
  file_names_.push_back(std::filesystem::path(path).filename().string());
  file_starts_.push_back(static_cast<int64_t>(labels_.size()));
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  pixels_.reserve(pixels_.size() + count * kPixels);
  for (size_t r = 0; r < count; ++r) {
    const uint8_t* rec = data + r * record;
    const uint8_t label = rec[label_bytes - 1];  // CIFAR-100: the fine label follows the coarse one
    if (label >= num_classes()) {
      throw common::InputError(path + ": record " + std::to_string(r) + " has label " + std::to_string(label) +
                               " outside [0, " + std::to_string(num_classes()) + ")");
    }
    labels_.push_back(label);
    pixels_.insert(pixels_.end(), rec + label_bytes, rec + record);
  }
}

Image CifarDataset::load(int64_t i) const {
  if (i < 0 || i >= size()) throw std::out_of_range("CIFAR: no sample " + std::to_string(i));
  Image image;
  image.height = kSide;
  image.width = kSide;
  image.channels = 3;
  image.pixels.resize(kPixels);
  const uint8_t* planes = pixels_.data() + static_cast<size_t>(i) * kPixels;
  constexpr size_t kPlane = kSide * kSide;
  for (size_t p = 0; p < kPlane; ++p) {
    for (size_t c = 0; c < 3; ++c) image.pixels[p * 3 + c] = planes[c * kPlane + p];
  }
  return image;
}

std::string CifarDataset::name(int64_t i) const {
  const auto file = std::upper_bound(file_starts_.begin(), file_starts_.end(), i) - file_starts_.begin() - 1;
  return file_names_[file] + "#" + std::to_string(i - file_starts_[file]);
}

}  // namespace ijepa::data
