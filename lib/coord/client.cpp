// CoordinatorClient: a queue in front, one background thread doing every RPC behind it.
#include "coord/client.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <utility>

#include "common/checks.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "coord/bounded_queue.h"
#include "coord/channel.h"
#include "coord/client_records.h"
#include "coord/validation.h"
#include "ijepa/coordinator/v1/coordinator.grpc.pb.h"

namespace ijepa::coord {
namespace {

using common::unix_now;

// Tries a batch gets when the coordinator keeps answering with a code that is neither transient nor
// INVALID_ARGUMENT.
constexpr int kMaxBatchTries = 3;

// Codes after which the same batch may well go through later: the coordinator is down, slow or overloaded, or this
// client is shutting down. Such a batch stays queued (the queue's bound caps what waits). Any other code says
// something about the request or the coordinator's state (INVALID_ARGUMENT: a value it refuses; INTERNAL: e.g. a
// database failure, or a request it could not even parse; FAILED_PRECONDITION, UNAUTHENTICATED, ...): retrying
// the same batch forever would hold back everything queued behind it.
bool is_transient(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::CANCELLED:
      return true;
    default:
      return false;
  }
}

std::string local_host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

void check_identity(const common::CoordinatorConfig& config, const RunIdentity& identity) {
  if (config.address.empty()) throw common::InputError("coordinator.address is empty: no coordinator to report to");
  if (!(config.heartbeat_s > 0.0)) throw common::InputError("coordinator.heartbeat_s must be > 0");
  if (config.queue_capacity < 1) throw common::InputError("coordinator.queue_capacity must be >= 1");
  validate_run_name(identity.run_name, "coordinator.run_name");
  validate_world_size(identity.world_size);
  validate_rank(identity.rank, identity.world_size);
  validate_host(identity.host);
  validate_text(identity.config_text, "the config text", kMaxConfigBytes);
}

}  // namespace

class CoordinatorClient::Impl {
 public:
  Impl(const common::CoordinatorConfig& config, RunIdentity identity, ClientOptions options);
  ~Impl();

  void report_step(const metrics::StepReport& report);
  void report_event(EventType type, const std::string& message, int64_t step, double value);
  void set_state(WorkerState state);
  void finish(Outcome outcome, const std::string& reason);
  bool flush(std::chrono::milliseconds timeout);
  bool stop_requested() const { return stop_requested_.load(std::memory_order_relaxed); }
  std::string stop_reason() const;
  ClientStats stats() const;

 private:
  template <typename Request, typename Response>
  using Method = grpc::Status (v1::Coordinator::Stub::*)(grpc::ClientContext*, const Request&, Response*);

  // How a cycle goes on after a batch was tried.
  enum class Next {
    kContinue,    // the batch left the queue (delivered or dropped), or there was none
    kRetryLater,  // refused, kept for another try; the cycle's other calls go on, then it backs off
    kStop,        // unreachable, or the rank must register again: the cycle ends and backs off
  };
  // A batch's queue and counters.
  template <typename T>
  struct Stream {
    BoundedQueue<T>& queue;
    int& failures;  // refusals of the batch at the front so far
    uint64_t& sent;
    uint64_t& dropped;
  };

  void loop();
  bool cycle();
  bool ensure_registered();
  Next send_events();
  Next send_heartbeat();
  bool send_finish();
  bool urgent() const;   // requires mutex_
  bool drained() const;  // requires mutex_
  template <typename Request, typename Response>
  grpc::Status call(Method<Request, Response> method, const Request& request, Response& response);
  bool failed(const char* what, const grpc::Status& status);                 // records it; true when it failed
  std::string record_outcome(const char* what, const grpc::Status& status);  // requires mutex_; the news to log
  // Takes mutex_; logs after releasing it.
  template <typename T>
  Next settle(const grpc::Status& status, Stream<T> stream, uint64_t last_seq, const char* items);
  void apply_stop(bool requested, const std::string& reason);

  common::CoordinatorConfig config_;
  RunIdentity identity_;
  ClientOptions options_;
  std::unique_ptr<v1::Coordinator::Stub> stub_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable progress_;
  BoundedQueue<v1::StepMetrics> steps_;
  BoundedQueue<v1::Event> events_;
  size_t wake_batch_;  // queued step reports that wake the sender before the next heartbeat
  int step_failures_ = 0;
  int event_failures_ = 0;
  bool unreachable_ = false;  // the last call failed with a transient code
  std::string last_refusal_;  // the last refusal logged
  v1::WorkerState state_ = v1::WORKER_STATE_STARTING;
  int64_t last_step_ = 0;
  int64_t last_epoch_ = 0;
  std::optional<v1::FinishRunRequest> finish_;
  bool flush_requested_ = false;
  bool shutting_down_ = false;
  bool healthy_ = false;  // the last cycle succeeded
  bool loop_done_ = false;
  grpc::ClientContext* in_flight_ = nullptr;
  ClientStats stats_;
  std::string stop_reason_;
  std::atomic<bool> stop_requested_{false};
  std::thread thread_;  // last: starts once everything above exists
};

CoordinatorClient::Impl::Impl(const common::CoordinatorConfig& config, RunIdentity identity, ClientOptions options)
    : config_(config),
      identity_(std::move(identity)),
      options_(options),
      steps_(static_cast<size_t>(config.queue_capacity)),
      events_(static_cast<size_t>(config.queue_capacity)),
      // A full batch, but before a small queue overflows: reports dropped unsent help no one.
      wake_batch_(
          static_cast<size_t>(std::max<int64_t>(1, std::min<int64_t>(options.max_batch, config.queue_capacity / 2)))) {
  if (identity_.host.empty()) identity_.host = local_host_name();
  check_identity(config_, identity_);
  identity_.config_text = valid_utf8(identity_.config_text, kMaxConfigBytes);
  stub_ = v1::Coordinator::NewStub(
      make_channel({config_.address, config_.token, config_.tls_ca, config_.tls_cert, config_.tls_key, true}));
  thread_ = std::thread([this] { loop(); });
}

CoordinatorClient::Impl::~Impl() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    shutting_down_ = true;
    if (in_flight_) in_flight_->TryCancel();
  }
  wake_.notify_all();
  thread_.join();
}

void CoordinatorClient::Impl::report_step(const metrics::StepReport& report) {
  v1::StepMetrics metrics = to_proto(report, unix_now());
  std::lock_guard<std::mutex> lock(mutex_);
  if (finish_) return;
  last_step_ = report.step;
  last_epoch_ = report.epoch;
  if (steps_.push(std::move(metrics))) ++stats_.steps_dropped;
  // Wake the sender only for a batch; otherwise the next heartbeat takes the reports along.
  if (steps_.size() >= wake_batch_) wake_.notify_one();
}

void CoordinatorClient::Impl::report_event(EventType type, const std::string& message, int64_t step, double value) {
  v1::Event event = to_proto(type, message, step, value, unix_now());
  std::lock_guard<std::mutex> lock(mutex_);
  if (finish_) return;
  if (events_.push(std::move(event))) ++stats_.events_dropped;
  wake_.notify_one();
}

void CoordinatorClient::Impl::set_state(WorkerState state) {
  std::lock_guard<std::mutex> lock(mutex_);
  state_ = to_proto(state);
}

void CoordinatorClient::Impl::finish(Outcome outcome, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finish_) return;
  finish_.emplace();
  finish_->set_run(identity_.run_name);
  finish_->set_rank(identity_.rank);
  finish_->set_outcome(to_proto(outcome));
  finish_->set_reason(sendable_text(reason));
  finish_->set_step(last_step_);
  wake_.notify_one();
}

bool CoordinatorClient::Impl::flush(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  flush_requested_ = true;
  wake_.notify_one();
  const bool done = progress_.wait_for(lock, timeout, [this] { return drained() || loop_done_; }) && drained();
  flush_requested_ = false;
  return done;
}

std::string CoordinatorClient::Impl::stop_reason() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stop_reason_;
}

ClientStats CoordinatorClient::Impl::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

bool CoordinatorClient::Impl::drained() const {
  return steps_.empty() && events_.empty() && (!finish_ || stats_.finished);
}

bool CoordinatorClient::Impl::urgent() const {
  return healthy_ && (!events_.empty() || steps_.size() >= wake_batch_ || (finish_ && !stats_.finished) ||
                      (flush_requested_ && !drained()));
}

void CoordinatorClient::Impl::loop() {
  std::minstd_rand jitter(static_cast<unsigned>(identity_.rank) * 7919u + static_cast<unsigned>(getpid()));
  const auto heartbeat = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(config_.heartbeat_s));
  auto backoff = options_.backoff_initial;
  auto next = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mutex_);
  while (!shutting_down_ && !stats_.finished) {
    wake_.wait_until(lock, next, [this] { return shutting_down_ || urgent(); });
    if (shutting_down_) break;
    lock.unlock();
    const bool ok = cycle();
    lock.lock();
    healthy_ = ok;
    if (ok) {
      backoff = options_.backoff_initial;
      next = std::chrono::steady_clock::now() + heartbeat;
    } else {
      // Jitter in [backoff/2, backoff] keeps many ranks from retrying in lockstep.
      const auto wait = backoff / 2 + backoff * static_cast<int>(jitter() % 1000) / 2000;
      next = std::chrono::steady_clock::now() + wait;
      backoff = std::min(backoff * 2, options_.backoff_max);
    }
    progress_.notify_all();
  }
  loop_done_ = true;
  progress_.notify_all();
}

bool CoordinatorClient::Impl::cycle() {
  if (!ensure_registered()) return false;
  // Events go first, so that they precede the finish; but a batch the coordinator refuses must not hold back the
  // heartbeat, without which this rank would be declared lost.
  const Next events = send_events();
  if (events == Next::kStop) return false;
  if (send_heartbeat() != Next::kContinue || events != Next::kContinue) return false;
  bool finish_now = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    finish_now = finish_ && steps_.empty() && events_.empty();
  }
  return !finish_now || send_finish();
}

template <typename Request, typename Response>
grpc::Status CoordinatorClient::Impl::call(Method<Request, Response> method, const Request& request,
                                           Response& response) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + options_.rpc_timeout);
  add_token(context, config_.token);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (shutting_down_) return grpc::Status(grpc::StatusCode::CANCELLED, "client shutting down");
    in_flight_ = &context;
  }
  grpc::Status status = (stub_.get()->*method)(&context, request, &response);
  std::lock_guard<std::mutex> lock(mutex_);
  in_flight_ = nullptr;
  return status;
}

// Logs after releasing mutex_: report_step() on the training thread must never wait behind a slow stderr.
bool CoordinatorClient::Impl::failed(const char* what, const grpc::Status& status) {
  std::string news;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    news = record_outcome(what, status);
  }
  if (!news.empty()) (status.ok() ? log::info : log::warn)(news);
  return !status.ok();
}

// Counts the call in the stats and returns what is news: the coordinator becoming unreachable or reachable again,
// or a refusal unlike the last one; so a coordinator that stays down, or keeps refusing alike, costs one line.
std::string CoordinatorClient::Impl::record_outcome(const char* what, const grpc::Status& status) {
  const std::string where = "coordinator " + config_.address + ": ";
  if (status.ok()) {
    stats_.last_error.clear();
    return std::exchange(unreachable_, false) ? where + "reachable again" : "";
  }
  ++stats_.rpc_failures;
  stats_.last_error = std::string(what) + ": " + status.error_message();
  if (shutting_down_) return "";
  if (is_transient(status.error_code())) {
    if (std::exchange(unreachable_, true)) return "";
    return where + what + " failed (" + status.error_message() + "); training continues, reports stay queued";
  }
  if (stats_.last_error == last_refusal_) return "";
  last_refusal_ = stats_.last_error;
  return where + what + " refused (" + status.error_message() + ")";
}

// After a call that carried the stream's items up to LAST_SEQ: they leave the queue when delivered, refused as
// invalid, or refused kMaxBatchTries times with another code that is not transient (dropped, counted and logged
// as `items`). NOT_FOUND: the coordinator forgot this rank (e.g. a fresh database): register again, then resend.
template <typename T>
CoordinatorClient::Impl::Next CoordinatorClient::Impl::settle(const grpc::Status& status, Stream<T> stream,
                                                              uint64_t last_seq, const char* items) {
  const grpc::StatusCode code = status.error_code();
  size_t dropped = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (code == grpc::StatusCode::NOT_FOUND) stats_.registered = false;
    if (code == grpc::StatusCode::NOT_FOUND || is_transient(code)) return Next::kStop;
    if (!status.ok() && code != grpc::StatusCode::INVALID_ARGUMENT && ++stream.failures < kMaxBatchTries) {
      return Next::kRetryLater;
    }
    stream.failures = 0;
    const size_t popped = stream.queue.pop_through(last_seq);  // none when nothing was carried (LAST_SEQ 0)
    (status.ok() ? stream.sent : stream.dropped) += popped;
    if (!status.ok()) dropped = popped;
  }
  if (dropped > 0) log::warn(log::str("coordinator ", config_.address, ": dropped ", dropped, " refused ", items));
  return Next::kContinue;
}

void CoordinatorClient::Impl::apply_stop(bool requested, const std::string& reason) {
  if (!requested || stop_requested_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_reason_ = reason;
  }
  log::warn(log::str("coordinator asked run ", identity_.run_name, " to stop: ", reason));
}

bool CoordinatorClient::Impl::ensure_registered() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stats_.registered) return true;
  }
  v1::CreateRunRequest create;
  create.set_name(identity_.run_name);
  create.set_world_size(identity_.world_size);
  create.set_config_text(identity_.config_text);
  create.set_host(identity_.host);
  create.set_rank(identity_.rank);
  v1::CreateRunResponse created;
  if (failed("CreateRun", call(&v1::Coordinator::Stub::CreateRun, create, created))) return false;
  v1::RegisterWorkerRequest registration;
  registration.set_run(identity_.run_name);
  registration.set_rank(identity_.rank);
  registration.set_host(identity_.host);
  registration.set_pid(getpid());
  v1::RegisterWorkerResponse registered;
  if (failed("RegisterWorker", call(&v1::Coordinator::Stub::RegisterWorker, registration, registered))) return false;
  apply_stop(registered.stop_requested(), registered.stop_reason());
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.registered = true;
  }
  log::info(log::str("coordinator ", config_.address, ": rank ", identity_.rank,
                     created.created() ? " created" : " joined", " run ", identity_.run_name));
  return true;
}

CoordinatorClient::Impl::Next CoordinatorClient::Impl::send_events() {
  v1::ReportEventsRequest request;
  uint64_t last_seq = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (events_.empty()) return Next::kContinue;
    for (v1::Event& e : events_.peek(kMaxEventsPerReport, last_seq)) *request.add_events() = std::move(e);
  }
  request.set_run(identity_.run_name);
  request.set_rank(identity_.rank);
  v1::ReportEventsResponse response;
  const grpc::Status status = call(&v1::Coordinator::Stub::ReportEvents, request, response);
  failed("ReportEvents", status);
  return settle(status, Stream<v1::Event>{events_, event_failures_, stats_.events_sent, stats_.events_dropped},
                last_seq, "events");
}

CoordinatorClient::Impl::Next CoordinatorClient::Impl::send_heartbeat() {
  v1::HeartbeatRequest request;
  uint64_t last_seq = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    request.set_state(state_);
    request.set_step(last_step_);
    request.set_epoch(last_epoch_);
    for (v1::StepMetrics& m : steps_.peek(options_.max_batch, last_seq)) *request.add_metrics() = std::move(m);
  }
  request.set_run(identity_.run_name);
  request.set_rank(identity_.rank);
  v1::HeartbeatResponse response;
  const grpc::Status status = call(&v1::Coordinator::Stub::Heartbeat, request, response);
  failed("Heartbeat", status);
  const Next next =
      settle(status, Stream<v1::StepMetrics>{steps_, step_failures_, stats_.steps_sent, stats_.steps_dropped}, last_seq,
             "step reports");
  apply_stop(response.stop_requested(), response.stop_reason());
  return next;
}

bool CoordinatorClient::Impl::send_finish() {
  v1::FinishRunRequest request;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    request = *finish_;
  }
  v1::FinishRunResponse response;
  const grpc::Status status = call(&v1::Coordinator::Stub::FinishRun, request, response);
  if (failed("FinishRun", status) && status.error_code() != grpc::StatusCode::INVALID_ARGUMENT) return false;
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.finished = true;
  return true;
}

CoordinatorClient::CoordinatorClient(const common::CoordinatorConfig& config, RunIdentity identity,
                                     ClientOptions options)
    : impl_(std::make_unique<Impl>(config, std::move(identity), options)) {}

CoordinatorClient::~CoordinatorClient() = default;

void CoordinatorClient::report_step(const metrics::StepReport& report) { impl_->report_step(report); }

void CoordinatorClient::report_event(EventType type, const std::string& message, int64_t step, double value) {
  impl_->report_event(type, message, step, value);
}

void CoordinatorClient::set_state(WorkerState state) { impl_->set_state(state); }

void CoordinatorClient::finish(Outcome outcome, const std::string& reason) { impl_->finish(outcome, reason); }

bool CoordinatorClient::flush(std::chrono::milliseconds timeout) { return impl_->flush(timeout); }

bool CoordinatorClient::stop_requested() const { return impl_->stop_requested(); }

std::string CoordinatorClient::stop_reason() const { return impl_->stop_reason(); }

ClientStats CoordinatorClient::stats() const { return impl_->stats(); }

std::string CoordinatorClient::run_name_for(const common::CoordinatorConfig& config, const std::string& run_folder) {
  if (!config.run_name.empty()) {
    validate_run_name(config.run_name, "coordinator.run_name");
    return config.run_name;
  }
  std::filesystem::path folder(run_folder);
  std::string name = (folder.has_filename() ? folder.filename() : folder.parent_path().filename()).string();
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '-';
  }
  const size_t first = name.find_first_not_of("._-");
  name = first == std::string::npos ? "" : name.substr(first, common::kMaxRunNameBytes);
  return name.empty() ? "run" : name;
}

}  // namespace ijepa::coord
