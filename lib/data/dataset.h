// The dataset interface shared by the IDX, CIFAR and image-folder readers, and the factory that picks one
// from the config (data.dataset, data.root_path/image_folder, data.split).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data/image.h"

namespace ijepa::data {

// A labelled, indexable set of images. Opening validates the files (InputError naming the file or folder);
// after that, every method is const and safe to call from several threads at once.
class Dataset {
 public:
  virtual ~Dataset() = default;

  virtual int64_t size() const = 0;
  // Channels of the images load() returns (1 for IDX, 3 otherwise).
  virtual int channels() const = 0;
  virtual int64_t num_classes() const = 0;
  // Class of sample i in [0, num_classes()); cheap (no decoding).
  virtual int64_t label(int64_t i) const = 0;
  // Sample i decoded. Throws CorruptSample when that one sample cannot be read or decoded.
  virtual Image load(int64_t i) const = 0;
  // How messages name sample i: its file, or "file#index" for samples packed in one file.
  virtual std::string name(int64_t i) const = 0;
};

// Opens the dataset of `kind` (idx | cifar10 | cifar100 | imagefolder) at `path` for `split` (train | test;
// an image folder also accepts the name of any subfolder). Throws InputError naming the kind, file or folder.
std::shared_ptr<const Dataset> open_dataset(const std::string& kind, const std::string& path, const std::string& split);

// Throws InputError unless the two splits label the same classes alike: the same class count, and for image
// folders (labelled by their sorted class folder names) the same names, else naming the first folder that differs.
void check_same_classes(const Dataset& train, const Dataset& test);

}  // namespace ijepa::data
