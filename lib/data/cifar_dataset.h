// CIFAR-10 and CIFAR-100 in their binary versions, held in memory.
//
// CIFAR-10: data_batch_1..5.bin (train) and test_batch.bin, records of <label><3072 pixels>.
// CIFAR-100: train.bin and test.bin, records of <coarse label><fine label><3072 pixels>; the fine label is used.
// Pixels are 32x32 planes R, G, B.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace ijepa::data {

class CifarDataset : public Dataset {
 public:
  enum class Variant { kCifar10, kCifar100 };
  static constexpr int kSide = 32;

  // `folder` holds the .bin files, or is the folder the archive extracts into (cifar-10-batches-bin or
  // cifar-100-binary inside it). Throws InputError naming the file that is missing, truncated (length not a
  // multiple of the record size) or has a label out of range.
  CifarDataset(const std::string& folder, Variant variant, const std::string& split);

  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  int channels() const override { return 3; }
  int64_t num_classes() const override { return variant_ == Variant::kCifar10 ? 10 : 100; }
  int64_t label(int64_t i) const override { return labels_.at(i); }
  Image load(int64_t i) const override;
  std::string name(int64_t i) const override;

 private:
  void read_file(const std::string& path);

  Variant variant_;
  std::vector<std::string> file_names_;  // for messages
  std::vector<int64_t> file_starts_;     // index of each file's first sample
  std::vector<uint8_t> pixels_;          // [N, 3, 32, 32]
  std::vector<uint8_t> labels_;          // [N]
};

}  // namespace ijepa::data
