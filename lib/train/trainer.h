// The trainer: wires data, masks, models, the step, gradient synchronisation, schedules, checkpoints and logs
// into the training loop of one rank. The mains build a Config and a Communicator and call run().
//
// Every rank runs the same loop on its shard. Rank 0 alone prints progress, writes checkpoints, the resolved
// config and summary.json; each rank writes its own CSV. A run that ends for any reason other than a crash or a
// non-finite loss leaves a checkpoint of its last completed step.
#pragma once

#include <memory>
#include <string>

#include "common/config.h"

namespace ijepa::dist {
class Communicator;
}

namespace ijepa::train {

enum class ExitReason { kCompleted, kMaxSteps, kSignal, kStopRequested, kNonFiniteLoss };

const char* to_string(ExitReason reason);

// meta.device resolved to "cuda" or "cpu" (auto: cuda when a GPU is present). Throws InputError when cuda is
// asked for without a GPU. The communicator is built for this device; the trainer trains on comm.device().
std::string resolve_device(const std::string& wanted);

struct TrainResult {
  ExitReason reason = ExitReason::kCompleted;
  int exit_code = 0;  // 0 done; 128 + signal when stopped by a signal or asked to stop (143 for SIGTERM)
  int64_t steps = 0;
  double last_loss = 0;
  std::string last_checkpoint;  // empty when none was written in this run
};

class Trainer {
 public:
  // Builds everything (dataset, models, optimizer; resumes when meta.load_checkpoint). Throws InputError for a
  // dataset or checkpoint that cannot be used.
  Trainer(const common::Config& config, dist::Communicator& comm);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  TrainResult run();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ijepa::train
