#include "model/softmax.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "model/vector_math.h"

namespace ijepa::model {

namespace {

using namespace vector_math;  // NOLINT: the kernel is written in its vocabulary
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows per task of the intra-op threads.
constexpr int64_t kRowsPerTask = 32;

// One row of n: out = softmax(in), through work (n floats rounded up to whole vectors). The row is padded with
// -inf, whose exponential is 0, so that every pass runs on whole vectors.
IJEPA_INLINE void softmax_row(const BFloat16* __restrict__ in, BFloat16* __restrict__ out, float* __restrict__ work,
                              int64_t n) {
  const int64_t whole = n - n % kLanes, padded = whole + (n % kLanes == 0 ? 0 : kLanes);
  Floats maxes = splat(-std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < whole; j += kLanes) {
    const Floats v = load_widened(in + j);
    store(work + j, v);
    maxes = v > maxes ? v : maxes;  // a NaN is never the maximum; its own exp below makes the row NaN
  }
  if (whole < n) {
    BFloat16 rest[kLanes];
    for (auto& v : rest) v.x = 0xFF80u;  // -inf
    std::memcpy(rest, in + whole, (n - whole) * sizeof(BFloat16));
    const Floats v = load_widened(rest);
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

IJEPA_VECTORISED void softmax_rows(const BFloat16* in, BFloat16* out, int64_t width, int64_t begin, int64_t end) {
  std::vector<float> work(static_cast<size_t>((width + kLanes - 1) / kLanes * kLanes));
  for (int64_t r = begin; r < end; ++r) softmax_row(in + r * width, out + r * width, work.data(), width);
}

torch::Tensor bf16_softmax_forward(const torch::Tensor& scores) {
  RECORD_FUNCTION("ijepa::bf16_softmax", std::vector<c10::IValue>({scores}));  // named in profiles
  const auto in = scores.contiguous();
  auto out = torch::empty_like(in);
  const int64_t width = in.size(-1), rows = width == 0 ? 0 : in.numel() / width;
  const auto* source = in.data_ptr<at::BFloat16>();
  auto* target = out.data_ptr<at::BFloat16>();
  at::parallel_for(0, rows, kRowsPerTask,
                   [&](int64_t begin, int64_t end) { softmax_rows(source, target, width, begin, end); });
  return out;
}

class Bf16Softmax : public torch::autograd::Function<Bf16Softmax> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& scores) {
    auto out = bf16_softmax_forward(scores);
    ctx->save_for_backward({out});
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto out = ctx->get_saved_variables()[0];
    return {at::_softmax_backward_data(grad_outputs[0].to(out.scalar_type()), out, -1, torch::kBFloat16)};
  }
};

}  // namespace

torch::Tensor last_dim_softmax(const torch::Tensor& scores) {
  if (!scores.is_cpu() || scores.scalar_type() != torch::kBFloat16 || scores.dim() == 0) {
    return torch::softmax(scores, -1);
  }
  if (!at::GradMode::is_enabled() || !scores.requires_grad()) return bf16_softmax_forward(scores);
  return Bf16Softmax::apply(scores);
}

}  // namespace ijepa::model
