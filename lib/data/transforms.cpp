// RandomResizedCrop, PIL-style bilinear resampling, centre crop and normalisation.
#include "data/transforms.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/errors.h"

namespace ijepa::data {

namespace {

// Python's round(): half to even (the default floating-point rounding mode).
int64_t round_half_even(double x) { return static_cast<int64_t>(std::nearbyint(x)); }

// For each output position of a window: the first input index, the number of taps and their normalised weights.
struct Taps {
  std::vector<int> first;
  std::vector<int> count;
  std::vector<float> weights;  // [window, max_taps]
  int max_taps = 0;
};

// PIL's precompute_coeffs for the triangle (bilinear) filter, support 1 scaled by the downscale factor, for the
// output positions [window_begin, window_begin + window) of a resize from in_size to out_size. Each position's taps
// depend on that position alone, so a window's are those of the whole resize.
Taps triangle_taps(int in_size, int64_t out_size, int64_t window_begin, int window) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filter_scale = std::max(scale, 1.0);
  const double support = filter_scale;
  Taps taps;
  taps.max_taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  taps.first.resize(window);
  taps.count.resize(window);
  taps.weights.assign(static_cast<size_t>(window) * taps.max_taps, 0.0f);
  for (int i = 0; i < window; ++i) {
    const double center = (static_cast<double>(window_begin + i) + 0.5) * scale;
    const int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    const int hi = std::min(static_cast<int>(center + support + 0.5), in_size);
    float* w = taps.weights.data() + static_cast<size_t>(i) * taps.max_taps;
    double total = 0.0;
    for (int k = 0; k < hi - lo; ++k) {
      const double t = std::abs((k + lo - center + 0.5) / filter_scale);
      w[k] = static_cast<float>(t < 1.0 ? 1.0 - t : 0.0);
      total += w[k];
    }
    for (int k = 0; k < hi - lo && total > 0.0; ++k) w[k] = static_cast<float>(w[k] / total);
    taps.first[i] = lo;
    taps.count[i] = hi - lo;
  }
  return taps;
}

// A window of a resampled image: [top, top + height) x [left, left + width). Its offsets are 64-bit: the eval
// transform's resize of a thin strip may be longer than 2^31 pixels.
struct OutputWindow {
  int64_t top = 0;
  int64_t left = 0;
  int height = 0;
  int width = 0;
};

// The window of `box` of `image` resampled to out_height x out_width, computed without the rest of that output
// (whose size may be far larger). Planar floats: out[C, window.height, window.width].
void resize_window(const Image& image, const CropBox& box, int64_t out_height, int64_t out_width,
                   const OutputWindow& window, float* out) {
  const int channels = image.channels;
  const Taps htaps = triangle_taps(box.width, out_width, window.left, window.width);
  const Taps vtaps = triangle_taps(box.height, out_height, window.top, window.height);
  // The taps move forward with the output position: the window reads the box's rows [row_begin, row_end).
  const int row_begin = vtaps.first.front();
  const int row_end = vtaps.first.back() + vtaps.count.back();
  // Horizontal pass over those rows: rows[y - row_begin, x, c].
  std::vector<float> rows(static_cast<size_t>(row_end - row_begin) * window.width * channels);
  for (int y = row_begin; y < row_end; ++y) {
    const uint8_t* src = image.pixels.data() + (static_cast<size_t>(box.top + y) * image.width + box.left) * channels;
    float* dst = rows.data() + static_cast<size_t>(y - row_begin) * window.width * channels;
    for (int x = 0; x < window.width; ++x) {
      const float* w = htaps.weights.data() + static_cast<size_t>(x) * htaps.max_taps;
      const uint8_t* s = src + static_cast<size_t>(htaps.first[x]) * channels;
      for (int c = 0; c < channels; ++c) {
        float sum = 0.0f;
        for (int k = 0; k < htaps.count[x]; ++k) sum += w[k] * s[k * channels + c];
        dst[x * channels + c] = sum;
      }
    }
  }
  // Vertical pass into planes: out[c, y, x].
  const size_t plane = static_cast<size_t>(window.height) * window.width;
  for (int y = 0; y < window.height; ++y) {
    const float* w = vtaps.weights.data() + static_cast<size_t>(y) * vtaps.max_taps;
    const size_t first_row = static_cast<size_t>(vtaps.first[y] - row_begin);
    for (int x = 0; x < window.width; ++x) {
      for (int c = 0; c < channels; ++c) {
        float sum = 0.0f;
        for (int k = 0; k < vtaps.count[y]; ++k) {
          sum += w[k] * rows[((first_row + k) * window.width + x) * channels + c];
        }
        out[c * plane + static_cast<size_t>(y) * window.width + x] = sum;
      }
    }
  }
}

}  // namespace

CropBox sample_resized_crop(int height, int width, Interval scale, Interval ratio, Rng& rng) {
  const double area = static_cast<double>(height) * width;
  const double log_lo = std::log(ratio[0]);
  const double log_hi = std::log(ratio[1]);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * rng.uniform(scale[0], scale[1]);
    const double aspect = std::exp(rng.uniform(log_lo, log_hi));
    const int w = static_cast<int>(round_half_even(std::sqrt(target_area * aspect)));
    const int h = static_cast<int>(round_half_even(std::sqrt(target_area / aspect)));
    if (0 < w && w <= width && 0 < h && h <= height) {
      const int top = static_cast<int>(rng.below(static_cast<uint64_t>(height - h + 1)));
      const int left = static_cast<int>(rng.below(static_cast<uint64_t>(width - w + 1)));
      return {top, left, h, w};
    }
  }
  const double in_ratio = static_cast<double>(width) / height;
  int w = width;
  int h = height;
  if (in_ratio < std::min(ratio[0], ratio[1])) {
    h = static_cast<int>(round_half_even(w / std::min(ratio[0], ratio[1])));
  } else if (in_ratio > std::max(ratio[0], ratio[1])) {
    w = static_cast<int>(round_half_even(h * std::max(ratio[0], ratio[1])));
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

void resize_bilinear(const Image& image, const CropBox& box, int out_height, int out_width, float* out) {
  resize_window(image, box, out_height, out_width, {0, 0, out_height, out_width}, out);
}

Transform::Transform(TransformOptions options, int channels) : options_(std::move(options)), channels_(channels) {
  const auto& o = options_;
  if (o.crop_size <= 0)
    throw common::InputError("data.crop_size: must be positive, got " + std::to_string(o.crop_size));
  if (!(0.0 < o.crop_scale[0] && o.crop_scale[0] <= o.crop_scale[1] && o.crop_scale[1] <= 1.0)) {
    throw common::InputError("data.crop_scale: must satisfy 0 < min <= max <= 1");
  }
  if (!(0.0 < o.crop_ratio[0] && o.crop_ratio[0] <= o.crop_ratio[1])) {
    throw common::InputError("crop ratio: must satisfy 0 < min <= max");
  }
  mean_ = o.mean;
  stddev_ = o.stddev;
  if (mean_.empty() && stddev_.empty()) {
    if (channels == 3) {
      mean_ = {0.485f, 0.456f, 0.406f};
      stddev_ = {0.229f, 0.224f, 0.225f};
    } else if (channels == 1) {
      mean_ = {0.2860f};
      stddev_ = {0.3530f};
    }
  }
  if (mean_.size() != static_cast<size_t>(channels) || stddev_.size() != static_cast<size_t>(channels)) {
    throw common::InputError("normalisation: mean and std need one value per channel (" + std::to_string(channels) +
                             "), got " + std::to_string(mean_.size()) + " and " + std::to_string(stddev_.size()));
  }
  for (float s : stddev_) {
    if (!(s > 0.0f)) throw common::InputError("normalisation: std must be positive");
  }
}

void Transform::check_channels(const Image& image) const {
  if (image.channels != channels_) {
    throw std::invalid_argument("transform for " + std::to_string(channels_) + " channel(s) given an image with " +
                                std::to_string(image.channels));
  }
}

void Transform::normalize(float* planes) const {
  const size_t plane = static_cast<size_t>(options_.crop_size) * options_.crop_size;
  for (int c = 0; c < channels_; ++c) {
    const float scale = 1.0f / (255.0f * stddev_[c]);
    const float shift = -mean_[c] / stddev_[c];
    float* p = planes + c * plane;
    for (size_t i = 0; i < plane; ++i) p[i] = p[i] * scale + shift;
  }
}

void Transform::train(const Image& image, Rng& rng, float* out) const {
  check_channels(image);
  const CropBox box = sample_resized_crop(image.height, image.width, options_.crop_scale, options_.crop_ratio, rng);
  resize_bilinear(image, box, options_.crop_size, options_.crop_size, out);
  normalize(out);
}

void Transform::eval(const Image& image, float* out) const {
  check_channels(image);
  const int crop = options_.crop_size;
  if (image.height == crop && image.width == crop) {
    resize_bilinear(image, {0, 0, crop, crop}, crop, crop, out);  // identity weights: a planar copy
    normalize(out);
    return;
  }
  // torchvision Resize(int): the shorter side becomes `side`, the longer one int(side * long / short); then
  // CenterCrop, whose offsets round half to even. Only the crop is computed: a 1x50000 strip resizes to
  // 256x12800000, of which 224x224 are kept.
  const int side = crop * 256 / 224;
  const bool tall = image.height > image.width;
  const int short_in = tall ? image.width : image.height;
  const auto long_out =
      static_cast<int64_t>(static_cast<double>(side) * (tall ? image.height : image.width) / short_in);
  const int64_t height = tall ? long_out : side;
  const int64_t width = tall ? side : long_out;
  const OutputWindow window{round_half_even((height - crop) / 2.0), round_half_even((width - crop) / 2.0), crop, crop};
  resize_window(image, {0, 0, image.height, image.width}, height, width, window, out);
  normalize(out);
}

}  // namespace ijepa::data
