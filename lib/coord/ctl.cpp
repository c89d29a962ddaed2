// ijepa-ctl commands over the Coordinator stub.
#include "coord/ctl.h"

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "coord/ctl_format.h"
#include "coord/records.h"
#include "coord/service.h"
#include "ijepa/coordinator/v1/coordinator.grpc.pb.h"

namespace ijepa::coord {
namespace {

using common::unix_now;

// A fresh context per call: deadline (unless streaming) and token.
std::unique_ptr<grpc::ClientContext> context_for(const CtlOptions& options, bool deadline = true) {
  auto context = std::make_unique<grpc::ClientContext>();
  if (deadline) context->set_deadline(std::chrono::system_clock::now() + options.timeout);
  add_token(*context, options.channel.token);
  return context;
}

// How often a watch pings a quiet connection; it waits options.timeout for the answer.
constexpr std::chrono::milliseconds kWatchKeepalive{10000};
static_assert(kWatchKeepalive >= kMinKeepaliveInterval, "the coordinator would take the pings for abuse");

// WATCH: pinged while the stream is quiet (ChannelOptions::keepalive_interval).
std::unique_ptr<v1::Coordinator::Stub> stub_for(const CtlOptions& options, bool watch = false) {
  ChannelOptions channel = options.channel;
  channel.fast_reconnect = false;
  if (watch) {
    channel.keepalive_interval = kWatchKeepalive;
    channel.keepalive_timeout = options.timeout;
  }
  return v1::Coordinator::NewStub(make_channel(channel));
}

// Cancels a call unless disarm() comes within a timeout: a deadline for a stream's first message, where the
// call's own deadline would also end the stream later.
class FirstMessageDeadline {
 public:
  FirstMessageDeadline(grpc::ClientContext& context, std::chrono::milliseconds timeout)
      : thread_([this, &context, timeout] {
          std::unique_lock<std::mutex> lock(mutex_);
          if (changed_.wait_for(lock, timeout, [this] { return disarmed_; })) return;
          expired_ = true;
          context.TryCancel();
        }) {}
  ~FirstMessageDeadline() {
    disarm();
    thread_.join();
  }
  FirstMessageDeadline(const FirstMessageDeadline&) = delete;
  FirstMessageDeadline& operator=(const FirstMessageDeadline&) = delete;

  void disarm() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      disarmed_ = true;
    }
    changed_.notify_all();
  }
  bool expired() {
    std::lock_guard<std::mutex> lock(mutex_);
    return expired_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool disarmed_ = false;
  bool expired_ = false;
  std::thread thread_;  // last: it uses the members above
};

int report(const grpc::Status& status, const CtlOptions& options, std::ostream& err) {
  if (status.ok()) return 0;
  err << "ijepa-ctl: coordinator " << options.channel.address << ": " << status_code_name(status.error_code()) << ": "
      << status.error_message() << "\n";
  const auto code = status.error_code();
  return code == grpc::StatusCode::INVALID_ARGUMENT || code == grpc::StatusCode::NOT_FOUND ? 2 : 1;
}

}  // namespace

int ctl_runs(const CtlOptions& options, bool active_only, int limit, std::ostream& out, std::ostream& err) {
  v1::ListRunsRequest request;
  request.set_active_only(active_only);
  request.set_limit(limit);
  v1::ListRunsResponse response;
  const grpc::Status status = stub_for(options)->ListRuns(context_for(options).get(), request, &response);
  if (!status.ok()) return report(status, options, err);
  if (options.json) {
    nlohmann::json runs = nlohmann::json::array();
    for (const v1::Run& run : response.runs()) runs.push_back(run_json(run));
    out << nlohmann::json{{"runs", runs}, {"total", response.total()}}.dump() << "\n";
  } else {
    out << runs_table(response, unix_now());
  }
  return 0;
}

int ctl_show(const CtlOptions& options, const std::string& run, std::ostream& out, std::ostream& err) {
  v1::GetRunRequest request;
  request.set_name(run);
  v1::GetRunResponse response;
  const grpc::Status status = stub_for(options)->GetRun(context_for(options).get(), request, &response);
  if (!status.ok()) return report(status, options, err);
  const double now = unix_now();
  if (options.json) {
    out << detail_json(response.run(), response.workers(), response.events(), now).dump() << "\n";
  } else {
    out << run_detail_text(response, now);
  }
  return 0;
}

int ctl_watch(const CtlOptions& options, const std::string& run, std::ostream& out, std::ostream& err) {
  v1::WatchRunRequest request;
  request.set_name(run);
  auto stub = stub_for(options, /*watch=*/true);
  auto context = context_for(options, false);
  FirstMessageDeadline deadline(*context, options.timeout);  // first: opening the stream waits for the connection
  auto reader = stub->WatchRun(context.get(), request);
  v1::WatchRunResponse update;
  v1::RunState last_state = v1::RUN_STATE_UNSPECIFIED;
  while (reader->Read(&update)) {
    deadline.disarm();
    const double now = unix_now();
    if (options.json) {
      out << detail_json(update.run(), update.workers(), update.events(), now).dump() << std::endl;
    } else {
      out << watch_text(update, now) << std::flush;
    }
    last_state = update.run().state();
  }
  deadline.disarm();
  const grpc::Status status = reader->Finish();
  if (deadline.expired()) {
    return report(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "no answer within --timeout"), options, err);
  }
  if (!status.ok()) return report(status, options, err);
  if (is_active(last_state)) {
    err << "ijepa-ctl: the coordinator closed the stream while run " << run << " was still " << state_name(last_state)
        << "\n";
    return 1;
  }
  err << "run " << run << " ended: " << state_name(last_state) << "\n";
  return 0;
}

int ctl_stop(const CtlOptions& options, const std::string& run, const std::string& reason, std::ostream& out,
             std::ostream& err) {
  v1::StopRunRequest request;
  request.set_name(run);
  request.set_reason(reason);
  v1::StopRunResponse response;
  const grpc::Status status = stub_for(options)->StopRun(context_for(options).get(), request, &response);
  if (!status.ok()) return report(status, options, err);
  if (options.json) {
    out << nlohmann::json{{"run", run_json(response.run())}}.dump() << "\n";
  } else {
    out << "stop requested for run " << run << " (now " << state_name(response.run().state())
        << "); its workers stop at their next heartbeat\n";
  }
  return 0;
}

}  // namespace ijepa::coord
