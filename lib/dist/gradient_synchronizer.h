// Data-parallel gradient averaging overlapped with backward, as PyTorch DDP's reducer does it.
//
// At construction the parameters that require grad are laid out in buckets (bucket_layout.h) and each
// one's .grad becomes a view into its bucket, so backward accumulates straight into the buffers that are
// reduced (no copy). A post-accumulate-grad hook per parameter counts the gradients of its bucket; once a
// bucket is complete and every bucket before it has started, its all-reduce (average over ranks) starts.
// Buckets therefore start in index order on every rank, and communication runs while backward computes the
// remaining gradients. finish() starts what is left and waits for everything.
//
// A parameter that gets no gradient in a step (not in that step's graph) counts as a zero gradient: its
// slot is reduced as it is, which is zero after zero_grad() (and is zeroed if .grad was reset to undefined),
// so every rank reduces the same buckets and the result is the mean over ranks with zeros for that one.
// Its bucket, and all later ones, can then only start in finish(), which costs overlap;
// unused_parameters() names such parameters after each step so that the trainer can warn once.
//
// Per step:  sync.zero_grad();  sync.backward(loss);  sync.finish();  optimizer.step();
// sync.backward(loss) scales the loss by 1/world size so that the buckets are only summed; a plain
// loss.backward() also works, and then each reduced bucket is scaled afterwards (one more pass over it).
// Use sync.zero_grad(), never a LibTorch optimizer's zero_grad(): that one calls detach_() on each .grad,
// which fails on a view. A .grad reset to undefined or replaced by another tensor still works (the hook
// moves it back into its bucket, at the cost of a copy). One backward per step: a second gradient for a
// parameter before finish() is an error.
#pragma once

#include <c10/util/Exception.h>  // ordered_dict.h uses TORCH_CHECK without including it
#include <torch/ordered_dict.h>
#include <torch/types.h>

#include <mutex>
#include <string>
#include <vector>

#include "common/config.h"
#include "dist/bucket_layout.h"
#include "dist/communicator.h"

namespace ijepa::dist {

struct SyncStats {
  int64_t steps = 0;
  // Time spent in finish(): the communication not hidden behind backward. For NCCL this is host time only
  // (finish() does not block the host), so it is near zero there.
  double exposed_seconds = 0;
  double last_exposed_seconds = 0;
  int64_t last_buckets_started_in_backward = 0;  // of buckets().size()
  int64_t bytes_per_step = 0;                    // sent to the all-reduce per step (bf16 halves it)
};

class GradientSynchronizer {
 public:
  // named_parameters: in registration order (e.g. module->named_parameters(), or several modules' merged
  // with prefixes); those that do not require grad are skipped. Reads dist.first_bucket_mb, bucket_mb,
  // min_buckets and compress_bf16 (fp32 buckets travel as bf16 and are averaged there). Collective: checks that every
  // rank has the same names, shapes, dtypes, buckets and wire dtype (common::InputError naming the ranks that
  // differ).
  // overlap=false starts every bucket in finish() instead (for measuring how much overlap hides).
  GradientSynchronizer(Communicator& comm, const torch::OrderedDict<std::string, torch::Tensor>& named_parameters,
                       const common::DistConfig& config, bool overlap = true);
  // Removes the hooks; the .grad views stay valid.
  ~GradientSynchronizer();
  GradientSynchronizer(const GradientSynchronizer&) = delete;
  GradientSynchronizer& operator=(const GradientSynchronizer&) = delete;

  // Zeroes every bucket (all gradients) and points each .grad back at its bucket view.
  void zero_grad();
  // loss.backward() on loss * (1 / world size): the gradients arrive pre-divided, so the buckets' all-reduce
  // is a plain sum and no pass over the gradients follows it (the mean is exact for power-of-two world
  // sizes, within rounding otherwise). loss: a scalar. When backward throws, the step counts as a plain one.
  void backward(const torch::Tensor& loss);
  // After backward: starts the buckets not yet started, waits for all (the communicator's timeout applies)
  // and leaves each .grad holding the mean over ranks.
  void finish();

  const std::vector<Bucket>& buckets() const { return buckets_; }
  // describe_layout() of this synchronizer and the wire dtype of fp32 buckets, equal on every rank.
  const std::string& layout() const { return layout_; }
  // Parameters that received no gradient in the last finished step.
  std::vector<std::string> unused_parameters() const;
  SyncStats stats() const;

 private:
  void install();
  void on_gradient(int64_t index, const torch::Tensor& parameter);
  // Makes .grad the bucket view, moving a gradient that lives elsewhere into it (zero if undefined).
  void adopt_gradient(int64_t index);
  void start_ready_buckets();
  void start_bucket(size_t bucket);

  Communicator& comm_;
  bool overlap_;
  bool compress_;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> parameters_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;          // per parameter
  std::vector<torch::Tensor> buffers_;     // per bucket: [numel]
  std::vector<torch::Tensor> compressed_;  // per bucket: [numel] bf16 when compressing, else undefined
  std::vector<torch::Tensor> views_;       // per parameter: its slot, shaped like the parameter
  std::string layout_;

  mutable std::mutex mutex_;      // hooks may run on autograd's device threads
  std::vector<char> ready_;       // per parameter: gradient arrived this step
  std::vector<int64_t> missing_;  // per bucket: gradients still to come this step
  size_t next_bucket_ = 0;        // the next bucket to start
  bool prescaled_ = false;        // this step's gradients come from backward(): sum, do not average
  std::vector<WorkHandle> works_;
  std::vector<std::string> unused_;
  SyncStats stats_;
};

}  // namespace ijepa::dist
