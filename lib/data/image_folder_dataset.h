// Image folders laid out as ImageNet is (torchvision's ImageFolder): root/<split>/<class>/<image>.{jpg,jpeg,png}.
// Images are decoded lazily, at load time, into 8-bit RGB.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace ijepa::data {

class ImageFolderDataset : public Dataset {
 public:
  // The split folder is root/train for "train"; root/val (or, without it, root/test) for "test"; root/<split>
  // for any other name. Classes are its subfolders in sorted order, each holding at least one image (file
  // names sorted; extension .jpg, .jpeg or .png in any case; other files are ignored). Throws InputError naming
  // the folder when it is missing, has no class folders, or a class folder has no image.
  ImageFolderDataset(const std::string& root, const std::string& split);

  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  int channels() const override { return 3; }
  int64_t num_classes() const override { return static_cast<int64_t>(classes_.size()); }
  int64_t label(int64_t i) const override { return labels_.at(i); }
  // Reads and decodes the file; CorruptSample naming it when it cannot be read or decoded.
  Image load(int64_t i) const override;
  std::string name(int64_t i) const override { return files_.at(i); }

  const std::string& folder() const { return folder_; }
  const std::vector<std::string>& classes() const { return classes_; }

 private:
  std::string folder_;
  std::vector<std::string> classes_;
  std::vector<std::string> files_;  // full paths
  std::vector<int64_t> labels_;
};

}  // namespace ijepa::data
