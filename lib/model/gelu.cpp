#include "model/gelu.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define IJEPA_GELU_AVX512 1
#endif

#include "model/vector_math.h"

namespace ijepa::model {

namespace {

using namespace vector_math;  // NOLINT: the kernel is written in its vocabulary
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Elements per task of the intra-op threads.
constexpr int64_t kElementsPerTask = 1 << 15;

// fn over every bf16 bit pattern, 0 to 65535 (a multiple of every vector width, so that ATen's kernels take all of
// them through their vectorised paths), as a vector of T indexed by the pattern.
template <typename T>
std::vector<T> over_every_bf16(const std::function<torch::Tensor(const torch::Tensor&)>& fn) {
  const torch::NoGradGuard no_grad;
  const auto every_bf16 = torch::arange(65536, torch::kInt32).to(torch::kInt16).view(torch::kBFloat16);
  const auto values = fn(every_bf16).contiguous();
  TORCH_CHECK(values.element_size() == sizeof(T), "GELU table: ", values.scalar_type(), " is not ", sizeof(T),
              " bytes");
  const auto* data = static_cast<const T*>(values.data_ptr());
  return std::vector<T>(data, data + values.numel());
}

// GELU(x) as bf16 bits for every bf16 bit pattern x: ATen's gelu. 128 KiB.
const std::vector<uint16_t>& value_table() {
  static const auto table = over_every_bf16<uint16_t>([](const torch::Tensor& x) { return at::gelu(x); });
  return table;
}

// GELU'(x) in fp32 for every bf16 bit pattern x: ATen's gelu_backward of x in fp32 with an incoming gradient of 1.
// 256 KiB.
const std::vector<float>& derivative_table() {
  static const auto table = over_every_bf16<float>([](const torch::Tensor& x) {
    const auto wide = x.to(torch::kFloat);
    return at::gelu_backward(torch::ones_like(wide), wide);
  });
  return table;
}

// GELU by lookup. A plain loop: on the AVX-512 AMD machine of BENCHMARKS.md the scalar loads outrun AVX-512's
// gather, which is microcoded there.
void forward_rows(const uint16_t* __restrict__ x, uint16_t* __restrict__ out, const uint16_t* __restrict__ table,
                  int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = table[x[i]];
}

void forward_rows_in_place(uint16_t* x, const uint16_t* __restrict__ table, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = table[x[i]];
}

void backward_portable(const BFloat16* x, const BFloat16* grad, BFloat16* out, const float* table, int64_t n) {
  for (int64_t i = 0; i < n; ++i) row_kernels::narrow_to(row_kernels::widen(grad[i]) * table[x[i].x], out + i);
}

#ifdef IJEPA_GELU_AVX512
// Sixteen elements a step, in lib/model/vector_math.h's vocabulary: the derivatives gathered by their bf16 bits,
// times the widened gradient, rounded to bf16 as row_kernels::narrow_to does. The gather is the one intrinsic: GCC
// does not vectorise it by itself.
__attribute__((target("avx512f,avx512bw"))) void backward_avx512(const BFloat16* x, const BFloat16* grad, BFloat16* out,
                                                                 const float* table, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m512i index = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i)));
    const __m512 gathered = _mm512_i32gather_ps(index, table, sizeof(float));
    Floats derivative;
    std::memcpy(&derivative, &gathered, sizeof(derivative));
    store_narrowed(out + i, load_widened(grad + i) * derivative);
  }
  backward_portable(x + i, grad + i, out + i, table, n - i);
}
#endif

using BackwardKernel = void (*)(const BFloat16*, const BFloat16*, BFloat16*, const float*, int64_t);

BackwardKernel backward_kernel() {
#ifdef IJEPA_GELU_AVX512
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) return backward_avx512;
#endif
  return backward_portable;
}

// GELU of x's elements written to out's, where out is x too (in place: one pass over memory that a product has just
// written, and no new output).
void look_up_gelu(const torch::Tensor& x, const torch::Tensor& out) {
  const auto* in_bits = reinterpret_cast<const uint16_t*>(x.data_ptr<BFloat16>());
  auto* out_bits = reinterpret_cast<uint16_t*>(out.data_ptr<BFloat16>());
  const uint16_t* table = value_table().data();
  at::parallel_for(0, x.numel(), kElementsPerTask, [&](int64_t begin, int64_t end) {
    if (in_bits == out_bits) {
      forward_rows_in_place(out_bits + begin, table, end - begin);
    } else {
      forward_rows(in_bits + begin, out_bits + begin, table, end - begin);
    }
  });
}

torch::Tensor bf16_gelu_forward(const torch::Tensor& x_in) {
  RECORD_FUNCTION("ijepa::bf16_gelu", std::vector<c10::IValue>({x_in}));  // named in profiles
  const auto x = x_in.contiguous();
  auto out = torch::empty_like(x);
  look_up_gelu(x, out);
  return out;
}

torch::Tensor bf16_gelu_forward_in_place(torch::Tensor x) {
  RECORD_FUNCTION("ijepa::bf16_gelu_", std::vector<c10::IValue>({x}));
  look_up_gelu(x, x);
  return x;
}

torch::Tensor bf16_gelu_backward(const torch::Tensor& grad_in, const torch::Tensor& x_in) {
  RECORD_FUNCTION("ijepa::bf16_gelu_backward", std::vector<c10::IValue>({grad_in, x_in}));  // named in profiles
  static const BackwardKernel kernel = backward_kernel();
  const auto grad = grad_in.to(torch::kBFloat16).contiguous(), x = x_in.contiguous();
  auto out = torch::empty_like(x);
  const auto* x_data = x.data_ptr<BFloat16>();
  const auto* grad_data = grad.data_ptr<BFloat16>();
  auto* out_data = out.data_ptr<BFloat16>();
  const float* table = derivative_table().data();
  at::parallel_for(0, x.numel(), kElementsPerTask, [&](int64_t begin, int64_t end) {
    kernel(x_data + begin, grad_data + begin, out_data + begin, table, end - begin);
  });
  return out;
}

class Bf16Gelu : public torch::autograd::Function<Bf16Gelu> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x) {
    ctx->save_for_backward({x});
    return bf16_gelu_forward(x);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    return {bf16_gelu_backward(grad_outputs[0], ctx->get_saved_variables()[0])};
  }
};

}  // namespace

torch::Tensor exact_gelu(const torch::Tensor& x) {
  if (!x.is_cpu() || x.scalar_type() != torch::kBFloat16) return torch::gelu(x);
  return at::GradMode::is_enabled() && x.requires_grad() ? Bf16Gelu::apply(x) : bf16_gelu_forward(x);
}

torch::Tensor exact_gelu_(torch::Tensor x) {
  if (at::GradMode::is_enabled() && x.requires_grad()) {
    throw std::invalid_argument("exact_gelu_: in place on a tensor that autograd records");
  }
  if (!x.is_cpu() || x.scalar_type() != torch::kBFloat16 || !x.is_contiguous()) return at::gelu_(x);
  return bf16_gelu_forward_in_place(x);
}

}  // namespace ijepa::model
