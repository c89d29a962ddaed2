#include "model/softmax.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/vector_math.h"

namespace ijepa::model {

namespace {

using namespace vector_math;  // NOLINT: the kernel is written in its vocabulary
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows per task of the intra-op threads.
constexpr int64_t kRowsPerTask = 32;

// One row of n: out = softmax(in * scale), through work (n floats rounded up to whole vectors). With kScaled the
// product is rounded to bf16 first, as the reference's bf16 `scores * scale` is before its softmax. The row is padded
// with -inf (times a positive scale still -inf), whose exponential is 0, so that every pass runs on whole vectors.
template <bool kScaled>
IJEPA_INLINE void softmax_row(const BFloat16* __restrict__ in, BFloat16* __restrict__ out, float* __restrict__ work,
                              int64_t n, float scale) {
  const int64_t whole = n - n % kLanes, padded = whole + (n % kLanes == 0 ? 0 : kLanes);
  const auto widened = [scale](const BFloat16* p) {
    const Floats v = load_widened(p);
    return kScaled ? rounded_to_bf16(v * scale) : v;
  };
  Floats maxes = splat(-std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < whole; j += kLanes) {
    const Floats v = widened(in + j);
    store(work + j, v);
    maxes = v > maxes ? v : maxes;  // a NaN is never the maximum; its own exp below makes the row NaN
  }
  if (whole < n) {
    BFloat16 rest[kLanes];
    for (auto& v : rest) v.x = 0xFF80u;  // -inf
    std::memcpy(rest, in + whole, (n - whole) * sizeof(BFloat16));
    const Floats v = widened(rest);
    store(work + whole, v);
    maxes = v > maxes ? v : maxes;
  }
  const float max = largest_lane(maxes);
  Floats sums{};
  for (int64_t j = 0; j < padded; j += kLanes) {
    const Floats e = exp_nonpositive(load(work + j) - max);
    store(work + j, e);
    sums += e;
  }
  const float inverse = 1.f / lane_sum(sums);
  for (int64_t j = 0; j < whole; j += kLanes) store_narrowed(out + j, load(work + j) * inverse);
  if (whole < n) {
    BFloat16 rest[kLanes];
    store_narrowed(rest, load(work + whole) * inverse);
    std::memcpy(out + whole, rest, (n - whole) * sizeof(BFloat16));
  }
}

IJEPA_VECTORISED void softmax_rows(const BFloat16* in, BFloat16* out, int64_t width, float scale, int64_t begin,
                                   int64_t end) {
  std::vector<float> work(static_cast<size_t>((width + kLanes - 1) / kLanes * kLanes));
  for (int64_t r = begin; r < end; ++r) {
    if (scale == 1.f) {
      softmax_row<false>(in + r * width, out + r * width, work.data(), width, scale);
    } else {
      softmax_row<true>(in + r * width, out + r * width, work.data(), width, scale);
    }
  }
}

torch::Tensor bf16_softmax_forward(const torch::Tensor& scores, float scale) {
  RECORD_FUNCTION("ijepa::bf16_softmax", std::vector<c10::IValue>({scores}));  // named in profiles
  const auto in = scores.contiguous();
  auto out = torch::empty_like(in);
  const int64_t width = in.size(-1), rows = width == 0 ? 0 : in.numel() / width;
  const auto* source = in.data_ptr<at::BFloat16>();
  auto* target = out.data_ptr<at::BFloat16>();
  at::parallel_for(0, rows, kRowsPerTask,
                   [&](int64_t begin, int64_t end) { softmax_rows(source, target, width, scale, begin, end); });
  return out;
}

class Bf16Softmax : public torch::autograd::Function<Bf16Softmax> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& scores, double scale) {
    auto out = bf16_softmax_forward(scores, static_cast<float>(scale));
    ctx->save_for_backward({out});
    ctx->saved_data["scale"] = scale;
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto out = ctx->get_saved_variables()[0];
    const double scale = ctx->saved_data["scale"].toDouble();
    auto grad = at::_softmax_backward_data(grad_outputs[0].to(out.scalar_type()), out, -1, torch::kBFloat16);
    // The backward of the reference's `scores * scale`, as autograd's MulBackward computes it.
    if (scale != 1.0) grad = grad * scale;
    return {grad, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor last_dim_softmax(const torch::Tensor& scores, double scale) {
  if (!(scale > 0.0)) {
    throw std::invalid_argument("last_dim_softmax: the scale must be positive, not " + std::to_string(scale));
  }
  if (!scores.is_cpu() || scores.scalar_type() != torch::kBFloat16 || scores.dim() == 0) {
    return torch::softmax(scale == 1.0 ? scores : scores * scale, -1);
  }
  if (!at::GradMode::is_enabled() || !scores.requires_grad()) {
    return bf16_softmax_forward(scores, static_cast<float>(scale));
  }
  return Bf16Softmax::apply(scores, scale);
}

}  // namespace ijepa::model
