#include "model/linear.h"

#include <ATen/core/dispatch/Dispatcher.h>

#include <optional>

#include "model/autocast.h"
#include "model/gelu.h"

namespace ijepa::model {

namespace {

// The dtype a linear of x computes in on oneDNN's kernels, or nullopt for ATen's linear: bf16 under CPU bf16
// autocast on a CPU with native bf16 products (without them oneDNN has no fast bf16 kernel either), fp32 on a
// CPU without autocast.
std::optional<torch::ScalarType> onednn_dtype(const torch::Tensor& x) {
  if (!x.is_cpu() || !at::hasMKLDNN()) return std::nullopt;
  if (cpu_bf16_autocast_active()) {
    return cpu_has_native_bf16() ? std::optional<torch::ScalarType>(torch::kBFloat16) : std::nullopt;
  }
  return x.scalar_type() == torch::kFloat ? std::optional<torch::ScalarType>(torch::kFloat) : std::nullopt;
}

enum class Activation { kNone, kGelu };

// x W^T (+ bias) by mkldnn::_linear_pointwise(X, W, B, attr, scalars, algorithm), the operands in one dtype and
// made contiguous (see input_gradient for what a strided weight did). attr "gelu" with algorithm "none" is the exact
// (erf) GELU, as torch.nn.GELU() by default, applied to the fp32 accumulator.
torch::Tensor onednn_linear(const torch::Tensor& x, const torch::Tensor& weight,
                            const std::optional<torch::Tensor>& bias, Activation activation) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("mkldnn::_linear_pointwise", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&, c10::string_view,
                            c10::List<std::optional<at::Scalar>>, std::optional<c10::string_view>)>();
  const bool gelu = activation == Activation::kGelu;
  return op.call(x.contiguous(), weight.contiguous(), bias, gelu ? "gelu" : "none",
                 c10::List<std::optional<at::Scalar>>(), gelu ? std::optional<c10::string_view>("none") : std::nullopt);
}

// grad X = grad Y W. In bf16, ATen's mm is oneDNN's matrix product already, and at these shapes faster than the
// inner-product kernel given W^T (210 against 180-200 GFLOP/s a thread). In fp32, ATen's mm is MKL's sgemm, and
// oneDNN's inner product over W^T is the faster (93-104 against 69-98 GFLOP/s a thread, two processes at once).
// W^T is copied contiguous first: given it as a strided view (a few percent faster still), oneDNN corrupted the
// heap now and then (torch 2.11: 6 of 86 short fp32 training runs crashed at exit, destroying its primitive cache;
// none of 80 with the copy, BENCHMARKS.md). The weight's gradient stays ATen's mm in both dtypes: neither kernel
// was ahead over the shapes of a step.
torch::Tensor input_gradient(const torch::Tensor& grad_output, const torch::Tensor& weight) {
  if (grad_output.scalar_type() == torch::kFloat) {
    return onednn_linear(grad_output, weight.t().contiguous(), std::nullopt, Activation::kNone);
  }
  return grad_output.mm(weight);
}

// Where autograd records: the forward on oneDNN's kernel, the bias added to the accumulator (ATen's addmm copies
// the broadcast bias into the output and accumulates the product onto it: a copy and a read more per linear, 159
// against 185-200 GFLOP/s per thread for the same bf16 products in a (b) step, BENCHMARKS.md); the backward as
// addmm's, with the gradients of the weight, the bias and the input in their own dtypes, as autocast's casts give.
class OnednnLinear : public torch::autograd::Function<OnednnLinear> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias, torch::ScalarType dtype) {
    const auto x_in = x.to(dtype).contiguous(), weight_in = weight.to(dtype).contiguous();
    ctx->save_for_backward({x_in, weight_in});
    ctx->saved_data["x_dtype"] = static_cast<int64_t>(x.scalar_type());
    ctx->saved_data["weight_dtype"] = static_cast<int64_t>(weight.scalar_type());
    ctx->saved_data["bias_dtype"] = static_cast<int64_t>(bias.scalar_type());
    return onednn_linear(x_in, weight_in, bias.to(dtype), Activation::kNone);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto &x_in = saved[0], &weight_in = saved[1];
    const auto dtype = [&](const char* key) { return static_cast<torch::ScalarType>(ctx->saved_data[key].toInt()); };
    const auto grad = grad_outputs[0].to(x_in.scalar_type()).reshape({-1, weight_in.size(0)});
    torch::Tensor grad_x, grad_weight, grad_bias;
    if (ctx->needs_input_grad(0)) grad_x = input_gradient(grad, weight_in).view(x_in.sizes()).to(dtype("x_dtype"));
    if (ctx->needs_input_grad(1)) {
      grad_weight = grad.t().mm(x_in.reshape({-1, x_in.size(-1)})).to(dtype("weight_dtype"));
    }
    if (ctx->needs_input_grad(2)) grad_bias = grad.sum(0).to(dtype("bias_dtype"));
    return {grad_x, grad_weight, grad_bias, torch::Tensor()};
  }
};

// Where nothing is recorded for backward (the target encoder, evaluation): the operands cast once, GELU on the
// accumulator where asked.
torch::Tensor inference_linear(torch::ScalarType dtype, const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias, Activation activation) {
  return onednn_linear(x.to(dtype), weight.to(dtype), bias.to(dtype), activation);
}

}  // namespace

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  const auto dtype = onednn_dtype(x);
  if (!dtype || !bias.defined()) return at::linear(x, weight, bias);
  if (at::GradMode::is_enabled()) return OnednnLinear::apply(x, weight, bias, *dtype);
  return inference_linear(*dtype, x, weight, bias, Activation::kNone);
}

torch::Tensor linear(const torch::nn::Linear& layer, const torch::Tensor& x) {
  return linear(x, layer->weight, layer->bias);
}

torch::Tensor linear_gelu(const torch::nn::Linear& layer, const torch::Tensor& x) {
  const auto dtype = onednn_dtype(x);
  if (!dtype || !layer->bias.defined() || at::GradMode::is_enabled()) return exact_gelu(linear(layer, x));
  // Nothing recorded. In fp32 oneDNN applies GELU to the accumulator: the values of a pass of its own over the
  // output. In bf16 it is model/gelu.h's table, in place over the product rounded to bf16: the reference's
  // arithmetic and the context path's bits, and in a (b) step no slower than oneDNN's GELU on the accumulator.
  if (*dtype == torch::kFloat) return inference_linear(*dtype, x, layer->weight, layer->bias, Activation::kGelu);
  return exact_gelu_(inference_linear(*dtype, x, layer->weight, layer->bias, Activation::kNone));
}

}  // namespace ijepa::model
