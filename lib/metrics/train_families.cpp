// TrainFamilies, StepSeries and WaitSeries.
#include "metrics/train_families.h"

#include <cmath>

namespace ijepa::metrics {
namespace {

prometheus::Family<prometheus::Gauge>& gauge(prometheus::Registry& registry, const char* name, const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
}

prometheus::Family<prometheus::Counter>& counter(prometheus::Registry& registry, const char* name, const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

bool countable(double value) { return std::isfinite(value) && value > 0.0; }

}  // namespace

const prometheus::Histogram::BucketBoundaries& step_time_buckets() {
  static const prometheus::Histogram::BucketBoundaries buckets{0.005, 0.01, 0.025, 0.05, 0.1,  0.25, 0.5,
                                                               1.0,   2.5,  5.0,   10.0, 30.0, 60.0};
  return buckets;
}

TrainFamilies::TrainFamilies(prometheus::Registry& registry)
    : step(gauge(registry, "ijepa_train_step", "Training steps completed")),
      epoch(gauge(registry, "ijepa_train_epoch", "Current epoch, counted from 1 as in the CSV log")),
      loss(gauge(registry, "ijepa_train_loss", "Loss of the latest step")),
      learning_rate(gauge(registry, "ijepa_train_learning_rate", "Learning rate of the latest step")),
      weight_decay(gauge(registry, "ijepa_train_weight_decay", "Weight decay of the latest step")),
      images_per_second(gauge(registry, "ijepa_train_images_per_second", "Training throughput in images per second")),
      step_duration(prometheus::BuildHistogram()
                        .Name("ijepa_train_step_duration_seconds")
                        .Help("Wall time of one training step")
                        .Register(registry)),
      images(counter(registry, "ijepa_train_images_total", "Images processed by training steps")),
      data_wait(counter(registry, "ijepa_train_data_wait_seconds_total", "Time training waited for input data")),
      comm_wait(counter(registry, "ijepa_train_comm_wait_seconds_total", "Time training waited in collectives")) {}

StepSeries::StepSeries(TrainFamilies& families, const prometheus::Labels& labels)
    : families_(families),
      step_(families.step.Add(labels)),
      epoch_(families.epoch.Add(labels)),
      loss_(families.loss.Add(labels)),
      learning_rate_(families.learning_rate.Add(labels)),
      weight_decay_(families.weight_decay.Add(labels)),
      images_per_second_(families.images_per_second.Add(labels)),
      step_duration_(families.step_duration.Add(labels, step_time_buckets())),
      images_(families.images.Add(labels)) {}

StepSeries::~StepSeries() {
  families_.step.Remove(&step_);
  families_.epoch.Remove(&epoch_);
  families_.loss.Remove(&loss_);
  families_.learning_rate.Remove(&learning_rate_);
  families_.weight_decay.Remove(&weight_decay_);
  families_.images_per_second.Remove(&images_per_second_);
  families_.step_duration.Remove(&step_duration_);
  families_.images.Remove(&images_);
}

void StepSeries::set_progress(const StepReport& report) {
  step_.Set(static_cast<double>(report.step));
  epoch_.Set(static_cast<double>(report.epoch));
  loss_.Set(report.loss);
  learning_rate_.Set(report.lr);
  weight_decay_.Set(report.wd);
}

void StepSeries::observe_step(double step_seconds, int64_t images) {
  if (std::isfinite(step_seconds) && step_seconds >= 0.0) step_duration_.Observe(step_seconds);
  if (images > 0) images_.Increment(static_cast<double>(images));
}

WaitSeries::WaitSeries(TrainFamilies& families, const prometheus::Labels& labels)
    : families_(families), data_wait_(families.data_wait.Add(labels)), comm_wait_(families.comm_wait.Add(labels)) {}

WaitSeries::~WaitSeries() {
  families_.data_wait.Remove(&data_wait_);
  families_.comm_wait.Remove(&comm_wait_);
}

void WaitSeries::add(double data_wait_seconds, double comm_wait_seconds) {
  if (countable(data_wait_seconds)) data_wait_.Increment(data_wait_seconds);
  if (countable(comm_wait_seconds)) comm_wait_.Increment(comm_wait_seconds);
}

}  // namespace ijepa::metrics
