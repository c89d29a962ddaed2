// CoordinatorMetrics.
#include "metrics/coordinator_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "metrics/train_families.h"

namespace ijepa::metrics {

// The series of one run; destroying it removes them from the export.
struct CoordinatorMetrics::RunSeries {
  struct Worker {
    Worker(CoordinatorMetrics& owner, const std::string& run, int rank)
        : owner(owner),
          waits(*owner.train_, {{"run", run}, {"rank", std::to_string(rank)}}),
          heartbeat_age(owner.heartbeat_age_.Add({{"run", run}, {"rank", std::to_string(rank)}})) {}
    ~Worker() { owner.heartbeat_age_.Remove(&heartbeat_age); }
    CoordinatorMetrics& owner;
    WaitSeries waits;
    prometheus::Gauge& heartbeat_age;
  };

  RunSeries(CoordinatorMetrics& owner, const std::string& run)
      : owner(owner),
        run(run),
        progress(*owner.train_, {{"run", run}}),
        live(owner.live_workers_.Add({{"run", run}})) {}
  ~RunSeries() { owner.live_workers_.Remove(&live); }

  Worker& worker(int rank) {
    auto& slot = workers[rank];
    if (!slot) slot = std::make_unique<Worker>(owner, run, rank);
    return *slot;
  }

  CoordinatorMetrics& owner;
  std::string run;
  StepSeries progress;
  prometheus::Gauge& live;
  std::map<int, std::unique_ptr<Worker>> workers;
};

CoordinatorMetrics::CoordinatorMetrics(std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)),
      train_(std::make_unique<TrainFamilies>(*registry_)),
      runs_(prometheus::BuildGauge().Name("ijepa_coordinator_runs").Help("Runs by state").Register(*registry_)),
      workers_(prometheus::BuildGauge()
                   .Name("ijepa_coordinator_workers")
                   .Help("Workers (training ranks) by state")
                   .Register(*registry_)),
      rpcs_(prometheus::BuildCounter()
                .Name("ijepa_coordinator_rpcs_total")
                .Help("RPCs handled, by method and gRPC status code")
                .Register(*registry_)),
      rpc_duration_(prometheus::BuildHistogram()
                        .Name("ijepa_coordinator_rpc_duration_seconds")
                        .Help("Time to handle one unary RPC (streams are counted in ijepa_coordinator_rpcs_total only)")
                        .Register(*registry_)),
      events_(prometheus::BuildCounter()
                  .Name("ijepa_coordinator_events_total")
                  .Help("Run events recorded, by run and type")
                  .Register(*registry_)),
      watch_streams_(prometheus::BuildGauge()
                         .Name("ijepa_coordinator_watch_streams")
                         .Help("WatchRun streams open now (at most ijepa-coordinator's --max-watch-streams)")
                         .Register(*registry_)
                         .Add({})),
      watch_refused_(prometheus::BuildCounter()
                         .Name("ijepa_coordinator_watch_streams_refused_total")
                         .Help("WatchRun calls refused (RESOURCE_EXHAUSTED) because --max-watch-streams were open")
                         .Register(*registry_)
                         .Add({})),
      live_workers_(prometheus::BuildGauge()
                        .Name("ijepa_run_live_workers")
                        .Help("Workers of the run that heartbeat within the timeout")
                        .Register(*registry_)),
      heartbeat_age_(prometheus::BuildGauge()
                         .Name("ijepa_worker_heartbeat_age_seconds")
                         .Help("Seconds since the worker's last heartbeat")
                         .Register(*registry_)) {}

CoordinatorMetrics::~CoordinatorMetrics() = default;

void CoordinatorMetrics::set_runs_by_state(const std::map<std::string, int64_t>& counts) {
  for (const auto& [state, count] : counts) runs_.Add({{"state", state}}).Set(static_cast<double>(count));
}

void CoordinatorMetrics::set_workers_by_state(const std::map<std::string, int64_t>& counts) {
  for (const auto& [state, count] : counts) workers_.Add({{"state", state}}).Set(static_cast<double>(count));
}

void CoordinatorMetrics::observe_rpc(const std::string& method, const std::string& code, double seconds) {
  static const prometheus::Histogram::BucketBoundaries buckets{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                               0.025,  0.05,    0.1,    0.25,  0.5,    1.0,   2.5};
  count_rpc(method, code);
  rpc_duration_.Add({{"method", method}}, buckets).Observe(seconds);
}

void CoordinatorMetrics::count_rpc(const std::string& method, const std::string& code) {
  rpcs_.Add({{"method", method}, {"code", code}}).Increment();
}

void CoordinatorMetrics::add_watch_streams(int delta) { watch_streams_.Increment(delta); }

void CoordinatorMetrics::count_watch_refused() { watch_refused_.Increment(); }

void CoordinatorMetrics::count_event(const std::string& run, const std::string& type) {
  std::lock_guard<std::mutex> lock(mutex_);
  prometheus::Counter*& counter = run_events_[run][type];
  if (counter == nullptr) counter = &events_.Add({{"run", run}, {"type", type}});
  counter->Increment();
}

CoordinatorMetrics::RunSeries& CoordinatorMetrics::run_series(const std::string& run) {
  auto& slot = runs_series_[run];
  if (!slot) slot = std::make_unique<RunSeries>(*this, run);
  return *slot;
}

void CoordinatorMetrics::set_run_progress(const std::string& run, const StepReport& latest, double images_per_second,
                                          int live_workers) {
  std::lock_guard<std::mutex> lock(mutex_);
  RunSeries& series = run_series(run);
  series.progress.set_progress(latest);
  series.progress.set_images_per_second(images_per_second);
  series.live.Set(live_workers);
}

void CoordinatorMetrics::observe_worker_step(const std::string& run, int rank, const StepReport& report) {
  std::lock_guard<std::mutex> lock(mutex_);
  RunSeries& series = run_series(run);
  series.progress.observe_step(report.step_seconds, report.images);
  series.worker(rank).waits.add(report.data_wait_seconds, report.comm_wait_seconds);
}

void CoordinatorMetrics::restore_worker_totals(const std::string& run, int rank, double data_wait_seconds,
                                               double comm_wait_seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  run_series(run).worker(rank).waits.add(data_wait_seconds, comm_wait_seconds);
}

void CoordinatorMetrics::set_heartbeat_age(const std::string& run, int rank, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  run_series(run).worker(rank).heartbeat_age.Set(seconds);
}

void CoordinatorMetrics::remove_run(const std::string& run) {
  std::lock_guard<std::mutex> lock(mutex_);
  runs_series_.erase(run);
  const auto events = run_events_.find(run);
  if (events == run_events_.end()) return;
  for (const auto& [type, counter] : events->second) events_.Remove(counter);
  run_events_.erase(events);
}

void CoordinatorMetrics::remove_worker(const std::string& run, int rank) {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto series = runs_series_.find(run);
  if (series != runs_series_.end()) series->second->workers.erase(rank);
}

}  // namespace ijepa::metrics
