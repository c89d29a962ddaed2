// JPEG/PNG decoding (colour types, bit depths, corrupt files) and the image-folder dataset.
#include "data/image_folder_dataset.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "data_test_util.h"
#include "input_error.h"

namespace ijepa::data {
namespace {

using ijepa::testing::expect_input_error;
using ijepa::testing::TempDir;
using ijepa::testing::write_file;
using testing::encode_jpeg;
using testing::encode_png;
using testing::gradient_image;

TEST(DecodeTest, JpegRgbAndGrey) {
  const Image rgb = gradient_image(24, 40);
  const Image decoded = decode_image(encode_jpeg(rgb), "a.jpg");
  ASSERT_EQ(decoded.height, 24);
  ASSERT_EQ(decoded.width, 40);
  ASSERT_EQ(decoded.channels, 3);
  double error = 0;
  for (size_t i = 0; i < rgb.pixels.size(); ++i) error += std::abs(rgb.pixels[i] - decoded.pixels[i]);
  EXPECT_LT(error / rgb.pixels.size(), 3.0);
  Image grey{8, 8, 1, std::vector<uint8_t>(64, 77)};
  const Image from_grey = decode_image(encode_jpeg(grey), "g.jpg");
  ASSERT_EQ(from_grey.channels, 3);
  for (uint8_t v : from_grey.pixels) EXPECT_NEAR(v, 77, 1);
}

TEST(DecodeTest, PngColourTypesBecomeRgb8) {
  // RGB, exact.
  const Image rgb = gradient_image(5, 6);
  EXPECT_EQ(decode_image(encode_png(6, 5, PNG_COLOR_TYPE_RGB, 8, rgb.pixels), "rgb.png").pixels, rgb.pixels);
  // Grey replicated; grey+alpha and RGBA lose their alpha.
  const Image grey = decode_image(encode_png(2, 1, PNG_COLOR_TYPE_GRAY, 8, {10, 200}), "g.png");
  EXPECT_EQ(grey.pixels, (std::vector<uint8_t>{10, 10, 10, 200, 200, 200}));
  const Image grey_alpha = decode_image(encode_png(2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, {10, 0, 200, 255}), "ga.png");
  EXPECT_EQ(grey_alpha.pixels, (std::vector<uint8_t>{10, 10, 10, 200, 200, 200}));
  const Image rgba = decode_image(encode_png(1, 1, PNG_COLOR_TYPE_RGBA, 8, {1, 2, 3, 0}), "rgba.png");
  EXPECT_EQ(rgba.pixels, (std::vector<uint8_t>{1, 2, 3}));
  // Palette expanded.
  const Image palette = decode_image(
      encode_png(3, 1, PNG_COLOR_TYPE_PALETTE, 8, {1, 0, 1}, {png_color{9, 8, 7}, png_color{50, 60, 70}}), "p.png");
  EXPECT_EQ(palette.pixels, (std::vector<uint8_t>{50, 60, 70, 9, 8, 7, 50, 60, 70}));
  // A palette with transparency (tRNS): its colours, the transparency ignored.
  const Image transparent = decode_image(
      encode_png(2, 1, PNG_COLOR_TYPE_PALETTE, 8, {1, 0}, {png_color{9, 8, 7}, png_color{50, 60, 70}}, {0, 128}),
      "pt.png");
  EXPECT_EQ(transparent.pixels, (std::vector<uint8_t>{50, 60, 70, 9, 8, 7}));
  // 16-bit RGB: the high byte. 16-bit grey: clipped to 255, as PIL's mode I;16. 1-bit grey: 0 or 255.
  const Image deep =
      decode_image(encode_png(1, 1, PNG_COLOR_TYPE_RGB, 16, {0x12, 0x34, 0xAB, 0xCD, 0xFF, 0x00}), "16.png");
  EXPECT_EQ(deep.pixels, (std::vector<uint8_t>{0x12, 0xAB, 0xFF}));
  const Image deep_grey = decode_image(encode_png(2, 1, PNG_COLOR_TYPE_GRAY, 16, {0x00, 0xF0, 0x12, 0x34}), "g16.png");
  EXPECT_EQ(deep_grey.pixels, (std::vector<uint8_t>{240, 240, 240, 255, 255, 255}));
  const Image bits = decode_image(encode_png(8, 1, PNG_COLOR_TYPE_GRAY, 1, {0b10000001}), "1.png");
  ASSERT_EQ(bits.pixels.size(), 24u);
  EXPECT_EQ(bits.pixels[0], 255);
  EXPECT_EQ(bits.pixels[3], 0);
  EXPECT_EQ(bits.pixels[21], 255);
}

TEST(DecodeTest, PngWithoutIendDecodesAsInPil) {
  const std::vector<uint8_t> raw = {10, 20, 30, 40, 50, 60};
  const std::string png = encode_png(2, 1, PNG_COLOR_TYPE_RGB, 8, raw);
  ASSERT_EQ(png.substr(png.size() - 8, 4), "IEND");
  EXPECT_EQ(decode_image(png.substr(0, png.size() - 12), "no-iend.png").pixels, raw);
}

void expect_corrupt(const std::string& bytes, const std::string& name, const std::string& why = "") {
  try {
    decode_image(bytes, name);
    FAIL() << "decoded a corrupt " << name;
  } catch (const CorruptSample& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
  }
}

void put_be16(std::string& bytes, size_t offset, uint16_t value) {
  bytes[offset] = static_cast<char>(value >> 8);
  bytes[offset + 1] = static_cast<char>(value & 0xFF);
}

TEST(DecodeTest, HeadersBeyondPilsPixelLimitAreRefusedBeforeDecoding) {
  // A baseline JPEG whose frame header (SOF0: length, precision, height, width) claims 16384 x 16384.
  std::string jpeg = encode_jpeg(gradient_image(8, 8));
  const size_t frame = jpeg.find("\xFF\xC0");
  ASSERT_NE(frame, std::string::npos);
  put_be16(jpeg, frame + 5, 16384);
  put_be16(jpeg, frame + 7, 16384);
  expect_corrupt(jpeg, "huge.jpg", "too large (16384x16384");
  // A PNG whose IHDR claims 13400 x 13400 (179560000 pixels, just past the limit), with its CRC made good.
  std::string png = encode_png(1, 1, PNG_COLOR_TYPE_RGB, 8, {1, 2, 3});
  ASSERT_EQ(png.substr(12, 4), "IHDR");
  put_be16(png, 18, 13400);
  put_be16(png, 22, 13400);
  const uLong crc = crc32(0, reinterpret_cast<const Bytef*>(png.data() + 12), 17);
  for (int i = 0; i < 4; ++i) png[29 + i] = static_cast<char>(crc >> (24 - 8 * i));
  expect_corrupt(png, "huge.png", "too large (13400x13400");
}

TEST(DecodeTest, CorruptFilesThrowCorruptSampleNamingTheFile) {
  const std::string jpeg = encode_jpeg(gradient_image(32, 32));
  const std::string png = encode_png(4, 4, PNG_COLOR_TYPE_GRAY, 8, std::vector<uint8_t>(16, 3));
  expect_corrupt(jpeg.substr(0, jpeg.size() / 2), "half.jpg");
  expect_corrupt(jpeg.substr(0, 20), "header.jpg");
  expect_corrupt(png.substr(0, png.size() - 20), "half.png");
  std::string flipped = png;
  flipped[45] ^= 0x55;  // inside IDAT: the CRC no longer matches
  expect_corrupt(flipped, "crc.png");
  expect_corrupt("GIF89a....", "x.gif.jpg");
  expect_corrupt("", "empty.jpg");
}

// root/train/{cat,dog}, root/val/{cat,dog}; dog/c.jpg is corrupt.
class ImageFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_file(dir_ / "train/cat/a.jpg", encode_jpeg(gradient_image(20, 30)));
    write_file(dir_ / "train/cat/b.png", encode_png(3, 2, PNG_COLOR_TYPE_GRAY, 8, {1, 2, 3, 4, 5, 6}));
    write_file(dir_ / "train/dog/c.jpg", "\xFF\xD8\xFF\xE0 this is not really a JPEG");
    write_file(dir_ / "train/dog/d.PNG", encode_png(2, 2, PNG_COLOR_TYPE_RGB, 8, std::vector<uint8_t>(12, 40)));
    write_file(dir_ / "train/dog/notes.txt", "ignored");
    write_file(dir_ / "val/cat/x.png", encode_png(2, 2, PNG_COLOR_TYPE_RGB, 8, std::vector<uint8_t>(12, 1)));
    write_file(dir_ / "val/dog/y.jpeg", encode_jpeg(gradient_image(9, 9)));
  }
  TempDir dir_;
};

TEST_F(ImageFolderTest, IndexesSortedClassesAndFiles) {
  const ImageFolderDataset train(dir_.path().string(), "train");
  EXPECT_EQ(train.classes(), (std::vector<std::string>{"cat", "dog"}));
  ASSERT_EQ(train.size(), 4);
  EXPECT_EQ(train.channels(), 3);
  EXPECT_EQ(train.num_classes(), 2);
  EXPECT_EQ(train.name(0), dir_ / "train/cat/a.jpg");
  EXPECT_EQ(train.name(3), dir_ / "train/dog/d.PNG");
  EXPECT_EQ(train.label(1), 0);
  EXPECT_EQ(train.label(2), 1);
  const Image a = train.load(0);
  EXPECT_EQ(a.height, 20);
  EXPECT_EQ(a.width, 30);
  const Image b = train.load(1);
  EXPECT_EQ(b.pixels[3 * 5], 6);  // grey (1, 2) -> RGB
  EXPECT_THROW(train.load(2), CorruptSample);
  // "test" reads val/ when present.
  const auto test = open_dataset("imagefolder", dir_.path().string(), "test");
  EXPECT_EQ(test->size(), 2);
  EXPECT_EQ(test->name(1), dir_ / "val/dog/y.jpeg");
}

TEST_F(ImageFolderTest, AFileThatCannotBeReadIsACorruptSampleNamingIt) {
  const ImageFolderDataset train(dir_.path().string(), "train");
  // b.png replaced, after indexing, by what opens but cannot be read: a folder (read() fails with EISDIR).
  const std::string path = dir_ / "train/cat/b.png";
  std::filesystem::remove(path);
  std::filesystem::create_directories(path);
  try {
    train.load(1);
    FAIL() << "read a folder as an image";
  } catch (const CorruptSample& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": read error"), std::string::npos) << e.what();
  }
}

TEST_F(ImageFolderTest, MissingOrEmptyFoldersAreInputErrors) {
  expect_input_error([&] { ImageFolderDataset(dir_ / "absent", "train"); }, {dir_ / "absent"});
  expect_input_error([&] { ImageFolderDataset(dir_.path().string(), "holdout"); }, {dir_ / "holdout"});
  std::filesystem::create_directories(dir_ / "empty");
  expect_input_error([&] { ImageFolderDataset(dir_.path().string(), "empty"); }, {dir_ / "empty"});
  std::filesystem::create_directories(dir_ / "val/zebra");
  expect_input_error([&] { ImageFolderDataset(dir_.path().string(), "test"); }, {dir_ / "val/zebra"});
}

}  // namespace
}  // namespace ijepa::data
