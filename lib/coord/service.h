// The gRPC handlers of ijepa.coordinator.v1.Coordinator over a RunRegistry.
//
// Every handler checks the bearer token (when one is configured), validates the request (validation.h), runs
// the registry operation and maps exceptions to status codes: InputError -> INVALID_ARGUMENT, NotFoundError
// -> NOT_FOUND, ConflictError -> FAILED_PRECONDITION, anything else -> INTERNAL; a watch ended by shutdown() is
// UNAVAILABLE (its run goes on: the watcher may watch again). Handlers never throw. Each call
// is counted in ijepa_coordinator_rpcs_total; unary calls are also timed in _rpc_duration_seconds, WatchRun
// streams are not (their duration is how long the watcher stayed, not how fast the coordinator answered).
//
// Each open WatchRun stream holds a server thread for as long as the client watches, so at most
// `max_watch_streams` are open at once: one more is answered RESOURCE_EXHAUSTED (and counted in
// ijepa_coordinator_watch_streams_refused_total) until a stream ends (the client cancels or goes away, the run
// ends, the server shuts down), while every other RPC is served as usual.
#pragma once

#include <atomic>
#include <string>

#include "coord/run_registry.h"
#include "ijepa/coordinator/v1/coordinator.grpc.pb.h"

namespace ijepa::metrics {
class CoordinatorMetrics;
}

namespace ijepa::coord {

class CoordinatorService final : public v1::Coordinator::Service {
 public:
  // TOKEN empty: no authentication. METRICS may be null. MAX_WATCH_STREAMS >= 1.
  CoordinatorService(RunRegistry& registry, metrics::CoordinatorMetrics* metrics, std::string token,
                     int max_watch_streams);

  // Ends open WatchRun streams (before the server shuts down).
  void shutdown();

  grpc::Status CreateRun(grpc::ServerContext* context, const v1::CreateRunRequest* request,
                         v1::CreateRunResponse* response) override;
  grpc::Status GetRun(grpc::ServerContext* context, const v1::GetRunRequest* request,
                      v1::GetRunResponse* response) override;
  grpc::Status ListRuns(grpc::ServerContext* context, const v1::ListRunsRequest* request,
                        v1::ListRunsResponse* response) override;
  grpc::Status WatchRun(grpc::ServerContext* context, const v1::WatchRunRequest* request,
                        grpc::ServerWriter<v1::WatchRunResponse>* writer) override;
  grpc::Status StopRun(grpc::ServerContext* context, const v1::StopRunRequest* request,
                       v1::StopRunResponse* response) override;
  grpc::Status FinishRun(grpc::ServerContext* context, const v1::FinishRunRequest* request,
                         v1::FinishRunResponse* response) override;
  grpc::Status RegisterWorker(grpc::ServerContext* context, const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status ReportEvents(grpc::ServerContext* context, const v1::ReportEventsRequest* request,
                            v1::ReportEventsResponse* response) override;

 private:
  // Checks the token, runs BODY and maps its exceptions to a status.
  template <typename Body>
  grpc::Status run(const char* method, grpc::ServerContext* context, Body&& body);
  // A unary call: run(), then counted and timed.
  template <typename Body>
  grpc::Status handle(const char* method, grpc::ServerContext* context, Body&& body);
  // A server stream: run(), then counted but not timed (it lasts as long as the client watches, which would
  // swamp the method's latency quantiles).
  template <typename Body>
  grpc::Status handle_stream(const char* method, grpc::ServerContext* context, Body&& body);
  bool authorized(const grpc::ServerContext& context) const;
  void watch(grpc::ServerContext* context, const std::string& name, grpc::ServerWriter<v1::WatchRunResponse>* writer);
  // Takes one of the max_watch_streams_ slots, or throws StreamLimitError when none is free.
  void acquire_watch_slot();
  void release_watch_slot();

  RunRegistry& registry_;
  metrics::CoordinatorMetrics* metrics_;
  std::string expected_authorization_;  // "Bearer <token>", empty when open
  std::atomic<bool> shutting_down_{false};
  const int max_watch_streams_;
  std::atomic<int> watch_streams_{0};
};

// "OK", "NOT_FOUND", ...: the status code's name as in the gRPC spec (metric labels, messages).
std::string status_code_name(grpc::StatusCode code);

}  // namespace ijepa::coord
