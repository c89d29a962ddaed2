// The real Fashion-MNIST of Debian's dataset-fashion-mnist package (installed by deploy/setup.sh).
#include <gtest/gtest.h>

#include <filesystem>

#include "data/dataset.h"
#include "data/loader.h"

namespace ijepa::data {
namespace {

constexpr const char* kFolder = "/usr/share/datasets/fashion-mnist";

TEST(FashionMnistTest, OpensWith60000TrainAnd10000Test) {
  ASSERT_TRUE(std::filesystem::is_directory(kFolder))
      << kFolder << " is missing: run deploy/setup.sh (it installs Debian's dataset-fashion-mnist)";
  const auto train = open_dataset("idx", kFolder, "train");
  const auto test = open_dataset("idx", kFolder, "test");
  EXPECT_EQ(train->size(), 60000);
  EXPECT_EQ(test->size(), 10000);
  EXPECT_EQ(train->channels(), 1);
  EXPECT_EQ(train->label(0), 9);  // ankle boot
  EXPECT_EQ(train->label(3), 3);
  EXPECT_EQ(test->label(1), 2);
  const Image first = train->load(0);
  EXPECT_EQ(first.height, 28);
  EXPECT_EQ(first.width, 28);
  int64_t sum = 0;
  for (uint8_t v : first.pixels) sum += v;
  EXPECT_EQ(sum, 76247);

  LoaderOptions options;
  options.transform.crop_size = 28;
  Loader loader(train, options);
  EXPECT_EQ(loader.batches_per_epoch(), 60000 / 64);
  loader.start(0);
  const auto batch = loader.next();
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->images.size(), 64u * 28 * 28);
}

}  // namespace
}  // namespace ijepa::data
