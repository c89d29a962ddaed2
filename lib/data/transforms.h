// Image transforms of the pipeline, following torchvision on PIL images:
//   train: RandomResizedCrop(crop_size, scale, ratio (3/4, 4/3), bilinear) -> float [0, 1] -> normalise
//   eval:  Resize(crop_size * 256 / 224) of the shorter side -> CenterCrop(crop_size) -> normalise
//          (an image already crop_size x crop_size, e.g. IDX or CIFAR at their native size, is only normalised)
// Resampling is PIL's BILINEAR: a triangle filter whose support widens with the downscale factor, so
// shrinking antialiases. It is computed in float without PIL's 8-bit intermediate rounding.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "data/image.h"
#include "data/rng.h"

namespace ijepa::data {

using Interval = std::array<double, 2>;  // [low, high]

// A window of an image, in pixels.
struct CropBox {
  int top = 0;
  int left = 0;
  int height = 0;
  int width = 0;
};

// torchvision's RandomResizedCrop.get_params with our generator: up to 10 tries of an area fraction uniform in
// `scale` and an aspect ratio log-uniform in `ratio`, kept when the box fits (position uniform); otherwise the
// central crop with the ratio clamped into `ratio`. Sizes round half to even, as Python's round().
CropBox sample_resized_crop(int height, int width, Interval scale, Interval ratio, Rng& rng);

// Resamples `box` of `image` to out_height x out_width (the box is treated as its own image, as torchvision
// crops before resizing). Writes planar floats in pixel units (0..255): out[C, out_height, out_width].
void resize_bilinear(const Image& image, const CropBox& box, int out_height, int out_width, float* out);

struct TransformOptions {
  int crop_size = 224;
  Interval crop_scale{0.3, 1.0};
  Interval crop_ratio{3.0 / 4.0, 4.0 / 3.0};
  // Per-channel normalisation (x - mean) / stddev of x in [0, 1]; both empty: ImageNet's (0.485, 0.456, 0.406) /
  // (0.229, 0.224, 0.225) for 3 channels, Fashion-MNIST's 0.2860 / 0.3530 for 1.
  std::vector<float> mean;
  std::vector<float> stddev;
};

// The transforms for images of a given channel count. Thread-safe (const).
class Transform {
 public:
  // Throws InputError when crop_size, the scale or ratio range, or the mean/std sizes are invalid.
  Transform(TransformOptions options, int channels);

  int crop_size() const { return options_.crop_size; }
  int channels() const { return channels_; }
  // Floats one transformed sample takes: channels * crop_size * crop_size.
  int64_t sample_floats() const { return int64_t{channels_} * options_.crop_size * options_.crop_size; }
  const std::vector<float>& mean() const { return mean_; }
  const std::vector<float>& stddev() const { return stddev_; }

  // RandomResizedCrop + normalisation. out: [C, crop_size, crop_size].
  void train(const Image& image, Rng& rng, float* out) const;
  // Resize of the shorter side, centre crop, normalisation. out: [C, crop_size, crop_size].
  void eval(const Image& image, float* out) const;

 private:
  void check_channels(const Image& image) const;
  // In place: pixel units -> (x / 255 - mean) / std, per plane.
  void normalize(float* planes) const;

  TransformOptions options_;
  int channels_;
  std::vector<float> mean_;
  std::vector<float> stddev_;
};

}  // namespace ijepa::data
