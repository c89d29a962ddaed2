// The threaded, prefetching batch loader.
//
// Worker threads decode and transform samples in parallel, each writing into its slot of a batch; one
// assembling thread takes the batches in order, runs the optional on_batch hook, and queues them. At most
// prefetch_batches batches past the one last returned are decoded or waiting. Results never depend on the
// thread count or timing: the order comes from the sampler (seed, epoch, rank), and each sample's augmentation
// from a generator seeded by (seed, epoch, its position in the padded permutation), so an epoch resumed at
// batch k yields the same batches as one that ran through.
//
// A corrupt sample (CorruptSample from the dataset) is replaced by the next readable sample in the rank's
// shard order, keeping its own augmentation seed; each bad file is warned about once by name and every
// replacement is counted. Any other error in a worker or in the hook is rethrown by next(), naming the sample
// actually read (the replacement, if any); so is any error of the threads themselves (e.g. a batch too large to
// allocate).
//
// A read that never returns (a hung network filesystem) would hold next() for ever: it waits on, since slow storage
// may yet answer, but warns every slow_wait_warning_s, naming the samples being read and for how long.
#pragma once

#include <any>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/sampler.h"
#include "data/transforms.h"

namespace ijepa::data {

struct Batch {
  int64_t epoch = 0;
  int64_t index = 0;  // batch index in the epoch
  int64_t size = 0;   // B
  int64_t channels = 0;
  int64_t height = 0;
  int64_t width = 0;
  std::vector<float> images;     // [B, C, H, W], normalised
  std::vector<int64_t> labels;   // [B]
  std::vector<int64_t> samples;  // [B] dataset indices actually loaded (after any replacement)
  std::any attachment;           // set by on_batch, e.g. the masks of this batch
};

struct LoaderOptions {
  int64_t batch_size = 64;  // per rank
  int64_t world_size = 1;
  int64_t rank = 0;
  uint64_t seed = 0;
  // true: RandomResizedCrop, shuffled order, last incomplete batch dropped. false: eval transform, dataset
  // order, last batch kept (smaller).
  bool train = true;
  int64_t num_workers = 2;  // decoding threads (at least one is used)
  int64_t prefetch_batches = 4;
  TransformOptions transform;
  // Runs on the assembling thread, once per batch, in batch order, before the batch is queued.
  std::function<void(Batch&)> on_batch;
  // next() warns after waiting this long for a batch, and again each time as long (positive).
  double slow_wait_warning_s = 60.0;
};

class Loader {
 public:
  // Throws InputError for an invalid batch size, prefetch depth, rank or transform.
  Loader(std::shared_ptr<const Dataset> dataset, LoaderOptions options);
  ~Loader();  // stops and joins the threads; never waits on the consumer
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  int64_t batches_per_epoch() const;
  // Begins `epoch` at batch `first_batch` (0 <= first_batch <= batches_per_epoch()), stopping any epoch in
  // progress.
  void start(int64_t epoch, int64_t first_batch = 0);
  // The next batch of the epoch, or nothing after its last batch. Blocks until it is ready; the wait is
  // recorded. Rethrows a worker's or the hook's error (InputError stays InputError), naming the sample.
  std::optional<Batch> next();
  // Stops the threads of the running epoch (start() again to continue).
  void stop();

  double data_wait_seconds() const { return wait_total_s_; }  // summed over next() calls
  double last_wait_seconds() const { return wait_last_s_; }
  int64_t skipped_samples() const;  // corrupt-sample replacements so far
  const Dataset& dataset() const { return *dataset_; }
  const LoaderOptions& options() const { return options_; }
  const Transform& transform() const { return transform_; }

 private:
  struct Epoch;
  struct SkipLog;

  int64_t batch_size_of(int64_t batch) const;
  // Fills shard position `position` into out ([C, H, W]); returns the dataset index used.
  int64_t load_sample(const Epoch& epoch, int64_t position, float* out) const;
  // Runs a thread's body. What escapes it (bad_alloc of a batch, say) would call std::terminate: it ends the
  // epoch instead, and next() rethrows it after the batches completed before it.
  void run_guarded(Epoch& epoch, void (Loader::*body)(Epoch&) const) const;
  void run_worker(Epoch& epoch) const;
  // What next() has been waiting `waited_s` for, and which samples are being read (epoch's mutex held).
  std::string describe_slow_wait(const Epoch& epoch, double waited_s) const;
  void run_assembler(Epoch& epoch) const;

  std::shared_ptr<const Dataset> dataset_;
  LoaderOptions options_;
  Transform transform_;
  DistributedSampler sampler_;
  std::unique_ptr<SkipLog> skips_;
  std::unique_ptr<Epoch> epoch_;
  double wait_total_s_ = 0.0;
  double wait_last_s_ = 0.0;
};

}  // namespace ijepa::data
