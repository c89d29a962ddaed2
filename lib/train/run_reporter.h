// Where a rank's progress goes besides the CSV and the console: the run coordinator (coordinator.address) and
// this rank's own Prometheus /metrics (metrics.listen). Both are optional; neither ever makes a step wait. In a
// build without the coordinator (IJEPA_WITH_COORDINATOR off) configuring either is an error at start.
#pragma once

#include <memory>
#include <string>

#include "common/config.h"
#include "train/csv_log.h"

namespace ijepa::train {

class RunReporter {
 public:
  // Throws InputError naming the key when the coordinator or metrics settings cannot be used.
  // local_rank: the rank's index on its node (metrics.port_offset: local_rank).
  RunReporter(const common::Config& config, int rank, int local_rank, int world_size);
  ~RunReporter();
  RunReporter(const RunReporter&) = delete;
  RunReporter& operator=(const RunReporter&) = delete;

  // One logged step of this rank: `images` its batch (its throughput is images / the row's step time);
  // comm_wait_s is the time spent waiting for gradient synchronisation.
  void step(const CsvRow& row, int64_t images, double comm_wait_s);
  void checkpoint_written(const std::string& path, int64_t step);
  void non_finite_loss(double loss, int64_t step);
  // An evaluation of the target encoder begins (the coordinator shows the rank as evaluating until the next step).
  void evaluating();
  // Its top-1 accuracy (a fraction) by protocol (linear | knn): an event at the coordinator, a gauge in /metrics.
  void evaluation(const std::string& protocol, double accuracy, int64_t step);
  // True once the coordinator asked this run to stop.
  bool stop_requested() const;
  // True once this process was asked to stop: a stop signal (common::stop_signal) or the coordinator's request.
  bool stop_asked() const;
  // Ends the run at the coordinator (bounded wait for delivery). exit_reason: see ExitReason.
  void finish(const std::string& exit_reason, bool failed);
  // Ends the run as failed on an error that is about to end the job: an event saying what (a stall when a
  // collective timed out), then the failed end, delivered within a bounded wait.
  void failed(const std::string& error, int64_t step, bool stalled);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ijepa::train
