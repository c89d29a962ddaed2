// The coordinator's metric families, fed by its run registry and RPC handlers:
//
//   ijepa_coordinator_runs{state}                          gauge: runs by state
//   ijepa_coordinator_workers{state}                       gauge: workers by state (live, lost, finished)
//   ijepa_coordinator_rpcs_total{method, code}             counter: RPCs by method and gRPC status
//   ijepa_coordinator_rpc_duration_seconds{method}         histogram: handler latency of unary RPCs (streams
//                                                          are counted, not timed)
//   ijepa_coordinator_events_total{run, type}              counter: events recorded
//   ijepa_coordinator_watch_streams                        gauge: WatchRun streams open now
//   ijepa_coordinator_watch_streams_refused_total          counter: WatchRun calls refused at the stream limit
//   ijepa_run_live_workers{run}                            gauge
//   ijepa_worker_heartbeat_age_seconds{run, rank}          gauge: time since the worker's last heartbeat
//   ijepa_train_* (train_families.h)                       per run: progress gauges from the most advanced
//                                                          rank, images/s summed over live ranks, step-time
//                                                          histogram and images over all ranks; wait
//                                                          counters per {run, rank}
//
// Per-run series exist from a run's first report until remove_run() (the registry calls it once a finished
// run has outlived the retention time); per-rank series until remove_worker() (a reopened run drops its old
// job's ranks) or remove_run(). Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "metrics/step_report.h"

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace ijepa::metrics {

struct TrainFamilies;

class CoordinatorMetrics {
 public:
  explicit CoordinatorMetrics(std::shared_ptr<prometheus::Registry> registry);
  ~CoordinatorMetrics();
  CoordinatorMetrics(const CoordinatorMetrics&) = delete;
  CoordinatorMetrics& operator=(const CoordinatorMetrics&) = delete;

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  // Sets ijepa_coordinator_runs / _workers for every state in `counts` (pass all states, zeros included).
  void set_runs_by_state(const std::map<std::string, int64_t>& counts);
  void set_workers_by_state(const std::map<std::string, int64_t>& counts);

  // One finished unary RPC: its method name, gRPC status code name ("OK", "NOT_FOUND") and handler seconds.
  void observe_rpc(const std::string& method, const std::string& code, double seconds);
  // One finished streaming RPC: counted by method and code only, since its length is the client's choice.
  void count_rpc(const std::string& method, const std::string& code);
  // A WatchRun stream opened (+1) or ended (-1).
  void add_watch_streams(int delta);
  // A WatchRun refused because the limit of open streams was reached.
  void count_watch_refused();
  // One event of RUN, by type (event names are a fixed set, so the series per run are bounded).
  void count_event(const std::string& run, const std::string& type);

  // A run's summary: the most advanced report, the summed throughput and the count of live workers.
  void set_run_progress(const std::string& run, const StepReport& latest, double images_per_second, int live_workers);
  // One step of one rank: step-time histogram, images, and that rank's wait counters.
  void observe_worker_step(const std::string& run, int rank, const StepReport& report);
  // Starts a rank's wait counters at totals kept across a coordinator restart.
  void restore_worker_totals(const std::string& run, int rank, double data_wait_seconds, double comm_wait_seconds);
  void set_heartbeat_age(const std::string& run, int rank, double seconds);
  // Removes every series labelled with RUN (no-op when it has none).
  void remove_run(const std::string& run);
  // Removes the series labelled with RUN and RANK (its wait counters and heartbeat age).
  void remove_worker(const std::string& run, int rank);

 private:
  struct RunSeries;
  RunSeries& run_series(const std::string& run);  // requires mutex_

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<TrainFamilies> train_;
  prometheus::Family<prometheus::Gauge>& runs_;
  prometheus::Family<prometheus::Gauge>& workers_;
  prometheus::Family<prometheus::Counter>& rpcs_;
  prometheus::Family<prometheus::Histogram>& rpc_duration_;
  prometheus::Family<prometheus::Counter>& events_;
  prometheus::Gauge& watch_streams_;
  prometheus::Counter& watch_refused_;
  prometheus::Family<prometheus::Gauge>& live_workers_;
  prometheus::Family<prometheus::Gauge>& heartbeat_age_;
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<RunSeries>> runs_series_;
  // Apart from RunSeries so that an event does not start a run's progress series before its first report.
  std::map<std::string, std::map<std::string, prometheus::Counter*>> run_events_;  // run -> type -> series
};

}  // namespace ijepa::metrics
