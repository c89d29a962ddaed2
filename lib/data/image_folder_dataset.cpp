// Image-folder indexing and lazy decoding.
#include "data/image_folder_dataset.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "common/errors.h"
#include "common/files.h"

namespace ijepa::data {

namespace {

namespace fs = std::filesystem;

bool is_image_file(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

fs::path split_folder(const std::string& root, const std::string& split) {
  common::require_path("image folder", root, common::PathKind::kFolder);
  if (split == "train") return fs::path(root) / "train";
  if (split == "test")
    return fs::is_directory(fs::path(root) / "val") ? fs::path(root) / "val" : fs::path(root) / "test";
  return fs::path(root) / split;
}

template <typename Keep>
std::vector<fs::path> sorted_entries(const fs::path& folder, Keep keep) {
  std::vector<fs::path> entries;
  for (const fs::directory_entry& entry : fs::directory_iterator(folder)) {
    if (keep(entry)) entries.push_back(entry.path());
  }
  std::sort(entries.begin(), entries.end());
  return entries;
}

}  // namespace

ImageFolderDataset::ImageFolderDataset(const std::string& root, const std::string& split) {
  const fs::path folder = split_folder(root, split);
  folder_ = folder.string();
  common::require_path("split folder", folder_, common::PathKind::kFolder);
  try {
    const auto class_dirs = sorted_entries(folder, [](const fs::directory_entry& e) { return e.is_directory(); });
    if (class_dirs.empty()) throw common::InputError(folder_ + ": no class subfolders");
    for (const fs::path& class_dir : class_dirs) {
      const auto images = sorted_entries(
          class_dir, [](const fs::directory_entry& e) { return e.is_regular_file() && is_image_file(e.path()); });
      if (images.empty()) throw common::InputError(class_dir.string() + ": class folder holds no .jpg/.jpeg/.png");
      for (const fs::path& image : images) {
        files_.push_back(image.string());
        labels_.push_back(static_cast<int64_t>(classes_.size()));
      }
      classes_.push_back(class_dir.filename().string());
    }
  } catch (const fs::filesystem_error& e) {
    throw common::InputError(folder_ + ": cannot list (" + e.what() + ")");
  }
}

Image ImageFolderDataset::load(int64_t i) const {
  const std::string& path = files_.at(i);
  std::string bytes;
  try {
    bytes = common::read_file(path);
  } catch (const common::InputError& e) {
    throw CorruptSample(e.what());  // one unreadable file is not fatal to the run
  }
  return decode_image(bytes, path);
}

}  // namespace ijepa::data
