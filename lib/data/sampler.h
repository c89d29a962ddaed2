// Which samples a rank reads in an epoch: the reference's DistributedSampler, with our own generator so the
// order is the same on every platform.
//
// Per epoch, one permutation of [0, N) seeded by (seed, epoch) (or the identity without shuffling), padded to a
// multiple of world_size by repeating from its start; rank r takes positions r, r + world, r + 2 world, ...
// Batching (and dropping the last incomplete batch) is the loader's.
#pragma once

#include <cstdint>
#include <vector>

namespace ijepa::data {

// A Fisher-Yates shuffle of [0, n) driven by Rng(seed).
std::vector<int64_t> permutation(int64_t n, uint64_t seed);

class DistributedSampler {
 public:
  // Throws InputError when the dataset is empty, world_size < 1 or rank is outside [0, world_size).
  DistributedSampler(int64_t dataset_size, int64_t world_size, int64_t rank, uint64_t seed, bool shuffle);

  // Samples per rank and epoch: ceil(N / world_size).
  int64_t shard_size() const { return shard_size_; }
  // This rank's dataset indices for `epoch`, in reading order. [shard_size()]
  std::vector<int64_t> shard(int64_t epoch) const;
  // Where shard position p sits in the padded permutation (distinct across ranks).
  int64_t global_position(int64_t p) const { return p * world_size_ + rank_; }

 private:
  int64_t dataset_size_;
  int64_t world_size_;
  int64_t rank_;
  uint64_t seed_;
  bool shuffle_;
  int64_t shard_size_;
};

}  // namespace ijepa::data
