#pragma once
// Helpers for the CPU row kernels of lib/model (residual_norm.cpp, softmax.cpp): plain loops that GCC vectorises,
// compiled for AVX-512, AVX2 and the baseline and chosen at load time by the CPU (GCC's target_clones), as ATen
// dispatches its own kernels; the rest of the project is built for the baseline. Include only from .cpp files.
#include <c10/util/BFloat16.h>

#include <cstdint>
#include <cstring>

#define IJEPA_INLINE inline __attribute__((always_inline))
#if defined(__x86_64__) && defined(__GNUC__)
#define IJEPA_VECTORISED __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define IJEPA_VECTORISED
#endif

namespace ijepa::model::row_kernels {

using BFloat16 = c10::BFloat16;

// Sixteen interleaved partial sums (one AVX-512 register of floats): the compiler vectorises them without being
// allowed to reassociate a single running sum.
constexpr int64_t kLanes = 16;

IJEPA_INLINE float widen(float v) { return v; }
IJEPA_INLINE float widen(BFloat16 v) {
  const uint32_t bits = static_cast<uint32_t>(v.x) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

IJEPA_INLINE void narrow_to(float v, float* out) { *out = v; }

// Round to nearest even, NaN to the quiet NaN, as c10::BFloat16(float); written without a branch so that the loops
// around it vectorise (c10's conversion tests for NaN first and stays scalar).
IJEPA_INLINE void narrow_to(float v, BFloat16* out) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  out->x = static_cast<uint16_t>(v != v ? 0x7FC0u : rounded);
}

IJEPA_INLINE float add_lanes(const float (&lanes)[kLanes], float tail) {
  for (const float lane : lanes) tail += lane;
  return tail;
}

}  // namespace ijepa::model::row_kernels
