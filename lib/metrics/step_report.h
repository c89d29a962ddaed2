// One training step as a rank measured it: what the trainer hands to its own /metrics (TrainerMetrics) and to
// the coordinator client. Plain data, no dependencies.
#pragma once

#include <cstdint>

namespace ijepa::metrics {

struct StepReport {
  int64_t step = 0;   // global step count after this step
  int64_t epoch = 0;  // the epoch the step belongs to, counted from 1 (as the CSV log writes it)
  double loss = 0.0;
  double lr = 0.0;
  double wd = 0.0;
  double images_per_second = 0.0;  // this rank's throughput
  double step_seconds = 0.0;       // wall time of the whole step
  double data_wait_seconds = 0.0;  // part of step_seconds spent waiting for the loader
  double comm_wait_seconds = 0.0;  // part of step_seconds spent waiting in collectives
  int64_t images = 0;              // images this rank processed in this step
};

}  // namespace ijepa::metrics
