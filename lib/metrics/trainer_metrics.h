// A training rank's own /metrics: the ijepa_train_* families (train_families.h) with labels {run, rank}, plus
// ijepa_coordinator_client_dropped_reports_total and, once the run evaluated its encoder (eval.*),
// ijepa_train_eval_top1_ratio{protocol}, served by an exporter on the configured address.
//
//   metrics::TrainerMetrics metrics(run_name, rank, config.metrics.listen, port_offset);   // listen non-empty
//   ... after each step:  metrics.observe(report);
//
// Thread-safe; observe() costs a few atomic updates and never blocks on the network.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include <prometheus/family.h>
#include <prometheus/gauge.h>

#include "metrics/step_report.h"

namespace prometheus {
class Counter;
class Registry;
}  // namespace prometheus

namespace ijepa::metrics {

class MetricsExporter;
struct TrainFamilies;
class StepSeries;
class WaitSeries;

class TrainerMetrics {
 public:
  // Labels every series {run=RUN, rank=RANK}. LISTEN is the configured `metrics.listen` (host:port); this
  // rank serves at port + PORT_OFFSET (listen_address_for_rank; metrics.port_offset picks it). An empty LISTEN
  // records without serving (tests). Throws common::InputError when the address is malformed or cannot be bound.
  TrainerMetrics(const std::string& run, int rank, const std::string& listen, int port_offset);
  ~TrainerMetrics();
  TrainerMetrics(const TrainerMetrics&) = delete;
  TrainerMetrics& operator=(const TrainerMetrics&) = delete;

  // Records one step: progress gauges, throughput, step-time histogram, images and wait counters.
  void observe(const StepReport& report);

  // Publishes the coordinator client's cumulative count of reports it dropped (CoordinatorClient::stats()).
  void set_client_dropped(uint64_t total);

  // The last evaluation's top-1 accuracy (a fraction) of the target encoder; protocol: linear | knn.
  void set_eval_top1(const std::string& protocol, double top1);

  // The bound port of /metrics, 0 when not serving.
  int port() const;

  // The registry, for families a caller adds itself.
  prometheus::Registry& registry() { return *registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<TrainFamilies> families_;
  std::unique_ptr<StepSeries> step_;
  std::unique_ptr<WaitSeries> waits_;
  prometheus::Counter* dropped_;
  prometheus::Family<prometheus::Gauge>* eval_top1_;
  std::string run_, rank_;
  std::mutex dropped_mutex_;
  uint64_t dropped_seen_ = 0;
  std::unique_ptr<MetricsExporter> exporter_;  // last: stops serving before the metrics go
};

}  // namespace ijepa::metrics
