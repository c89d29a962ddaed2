#include "train/run_reporter.h"

#include <chrono>

#include "common/errors.h"
#include "common/log.h"
#include "common/signals.h"

#ifdef IJEPA_HAVE_COORDINATOR
#include "coord/client.h"
#include "metrics/trainer_metrics.h"
#endif

namespace ijepa::train {

#ifdef IJEPA_HAVE_COORDINATOR

class RunReporter::Impl {
 public:
  Impl(const common::Config& config, int rank, int local_rank, int world_size) {
    const std::string run = coord::CoordinatorClient::run_name_for(config.coordinator, config.logging.folder);
    if (!config.coordinator.address.empty()) {
      client_ = std::make_unique<coord::CoordinatorClient>(
          config.coordinator, coord::RunIdentity{run, rank, world_size, common::to_yaml(config), ""});
    }
    if (!config.metrics.listen.empty()) {
      const std::string& offset = config.metrics.port_offset;
      const int port_offset = offset == "global_rank" ? rank : offset == "local_rank" ? local_rank : 0;
      metrics_ = std::make_unique<metrics::TrainerMetrics>(run, rank, config.metrics.listen, port_offset);
      log::info(log::str("rank ", rank, " serves /metrics on port ", metrics_->port()));
    }
  }

  void step(const CsvRow& row, int64_t images, double comm_wait_s) {
    metrics::StepReport r;
    r.step = row.step;
    r.epoch = row.epoch;
    r.loss = row.loss;
    r.lr = row.lr;
    r.wd = row.wd;
    // This rank's throughput (the coordinator sums the ranks'); the row's figure is the whole job's.
    r.images_per_second = row.step_ms > 0 ? static_cast<double>(images) / (row.step_ms / 1e3) : 0.0;
    r.step_seconds = row.step_ms / 1e3;
    r.data_wait_seconds = row.data_wait_ms / 1e3;
    r.comm_wait_seconds = comm_wait_s;
    r.images = images;
    if (client_) {
      client_->report_step(r);
      client_->set_state(coord::WorkerState::kTraining);
    }
    if (metrics_) {
      metrics_->observe(r);
      if (client_) metrics_->set_client_dropped(client_->stats().steps_dropped);
    }
  }

  void checkpoint_written(const std::string& path, int64_t step) {
    if (client_) client_->report_event(coord::EventType::kCheckpointWritten, path, step);
  }
  void non_finite_loss(double loss, int64_t step) {
    if (client_) client_->report_event(coord::EventType::kNanLoss, "non-finite loss", step, loss);
  }
  void evaluating() {
    if (client_) client_->set_state(coord::WorkerState::kEvaluating);
  }
  void evaluation(const std::string& protocol, double accuracy, int64_t step) {
    if (client_) client_->report_event(coord::EventType::kEvaluationResult, protocol + " top-1", step, accuracy);
    if (metrics_) metrics_->set_eval_top1(protocol, accuracy);
  }

  bool stop_requested() const { return client_ && client_->stop_requested(); }

  void finish(const std::string& reason, bool failed) {
    if (!client_) return;
    const auto outcome = failed                                             ? coord::Outcome::kFailed
                         : reason == "signal" || reason == "stop_requested" ? coord::Outcome::kStopped
                                                                            : coord::Outcome::kFinished;
    client_->finish(outcome, reason);
    if (!client_->flush(std::chrono::seconds(3))) {
      log::warn("coordinator: the end of the run was not confirmed in time: " + client_->stats().last_error);
    }
  }

  void failed(const std::string& error, int64_t step, bool stalled) {
    if (!client_) return;
    client_->report_event(stalled ? coord::EventType::kStall : coord::EventType::kMessage, error, step);
    finish("error", /*failed=*/true);
  }

 private:
  std::unique_ptr<coord::CoordinatorClient> client_;
  std::unique_ptr<metrics::TrainerMetrics> metrics_;
};

#else

class RunReporter::Impl {
 public:
  Impl(const common::Config& config, int, int, int) {
    if (!config.coordinator.address.empty() || !config.metrics.listen.empty()) {
      throw common::InputError("coordinator.address/metrics.listen: this build has no coordinator or metrics support");
    }
  }
  void step(const CsvRow&, int64_t, double) {}
  void checkpoint_written(const std::string&, int64_t) {}
  void non_finite_loss(double, int64_t) {}
  void evaluating() {}
  void evaluation(const std::string&, double, int64_t) {}
  bool stop_requested() const { return false; }
  void finish(const std::string&, bool) {}
  void failed(const std::string&, int64_t, bool) {}
};

#endif

RunReporter::RunReporter(const common::Config& config, int rank, int local_rank, int world_size)
    : impl_(std::make_unique<Impl>(config, rank, local_rank, world_size)) {}
RunReporter::~RunReporter() = default;

void RunReporter::step(const CsvRow& row, int64_t images, double comm_wait_s) { impl_->step(row, images, comm_wait_s); }
bool RunReporter::stop_requested() const { return impl_->stop_requested(); }
bool RunReporter::stop_asked() const { return common::stop_signal() != 0 || stop_requested(); }
void RunReporter::finish(const std::string& exit_reason, bool failed) { impl_->finish(exit_reason, failed); }
void RunReporter::failed(const std::string& error, int64_t step, bool stalled) { impl_->failed(error, step, stalled); }

void RunReporter::checkpoint_written(const std::string& path, int64_t step) { impl_->checkpoint_written(path, step); }
void RunReporter::non_finite_loss(double loss, int64_t step) { impl_->non_finite_loss(loss, step); }
void RunReporter::evaluating() { impl_->evaluating(); }
void RunReporter::evaluation(const std::string& protocol, double accuracy, int64_t step) {
  impl_->evaluation(protocol, accuracy, step);
}

}  // namespace ijepa::train
