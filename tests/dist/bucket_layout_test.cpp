// Bucket planning: reverse registration order, the first-bucket and later caps, dtype breaks, descriptions.
#include "dist/bucket_layout.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace ijepa::dist {
namespace {

std::vector<torch::Tensor> floats(std::vector<int64_t> sizes) {
  std::vector<torch::Tensor> tensors;
  for (int64_t n : sizes) tensors.push_back(torch::zeros({n}));
  return tensors;
}

TEST(BucketLayout, FillsInReverseOrderWithASmallFirstBucket) {
  // 400, 800, 1200 and 1600 bytes; caps of 1000 bytes first, then 2000.
  const auto buckets = plan_buckets(floats({100, 200, 300, 400}), 1000, 2000);
  ASSERT_EQ(buckets.size(), 3u);
  ASSERT_EQ(buckets[0].slots.size(), 1u);
  EXPECT_EQ(buckets[0].slots[0].parameter, 3);
  EXPECT_EQ(buckets[0].numel, 400);
  ASSERT_EQ(buckets[1].slots.size(), 2u);
  EXPECT_EQ(buckets[1].slots[0].parameter, 2);
  EXPECT_EQ(buckets[1].slots[0].offset, 0);
  EXPECT_EQ(buckets[1].slots[1].parameter, 1);
  EXPECT_EQ(buckets[1].slots[1].offset, 300);
  EXPECT_EQ(buckets[1].numel, 500);
  ASSERT_EQ(buckets[2].slots.size(), 1u);
  EXPECT_EQ(buckets[2].slots[0].parameter, 0);
}

TEST(BucketLayout, ABucketClosesAfterTheParameterThatReachesTheCap) {
  // A large parameter joins the open bucket and closes it, as in DDP.
  const auto together = plan_buckets(floats({10000, 1}), 64, 64);
  ASSERT_EQ(together.size(), 1u);
  EXPECT_EQ(together[0].numel, 10001);
  // With a first cap of one float, the small parameter fills the first bucket alone.
  const auto apart = plan_buckets(floats({10000, 1}), 4, 64);
  ASSERT_EQ(apart.size(), 2u);
  EXPECT_EQ(apart[0].numel, 1);
  EXPECT_EQ(apart[1].numel, 10000);
}

TEST(BucketLayout, SizesAreDescribedInMiBInFillOrder) {
  // 1 MiB of floats last (the first bucket), then 3 MiB of floats and 1 MiB of bf16 (a bucket of its own)
  std::vector<torch::Tensor> tensors = {torch::zeros({1 << 19}, torch::kBFloat16), torch::zeros({3 << 18}),
                                        torch::zeros({1 << 18})};
  const auto buckets = plan_buckets(tensors, 1 << 20, 25 << 20);
  EXPECT_EQ(describe_bucket_plan(buckets), "gradient all-reduce in 3 buckets: 1.0 + 3.0 + 1.0 MiB");
}

TEST(BucketLayout, OneOrTwoBucketsComeWithAHintAboutOverlap) {
  const auto buckets = plan_buckets(floats({1 << 18, 1 << 18}), 1 << 20, 25 << 20);
  ASSERT_EQ(buckets.size(), 2u);
  const std::string two = describe_bucket_plan(buckets);
  EXPECT_EQ(two.rfind("gradient all-reduce in 2 buckets: 1.0 + 1.0 MiB; with so few, ", 0), 0u) << two;
  EXPECT_NE(two.find("dist.min_buckets"), std::string::npos) << two;
  EXPECT_EQ(describe_bucket_plan({buckets[0]}).rfind("gradient all-reduce in 1 bucket: 1.0 MiB; with so few", 0), 0u);
}

TEST(BucketLayout, ASmallModelGetsSmallerBucketsAndALargeOneKeepsTheCap) {
  constexpr int64_t MiB = 1 << 20;
  // ViT-tiny's 23 MiB in about 8 buckets: caps of 23/8 MiB after the 1 MiB first one.
  EXPECT_EQ(bucket_cap_bytes(23 * MiB, MiB, 25 * MiB, 8), 23 * MiB / 8);
  // A ViT-huge's 2.5 GiB keeps DDP's 25 MiB.
  EXPECT_EQ(bucket_cap_bytes(2560 * MiB, MiB, 25 * MiB, 8), 25 * MiB);
  // Never below the first bucket's cap; one bucket asked for means the plain cap.
  EXPECT_EQ(bucket_cap_bytes(2 * MiB, MiB, 25 * MiB, 8), MiB);
  EXPECT_EQ(bucket_cap_bytes(23 * MiB, MiB, 25 * MiB, 1), 23 * MiB);
  // The share rounds up, so that the buckets never outnumber what was asked by one for a remainder.
  EXPECT_EQ(bucket_cap_bytes(9, 1, 100, 2), 5);
  EXPECT_THROW(bucket_cap_bytes(MiB, MiB, MiB, 0), std::invalid_argument);
}

TEST(BucketLayout, TheLoweredCapGivesAboutTheBucketsAskedFor) {
  // 24 parameters of 1 MiB: a 1 MiB first bucket, then 23 MiB under caps of 3 MiB (the last one holds the rest).
  const std::vector<torch::Tensor> tensors = floats(std::vector<int64_t>(24, 1 << 18));
  const int64_t cap = bucket_cap_bytes(24 << 20, 1 << 20, 25 << 20, 8);
  const auto buckets = plan_buckets(tensors, 1 << 20, cap);
  EXPECT_EQ(describe_bucket_plan(buckets),
            "gradient all-reduce in 9 buckets: 1.0 + 3.0 + 3.0 + 3.0 + 3.0 + 3.0 + 3.0 + 3.0 + 2.0 MiB");
}

TEST(BucketLayout, ADtypeChangeStartsANewBucket) {
  std::vector<torch::Tensor> tensors = {torch::zeros({4}), torch::zeros({4}, torch::kBFloat16), torch::zeros({4})};
  const auto buckets = plan_buckets(tensors, 1 << 20, 1 << 20);
  ASSERT_EQ(buckets.size(), 3u);
  EXPECT_EQ(buckets[0].dtype, torch::kFloat);
  EXPECT_EQ(buckets[1].dtype, torch::kBFloat16);
  EXPECT_EQ(buckets[2].dtype, torch::kFloat);
}

TEST(BucketLayout, DescribesEveryParameterWithItsPlace) {
  const auto tensors = std::vector<torch::Tensor>{torch::zeros({2, 3}), torch::zeros({5})};
  const auto buckets = plan_buckets(tensors, 1 << 20, 1 << 20);
  const std::string text = describe_layout({"fc.weight", "fc.bias"}, tensors, buckets);
  EXPECT_EQ(text, "0 fc.weight [2, 3] Float bucket 0 offset 5\n1 fc.bias [5] Float bucket 0 offset 0\n");
}

TEST(BucketLayout, RejectsCapsThatAreNotPositive) {
  EXPECT_THROW(plan_buckets(floats({1}), 0, 10), std::invalid_argument);
  EXPECT_THROW(plan_buckets(floats({1}), 10, -1), std::invalid_argument);
}

TEST(BucketLayout, MegabytesAreMebibytes) {
  EXPECT_EQ(mib_to_bytes(1.0), 1048576);
  EXPECT_EQ(mib_to_bytes(25.0), 25 * 1048576);
}

}  // namespace
}  // namespace ijepa::dist
