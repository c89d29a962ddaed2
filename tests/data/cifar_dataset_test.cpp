// CIFAR binary reading: records of both variants, planar-to-interleaved pixels, and truncated/missing files.
#include "data/cifar_dataset.h"

#include <gtest/gtest.h>

#include "data_test_util.h"
#include "input_error.h"

namespace ijepa::data {
namespace {

using ijepa::testing::expect_input_error;
using ijepa::testing::TempDir;
using ijepa::testing::write_file;
using testing::cifar_record;

void expect_pixels(const Image& image, int seed) {
  ASSERT_EQ(image.height, 32);
  ASSERT_EQ(image.width, 32);
  ASSERT_EQ(image.channels, 3);
  for (int p : {0, 1, 33, 1023}) {
    for (int c = 0; c < 3; ++c) EXPECT_EQ(image.pixels[p * 3 + c], (seed + c * 50 + p) % 256) << p << "," << c;
  }
}

TEST(CifarDatasetTest, Cifar10TrainBatchesAndTest) {
  TempDir dir;
  const std::string folder = dir / "cifar-10-batches-bin";  // the archive's own folder, found from its parent
  for (int b = 1; b <= 5; ++b) {
    write_file(folder + "/data_batch_" + std::to_string(b) + ".bin",
               cifar_record({static_cast<uint8_t>(b)}, b) + cifar_record({static_cast<uint8_t>(b + 4)}, 100 + b));
  }
  write_file(folder + "/test_batch.bin", cifar_record({9}, 7));
  const auto train = open_dataset("cifar10", dir.path().string(), "train");
  ASSERT_EQ(train->size(), 10);
  EXPECT_EQ(train->num_classes(), 10);
  EXPECT_EQ(train->channels(), 3);
  EXPECT_EQ(train->label(0), 1);
  EXPECT_EQ(train->label(3), 6);
  EXPECT_EQ(train->name(3), "data_batch_2.bin#1");
  expect_pixels(train->load(3), 102);
  const auto test = open_dataset("cifar10", folder, "test");
  ASSERT_EQ(test->size(), 1);
  EXPECT_EQ(test->label(0), 9);
  expect_pixels(test->load(0), 7);
}

TEST(CifarDatasetTest, Cifar100UsesFineLabel) {
  TempDir dir;
  write_file(dir / "train.bin", cifar_record({3, 77}, 1) + cifar_record({19, 99}, 2));
  write_file(dir / "test.bin", cifar_record({0, 5}, 3));
  const auto train = open_dataset("cifar100", dir.path().string(), "train");
  ASSERT_EQ(train->size(), 2);
  EXPECT_EQ(train->num_classes(), 100);
  EXPECT_EQ(train->label(0), 77);
  EXPECT_EQ(train->label(1), 99);
  expect_pixels(train->load(1), 2);
  EXPECT_EQ(open_dataset("cifar100", dir.path().string(), "test")->label(0), 5);
}

TEST(CifarDatasetTest, TruncatedMissingAndBadLabel) {
  TempDir dir;
  write_file(dir / "test_batch.bin", cifar_record({1}, 0) + cifar_record({2}, 0).substr(0, 3000));
  expect_input_error([&] { open_dataset("cifar10", dir.path().string(), "test"); }, {dir / "test_batch.bin"});
  expect_input_error([&] { open_dataset("cifar10", dir.path().string(), "train"); }, {dir / "data_batch_1.bin"});
  // A CIFAR-10 file read as CIFAR-100 has the wrong record size.
  write_file(dir / "test.bin", cifar_record({1}, 0));
  expect_input_error([&] { open_dataset("cifar100", dir.path().string(), "test"); }, {dir / "test.bin"});
  write_file(dir / "test.bin", cifar_record({1, 100}, 0));
  expect_input_error([&] { open_dataset("cifar100", dir.path().string(), "test"); }, {"label 100"});
  expect_input_error([&] { open_dataset("cifar10", dir / "absent", "test"); }, {dir / "absent"});
}

}  // namespace
}  // namespace ijepa::data
