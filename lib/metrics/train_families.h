// The training metric families shared by a rank's own /metrics (TrainerMetrics) and the coordinator's
// per-run export (CoordinatorMetrics), so both expose the same names:
//
//   ijepa_train_step, ijepa_train_epoch, ijepa_train_loss, ijepa_train_learning_rate,
//   ijepa_train_weight_decay, ijepa_train_images_per_second           gauges
//   ijepa_train_step_duration_seconds                                  histogram
//   ijepa_train_images_total, ijepa_train_data_wait_seconds_total,
//   ijepa_train_comm_wait_seconds_total                                counters
//
// A series object owns the metrics of one label set ({run} or {run, rank}) and removes them when destroyed,
// which is how finished runs leave the export.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/labels.h>
#include <prometheus/registry.h>

#include "metrics/step_report.h"

namespace ijepa::metrics {

// Step-time buckets in seconds: from tiny CPU models to large GPU steps.
const prometheus::Histogram::BucketBoundaries& step_time_buckets();

struct TrainFamilies {
  explicit TrainFamilies(prometheus::Registry& registry);

  prometheus::Family<prometheus::Gauge>& step;
  prometheus::Family<prometheus::Gauge>& epoch;
  prometheus::Family<prometheus::Gauge>& loss;
  prometheus::Family<prometheus::Gauge>& learning_rate;
  prometheus::Family<prometheus::Gauge>& weight_decay;
  prometheus::Family<prometheus::Gauge>& images_per_second;
  prometheus::Family<prometheus::Histogram>& step_duration;
  prometheus::Family<prometheus::Counter>& images;
  prometheus::Family<prometheus::Counter>& data_wait;
  prometheus::Family<prometheus::Counter>& comm_wait;
};

// Progress gauges, the step-time histogram and the image counter of one label set.
class StepSeries {
 public:
  StepSeries(TrainFamilies& families, const prometheus::Labels& labels);
  ~StepSeries();
  StepSeries(const StepSeries&) = delete;
  StepSeries& operator=(const StepSeries&) = delete;

  // Step, epoch, loss, learning rate and weight decay from `report`.
  void set_progress(const StepReport& report);
  void set_images_per_second(double value) { images_per_second_.Set(value); }
  // One step's duration into the histogram and its images into the counter (negative values are ignored).
  void observe_step(double step_seconds, int64_t images);

 private:
  TrainFamilies& families_;
  prometheus::Gauge& step_;
  prometheus::Gauge& epoch_;
  prometheus::Gauge& loss_;
  prometheus::Gauge& learning_rate_;
  prometheus::Gauge& weight_decay_;
  prometheus::Gauge& images_per_second_;
  prometheus::Histogram& step_duration_;
  prometheus::Counter& images_;
};

// Cumulative data-wait and communication-wait seconds of one label set.
class WaitSeries {
 public:
  WaitSeries(TrainFamilies& families, const prometheus::Labels& labels);
  ~WaitSeries();
  WaitSeries(const WaitSeries&) = delete;
  WaitSeries& operator=(const WaitSeries&) = delete;

  // Adds to the counters (negative or non-finite values are ignored: counters never go down).
  void add(double data_wait_seconds, double comm_wait_seconds);

 private:
  TrainFamilies& families_;
  prometheus::Counter& data_wait_;
  prometheus::Counter& comm_wait_;
};

}  // namespace ijepa::metrics
