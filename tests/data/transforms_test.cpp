// Transforms: RandomResizedCrop bounds and fallback, PIL-equal bilinear resampling, normalisation, eval crop.
#include "data/transforms.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/errors.h"
#include "data_test_util.h"

namespace ijepa::data {
namespace {

Image gray_image(int height, int width, const std::function<int(int, int)>& value) {
  Image image{height, width, 1, std::vector<uint8_t>(static_cast<size_t>(height) * width)};
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) image.pixels[y * width + x] = static_cast<uint8_t>(value(y, x));
  }
  return image;
}

std::vector<float> resize(const Image& image, CropBox box, int out_h, int out_w) {
  std::vector<float> out(static_cast<size_t>(image.channels) * out_h * out_w);
  resize_bilinear(image, box, out_h, out_w, out.data());
  return out;
}

TEST(RandomResizedCropTest, BoxesStayInBoundsWithScaleAndRatio) {
  Rng rng(7);
  int fallbacks = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    const int height = 1 + static_cast<int>(rng.below(300));
    const int width = 1 + static_cast<int>(rng.below(300));
    const CropBox box = sample_resized_crop(height, width, {0.3, 1.0}, {3.0 / 4.0, 4.0 / 3.0}, rng);
    ASSERT_GT(box.height, 0);
    ASSERT_GT(box.width, 0);
    ASSERT_GE(box.top, 0);
    ASSERT_GE(box.left, 0);
    ASSERT_LE(box.top + box.height, height);
    ASSERT_LE(box.left + box.width, width);
    if (box.height == height || box.width == width) {
      ++fallbacks;
      continue;
    }
    // A sampled box: its area fraction and aspect ratio lie in the ranges, up to rounding to whole pixels.
    const double fraction = static_cast<double>(box.height) * box.width / (static_cast<double>(height) * width);
    const double slack = (box.height + box.width + 1.0) / (static_cast<double>(height) * width);
    EXPECT_GE(fraction, 0.3 - slack);
    EXPECT_LE(fraction, 1.0 + slack);
    // Rounding moves each side by at most half a pixel.
    const double w = box.width, h = box.height;
    const double ratio = w / h;
    EXPECT_GE(ratio, (3.0 / 4.0) * (w - 1) / (w - 0.5) * (h - 0.5) / h);
    if (h > 1) {
      EXPECT_LE(ratio, (4.0 / 3.0) * w / (w - 0.5) * (h - 0.5) / (h - 1));
    }
  }
  EXPECT_LT(fallbacks, 2000);
}

TEST(RandomResizedCropTest, CentralFallbackAsTorchvision) {
  Rng rng(1);
  // No box of at least 99% of a 10x1000 strip has an aspect ratio within [3/4, 4/3]: all ten tries fail.
  const CropBox wide = sample_resized_crop(10, 1000, {0.99, 1.0}, {3.0 / 4.0, 4.0 / 3.0}, rng);
  EXPECT_EQ(wide.height, 10);
  EXPECT_EQ(wide.width, 13);  // round(10 * 4/3)
  EXPECT_EQ(wide.top, 0);
  EXPECT_EQ(wide.left, (1000 - 13) / 2);
  const CropBox tall = sample_resized_crop(1000, 10, {0.99, 1.0}, {3.0 / 4.0, 4.0 / 3.0}, rng);
  EXPECT_EQ(tall.width, 10);
  EXPECT_EQ(tall.height, 13);  // round(10 / (3/4))
  EXPECT_EQ(tall.top, (1000 - 13) / 2);
  // Full scale and ratio 1 on a square: the whole image.
  const CropBox whole = sample_resized_crop(32, 32, {1.0, 1.0}, {1.0, 1.0}, rng);
  EXPECT_EQ(whole.height, 32);
  EXPECT_EQ(whole.width, 32);
}

TEST(RandomResizedCropTest, SameSeedSameBox) {
  Rng a(99), b(99);
  for (int i = 0; i < 20; ++i) {
    const CropBox x = sample_resized_crop(224, 300, {0.3, 1.0}, {0.75, 4.0 / 3.0}, a);
    const CropBox y = sample_resized_crop(224, 300, {0.3, 1.0}, {0.75, 4.0 / 3.0}, b);
    EXPECT_EQ(std::tie(x.top, x.left, x.height, x.width), std::tie(y.top, y.left, y.height, y.width));
  }
}

TEST(ResizeBilinearTest, ConstantStaysConstant) {
  const Image image = gray_image(37, 23, [](int, int) { return 173; });
  for (auto [h, w] : {std::pair{5, 7}, std::pair{37, 23}, std::pair{100, 61}, std::pair{1, 1}}) {
    for (float v : resize(image, {3, 2, 30, 19}, h, w)) ASSERT_NEAR(v, 173.0f, 1e-3f) << h << "x" << w;
  }
}

TEST(ResizeBilinearTest, RampStaysLinearAwayFromEdges) {
  const Image ramp = gray_image(4, 64, [](int, int x) { return 3 * x; });
  // Shrinking by a whole factor and enlarging keep a ramp exactly linear; shrinking by 1.6 samples the triangle
  // at uneven offsets, so (as in PIL) the weights' centroid drifts a little from the pixel centre.
  for (auto [out_w, tolerance] : {std::pair{16, 1e-3}, std::pair{150, 1e-3}, std::pair{40, 0.5}}) {
    const auto out = resize(ramp, {0, 0, 4, 64}, 4, out_w);
    const int margin = static_cast<int>(std::ceil(static_cast<double>(out_w) / 64)) + 1;  // the filter's reach
    for (int x = margin; x < out_w - margin; ++x) {
      // The sample at output x is centred on input (x + 0.5) * 64 / out_w - 0.5.
      EXPECT_NEAR(out[x], 3.0 * ((x + 0.5) * 64.0 / out_w - 0.5), tolerance) << out_w << " at " << x;
    }
  }
}

// Expected values from Pillow 13 (Image.resize with BILINEAR on a mode "F" image, so without 8-bit rounding).
TEST(ResizeBilinearTest, MatchesPillow) {
  const Image image = gray_image(7, 9, [](int y, int x) { return (x * 29 + y * 13 + (x * y) % 7 * 11) % 256; });
  const std::vector<float> down = {42.9837f,  116.7805f, 189.1899f, 169.5041f, 85.842f,  159.8838f,
                                   148.5151f, 130.3479f, 122.3592f, 186.2962f, 142.993f, 67.4367f};
  const std::vector<float> mixed_first_rows = {16.5714f, 61.625f,   116.0f,    170.375f,  215.4286f,
                                               29.4286f, 85.875f,   154.0f,    212.5f,    145.5714f,
                                               44.4286f, 114.1667f, 172.1634f, 233.8403f, 118.5159f};
  const std::vector<float> cropped = {124.7679f, 165.4921f, 219.0794f, 233.6786f, 153.0972f, 179.4444f,
                                      126.963f,  172.9583f, 154.2321f, 198.873f,  108.4127f, 74.1429f};
  const auto a = resize(image, {0, 0, 7, 9}, 3, 4);
  for (size_t i = 0; i < down.size(); ++i) EXPECT_NEAR(a[i], down[i], 2e-3) << i;
  const auto b = resize(image, {0, 0, 7, 9}, 9, 5);
  for (size_t i = 0; i < mixed_first_rows.size(); ++i) EXPECT_NEAR(b[i], mixed_first_rows[i], 2e-3) << i;
  const auto c = resize(image, {1, 2, 5, 6}, 3, 4);  // PIL: crop((2, 1, 8, 6)).resize((4, 3))
  for (size_t i = 0; i < cropped.size(); ++i) EXPECT_NEAR(c[i], cropped[i], 2e-3) << i;
}

TEST(TransformTest, TrainShapeAndNormalisation) {
  TransformOptions options;
  options.crop_size = 16;
  const Transform transform(options, 3);
  EXPECT_EQ(transform.sample_floats(), 3 * 16 * 16);
  EXPECT_FLOAT_EQ(transform.mean()[1], 0.456f);
  EXPECT_FLOAT_EQ(transform.stddev()[2], 0.225f);
  // Each channel constant at its mean: normalises to 0 whatever the crop.
  Image image{50, 40, 3, {}};
  for (int p = 0; p < 50 * 40; ++p) {
    for (float m : {0.485f, 0.456f, 0.406f}) image.pixels.push_back(static_cast<uint8_t>(std::lround(m * 255)));
  }
  std::vector<float> out(transform.sample_floats(), 99.0f);
  Rng rng(3);
  transform.train(image, rng, out.data());
  for (float v : out) EXPECT_NEAR(v, 0.0f, 0.01f);
}

TEST(TransformTest, EvalIsIdentityAtCropSizeAndCentreCropsOtherwise) {
  TransformOptions options;
  options.crop_size = 28;
  const Transform transform(options, 1);
  EXPECT_FLOAT_EQ(transform.mean()[0], 0.2860f);
  EXPECT_FLOAT_EQ(transform.stddev()[0], 0.3530f);
  const Image native = gray_image(28, 28, [](int y, int x) { return y * 9 + x; });
  std::vector<float> out(transform.sample_floats());
  transform.eval(native, out.data());
  for (int p = 0; p < 28 * 28; ++p) EXPECT_NEAR(out[p], (native.pixels[p] / 255.0f - 0.2860f) / 0.3530f, 1e-5f);
  // 40x60 -> shorter side 32 (28 * 256 / 224) -> 32x48 -> centre 28x28: a horizontal ramp stays centred.
  const Image wide = gray_image(40, 60, [](int, int x) { return 4 * x; });
  transform.eval(wide, out.data());
  const float centre = 0.5f * (out[14] + out[13]) * 0.3530f + 0.2860f;  // back to [0, 1]
  EXPECT_NEAR(centre * 255.0f, 4 * 29.5f, 1.0f);
}

TEST(TransformTest, EvalEqualsTheCentreOfTheWholeResize) {
  TransformOptions options;
  options.crop_size = 28;
  options.mean = {0.0f};
  options.stddev = {1.0f};  // normalising is then x * (1 / 255)
  const Transform transform(options, 1);
  std::vector<float> out(transform.sample_floats());
  for (auto [height, width] : {std::pair{40, 60}, std::pair{300, 7}, std::pair{29, 29}, std::pair{20, 20}}) {
    const Image image =
        gray_image(height, width, [](int y, int x) { return (x * 29 + y * 13 + (x * y) % 7 * 11) % 256; });
    // Resize(32) of the shorter side as torchvision, then the centre 28x28 (offsets rounding half to even).
    const bool tall = height > width;
    const int resized_long = 32 * (tall ? height : width) / (tall ? width : height);
    const int out_h = tall ? resized_long : 32, out_w = tall ? 32 : resized_long;
    const int top = static_cast<int>(std::nearbyint((out_h - 28) / 2.0));
    const int left = static_cast<int>(std::nearbyint((out_w - 28) / 2.0));
    const auto whole = resize(image, {0, 0, height, width}, out_h, out_w);
    transform.eval(image, out.data());
    for (int y = 0; y < 28; ++y) {
      for (int x = 0; x < 28; ++x) {
        ASSERT_EQ(out[y * 28 + x], whole[(top + y) * out_w + left + x] * (1.0f / 255.0f))
            << height << "x" << width << " at " << y << ", " << x;  // bit-identical
      }
    }
  }
}

TEST(TransformTest, EvalOfAThinStripComputesOnlyItsCrop) {
  // Resize(256) turns 1x50000 into 256x12800000 (13 GB of floats); the 224x224 crop needs a few kilobytes.
  const Image strip = gray_image(1, 50000, [](int, int x) { return x % 256; });
  const Transform transform(TransformOptions{}, 1);
  std::vector<float> out(transform.sample_floats());
  {
    const testing::AddressSpaceCap cap(size_t{512} << 20);
    transform.eval(strip, out.data());
  }
  // An upscale by 256 along x: the crop lies between source pixels 24999 and 25000 (values 167 and 168).
  for (float v : out) ASSERT_NEAR((v * 0.3530f + 0.2860f) * 255.0f, 167.5f, 0.6f);
}

TEST(TransformTest, BadOptionsAreInputErrors) {
  TransformOptions options;
  options.crop_size = 0;
  EXPECT_THROW(Transform(options, 3), common::InputError);
  options.crop_size = 8;
  options.crop_scale = {0.5, 0.2};
  EXPECT_THROW(Transform(options, 3), common::InputError);
  options.crop_scale = {0.3, 1.0};
  EXPECT_THROW(Transform(options, 2), common::InputError);  // no default normalisation for 2 channels
  options.mean = {0.5f};
  options.stddev = {0.0f};
  EXPECT_THROW(Transform(options, 1), common::InputError);
}

}  // namespace
}  // namespace ijepa::data
