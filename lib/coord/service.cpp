// CoordinatorService.
#include "coord/service.h"

#include <chrono>
#include <stdexcept>
#include <thread>
#include <utility>

#include "common/errors.h"
#include "common/log.h"
#include "coord/records.h"
#include "coord/validation.h"
#include "metrics/coordinator_metrics.h"

namespace ijepa::coord {
namespace {

// WatchRun wakes at least this often to notice a cancelled client, and sends at most one update per gap.
constexpr std::chrono::milliseconds kWatchPoll{500};
constexpr std::chrono::milliseconds kWatchMinGap{200};

// Every WatchRun slot is taken (gRPC RESOURCE_EXHAUSTED).
class StreamLimitError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The server is shutting down (gRPC UNAVAILABLE: a client may try again once it is back).
class ShuttingDownError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Compares in time independent of where the strings differ, so the token cannot be guessed byte by byte.
bool equal_constant_time(const std::string& a, const grpc::string_ref& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b.data()[i]);
  return diff == 0;
}

}  // namespace

std::string status_code_name(grpc::StatusCode code) {
  static const char* const kNames[] = {
      "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
      "DATA_LOSS", "UNAUTHENTICATED"};
  const int index = static_cast<int>(code);
  return index >= 0 && index < static_cast<int>(std::size(kNames)) ? kNames[index] : "UNKNOWN";
}

CoordinatorService::CoordinatorService(RunRegistry& registry, metrics::CoordinatorMetrics* metrics, std::string token,
                                       int max_watch_streams)
    : registry_(registry),
      metrics_(metrics),
      expected_authorization_(token.empty() ? "" : "Bearer " + token),
      max_watch_streams_(max_watch_streams) {}

void CoordinatorService::shutdown() {
  shutting_down_ = true;
  registry_.shutdown();
}

bool CoordinatorService::authorized(const grpc::ServerContext& context) const {
  if (expected_authorization_.empty()) return true;
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find("authorization");
  return found != metadata.end() && equal_constant_time(expected_authorization_, found->second);
}

template <typename Body>
grpc::Status CoordinatorService::run(const char* method, grpc::ServerContext* context, Body&& body) {
  if (!authorized(*context)) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong bearer token");
  try {
    body();
    return grpc::Status::OK;
  } catch (const common::InputError& e) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, e.what());
  } catch (const NotFoundError& e) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, e.what());
  } catch (const ConflictError& e) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, e.what());
  } catch (const StreamLimitError& e) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, e.what());
  } catch (const ShuttingDownError& e) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, e.what());
  } catch (const std::exception& e) {
    log::error(log::str(method, ": ", e.what()));
    // Never empty: an empty INTERNAL is gRPC's answer to a request that does not parse (see server.cpp).
    return grpc::Status(grpc::StatusCode::INTERNAL, *e.what() ? e.what() : "unknown error");
  } catch (...) {
    log::error(log::str(method, ": unknown exception"));
    return grpc::Status(grpc::StatusCode::INTERNAL, "unknown error");
  }
}

template <typename Body>
grpc::Status CoordinatorService::handle(const char* method, grpc::ServerContext* context, Body&& body) {
  const auto start = std::chrono::steady_clock::now();
  const grpc::Status status = run(method, context, std::forward<Body>(body));
  if (metrics_) {
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    metrics_->observe_rpc(method, status_code_name(status.error_code()), elapsed.count());
  }
  return status;
}

template <typename Body>
grpc::Status CoordinatorService::handle_stream(const char* method, grpc::ServerContext* context, Body&& body) {
  const grpc::Status status = run(method, context, std::forward<Body>(body));
  if (metrics_) metrics_->count_rpc(method, status_code_name(status.error_code()));
  return status;
}

grpc::Status CoordinatorService::CreateRun(grpc::ServerContext* context, const v1::CreateRunRequest* request,
                                           v1::CreateRunResponse* response) {
  return handle("CreateRun", context, [&] {
    validate(*request);
    *response = registry_.create_run(*request);
  });
}

grpc::Status CoordinatorService::GetRun(grpc::ServerContext* context, const v1::GetRunRequest* request,
                                        v1::GetRunResponse* response) {
  return handle("GetRun", context, [&] {
    validate(*request);
    *response = registry_.get_run(*request);
  });
}

grpc::Status CoordinatorService::ListRuns(grpc::ServerContext* context, const v1::ListRunsRequest* request,
                                          v1::ListRunsResponse* response) {
  return handle("ListRuns", context, [&] {
    validate(*request);
    *response = registry_.list_runs(*request);
  });
}

grpc::Status CoordinatorService::WatchRun(grpc::ServerContext* context, const v1::WatchRunRequest* request,
                                          grpc::ServerWriter<v1::WatchRunResponse>* writer) {
  return handle_stream("WatchRun", context, [&] {
    validate_run_name(request->name());
    acquire_watch_slot();
    struct Release {
      CoordinatorService& service;
      ~Release() { service.release_watch_slot(); }
    } release{*this};
    watch(context, request->name(), writer);
  });
}

void CoordinatorService::acquire_watch_slot() {
  int open = watch_streams_.load();
  do {
    if (open >= max_watch_streams_) {
      if (metrics_) metrics_->count_watch_refused();
      throw StreamLimitError(
          "the coordinator's limit of open WatchRun streams is reached (ijepa-coordinator "
          "--max-watch-streams " +
          std::to_string(max_watch_streams_) + "); try again once another watch ends");
    }
  } while (!watch_streams_.compare_exchange_weak(open, open + 1));
  if (metrics_) metrics_->add_watch_streams(1);
}

void CoordinatorService::release_watch_slot() {
  watch_streams_.fetch_sub(1);
  if (metrics_) metrics_->add_watch_streams(-1);
}

void CoordinatorService::watch(grpc::ServerContext* context, const std::string& name,
                               grpc::ServerWriter<v1::WatchRunResponse>* writer) {
  WatchCursor cursor;
  v1::WatchRunResponse update;
  while (!shutting_down_ && !context->IsCancelled()) {
    if (!registry_.next_update(name, cursor, kWatchPoll, update)) continue;
    if (!writer->Write(update) || !is_active(update.run().state())) return;
    std::this_thread::sleep_for(kWatchMinGap);
  }
  // Not OK: the run goes on, and the watcher should hear why its stream ended.
  if (shutting_down_) throw ShuttingDownError("the coordinator is shutting down; watch again once it is back");
}

grpc::Status CoordinatorService::StopRun(grpc::ServerContext* context, const v1::StopRunRequest* request,
                                         v1::StopRunResponse* response) {
  return handle("StopRun", context, [&] {
    validate(*request);
    *response = registry_.stop_run(*request);
  });
}

grpc::Status CoordinatorService::FinishRun(grpc::ServerContext* context, const v1::FinishRunRequest* request,
                                           v1::FinishRunResponse* response) {
  return handle("FinishRun", context, [&] {
    validate(*request);
    *response = registry_.finish_run(*request);
  });
}

grpc::Status CoordinatorService::RegisterWorker(grpc::ServerContext* context, const v1::RegisterWorkerRequest* request,
                                                v1::RegisterWorkerResponse* response) {
  return handle("RegisterWorker", context, [&] {
    validate(*request);
    *response = registry_.register_worker(*request);
  });
}

grpc::Status CoordinatorService::Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                                           v1::HeartbeatResponse* response) {
  return handle("Heartbeat", context, [&] {
    validate(*request);
    *response = registry_.heartbeat(*request);
  });
}

grpc::Status CoordinatorService::ReportEvents(grpc::ServerContext* context, const v1::ReportEventsRequest* request,
                                              v1::ReportEventsResponse* response) {
  return handle("ReportEvents", context, [&] {
    validate(*request);
    registry_.report_events(*request);
  });
}

}  // namespace ijepa::coord
