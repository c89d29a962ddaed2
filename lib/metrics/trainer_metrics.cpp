// TrainerMetrics.
#include "metrics/trainer_metrics.h"

#include "metrics/exporter.h"
#include "metrics/train_families.h"

namespace ijepa::metrics {

TrainerMetrics::TrainerMetrics(const std::string& run, int rank, const std::string& listen, int port_offset)
    : registry_(std::make_shared<prometheus::Registry>()),
      families_(std::make_unique<TrainFamilies>(*registry_)),
      run_(run),
      rank_(std::to_string(rank)) {
  const prometheus::Labels labels{{"run", run}, {"rank", std::to_string(rank)}};
  step_ = std::make_unique<StepSeries>(*families_, labels);
  waits_ = std::make_unique<WaitSeries>(*families_, labels);
  dropped_ = &prometheus::BuildCounter()
                  .Name("ijepa_coordinator_client_dropped_reports_total")
                  .Help("Reports the coordinator client dropped because its queue was full")
                  .Register(*registry_)
                  .Add(labels);
  eval_top1_ = &prometheus::BuildGauge()
                    .Name("ijepa_train_eval_top1_ratio")
                    .Help("Top-1 accuracy of the target encoder's frozen features on the test split, last evaluation")
                    .Register(*registry_);
  if (!listen.empty())
    exporter_ = std::make_unique<MetricsExporter>(listen_address_for_rank(listen, port_offset), registry_);
}

TrainerMetrics::~TrainerMetrics() = default;

void TrainerMetrics::observe(const StepReport& report) {
  step_->set_progress(report);
  step_->set_images_per_second(report.images_per_second);
  step_->observe_step(report.step_seconds, report.images);
  waits_->add(report.data_wait_seconds, report.comm_wait_seconds);
}

void TrainerMetrics::set_client_dropped(uint64_t total) {
  std::lock_guard<std::mutex> lock(dropped_mutex_);
  if (total <= dropped_seen_) return;
  dropped_->Increment(static_cast<double>(total - dropped_seen_));
  dropped_seen_ = total;
}

void TrainerMetrics::set_eval_top1(const std::string& protocol, double top1) {
  eval_top1_->Add({{"run", run_}, {"rank", rank_}, {"protocol", protocol}}).Set(top1);
}

int TrainerMetrics::port() const { return exporter_ ? exporter_->port() : 0; }

}  // namespace ijepa::metrics
