#pragma once
// Sixteen floats, and their bits, as GCC vector extensions, and the functions that lib/model/softmax.cpp is written
// in: one AVX-512 register, two AVX2 ones or four SSE ones in the clones of IJEPA_VECTORISED. Written on these rather
// than left to the auto-vectoriser, which kept a softmax row's maximum and its tail scalar (1 ns an element, no
// faster than ATen). Include only from .cpp files, built with -Wno-psabi: every helper is always inlined, so GCC's
// note that 64-byte vectors are passed differently with and without AVX-512 concerns no call that exists.
#include <cstdint>
#include <cstring>

#include "model/row_kernels.h"

namespace ijepa::model::vector_math {

using row_kernels::BFloat16;
using row_kernels::kLanes;

using Floats = float __attribute__((vector_size(64)));
using Bits = uint32_t __attribute__((vector_size(64)));
using Halves = uint16_t __attribute__((vector_size(32)));
using Lanes = int32_t __attribute__((vector_size(64)));
static_assert(sizeof(Floats) == kLanes * sizeof(float));

IJEPA_INLINE Floats splat(float v) { return Floats{} + v; }
IJEPA_INLINE Floats load(const float* p) {
  Floats v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
IJEPA_INLINE void store(float* p, Floats v) { std::memcpy(p, &v, sizeof(v)); }
IJEPA_INLINE Floats from_bits(Bits b) {
  Floats v;
  std::memcpy(&v, &b, sizeof(v));
  return v;
}
IJEPA_INLINE Bits to_bits(Floats v) {
  Bits b;
  std::memcpy(&b, &v, sizeof(b));
  return b;
}

// The largest lane and the sum of the lanes, in four halving steps (one after another over the lanes would chain
// fifteen dependent operations, a sizeable part of a row of 196).
IJEPA_INLINE float largest_lane(Floats v) {
  Floats w = __builtin_shuffle(v, Lanes{8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7});
  v = w > v ? w : v;
  w = __builtin_shuffle(v, Lanes{4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11});
  v = w > v ? w : v;
  w = __builtin_shuffle(v, Lanes{2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13});
  v = w > v ? w : v;
  w = __builtin_shuffle(v, Lanes{1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14});
  return w[0] > v[0] ? w[0] : v[0];
}
IJEPA_INLINE float lane_sum(Floats v) {
  v += __builtin_shuffle(v, Lanes{8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7});
  v += __builtin_shuffle(v, Lanes{4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11});
  v += __builtin_shuffle(v, Lanes{2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13});
  return v[0] + v[1];
}

IJEPA_INLINE Floats load_widened(const BFloat16* p) {
  Halves h;
  std::memcpy(&h, p, sizeof(h));
  return from_bits(__builtin_convertvector(h, Bits) << 16);
}

// The bf16 bit patterns of v, in the low half of each lane, as row_kernels::narrow_to gives them: round to nearest
// even, NaN to the quiet NaN.
IJEPA_INLINE Bits bf16_bits(Floats v) {
  const Bits bits = to_bits(v);
  const Bits rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  return v != v ? Bits{} + 0x7FC0u : rounded;
}

IJEPA_INLINE void store_narrowed(BFloat16* p, Floats v) {
  const Halves h = __builtin_convertvector(bf16_bits(v), Halves);
  std::memcpy(p, &h, sizeof(h));
}

// v rounded to bf16 and kept as floats, as storing to bf16 and loading again would.
IJEPA_INLINE Floats rounded_to_bf16(Floats v) { return from_bits(bf16_bits(v) << 16); }

// exp(x) for x <= 0: Cephes' expf, n = round(x / ln 2) and r = x - n ln 2 (ln 2 in
// two parts), exp(r) by a degree-7 polynomial, times 2^n assembled in the exponent bits. Below -87 (exp(-87) =
// 1.6e-38) the result is 0, where 2^n would leave fp32's normal range; so
// is exp(-inf). A NaN stays NaN.
IJEPA_INLINE Floats exp_nonpositive(Floats in) {
  const Floats lowest = splat(-87.f);
  const Floats x = in < lowest ? lowest : in;
  constexpr float kRound = 12582912.f;  // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer
  const Floats n = (x * 1.44269504088896341f + kRound) - kRound;
  const Floats r = x - n * 0.693359375f - n * -2.12194440e-4f;
  Floats p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const Floats e = p * (r * r) + r + 1.f;
  // 2^n: the low bits of n + 127 + kRound hold n + 127 (1 to 127 here), shifted into the exponent field.
  const Floats scale = from_bits(to_bits(n + (kRound + 127.f)) << 23);
  return in < lowest ? Floats{} : e * scale;
}

}  // namespace ijepa::model::vector_math
