// The training side of the coordinator: CoordinatorClient reports a rank's progress without ever making the
// training loop wait for the network.
//
//   coord::CoordinatorClient client(config.coordinator,
//                                   {run_name, rank, world_size, common::to_yaml(config), ""});
//   per step:          client.report_step(report);                 // queued, returns at once
//   on news:           client.report_event(coord::EventType::kCheckpointWritten, path, step);
//   between steps:     if (client.stop_requested()) { checkpoint; exit as on SIGTERM }
//   at the end:        client.finish(coord::Outcome::kFinished); client.flush(std::chrono::seconds(2));
//
// A background thread owns all network work. It registers the rank (creating or joining the run), then
// every `heartbeat_s` sends a heartbeat carrying the worker state and the queued step reports (in batches),
// and sends events as soon as they are queued. Failed calls are retried with exponential backoff (200 ms
// doubling to 10 s, jittered); while the coordinator is unreachable nothing is lost as long as the queue has
// room. A batch the coordinator refuses is dropped and counted: at once when it is invalid, after 3 tries for
// other refusals (e.g. a database failure), so one bad batch never holds back the rest, and refused events never
// hold back the heartbeat. The queues are bounded by `queue_capacity`: when full, the oldest report is dropped
// and counted (stats()). A coordinator that is down, slow or absent therefore costs the caller one
// mutex-protected push per call, nothing more; nothing is logged while that mutex is held.
//
// Thread-safe: any thread may call any method.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/config.h"
#include "metrics/step_report.h"

namespace ijepa::coord {

// Who is reporting.
struct RunIdentity {
  std::string run_name;  // see run_name_for(); letters, digits, . _ - (at most 128)
  int rank = 0;          // 0 <= rank < world_size
  int world_size = 1;
  std::string config_text;  // the resolved config (common::to_yaml), shown by `ijepa-ctl show`
  std::string host;         // empty: this machine's host name
};

// What the rank is doing, as shown by `ijepa-ctl show`.
enum class WorkerState { kStarting, kTraining, kCheckpointing, kEvaluating, kStopping };

// Events a rank reports. The coordinator records worker loss, stop requests and run ends by itself.
enum class EventType {
  kNanLoss,            // a non-finite loss; value: the step's loss
  kStall,              // e.g. a collective waited past its timeout; message says where
  kCheckpointWritten,  // message: the checkpoint path
  kEvaluationResult,   // value: the accuracy; message: the protocol ("knn top-1")
  kMessage,            // anything else worth seeing in the run's history
};

// How the rank's training ended.
enum class Outcome {
  kFinished,  // reached max_steps or the configured epochs
  kStopped,   // stopped on request (signal or stop_requested()) after a checkpoint
  kFailed,    // an error; rank != 0 failing ends the run as failed too
};

// Counters since construction.
struct ClientStats {
  uint64_t steps_sent = 0;
  uint64_t steps_dropped = 0;  // oldest step reports dropped because the queue was full, or refused ones
  uint64_t events_sent = 0;
  uint64_t events_dropped = 0;  // likewise
  uint64_t rpc_failures = 0;
  bool registered = false;  // the coordinator knows this rank now
  bool finished = false;    // the coordinator acknowledged finish()
  std::string last_error;   // of the latest failed call, empty after a success
};

// Tuning knobs; the defaults suit training, tests shorten them.
struct ClientOptions {
  std::chrono::milliseconds rpc_timeout{5000};
  std::chrono::milliseconds backoff_initial{200};
  std::chrono::milliseconds backoff_max{10000};
  // Step reports per heartbeat (a larger backlog is sent in back-to-back heartbeats). This many queued, or half the
  // queue's capacity when that is less, wake the sender before the next heartbeat.
  int max_batch = 256;
};

class CoordinatorClient {
 public:
  // Starts the background thread; never blocks on the network (the first connection attempt happens on
  // that thread). CONFIG is the `coordinator` config section; its address must be non-empty (no address
  // means no client). Throws common::InputError naming the key when the address, the TLS files, the run
  // name, rank or world size are invalid.
  CoordinatorClient(const common::CoordinatorConfig& config, RunIdentity identity, ClientOptions options = {});

  // Stops the thread at once, cancelling a call in flight; reports still queued are not sent (call flush()
  // first to give them a bounded chance).
  ~CoordinatorClient();
  CoordinatorClient(const CoordinatorClient&) = delete;
  CoordinatorClient& operator=(const CoordinatorClient&) = delete;

  // Queues one step's report for the next heartbeat. Never blocks. Ignored after finish().
  void report_step(const metrics::StepReport& report);

  // Queues an event and wakes the thread to send it promptly. Never blocks. Ignored after finish().
  void report_event(EventType type, const std::string& message, int64_t step = 0, double value = 0.0);

  // Sets the state carried by the following heartbeats (kTraining after the first step, kCheckpointing
  // while writing one, ...). Never blocks.
  void set_state(WorkerState state);

  // Queues the end of this rank: the queued reports are sent first, then the outcome. Never blocks; pair it
  // with flush() to wait (boundedly) for delivery. Only the first call counts.
  void finish(Outcome outcome, const std::string& reason = "");

  // Waits until everything queued (and a pending finish) has been delivered, or TIMEOUT passes. Returns
  // true when all was delivered. The only method that waits; use it at exit, not in the step loop.
  bool flush(std::chrono::milliseconds timeout);

  // True once the coordinator asked this run to stop (ijepa-ctl stop): checkpoint and exit as on SIGTERM.
  // A cheap atomic read; poll it between steps.
  bool stop_requested() const;

  // The reason given with the stop request (empty before one).
  std::string stop_reason() const;

  ClientStats stats() const;

  // The run name to use: CONFIG.run_name when set (validated by common::is_valid_run_name, the rule config
  // validation applies: throws common::InputError naming coordinator.run_name), else the last component of
  // RUN_FOLDER with characters outside [A-Za-z0-9._-] replaced by '-', else "run".
  static std::string run_name_for(const common::CoordinatorConfig& config, const std::string& run_folder);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ijepa::coord
