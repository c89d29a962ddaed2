// The dataset factory, and the check that two splits share their classes.
#include "data/dataset.h"

#include <algorithm>

#include "common/errors.h"
#include "data/cifar_dataset.h"
#include "data/idx_dataset.h"
#include "data/image_folder_dataset.h"

namespace ijepa::data {

std::shared_ptr<const Dataset> open_dataset(const std::string& kind, const std::string& path,
                                            const std::string& split) {
  if (kind == "idx") return IdxDataset::open(path, split);
  if (kind == "cifar10") return std::make_shared<CifarDataset>(path, CifarDataset::Variant::kCifar10, split);
  if (kind == "cifar100") return std::make_shared<CifarDataset>(path, CifarDataset::Variant::kCifar100, split);
  if (kind == "imagefolder") return std::make_shared<ImageFolderDataset>(path, split);
  throw common::InputError("data.dataset: unknown kind '" + kind +
                           "' (expected idx, cifar10, cifar100 or imagefolder)");
}

void check_same_classes(const Dataset& train, const Dataset& test) {
  const auto* train_folder = dynamic_cast<const ImageFolderDataset*>(&train);
  const auto* test_folder = dynamic_cast<const ImageFolderDataset*>(&test);
  if (train_folder != nullptr && test_folder != nullptr) {
    const auto& a = train_folder->classes();
    const auto& b = test_folder->classes();
    const auto [in_train, in_test] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
    if (in_train != a.end() || in_test != b.end()) {
      const std::string differing =
          in_train != a.end() ? train_folder->folder() + "/" + *in_train : test_folder->folder() + "/" + *in_test;
      throw common::InputError("dataset mismatch: the class folders of " + train_folder->folder() + " and " +
                               test_folder->folder() + " differ, first at " + differing);
    }
  }
  if (train.num_classes() != test.num_classes()) {
    throw common::InputError("dataset mismatch: the train split has " + std::to_string(train.num_classes()) +
                             " classes, the test split " + std::to_string(test.num_classes()));
  }
}

}  // namespace ijepa::data
