#include "model/residual_norm.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>

#include "model/row_kernels.h"

namespace ijepa::model {

namespace {

using row_kernels::add_lanes;
using row_kernels::BFloat16;
using row_kernels::kLanes;
using row_kernels::narrow_to;
using row_kernels::widen;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows per task. The backward's weight and bias gradients are summed per chunk of this many rows and then over the
// chunks in order, so they do not depend on the number of threads.
constexpr int64_t kRowsPerChunk = 64;

struct RowStats {
  float mean;
  float rstd;  // 1 / sqrt(population variance + eps), as LayerNorm
};

IJEPA_INLINE RowStats row_stats(const float* __restrict__ v, int64_t n, float eps) {
  const int64_t whole = n - n % kLanes;
  float sum[kLanes] = {}, tail = 0.f;
  for (int64_t j = 0; j < whole; j += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) sum[l] += v[j + l];
  }
  for (int64_t j = whole; j < n; ++j) tail += v[j];
  const float mean = add_lanes(sum, tail) / static_cast<float>(n);
  float squares[kLanes] = {};
  tail = 0.f;
  for (int64_t j = 0; j < whole; j += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) squares[l] += (v[j + l] - mean) * (v[j + l] - mean);
  }
  for (int64_t j = whole; j < n; ++j) tail += (v[j] - mean) * (v[j] - mean);
  const float var = add_lanes(squares, tail) / static_cast<float>(n);
  return {mean, 1.f / std::sqrt(var + eps)};
}

struct ForwardArgs {
  int64_t width;
  const float* x;
  const void* branch;  // fp32 or bf16 (branch_bf16), or null: no add
  bool branch_bf16;
  const float* weight;
  const float* bias;
  float eps;
  float* residual;  // written where there is a branch
  void* normed;     // fp32 or bf16 (normed_bf16)
  bool normed_bf16;
  float* mean;
  float* rstd;
};

// Row r: residual = x + branch (where there is a branch) and normed = LayerNorm(residual).
template <typename Branch, typename Out>
IJEPA_INLINE void forward_row(const ForwardArgs& a, int64_t r) {
  const int64_t n = a.width;
  const float* source = a.x + r * n;
  if (a.branch != nullptr) {
    const float* __restrict__ in = source;
    const Branch* __restrict__ add = static_cast<const Branch*>(a.branch) + r * n;
    float* __restrict__ sum = a.residual + r * n;
    for (int64_t j = 0; j < n; ++j) sum[j] = in[j] + widen(add[j]);
    source = sum;
  }
  const RowStats stats = row_stats(source, n, a.eps);
  const float* __restrict__ in = source;
  const float* __restrict__ weight = a.weight;
  const float* __restrict__ bias = a.bias;
  Out* __restrict__ out = static_cast<Out*>(a.normed) + r * n;
  for (int64_t j = 0; j < n; ++j) narrow_to((in[j] - stats.mean) * stats.rstd * weight[j] + bias[j], out + j);
  a.mean[r] = stats.mean;
  a.rstd[r] = stats.rstd;
}

template <typename Branch, typename Out>
IJEPA_INLINE void forward_rows(const ForwardArgs& a, int64_t begin, int64_t end) {
  for (int64_t r = begin; r < end; ++r) forward_row<Branch, Out>(a, r);
}

IJEPA_VECTORISED void forward_range(const ForwardArgs& a, int64_t begin, int64_t end) {
  if (a.branch_bf16) {
    a.normed_bf16 ? forward_rows<BFloat16, BFloat16>(a, begin, end) : forward_rows<BFloat16, float>(a, begin, end);
  } else {
    a.normed_bf16 ? forward_rows<float, BFloat16>(a, begin, end) : forward_rows<float, float>(a, begin, end);
  }
}

struct BackwardArgs {
  int64_t rows;
  int64_t width;
  const float* source;      // the LayerNorm's input: the residual
  const void* grad_normed;  // fp32 or bf16 (normed_bf16), or null: the normed output was not used
  bool normed_bf16;
  const float* grad_residual;  // or null: the residual was not used beyond the norm
  const float* weight;
  const float* mean;
  const float* rstd;
  float* grad_x;
  void* grad_branch;  // fp32 or bf16 (branch_bf16), or null: no branch
  bool branch_bf16;
  float* weight_by_chunk;  // [chunks, width]
  float* bias_by_chunk;    // [chunks, width]
};

// Row r's input gradient. With g = dy * weight and xhat = (source - mean) * rstd, the LayerNorm's input gradient is
// rstd * (g - mean(g) - xhat * mean(g * xhat)); the residual's own gradient adds to it, and the branch gets the
// same sum in its dtype. The weight and bias gradients accumulate dy * xhat and dy into the chunk's rows.
template <typename Branch, typename Out>
IJEPA_INLINE void backward_row(const BackwardArgs& a, int64_t r, float* __restrict__ weight_grad,
                               float* __restrict__ bias_grad) {
  const int64_t n = a.width, whole = n - n % kLanes;
  const float* __restrict__ in = a.source + r * n;
  const float* __restrict__ weight = a.weight;
  const float* __restrict__ from_residual = a.grad_residual != nullptr ? a.grad_residual + r * n : nullptr;
  float* __restrict__ dx = a.grad_x + r * n;
  if (a.grad_normed == nullptr) {
    for (int64_t j = 0; j < n; ++j) dx[j] = from_residual != nullptr ? from_residual[j] : 0.f;
  } else {
    const Out* __restrict__ dy = static_cast<const Out*>(a.grad_normed) + r * n;
    const float m = a.mean[r], s = a.rstd[r];
    float g_sum[kLanes] = {}, gx_sum[kLanes] = {}, g_tail = 0.f, gx_tail = 0.f;
    for (int64_t j = 0; j < whole; j += kLanes) {
      for (int64_t l = 0; l < kLanes; ++l) {
        const float g = widen(dy[j + l]) * weight[j + l];
        g_sum[l] += g;
        gx_sum[l] += g * (in[j + l] - m) * s;
      }
    }
    for (int64_t j = whole; j < n; ++j) {
      const float g = widen(dy[j]) * weight[j];
      g_tail += g;
      gx_tail += g * (in[j] - m) * s;
    }
    const float g_mean = add_lanes(g_sum, g_tail) / static_cast<float>(n);
    const float gx_mean = add_lanes(gx_sum, gx_tail) / static_cast<float>(n);
    for (int64_t j = 0; j < n; ++j) {
      const float xhat = (in[j] - m) * s, d = widen(dy[j]);
      weight_grad[j] += d * xhat;
      bias_grad[j] += d;
      dx[j] = s * (d * weight[j] - g_mean - xhat * gx_mean);
    }
    if (from_residual != nullptr) {
      for (int64_t j = 0; j < n; ++j) dx[j] += from_residual[j];
    }
  }
  if (a.grad_branch != nullptr) {
    Branch* __restrict__ to_branch = static_cast<Branch*>(a.grad_branch) + r * n;
    for (int64_t j = 0; j < n; ++j) narrow_to(dx[j], to_branch + j);
  }
}

template <typename Branch, typename Out>
IJEPA_INLINE void backward_rows(const BackwardArgs& a, int64_t chunk) {
  float* weight_grad = a.weight_by_chunk + chunk * a.width;
  float* bias_grad = a.bias_by_chunk + chunk * a.width;
  const int64_t last = std::min(a.rows, (chunk + 1) * kRowsPerChunk);
  for (int64_t r = chunk * kRowsPerChunk; r < last; ++r) backward_row<Branch, Out>(a, r, weight_grad, bias_grad);
}

IJEPA_VECTORISED void backward_chunk(const BackwardArgs& a, int64_t chunk) {
  if (a.branch_bf16) {
    a.normed_bf16 ? backward_rows<BFloat16, BFloat16>(a, chunk) : backward_rows<BFloat16, float>(a, chunk);
  } else {
    a.normed_bf16 ? backward_rows<float, BFloat16>(a, chunk) : backward_rows<float, float>(a, chunk);
  }
}

int64_t chunk_count(int64_t rows) { return (rows + kRowsPerChunk - 1) / kRowsPerChunk; }

const void* data_or_null(const torch::Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }

// The forward and backward of both autograd functions below; branch undefined: no add.
variable_list fused_forward(AutogradContext* ctx, const torch::Tensor& x_in, const torch::Tensor& branch_in,
                            const torch::Tensor& weight, const torch::Tensor& bias, double eps,
                            torch::ScalarType normed_dtype) {
  const auto x = x_in.contiguous();
  const auto branch = branch_in.defined() ? branch_in.contiguous() : branch_in;
  const int64_t rows = x.numel() / x.size(-1);
  const auto residual = branch.defined() ? torch::empty_like(x) : x;
  const auto normed = torch::empty(x.sizes(), x.options().dtype(normed_dtype));
  const auto mean = torch::empty({rows}, x.options()), rstd = torch::empty({rows}, x.options());
  const ForwardArgs args{x.size(-1),
                         x.data_ptr<float>(),
                         data_or_null(branch),
                         branch.defined() && branch.scalar_type() == torch::kBFloat16,
                         weight.data_ptr<float>(),
                         bias.data_ptr<float>(),
                         static_cast<float>(eps),
                         residual.data_ptr<float>(),
                         normed.data_ptr(),
                         normed_dtype == torch::kBFloat16,
                         mean.data_ptr<float>(),
                         rstd.data_ptr<float>()};
  at::parallel_for(0, rows, kRowsPerChunk, [&](int64_t begin, int64_t end) { forward_range(args, begin, end); });
  ctx->save_for_backward({residual, weight, mean, rstd});
  ctx->set_materialize_grads(false);  // an unused output's gradient stays undefined: no pass over zeros
  ctx->saved_data["branch_dtype"] = branch.defined() ? static_cast<int64_t>(branch.scalar_type()) : int64_t{-1};
  if (!branch.defined()) return {normed};
  return {normed, residual};
}

// Gradients of x, the branch (undefined without one), the weight and the bias.
variable_list fused_backward(AutogradContext* ctx, const variable_list& grad_outputs) {
  const auto saved = ctx->get_saved_variables();
  const auto &source = saved[0], &weight = saved[1], &mean = saved[2], &rstd = saved[3];
  const int64_t branch_code = ctx->saved_data["branch_dtype"].toInt();
  const bool has_branch = branch_code >= 0;
  const auto contiguous = [](const torch::Tensor& t) { return t.defined() ? t.contiguous() : t; };
  const auto grad_normed = contiguous(grad_outputs[0]);
  const auto grad_residual = has_branch ? contiguous(grad_outputs[1]) : torch::Tensor();
  const int64_t rows = source.numel() / source.size(-1), width = source.size(-1), chunks = chunk_count(rows);
  const auto branch_dtype = has_branch ? static_cast<torch::ScalarType>(branch_code) : torch::kFloat;
  auto grad_x = torch::empty_like(source);
  auto grad_branch = has_branch ? torch::empty(source.sizes(), source.options().dtype(branch_dtype)) : torch::Tensor();
  auto weight_by_chunk = torch::zeros({chunks, width}, source.options());
  auto bias_by_chunk = torch::zeros({chunks, width}, source.options());
  const BackwardArgs args{rows,
                          width,
                          source.data_ptr<float>(),
                          data_or_null(grad_normed),
                          grad_normed.defined() && grad_normed.scalar_type() == torch::kBFloat16,
                          grad_residual.defined() ? grad_residual.data_ptr<float>() : nullptr,
                          weight.data_ptr<float>(),
                          mean.data_ptr<float>(),
                          rstd.data_ptr<float>(),
                          grad_x.data_ptr<float>(),
                          has_branch ? grad_branch.data_ptr() : nullptr,
                          branch_dtype == torch::kBFloat16,
                          weight_by_chunk.data_ptr<float>(),
                          bias_by_chunk.data_ptr<float>()};
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t chunk = begin; chunk < end; ++chunk) backward_chunk(args, chunk);
  });
  // The chunks' sums in chunk order.
  const auto grad_weight = grad_normed.defined() ? weight_by_chunk.sum(0) : torch::Tensor();
  const auto grad_bias = grad_normed.defined() ? bias_by_chunk.sum(0) : torch::Tensor();
  return {grad_x, grad_branch, grad_weight, grad_bias};
}

// {normed, residual}. Two functions because autograd takes no undefined tensor as an input.
class ResidualLayerNorm : public torch::autograd::Function<ResidualLayerNorm> {
 public:
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& branch,
                               const torch::Tensor& weight, const torch::Tensor& bias, double eps,
                               torch::ScalarType normed_dtype) {
    return fused_forward(ctx, x, branch, weight, bias, eps, normed_dtype);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto grads = fused_backward(ctx, grad_outputs);
    return {grads[0], grads[1], grads[2], grads[3], torch::Tensor(), torch::Tensor()};
  }
};

// {normed}: a LayerNorm whose output comes in the dtype asked for, without a cast pass.
class LayerNormTo : public torch::autograd::Function<LayerNormTo> {
 public:
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias, double eps, torch::ScalarType normed_dtype) {
    return fused_forward(ctx, x, torch::Tensor(), weight, bias, eps, normed_dtype);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto grads = fused_backward(ctx, grad_outputs);
    return {grads[0], grads[2], grads[3], torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool fusable_residual(const torch::Tensor& x) { return x.is_cpu() && x.scalar_type() == torch::kFloat; }

ResidualNorm residual_layer_norm(const torch::Tensor& x, const torch::Tensor& branch, const torch::nn::LayerNorm& norm,
                                 torch::ScalarType normed_dtype) {
  const auto& weight = norm->weight;
  TORCH_CHECK(fusable_residual(x), "residual_layer_norm: the residual stream must be a CPU fp32 tensor");
  TORCH_CHECK(weight.defined() && norm->bias.defined(), "residual_layer_norm: the LayerNorm needs a weight and bias");
  TORCH_CHECK(x.dim() >= 1, "residual_layer_norm: the residual stream has no dimension to normalise");
  TORCH_CHECK(x.size(-1) == weight.numel(), "residual_layer_norm: the last dimension (", x.size(-1),
              ") is not the norm's width (", weight.numel(), ")");
  TORCH_CHECK(
      !branch.defined() || (branch.sizes() == x.sizes() && branch.is_cpu() &&
                            (branch.scalar_type() == torch::kFloat || branch.scalar_type() == torch::kBFloat16)),
      "residual_layer_norm: the branch must be an fp32 or bf16 CPU tensor of the residual's shape");
  TORCH_CHECK(normed_dtype == torch::kFloat || normed_dtype == torch::kBFloat16,
              "residual_layer_norm: the normalised output is fp32 or bf16");
  const double eps = norm->options.eps();
  if (!branch.defined()) return {x, LayerNormTo::apply(x, weight, norm->bias, eps, normed_dtype)[0]};
  const auto outputs = ResidualLayerNorm::apply(x, branch, weight, norm->bias, eps, normed_dtype);
  return {outputs[1], outputs[0]};
}

}  // namespace ijepa::model
