#include "model/gelu.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <cstdint>
#include <cstring>
#include <mutex>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define IJEPA_GELU_AVX512 1
#endif

#include "model/row_kernels.h"

namespace ijepa::model {

namespace {

using row_kernels::BFloat16;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Elements per task of the intra-op threads.
constexpr int64_t kElementsPerTask = 1 << 15;

// GELU'(x) in fp32 for every bf16 bit pattern x, indexed by the pattern: ATen's gelu_backward with an incoming
// gradient of 1 over all 65536 values (a multiple of every vector width, so all of it through the vectorised
// kernel). 256 KiB.
const std::vector<float>& derivative_table() {
  static std::vector<float> table;
  static std::once_flag built;
  std::call_once(built, [] {
    const torch::NoGradGuard no_grad;
    const auto every_bf16 = torch::arange(65536, torch::kInt32).to(torch::kInt16).view(torch::kBFloat16);
    const auto x = every_bf16.to(torch::kFloat);
    const auto derivative = at::gelu_backward(torch::ones_like(x), x).contiguous();
    table.assign(derivative.data_ptr<float>(), derivative.data_ptr<float>() + derivative.numel());
  });
  return table;
}

IJEPA_INLINE float widen(uint16_t bits) { return row_kernels::widen(BFloat16(bits, BFloat16::from_bits())); }

void backward_portable(const uint16_t* x, const uint16_t* grad, uint16_t* out, const float* table, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    BFloat16 rounded;
    row_kernels::narrow_to(widen(grad[i]) * table[x[i]], &rounded);
    out[i] = rounded.x;
  }
}

#ifdef IJEPA_GELU_AVX512
// Sixteen elements a step: the derivatives gathered by their bf16 bits, times the widened gradient, rounded to
// nearest even (NaN to the quiet NaN) as row_kernels::narrow_to. GCC does not vectorise the gather by itself.
__attribute__((target("avx512f,avx512bw"))) void backward_avx512(const uint16_t* x, const uint16_t* grad, uint16_t* out,
                                                                 const float* table, int64_t n) {
  const __m512i rounding = _mm512_set1_epi32(0x7FFF), one = _mm512_set1_epi32(1), quiet_nan = _mm512_set1_epi32(0x7FC0);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i index = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i)));
    const __m512 derivative = _mm512_i32gather_ps(index, table, sizeof(float));
    const __m512i grad_bits = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(grad + i)));
    const __m512 product = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(grad_bits, 16)), derivative);
    const __m512i bits = _mm512_castps_si512(product);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), one);
    __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(bits, rounding), odd), 16);
    rounded = _mm512_mask_mov_epi32(rounded, _mm512_cmp_ps_mask(product, product, _CMP_UNORD_Q), quiet_nan);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtepi32_epi16(rounded));
  }
  backward_portable(x + i, grad + i, out + i, table, n - i);
}
#endif

using BackwardKernel = void (*)(const uint16_t*, const uint16_t*, uint16_t*, const float*, int64_t);

BackwardKernel backward_kernel() {
#ifdef IJEPA_GELU_AVX512
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) return backward_avx512;
#endif
  return backward_portable;
}

torch::Tensor bf16_gelu_backward(const torch::Tensor& grad_in, const torch::Tensor& x_in) {
  RECORD_FUNCTION("ijepa::bf16_gelu_backward", std::vector<c10::IValue>({grad_in, x_in}));  // named in profiles
  static const BackwardKernel kernel = backward_kernel();
  const auto grad = grad_in.to(torch::kBFloat16).contiguous(), x = x_in.contiguous();
  auto out = torch::empty_like(x);
  const auto* x_bits = reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>());
  const auto* grad_bits = reinterpret_cast<const uint16_t*>(grad.data_ptr<at::BFloat16>());
  auto* out_bits = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  const float* table = derivative_table().data();
  at::parallel_for(0, x.numel(), kElementsPerTask, [&](int64_t begin, int64_t end) {
    kernel(x_bits + begin, grad_bits + begin, out_bits + begin, table, end - begin);
  });
  return out;
}

class Bf16Gelu : public torch::autograd::Function<Bf16Gelu> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x) {
    ctx->save_for_backward({x});
    return at::gelu(x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    return {bf16_gelu_backward(grad_outputs[0], ctx->get_saved_variables()[0])};
  }
};

}  // namespace

torch::Tensor exact_gelu(const torch::Tensor& x) {
  const bool table =
      x.is_cpu() && x.scalar_type() == torch::kBFloat16 && at::GradMode::is_enabled() && x.requires_grad();
  return table ? Bf16Gelu::apply(x) : torch::gelu(x);
}

}  // namespace ijepa::model
