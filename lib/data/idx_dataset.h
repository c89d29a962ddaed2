// MNIST-style IDX files (MNIST, Fashion-MNIST): 8-bit images and labels, gzipped or plain, held in memory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace ijepa::data {

class IdxDataset : public Dataset {
 public:
  static constexpr int64_t kNumClasses = 10;  // the MNIST family

  // Reads and validates both files: magic numbers (unsigned byte, 3 and 1 dimensions), dimensions, file
  // lengths, equal counts, labels in [0, 10). Throws InputError naming the offending file.
  IdxDataset(const std::string& images_file, const std::string& labels_file);

  // The files of `split` (train | test) in `folder` under their usual names, e.g. train-images-idx3-ubyte.gz,
  // t10k-labels-idx1-ubyte (with or without .gz, '-' or '.' before idx). InputError when they are missing.
  static std::unique_ptr<IdxDataset> open(const std::string& folder, const std::string& split);

  int64_t size() const override { return count_; }
  int channels() const override { return 1; }
  int64_t num_classes() const override { return kNumClasses; }
  int64_t label(int64_t i) const override { return labels_.at(i); }
  Image load(int64_t i) const override;
  std::string name(int64_t i) const override;

  int height() const { return rows_; }
  int width() const { return cols_; }

 private:
  std::string images_name_;  // file name, for messages
  int64_t count_ = 0;
  int rows_ = 0;
  int cols_ = 0;
  std::vector<uint8_t> pixels_;  // [N, rows, cols]
  std::vector<uint8_t> labels_;  // [N]
};

}  // namespace ijepa::data
