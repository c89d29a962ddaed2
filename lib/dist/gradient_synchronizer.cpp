// The bucketed gradient all-reduce: layout, hooks, and the per-step state.
#include "dist/gradient_synchronizer.h"

#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>

#include <chrono>
#include <functional>
#include <stdexcept>

#include "common/clock.h"
#include "common/errors.h"
#include "dist/consistency.h"

namespace ijepa::dist {
namespace {

using common::Clock;

// Runs after AccumulateGrad has added a parameter's gradient into its .grad.
class GradientReadyHook : public torch::autograd::PostAccumulateGradHook {
 public:
  explicit GradientReadyHook(std::function<void(const torch::Tensor&)> on_ready) : on_ready_(std::move(on_ready)) {}
  void operator()(const torch::autograd::Variable& parameter) override { on_ready_(parameter); }

 private:
  std::function<void(const torch::Tensor&)> on_ready_;
};

bool is_view_of(const torch::Tensor& grad, const torch::Tensor& view) {
  return grad.defined() && grad.data_ptr() == view.data_ptr() && grad.sizes() == view.sizes();
}

void check_parameter(const std::string& name, const torch::Tensor& parameter, torch::Device device) {
  const auto type = parameter.scalar_type();
  if (type != torch::kFloat && type != torch::kBFloat16 && type != torch::kDouble) {
    throw std::invalid_argument("GradientSynchronizer: parameter '" + name + "' has dtype " + c10::toString(type) +
                                "; fp32, bf16 or fp64 expected");
  }
  if (parameter.device().type() != device.type() || parameter.layout() != torch::kStrided) {
    throw std::invalid_argument("GradientSynchronizer: parameter '" + name + "' is on " + parameter.device().str() +
                                "; dense tensors on " + device.str() + " expected");
  }
  if (torch::autograd::impl::post_acc_grad_hooks(parameter)) {
    throw std::invalid_argument("GradientSynchronizer: parameter '" + name +
                                "' already has a post-accumulate-grad hook (another synchronizer?)");
  }
}

}  // namespace

GradientSynchronizer::GradientSynchronizer(Communicator& comm,
                                           const torch::OrderedDict<std::string, torch::Tensor>& named_parameters,
                                           const common::DistConfig& config, bool overlap)
    : comm_(comm), overlap_(overlap), compress_(config.compress_bf16) {
  if (!(config.first_bucket_mb > 0) || !(config.bucket_mb > 0) || config.min_buckets <= 0) {
    throw common::InputError("dist.first_bucket_mb, dist.bucket_mb and dist.min_buckets must be positive");
  }
  for (const auto& item : named_parameters) {
    if (!item.value().requires_grad()) continue;
    check_parameter(item.key(), item.value(), comm_.device());
    names_.push_back(item.key());
    parameters_.push_back(item.value());
  }
  if (parameters_.empty()) throw std::invalid_argument("GradientSynchronizer: no parameter requires grad");
  int64_t gradient_bytes = 0;
  for (const auto& parameter : parameters_) gradient_bytes += parameter.numel() * parameter.element_size();
  const int64_t first_bucket_bytes = mib_to_bytes(config.first_bucket_mb);
  buckets_ = plan_buckets(
      parameters_, first_bucket_bytes,
      bucket_cap_bytes(gradient_bytes, first_bucket_bytes, mib_to_bytes(config.bucket_mb), config.min_buckets));
  // With the wire dtype: ranks that differ in dist.compress_bf16 would otherwise pass different sizes to the
  // same all-reduce, which MPI reports as a truncation and NCCL not at all.
  layout_ = describe_layout(names_, parameters_, buckets_) + "fp32 buckets travel as " + (compress_ ? "bf16" : "fp32") +
            " (dist.compress_bf16)\n";
  verify_same_across_ranks(comm_, "parameter layout (names, shapes, dtypes, buckets, wire dtype)", layout_);
  install();
}

void GradientSynchronizer::install() {
  const torch::NoGradGuard no_grad;
  bucket_of_.resize(parameters_.size());
  views_.resize(parameters_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) {
    const Bucket& bucket = buckets_[b];
    const auto options = torch::TensorOptions().dtype(bucket.dtype).device(comm_.device());
    buffers_.push_back(torch::zeros({bucket.numel}, options));
    const bool compress = compress_ && bucket.dtype == torch::kFloat;
    compressed_.push_back(compress ? torch::zeros({bucket.numel}, options.dtype(torch::kBFloat16)) : torch::Tensor());
    stats_.bytes_per_step += bucket.numel * (compress ? 2 : static_cast<int64_t>(c10::elementSize(bucket.dtype)));
    for (const BucketSlot& slot : bucket.slots) {
      bucket_of_[slot.parameter] = b;
      views_[slot.parameter] = buffers_[b].narrow(0, slot.offset, slot.numel).view(parameters_[slot.parameter].sizes());
    }
  }
  for (size_t i = 0; i < parameters_.size(); ++i) {
    adopt_gradient(static_cast<int64_t>(i));
    torch::autograd::impl::set_post_acc_grad_hooks(
        parameters_[i], std::make_unique<GradientReadyHook>([this, i](const torch::Tensor& parameter) {
          on_gradient(static_cast<int64_t>(i), parameter);
        }));
  }
  ready_.assign(parameters_.size(), 0);
  missing_.clear();
  for (const Bucket& bucket : buckets_) missing_.push_back(static_cast<int64_t>(bucket.slots.size()));
  works_.resize(buckets_.size());
}

GradientSynchronizer::~GradientSynchronizer() {
  for (const auto& parameter : parameters_) torch::autograd::impl::set_post_acc_grad_hooks(parameter, nullptr);
}

void GradientSynchronizer::adopt_gradient(int64_t index) {
  const torch::Tensor& grad = parameters_[index].grad();
  const torch::Tensor& view = views_[index];
  if (is_view_of(grad, view)) return;
  if (grad.defined()) {
    view.copy_(grad);
  } else {
    view.zero_();
  }
  parameters_[index].mutable_grad() = view;
}

void GradientSynchronizer::on_gradient(int64_t index, const torch::Tensor& parameter) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (ready_[index]) {
    throw DistError("GradientSynchronizer: parameter '" + names_[index] +
                    "' received a second gradient before finish(); call finish() after each backward");
  }
  if (!is_view_of(parameter.grad(), views_[index])) adopt_gradient(index);
  ready_[index] = 1;
  if (--missing_[bucket_of_[index]] == 0 && overlap_) start_ready_buckets();
}

void GradientSynchronizer::start_ready_buckets() {
  while (next_bucket_ < buckets_.size() && missing_[next_bucket_] == 0) start_bucket(next_bucket_++);
}

void GradientSynchronizer::start_bucket(size_t bucket) {
  torch::Tensor payload = buffers_[bucket];
  if (compressed_[bucket].defined()) {
    compressed_[bucket].copy_(payload);
    payload = compressed_[bucket];
  }
  works_[bucket] = comm_.all_reduce(payload, prescaled_ ? ReduceOp::kSum : ReduceOp::kAverage);
}

void GradientSynchronizer::backward(const torch::Tensor& loss) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    prescaled_ = true;
  }
  try {
    if (comm_.world_size() == 1) {
      loss.backward();
    } else {
      (loss * (1.0 / comm_.world_size())).backward();
    }
  } catch (...) {
    // Otherwise a later step's plain loss.backward() would be summed over the ranks instead of averaged.
    std::lock_guard<std::mutex> lock(mutex_);
    prescaled_ = false;
    throw;
  }
}

void GradientSynchronizer::finish() {
  const auto start = Clock::now();
  const torch::NoGradGuard no_grad;
  std::lock_guard<std::mutex> lock(mutex_);
  unused_.clear();
  for (size_t i = 0; i < parameters_.size(); ++i) {
    if (ready_[i]) continue;
    unused_.push_back(names_[i]);
    adopt_gradient(static_cast<int64_t>(i));
  }
  stats_.last_buckets_started_in_backward = static_cast<int64_t>(next_bucket_);
  while (next_bucket_ < buckets_.size()) start_bucket(next_bucket_++);
  for (size_t b = 0; b < buckets_.size(); ++b) {
    works_[b]->wait();
    works_[b].reset();
    if (compressed_[b].defined()) buffers_[b].copy_(compressed_[b]);
  }
  ready_.assign(parameters_.size(), 0);
  for (size_t b = 0; b < buckets_.size(); ++b) missing_[b] = static_cast<int64_t>(buckets_[b].slots.size());
  next_bucket_ = 0;
  prescaled_ = false;
  stats_.last_exposed_seconds = common::seconds_since(start);
  stats_.exposed_seconds += stats_.last_exposed_seconds;
  ++stats_.steps;
}

void GradientSynchronizer::zero_grad() {
  const torch::NoGradGuard no_grad;
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& buffer : buffers_) buffer.zero_();
  for (size_t i = 0; i < parameters_.size(); ++i) {
    if (!is_view_of(parameters_[i].grad(), views_[i])) parameters_[i].mutable_grad() = views_[i];
  }
}

std::vector<std::string> GradientSynchronizer::unused_parameters() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return unused_;
}

SyncStats GradientSynchronizer::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace ijepa::dist
