// Frozen features for the probes: one pass of the data loader (eval transform, dataset order) through a frozen
// encoder, or the normalised pixels themselves, cached in memory as one [N, F] matrix.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

#include "data/dataset.h"
#include "eval/progress.h"
#include "model/vit.h"

namespace ijepa::eval {

// How patch tokens become one vector: the mean over tokens of the last layer ([D]), or of each of the last 4
// layers, concatenated ([4D]; each layer through the encoder's final LayerNorm, as DINO's probes do; an encoder
// with fewer blocks gives all of them), or the last layer's token grid kept as a map: average-pooled to
// grid_cells(D) cells a side and flattened ([D * cells^2]; the whole grid when it is that small). The map is the
// older linear-probe protocol for spatial features (a linear classifier on a feature map pooled to about 9000
// values: Zhang et al. 2017, Goyal et al. 2019); averaging over all tokens discards where things are, which on
// small centred images such as Fashion-MNIST carries much of the class.
enum class Pooling { kAvg, kAvgLast4, kGrid };

// Cells a side of the pooled token map for tokens `width` wide: at most 7, and fewer for wider models so that
// the features stay near 10000 (ViT-tiny 7: 9408 features; small 5; base and large 3; huge and giant 2).
int64_t grid_cells(int64_t width);

// "avg" | "avg4" | "grid"; InputError otherwise.
Pooling parse_pooling(const std::string& name);
std::string to_string(Pooling pooling);

struct FeatureSet {
  torch::Tensor features;  // [N, F] float32, CPU
  torch::Tensor labels;    // [N] int64, CPU
  int64_t num_classes = 0;
  int64_t skipped = 0;  // unreadable samples, each replaced by the next readable one (data::Loader::skipped_samples)
};

struct FeatureOptions {
  Pooling pooling = Pooling::kAvg;
  // 64: on 2 AVX2 cores in fp32, extracting Fashion-MNIST features in batches of 128 took a third longer than in
  // batches of 64 or 32 (the activations of 128 images outgrow the caches); GPUs want larger batches.
  int64_t batch_size = 64;
  int64_t num_workers = 2;         // decoding threads
  bool bf16 = false;               // autocast the encoder to bfloat16 (features are stored as float32)
  ProgressFn progress;             // optional
  std::string stage = "features";  // name given to progress
};

// At most `max_samples` samples spread evenly over the dataset (indices i * size / max_samples), so that a
// class-sorted dataset (an image folder) keeps every class; the dataset itself when max_samples is 0 or not
// smaller than its size.
std::shared_ptr<const data::Dataset> spread_subset(std::shared_ptr<const data::Dataset> dataset, int64_t max_samples);

// Samples rank, rank + world, rank + 2 * world, ...: one rank's share when several ranks extract features together.
std::shared_ptr<const data::Dataset> strided_subset(std::shared_ptr<const data::Dataset> dataset, int64_t rank,
                                                    int64_t world);

// images: [B, C, H, W] -> [B, F] float32 (F = D, 4D or D * cells^2), in the caller's grad and autocast mode.
torch::Tensor pooled_features(model::VisionTransformer& encoder, const torch::Tensor& images, Pooling pooling);

// The encoder's pooled features of every sample, images at the encoder's img_size, computed on the device the
// encoder is on (it is not moved) in eval mode under NoGradGuard; its mode is restored. Throws InputError when
// the dataset's channel count differs from the encoder's.
FeatureSet extract_features(model::VisionTransformer& encoder, std::shared_ptr<const data::Dataset> dataset,
                            const FeatureOptions& options);

// The normalised pixels at crop_size x crop_size, flattened: [N, C * crop_size^2] (the raw-pixel baseline).
FeatureSet pixel_features(std::shared_ptr<const data::Dataset> dataset, int64_t crop_size,
                          const FeatureOptions& options);

}  // namespace ijepa::eval
