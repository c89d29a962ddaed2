// The tiny training config that the trainer's CLI tests share: ViT-tiny on 28x28 IDX images in data_dir, batch 4,
// 4x4 patches, a one-block predictor, one thread, 50 epochs unless `optimization` says otherwise. Each test
// appends its own sections (logging, dist, eval).
#pragma once

#include <filesystem>
#include <string>

namespace ijepa::train::testing {

inline std::string tiny_config(const std::filesystem::path& data_dir,
                               const std::string& optimization = "{epochs: 50, warmup: 1}") {
  return "data: {dataset: idx, root_path: " + data_dir.string() +
         ", batch_size: 4, crop_size: 28, num_workers: 1}\n"
         "mask: {patch_size: 4, min_keep: 4}\n"
         "meta: {model_name: vit_tiny, pred_depth: 1, pred_emb_dim: 96, threads: 1}\n"
         "optimization: " +
         optimization + "\n";
}

}  // namespace ijepa::train::testing
