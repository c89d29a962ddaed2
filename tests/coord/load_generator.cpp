// ijepa-coord-load: simulates many training ranks against a running coordinator, each heartbeating at a
// fixed rate with a batch of step metrics over its own connection, and reports errors, latency percentiles
// and (given --pid) the coordinator's CPU and memory. Exit 0 only when no call failed. A benchmark tool, not a
// test: BENCHMARKS.md records its figures; CTest runs only a few-second smoke of it.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/logging.h"
#include "coord/channel.h"
#include "coord/client.h"
#include "ijepa/coordinator/v1/coordinator.grpc.pb.h"
#include "loopback.h"

namespace {

namespace v1 = ::ijepa::coordinator::v1;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string address = "127.0.0.1:50051";
  std::string token;
  int workers = 1000;
  int ranks_per_run = 8;
  double duration_s = 60;
  double rate_hz = 1;
  int steps_per_heartbeat = 5;
  int pid = 0;
  std::string prefix = "load";
  bool json = false;
  int client_overhead_calls = 0;  // > 0: time CoordinatorClient::report_step instead of generating load
};

// CPU seconds (user + system) and resident memory of a process, from /proc.
struct ProcessSample {
  double cpu_seconds = 0;
  int64_t rss_bytes = 0;
  int64_t peak_rss_bytes = 0;
};

ProcessSample sample_process(int pid) {
  ProcessSample sample;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  const size_t close_paren = text.rfind(')');
  if (close_paren == std::string::npos) return sample;
  std::istringstream fields(text.substr(close_paren + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int index = 3; fields >> field; ++index) {  // field 3 is the state
    if (index == 14) utime = std::stod(field);
    if (index == 15) {
      stime = std::stod(field);
      break;
    }
  }
  sample.cpu_seconds = (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    int64_t kb = 0;
    if (sscanf(line.c_str(), "VmRSS: %ld kB", &kb) == 1) sample.rss_bytes = kb * 1024;
    if (sscanf(line.c_str(), "VmHWM: %ld kB", &kb) == 1) sample.peak_rss_bytes = kb * 1024;
  }
  return sample;
}

struct Worker {
  std::string run;
  int rank = 0;
  int64_t step = 0;
  v1::Coordinator::Stub* stub = nullptr;
};

// One heartbeat in flight; the completion queue hands it back when the reply (or error) arrives.
struct Call {
  grpc::ClientContext context;
  v1::HeartbeatResponse response;
  grpc::Status status;
  Clock::time_point start;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::HeartbeatResponse>> reader;
};

class LoadRun {
 public:
  explicit LoadRun(const Options& options) : options_(options) {}

  int setup();  // returns the number of failed setup calls
  void drive(grpc::CompletionQueue& queue);
  void collect(grpc::CompletionQueue& queue);
  nlohmann::json report(double wall_s, const ProcessSample& before, const ProcessSample& after) const;

 private:
  void send(Worker& worker, grpc::CompletionQueue& queue, std::mt19937& random);

  const Options& options_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<v1::Coordinator::Stub>> stubs_;
  std::vector<Worker> workers_;
  std::atomic<int64_t> in_flight_{0};
  std::mutex mutex_;
  std::vector<double> latencies_ms_;
  std::map<std::string, int64_t> errors_;
};

int LoadRun::setup() {
  int failures = 0;
  for (int i = 0; i < options_.workers; ++i) {
    grpc::ChannelArguments arguments;
    arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one TCP connection per simulated rank
    channels_.push_back(grpc::CreateCustomChannel(options_.address, grpc::InsecureChannelCredentials(), arguments));
    stubs_.push_back(v1::Coordinator::NewStub(channels_.back()));
    Worker worker;
    worker.run = options_.prefix + "-" + std::to_string(i / options_.ranks_per_run);
    worker.rank = i % options_.ranks_per_run;
    worker.stub = stubs_.back().get();
    const int world =
        std::min(options_.ranks_per_run, options_.workers - i / options_.ranks_per_run * options_.ranks_per_run);
    grpc::ClientContext create_context;
    ijepa::coord::add_token(create_context, options_.token);
    v1::CreateRunRequest create;
    create.set_name(worker.run);
    create.set_world_size(world);
    create.set_rank(worker.rank);
    create.set_host("load-host");
    v1::CreateRunResponse created;
    failures += !worker.stub->CreateRun(&create_context, create, &created).ok();
    grpc::ClientContext register_context;
    ijepa::coord::add_token(register_context, options_.token);
    v1::RegisterWorkerRequest registration;
    registration.set_run(worker.run);
    registration.set_rank(worker.rank);
    registration.set_host("load-host");
    registration.set_pid(getpid());
    v1::RegisterWorkerResponse registered;
    failures += !worker.stub->RegisterWorker(&register_context, registration, &registered).ok();
    workers_.push_back(std::move(worker));
  }
  return failures;
}

void LoadRun::send(Worker& worker, grpc::CompletionQueue& queue, std::mt19937& random) {
  v1::HeartbeatRequest request;
  request.set_run(worker.run);
  request.set_rank(worker.rank);
  request.set_state(v1::WORKER_STATE_TRAINING);
  std::uniform_real_distribution<double> loss(0.1, 1.0);
  for (int s = 0; s < options_.steps_per_heartbeat; ++s) {
    v1::StepMetrics* m = request.add_metrics();
    m->set_step(++worker.step);
    m->set_epoch(worker.step / 1000);
    m->set_loss(loss(random));
    m->set_lr(1e-3);
    m->set_wd(0.04);
    m->set_images_per_second(320.0);
    m->set_step_seconds(0.2);
    m->set_data_wait_seconds(0.01);
    m->set_comm_wait_seconds(0.02);
    m->set_images(64);
  }
  request.set_step(worker.step);
  auto* call = new Call;
  call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ijepa::coord::add_token(call->context, options_.token);
  call->start = Clock::now();
  call->reader = worker.stub->PrepareAsyncHeartbeat(&call->context, request, &queue);
  call->reader->StartCall();
  ++in_flight_;
  call->reader->Finish(&call->response, &call->status, call);
}

// Sends each worker's heartbeats at its own phase within the period, so the load is even over time.
void LoadRun::drive(grpc::CompletionQueue& queue) {
  std::mt19937 random(42);
  const double period = 1.0 / options_.rate_hz;
  const auto start = Clock::now();
  const auto end = start + ijepa::common::to_duration(options_.duration_s);
  for (int64_t round = 0;; ++round) {
    for (size_t i = 0; i < workers_.size(); ++i) {
      const double offset = (static_cast<double>(round) + static_cast<double>(i) / workers_.size()) * period;
      const auto due = start + ijepa::common::to_duration(offset);
      if (due >= end) return;
      std::this_thread::sleep_until(due);
      send(workers_[i], queue, random);
    }
  }
}

void LoadRun::collect(grpc::CompletionQueue& queue) {
  void* tag = nullptr;
  bool ok = false;
  while (queue.Next(&tag, &ok)) {
    std::unique_ptr<Call> call(static_cast<Call*>(tag));
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - call->start).count();
    std::lock_guard<std::mutex> lock(mutex_);
    latencies_ms_.push_back(ms);
    if (!call->status.ok()) ++errors_[call->status.error_message()];
    --in_flight_;
  }
}

double percentile(std::vector<double> sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t index = std::min(sorted.size() - 1, static_cast<size_t>(p * static_cast<double>(sorted.size())));
  return sorted[index];
}

nlohmann::json LoadRun::report(double wall_s, const ProcessSample& before, const ProcessSample& after) const {
  std::vector<double> sorted = latencies_ms_;
  std::sort(sorted.begin(), sorted.end());
  int64_t errors = 0;
  nlohmann::json error_kinds = nlohmann::json::object();
  for (const auto& [message, count] : errors_) {
    errors += count;
    error_kinds[message] = count;
  }
  double mean = 0;
  for (double v : sorted) mean += v / static_cast<double>(sorted.size());
  nlohmann::json result{{"workers", options_.workers},
                        {"ranks_per_run", options_.ranks_per_run},
                        {"rate_hz", options_.rate_hz},
                        {"steps_per_heartbeat", options_.steps_per_heartbeat},
                        {"duration_s", wall_s},
                        {"requests", sorted.size()},
                        {"requests_per_second", static_cast<double>(sorted.size()) / wall_s},
                        {"errors", errors},
                        {"error_kinds", error_kinds},
                        {"latency_ms",
                         {{"p50", percentile(sorted, 0.50)},
                          {"p90", percentile(sorted, 0.90)},
                          {"p99", percentile(sorted, 0.99)},
                          {"max", sorted.empty() ? 0 : sorted.back()},
                          {"mean", mean}}}};
  if (options_.pid > 0) {
    result["coordinator"] = {{"cpu_percent", 100.0 * (after.cpu_seconds - before.cpu_seconds) / wall_s},
                             {"rss_bytes", after.rss_bytes},
                             {"peak_rss_bytes", after.peak_rss_bytes}};
  }
  return result;
}

// Times N report_step calls of a CoordinatorClient whose coordinator is at ADDRESS; nanoseconds per call.
nlohmann::json time_report_step(const std::string& address, const std::string& token, const std::string& run, int n) {
  ijepa::common::CoordinatorConfig config;
  config.address = address;
  config.token = token;
  std::vector<double> ns;
  ns.reserve(n);
  {
    ijepa::coord::CoordinatorClient client(config, {run, 0, 1, "", ""});
    ijepa::metrics::StepReport report;
    for (int i = 1; i <= n; ++i) {
      report.step = i;
      const auto start = Clock::now();
      client.report_step(report);
      ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count());
    }
  }
  std::sort(ns.begin(), ns.end());
  return {{"calls", n}, {"p50_ns", percentile(ns, 0.5)}, {"p99_ns", percentile(ns, 0.99)}, {"max_ns", ns.back()}};
}

// report_step's cost with the coordinator up, absent (nothing listening) and hanging (a listener that never
// answers, so every RPC of the client's thread waits for its deadline).
nlohmann::json client_overhead(const Options& o) {
  const ijepa::testing::LoopbackSocket hanging(/*listening=*/true);
  nlohmann::json result{{"up", time_report_step(o.address, o.token, o.prefix + "-overhead", o.client_overhead_calls)},
                        {"absent", time_report_step(ijepa::testing::loopback(ijepa::testing::free_port()), "", "absent",
                                                    o.client_overhead_calls)},
                        {"hanging", time_report_step(hanging.address(), "", "hanging", o.client_overhead_calls)}};
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"ijepa-coord-load: simulated training ranks heartbeating a coordinator"};
  app.add_option("--coordinator", o.address, "coordinator host:port")->capture_default_str();
  app.add_option("--token", o.token, "bearer token")->envname("IJEPA_COORDINATOR_TOKEN");
  app.add_option("--workers", o.workers, "simulated ranks, one connection each")->capture_default_str();
  app.add_option("--ranks-per-run", o.ranks_per_run, "ranks per simulated run")->capture_default_str();
  app.add_option("--duration", o.duration_s, "seconds of load")->capture_default_str();
  app.add_option("--rate", o.rate_hz, "heartbeats per second per rank")->capture_default_str();
  app.add_option("--steps-per-heartbeat", o.steps_per_heartbeat, "step metrics per heartbeat")->capture_default_str();
  app.add_option("--pid", o.pid, "coordinator process id, for its CPU and memory");
  app.add_option("--prefix", o.prefix, "run name prefix")->capture_default_str();
  app.add_flag("--json", o.json, "print the report as JSON on stdout");
  app.add_option("--client-overhead", o.client_overhead_calls,
                 "instead of load: time N CoordinatorClient::report_step calls (coordinator up, absent, hanging)");
  try {
    app.parse(argc, argv);
    if (o.workers < 1 || o.ranks_per_run < 1 || o.rate_hz <= 0 || o.duration_s <= 0 || o.steps_per_heartbeat < 0) {
      throw CLI::ValidationError("workers, ranks-per-run, rate and duration must be positive");
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  ijepa::common::init_logging(0);  // the client's warnings go to stderr, leaving stdout to the report
  if (o.client_overhead_calls > 0) {
    const nlohmann::json result{{"report_step", client_overhead(o)}};
    (o.json ? std::cout : std::cerr) << result.dump(o.json ? -1 : 2) << "\n";
    return 0;
  }

  LoadRun run(o);
  const int setup_failures = run.setup();
  grpc::CompletionQueue queue;
  std::vector<std::thread> collectors;
  for (int i = 0; i < 2; ++i) collectors.emplace_back([&] { run.collect(queue); });
  const ProcessSample before = o.pid > 0 ? sample_process(o.pid) : ProcessSample{};
  const auto start = Clock::now();
  run.drive(queue);
  const double wall_s = std::chrono::duration<double>(Clock::now() - start).count();
  const ProcessSample after = o.pid > 0 ? sample_process(o.pid) : ProcessSample{};
  queue.Shutdown();  // returns from Next() once every call in flight has completed
  for (std::thread& t : collectors) t.join();

  nlohmann::json result = run.report(wall_s, before, after);
  result["setup_errors"] = setup_failures;
  if (o.json) {
    std::cout << result.dump() << "\n";
  } else {
    std::cerr << result.dump(2) << "\n";
  }
  return setup_failures == 0 && result["errors"] == 0 ? 0 : 1;
}
