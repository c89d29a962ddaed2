// The dataset factory.
#include "data/dataset.h"

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

}  // namespace ijepa::data
