// IDX reading: round trips (gzip and plain) and every malformed-file error naming the file.
#include "data/idx_dataset.h"

#include <gtest/gtest.h>

#include "common/errors.h"
#include "data_test_util.h"
#include "input_error.h"

namespace ijepa::data {
namespace {

using ijepa::testing::expect_input_error;
using ijepa::testing::TempDir;
using ijepa::testing::write_file;
using testing::idx_bytes;

void expect_round_trip(const Dataset& d, uint32_t n, int rows, int cols) {
  ASSERT_EQ(d.size(), n);
  EXPECT_EQ(d.channels(), 1);
  EXPECT_EQ(d.num_classes(), 10);
  for (uint32_t i = 0; i < n; ++i) {
    EXPECT_EQ(d.label(i), i % 10);
    const Image image = d.load(i);
    ASSERT_EQ(image.height, rows);
    ASSERT_EQ(image.width, cols);
    ASSERT_EQ(image.channels, 1);
    for (int p = 0; p < rows * cols; ++p) ASSERT_EQ(image.pixels[p], (i * 7 + p) % 256) << "sample " << i;
  }
}

TEST(IdxDatasetTest, GzipAndPlainRoundTrip) {
  TempDir gz, plain;
  testing::write_idx_pair(gz.path().string(), "train", 12, 5, 4, /*gzip=*/true);
  testing::write_idx_pair(gz.path().string(), "t10k", 3, 5, 4, /*gzip=*/true);
  testing::write_idx_pair(plain.path().string(), "train", 7, 3, 6, /*gzip=*/false);
  expect_round_trip(*IdxDataset::open(gz.path().string(), "train"), 12, 5, 4);
  expect_round_trip(*IdxDataset::open(gz.path().string(), "test"), 3, 5, 4);
  expect_round_trip(*IdxDataset::open(plain.path().string(), "train"), 7, 3, 6);
  EXPECT_EQ(IdxDataset::open(gz.path().string(), "train")->name(3), "train-images-idx3-ubyte.gz#3");
}

TEST(IdxDatasetTest, OpensBothUsualFileNames) {
  TempDir dir;
  write_file(dir / "train-images-idx3-ubyte", idx_bytes({2, 1, 1}, {5, 6}));  // as distributed
  write_file(dir / "train-labels-idx1-ubyte", idx_bytes({2}, {0, 1}));
  testing::write_gzip(dir / "t10k-images.idx3-ubyte.gz", idx_bytes({3, 1, 1}, {5, 6, 7}));  // the other usual spelling
  testing::write_gzip(dir / "t10k-labels.idx1-ubyte.gz", idx_bytes({3}, {0, 1, 2}));
  EXPECT_EQ(IdxDataset::open(dir.path().string(), "train")->size(), 2);
  EXPECT_EQ(IdxDataset::open(dir.path().string(), "test")->size(), 3);
}

TEST(IdxDatasetTest, OpenDatasetFactory) {
  TempDir dir;
  testing::write_idx_pair(dir.path().string(), "train", 4, 2, 2, true);
  EXPECT_EQ(open_dataset("idx", dir.path().string(), "train")->size(), 4);
  EXPECT_THROW(open_dataset("idx", dir.path().string(), "test"), common::InputError);  // no t10k files
  EXPECT_THROW(open_dataset("idx", dir.path().string(), "val"), common::InputError);
  EXPECT_THROW(open_dataset("mnist", dir.path().string(), "train"), common::InputError);
}

class MalformedIdxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_file(labels_, idx_bytes({4}, {0, 1, 2, 3}));
    write_file(images_, idx_bytes({4, 2, 2}, std::vector<uint8_t>(16, 9)));
  }
  TempDir dir_;
  std::string images_ = dir_ / "train-images-idx3-ubyte";
  std::string labels_ = dir_ / "train-labels-idx1-ubyte";
};

TEST_F(MalformedIdxTest, ValidFilesOpen) { EXPECT_EQ(IdxDataset(images_, labels_).size(), 4); }

TEST_F(MalformedIdxTest, BadMagic) {
  std::string bytes = idx_bytes({4, 2, 2}, std::vector<uint8_t>(16, 9));
  bytes[2] = 0x0D;  // float values
  write_file(images_, bytes);
  expect_input_error([&] { IdxDataset(images_, labels_); }, {images_, "magic"});
  write_file(images_, "GIF89a-not-idx-at-all");
  expect_input_error([&] { IdxDataset(images_, labels_); }, {images_, "magic"});
  write_file(labels_, idx_bytes({4, 1}, {0, 1, 2, 3}));  // labels with 2 dimensions
  write_file(images_, idx_bytes({4, 2, 2}, std::vector<uint8_t>(16, 9)));
  expect_input_error([&] { IdxDataset(images_, labels_); }, {labels_, "magic"});
}

TEST_F(MalformedIdxTest, Truncated) {
  write_file(images_, idx_bytes({4, 2, 2}, std::vector<uint8_t>(15, 9)));
  expect_input_error([&] { IdxDataset(images_, labels_); }, {images_, "truncated"});
  write_file(images_, std::string("\0\0\x08\x03\0\0", 6));  // header cut short
  expect_input_error([&] { IdxDataset(images_, labels_); }, {images_, "truncated"});
  write_file(images_, idx_bytes({0xFFFFFFFF, 0xFFFFFFFF, 2}, {1, 2, 3}));  // absurd dims
  expect_input_error([&] { IdxDataset(images_, labels_); }, {images_, "truncated"});
  write_file(images_, idx_bytes({4, 2, 2}, std::vector<uint8_t>(17, 9)));
  expect_input_error([&] { IdxDataset(images_, labels_); }, {images_, "trailing"});
}

TEST_F(MalformedIdxTest, TruncatedGzip) {
  const std::string gz = dir_ / "cut.gz";
  testing::write_gzip(gz, idx_bytes({4, 2, 2}, std::vector<uint8_t>(16, 9)));
  std::string bytes = ijepa::testing::read_file(gz);
  write_file(gz, bytes.substr(0, bytes.size() - 10));
  expect_input_error([&] { IdxDataset(gz, labels_); }, {gz, "gzip"});
}

TEST_F(MalformedIdxTest, AGzipHeaderIsCheckedBeforeTheRestIsInflated) {
  // 16 MiB of zeros (no IDX header), gzipped, then cut short: refused for its magic number, read from its first
  // bytes, before the damaged end is reached. Inflating everything first let a small .gz take gigabytes.
  const std::string gz = dir_ / "zeros.gz";
  testing::write_gzip(gz, std::string(size_t{16} << 20, '\0'));
  const std::string bytes = ijepa::testing::read_file(gz);
  write_file(gz, bytes.substr(0, bytes.size() / 2));
  expect_input_error([&] { IdxDataset(gz, labels_); }, {gz, "magic"});
}

TEST_F(MalformedIdxTest, LabelCountMismatchAndRange) {
  write_file(labels_, idx_bytes({3}, {0, 1, 2}));
  expect_input_error([&] { IdxDataset(images_, labels_); }, {labels_, "3 labels for 4 images"});
  write_file(labels_, idx_bytes({4}, {0, 1, 10, 3}));
  expect_input_error([&] { IdxDataset(images_, labels_); }, {labels_, "label 10 of sample 2"});
}

TEST_F(MalformedIdxTest, MissingFiles) {
  expect_input_error([&] { IdxDataset(dir_ / "nope", labels_); }, {dir_ / "nope", "cannot open"});
  expect_input_error([&] { IdxDataset::open(dir_ / "absent", "train"); }, {dir_ / "absent", "does not exist"});
  std::filesystem::remove(labels_);
  expect_input_error([&] { IdxDataset::open(dir_.path().string(), "train"); },
                     {dir_.path().string(), "train-labels-idx1"});
}

}  // namespace
}  // namespace ijepa::data
