// The distributed sampler.
#include "data/sampler.h"

#include <numeric>
#include <string>
#include <utility>

#include "common/errors.h"
#include "data/rng.h"

namespace ijepa::data {

std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  Rng rng(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    std::swap(order[i], order[rng.below(static_cast<uint64_t>(i + 1))]);
  }
  return order;
}

DistributedSampler::DistributedSampler(int64_t dataset_size, int64_t world_size, int64_t rank, uint64_t seed,
                                       bool shuffle)
    : dataset_size_(dataset_size), world_size_(world_size), rank_(rank), seed_(seed), shuffle_(shuffle) {
  if (dataset_size <= 0) throw common::InputError("sampler: the dataset is empty");
  if (world_size < 1) throw common::InputError("sampler: world size " + std::to_string(world_size) + " < 1");
  if (rank < 0 || rank >= world_size) {
    throw common::InputError("sampler: rank " + std::to_string(rank) + " outside [0, " + std::to_string(world_size) +
                             ")");
  }
  shard_size_ = (dataset_size + world_size - 1) / world_size;
}

std::vector<int64_t> DistributedSampler::shard(int64_t epoch) const {
  std::vector<int64_t> order;
  if (shuffle_) {
    order = permutation(dataset_size_, mix_seed({seed_, static_cast<uint64_t>(epoch)}));
  } else {
    order.resize(dataset_size_);
    std::iota(order.begin(), order.end(), 0);
  }
  std::vector<int64_t> shard(shard_size_);
  for (int64_t p = 0; p < shard_size_; ++p) {
    shard[p] = order[global_position(p) % dataset_size_];  // past the end: padding repeats from the start
  }
  return shard;
}

}  // namespace ijepa::data
