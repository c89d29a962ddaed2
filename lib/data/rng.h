// The data pipeline's own random generator, so that shuffles and augmentations are bit-identical on every
// platform and standard library (std::shuffle and std::uniform_*_distribution are not).
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>

namespace ijepa::data {

// One SplitMix64 step: a strong 64-bit mixer, used to expand seeds.
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Hash of an ordered list of integers, e.g. (seed, epoch, position): distinct tuples give unrelated seeds.
inline uint64_t mix_seed(std::initializer_list<uint64_t> parts) {
  uint64_t hash = 0x6A09E667F3BCC908ULL;
  for (uint64_t part : parts) {
    uint64_t state = hash ^ part;
    hash = splitmix64(state);
  }
  return hash;
}

// xoshiro256** seeded through SplitMix64.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (auto& word : state_) word = splitmix64(seed);
  }

  uint64_t next_u64() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  double uniform(double low, double high) { return low + (high - low) * uniform(); }

  // Uniform integer in [0, n), n > 0, without modulo bias.
  uint64_t below(uint64_t n) {
    const uint64_t threshold = (0 - n) % n;  // 2^64 mod n: draws below it would favour small values
    for (;;) {
      const uint64_t r = next_u64();
      if (r >= threshold) return r % n;
    }
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<uint64_t, 4> state_{};
};

}  // namespace ijepa::data
