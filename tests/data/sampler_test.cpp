// The distributed sampler: shards, padding as torch's DistributedSampler, and a platform-independent order.
#include "data/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "common/errors.h"
#include "data/rng.h"

namespace ijepa::data {
namespace {

TEST(SamplerTest, PermutationIsPinned) {
  // Pinned so that a change of generator or shuffle (which would change every run's data order) is seen.
  EXPECT_EQ(permutation(10, 42), (std::vector<int64_t>{7, 3, 8, 9, 5, 6, 4, 1, 0, 2}));
  std::vector<int64_t> big = permutation(1000, 5);
  std::sort(big.begin(), big.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(big[i], i);
}

TEST(SamplerTest, ShardsAreDisjointCoverAndPadAsTheReference) {
  const int64_t n = 10, world = 3;
  // The padded permutation: the epoch's permutation, then its first two entries again (10 -> 12).
  const std::vector<int64_t> order = permutation(n, mix_seed({11, 4}));
  std::multiset<int64_t> seen;
  for (int64_t rank = 0; rank < world; ++rank) {
    const DistributedSampler sampler(n, world, rank, /*seed=*/11, /*shuffle=*/true);
    ASSERT_EQ(sampler.shard_size(), 4);
    const std::vector<int64_t> shard = sampler.shard(4);
    for (int64_t p = 0; p < 4; ++p) {
      const int64_t global = p * world + rank;
      EXPECT_EQ(sampler.global_position(p), global);
      EXPECT_EQ(shard[p], order[global % n]);
    }
    seen.insert(shard.begin(), shard.end());
  }
  for (int64_t i = 0; i < n; ++i) EXPECT_GE(seen.count(i), 1u) << i;
  EXPECT_EQ(seen.size(), 12u);
  EXPECT_EQ(seen.count(order[0]), 2u);
  EXPECT_EQ(seen.count(order[1]), 2u);
}

TEST(SamplerTest, NoShuffleIsDatasetOrderWithPadding) {
  EXPECT_EQ(DistributedSampler(5, 2, 0, 0, false).shard(3), (std::vector<int64_t>{0, 2, 4}));
  EXPECT_EQ(DistributedSampler(5, 2, 1, 0, false).shard(3), (std::vector<int64_t>{1, 3, 0}));
  // More ranks than samples: padding wraps around more than once.
  EXPECT_EQ(DistributedSampler(2, 5, 4, 0, false).shard(0), (std::vector<int64_t>{0}));
}

TEST(SamplerTest, SameSeedAndEpochSameOrderOtherwiseDifferent) {
  const DistributedSampler a(1000, 2, 1, 7, true);
  const DistributedSampler b(1000, 2, 1, 7, true);
  const DistributedSampler other_seed(1000, 2, 1, 8, true);
  EXPECT_EQ(a.shard(3), b.shard(3));
  EXPECT_NE(a.shard(3), a.shard(4));
  EXPECT_NE(a.shard(3), other_seed.shard(3));
}

TEST(SamplerTest, BadArgumentsAreInputErrors) {
  EXPECT_THROW(DistributedSampler(0, 1, 0, 0, true), common::InputError);
  EXPECT_THROW(DistributedSampler(10, 0, 0, 0, true), common::InputError);
  EXPECT_THROW(DistributedSampler(10, 2, 2, 0, true), common::InputError);
  EXPECT_THROW(DistributedSampler(10, 2, -1, 0, true), common::InputError);
}

}  // namespace
}  // namespace ijepa::data
