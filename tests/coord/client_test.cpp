// CoordinatorClient against real servers on loopback: reports and the finish arrive, a stop request reaches
// the rank, calls never wait on a coordinator that hangs or is down nor on a blocked stderr, reports flow once it
// comes up, a coordinator that forgot the rank gets it registered again, a small queue wakes the sender before it
// overflows, text that is not UTF-8 arrives mended, and refused events are dropped without holding back heartbeats.
#include "coord/client.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <future>

#include "common/errors.h"
#include "coord/channel.h"
#include "coord/server.h"
#include "coord/validation.h"
#include "coord_test_util.h"
#include "ijepa/coordinator/v1/coordinator.grpc.pb.h"

namespace ijepa::coord {
namespace {

namespace v1 = ::ijepa::coordinator::v1;

common::CoordinatorConfig config_for(int port) {
  common::CoordinatorConfig config;
  config.address = testing::loopback(port);
  config.heartbeat_s = 0.1;
  config.queue_capacity = 100;
  return config;
}

ClientOptions fast_options() {
  ClientOptions options;
  options.backoff_initial = std::chrono::milliseconds(50);
  options.backoff_max = std::chrono::milliseconds(500);
  return options;
}

metrics::StepReport step(int64_t n) {
  metrics::StepReport r;
  r.step = n;
  r.loss = 1.0 / static_cast<double>(n + 1);
  r.images_per_second = 100;
  r.step_seconds = 0.01;
  r.images = 8;
  return r;
}

std::unique_ptr<CoordinatorServer> start_server(const std::string& db, int port = 0) {
  ServerOptions options;
  options.listen = testing::loopback(port);
  options.metrics_listen = "";
  options.db_path = db;
  return std::make_unique<CoordinatorServer>(options);
}

// The run as the coordinator sees it, or an empty run when the call fails.
v1::GetRunResponse run_on(int port, const std::string& name) {
  auto stub = v1::Coordinator::NewStub(make_channel(testing::channel_to(testing::loopback(port))));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::GetRunRequest request;
  request.set_name(name);
  v1::GetRunResponse response;
  stub->GetRun(&context, request, &response);
  return response;
}

TEST(CoordinatorClient, ReportsEventsAndFinishArrive) {
  testing::TempDir dir;
  auto server = start_server(dir / "c.db");
  {
    CoordinatorClient client(config_for(server->port()), {"flow", 0, 1, "meta: {}", ""}, fast_options());
    client.set_state(WorkerState::kTraining);
    for (int i = 1; i <= 10; ++i) client.report_step(step(i));
    client.report_event(EventType::kCheckpointWritten, "/runs/flow/jepa-ep1.pth.tar", 10);
    client.finish(Outcome::kFinished);
    ASSERT_TRUE(client.flush(std::chrono::seconds(30))) << client.stats().last_error;
    const ClientStats stats = client.stats();
    EXPECT_EQ(stats.steps_sent, 10u);
    EXPECT_EQ(stats.events_sent, 1u);
    EXPECT_EQ(stats.steps_dropped, 0u);
    EXPECT_TRUE(stats.finished);
  }
  const v1::GetRunResponse detail = run_on(server->port(), "flow");
  EXPECT_EQ(detail.run().state(), v1::RUN_STATE_FINISHED);
  EXPECT_EQ(detail.run().latest().step(), 10);
  bool saw_checkpoint = false;
  for (const v1::Event& e : detail.events()) saw_checkpoint |= e.type() == v1::EVENT_TYPE_CHECKPOINT_WRITTEN;
  EXPECT_TRUE(saw_checkpoint);
}

TEST(CoordinatorClient, StopRequestReachesTheRank) {
  testing::TempDir dir;
  auto server = start_server(dir / "c.db");
  CoordinatorClient client(config_for(server->port()), {"stopme", 0, 1, "", ""}, fast_options());
  ASSERT_TRUE(testing::wait_until([&] { return client.stats().registered; }));
  EXPECT_FALSE(client.stop_requested());
  auto stub = v1::Coordinator::NewStub(make_channel(testing::channel_to(testing::loopback(server->port()))));
  grpc::ClientContext context;
  v1::StopRunRequest stop;
  stop.set_name("stopme");
  stop.set_reason("preempted");
  v1::StopRunResponse stopped;
  ASSERT_TRUE(stub->StopRun(&context, stop, &stopped).ok());
  ASSERT_TRUE(testing::wait_until([&] { return client.stop_requested(); }));
  EXPECT_EQ(client.stop_reason(), "preempted");
  client.finish(Outcome::kStopped);
  ASSERT_TRUE(client.flush(std::chrono::seconds(30)));
  EXPECT_EQ(run_on(server->port(), "stopme").run().state(), v1::RUN_STATE_STOPPED);
}

// A listener that completes TCP handshakes but never answers: every RPC would hang until its deadline
// (an hour here). If any public call waited on the network, this test would never finish.
TEST(CoordinatorClient, CallsNeverWaitOnAHangingCoordinator) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(fd, 16), 0);
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);

  ClientOptions options = fast_options();
  options.rpc_timeout = std::chrono::hours(1);
  auto slowest = std::chrono::nanoseconds(0);
  {
    CoordinatorClient client(config_for(ntohs(address.sin_port)), {"hang", 0, 1, "", ""}, options);
    for (int i = 1; i <= 1000; ++i) {
      const auto start = std::chrono::steady_clock::now();
      client.report_step(step(i));
      slowest = std::max(slowest, std::chrono::steady_clock::now() - start);
    }
    for (int i = 0; i < 300; ++i) client.report_event(EventType::kMessage, "m", i);
    client.set_state(WorkerState::kCheckpointing);
    EXPECT_FALSE(client.stop_requested());
    client.finish(Outcome::kFinished);
    const ClientStats stats = client.stats();
    EXPECT_EQ(stats.steps_dropped, 900u);  // capacity 100, oldest dropped
    EXPECT_EQ(stats.events_dropped, 200u);
    EXPECT_EQ(stats.steps_sent, 0u);
    EXPECT_FALSE(client.flush(std::chrono::milliseconds(100)));
  }  // the destructor cancels the hanging call
  close(fd);
  ::testing::Test::RecordProperty("slowest_report_step_ns", std::to_string(slowest.count()));
  // A push takes microseconds; one that waited on the hanging call would wait an hour. The bound leaves room for a
  // loaded 2-core machine's scheduling, so the test fails on blocking, not on noise.
  EXPECT_LT(slowest, std::chrono::milliseconds(500)) << "a mutex-protected push should take microseconds";
}

// Makes writes to stderr block while it lives (stderr becomes a pipe that is full and that nobody reads), as a
// terminal or log collector that stalls would; release() drains it and puts stderr back.
class BlockedStderr {
 public:
  BlockedStderr() {
    EXPECT_EQ(pipe(pipe_), 0);
    fcntl(pipe_[1], F_SETFL, O_NONBLOCK);
    const std::string chunk(4096, '.');
    while (write(pipe_[1], chunk.data(), chunk.size()) > 0) {
    }
    fcntl(pipe_[1], F_SETFL, 0);
    fflush(stderr);
    saved_ = dup(STDERR_FILENO);
    dup2(pipe_[1], STDERR_FILENO);
  }
  ~BlockedStderr() { release(); }
  BlockedStderr(const BlockedStderr&) = delete;
  BlockedStderr& operator=(const BlockedStderr&) = delete;

  void release() {
    if (saved_ < 0) return;
    std::thread drain([fd = pipe_[0]] {
      char buffer[4096];
      while (read(fd, buffer, sizeof(buffer)) > 0) {
      }
    });
    dup2(saved_, STDERR_FILENO);
    close(saved_);
    saved_ = -1;
    close(pipe_[1]);
    drain.join();  // EOF once a write blocked on the pipe has completed
    close(pipe_[0]);
  }

 private:
  int pipe_[2] = {-1, -1};
  int saved_ = -1;
};

// The sender logs its first failed call to a stderr that blocks; report_step on the training thread must not wait
// for that (nor may stats()).
TEST(CoordinatorClient, AStderrThatBlocksNeverHoldsUpReportStep) {
  BlockedStderr blocked;
  CoordinatorClient client(config_for(testing::free_port()), {"mute", 0, 1, "", ""}, fast_options());
  std::promise<std::chrono::nanoseconds> slowest_step;
  std::future<std::chrono::nanoseconds> result = slowest_step.get_future();
  std::thread reporter([&] {
    // Once a call has failed, the sender is logging it (or blocked doing so).
    testing::wait_until([&] { return client.stats().rpc_failures >= 1; }, std::chrono::seconds(10));
    auto slowest = std::chrono::nanoseconds(0);
    for (int i = 1; i <= 100; ++i) {
      const auto start = std::chrono::steady_clock::now();
      client.report_step(step(i));
      slowest = std::max(slowest, std::chrono::steady_clock::now() - start);
    }
    slowest_step.set_value(slowest);
  });
  const bool returned = result.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  blocked.release();
  reporter.join();
  ASSERT_TRUE(returned) << "the training thread waited while the sender wrote to stderr";
  EXPECT_LT(result.get(), std::chrono::milliseconds(500));  // as above: blocking, not noise
}

// With a queue smaller than a batch, reports must wake the sender before the queue overflows, not wait for the
// next heartbeat (an hour here).
TEST(CoordinatorClient, ASmallQueueWakesTheSenderBeforeItOverflows) {
  testing::TempDir dir;
  auto server = start_server(dir / "c.db");
  common::CoordinatorConfig config = config_for(server->port());
  config.queue_capacity = 10;
  config.heartbeat_s = 3600;
  CoordinatorClient client(config, {"small", 0, 1, "", ""}, fast_options());
  ASSERT_TRUE(testing::wait_until([&] { return client.stats().registered; }));
  client.set_state(WorkerState::kTraining);
  client.report_event(EventType::kMessage, "an event is sent at once, with a heartbeat after it");
  ASSERT_TRUE(testing::wait_until([&] {
    const v1::GetRunResponse detail = run_on(server->port(), "small");
    return detail.workers_size() == 1 && detail.workers(0).state() == v1::WORKER_STATE_TRAINING;
  }));
  for (int i = 1; i <= 5; ++i) client.report_step(step(i));  // half the capacity
  EXPECT_TRUE(testing::wait_until([&] { return client.stats().steps_sent == 5; }, std::chrono::seconds(10)));
  EXPECT_EQ(client.stats().steps_dropped, 0u);
}

// Exception texts and paths need not be UTF-8, and a proto3 string that is not fails the whole request.
TEST(CoordinatorClient, TextThatIsNotUtf8ArrivesMended) {
  testing::TempDir dir;
  auto server = start_server(dir / "c.db");
  {
    CoordinatorClient client(config_for(server->port()), {"latin1", 0, 1, "data:\n  root: /data/caf\xe9\n", ""},
                             fast_options());
    client.report_event(EventType::kStall, "collective timed out reading /data/caf\xe9", 3);
    client.report_event(EventType::kMessage, std::string(kMaxTextBytes - 1, 'x') + "\xc3\xa9", 3);
    client.finish(Outcome::kFailed, "exception: \xff");
    ASSERT_TRUE(client.flush(std::chrono::seconds(10))) << client.stats().last_error;
    EXPECT_EQ(client.stats().events_sent, 2u);
  }
  const v1::GetRunResponse detail = run_on(server->port(), "latin1");
  EXPECT_EQ(detail.run().reason(), "rank 0: exception: ?");
  bool mended = false;
  for (const v1::Event& e : detail.events()) mended |= e.message() == "collective timed out reading /data/caf?";
  EXPECT_TRUE(mended);
}

// A coordinator that takes everything but refuses every ReportEvents with INTERNAL (as a database failure or a
// request it cannot parse would). Counts what arrives.
class RefusingEvents final : public v1::Coordinator::Service {
 public:
  grpc::Status CreateRun(grpc::ServerContext*, const v1::CreateRunRequest*, v1::CreateRunResponse*) override {
    return grpc::Status::OK;
  }
  grpc::Status RegisterWorker(grpc::ServerContext*, const v1::RegisterWorkerRequest*,
                              v1::RegisterWorkerResponse*) override {
    return grpc::Status::OK;
  }
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* request, v1::HeartbeatResponse*) override {
    ++heartbeats;
    steps += request->metrics_size();
    return grpc::Status::OK;
  }
  grpc::Status ReportEvents(grpc::ServerContext*, const v1::ReportEventsRequest*, v1::ReportEventsResponse*) override {
    ++event_reports;
    heartbeats_before_last_report = heartbeats.load();
    return grpc::Status(grpc::StatusCode::INTERNAL, "injected failure");
  }
  grpc::Status FinishRun(grpc::ServerContext*, const v1::FinishRunRequest*, v1::FinishRunResponse*) override {
    finished = true;
    return grpc::Status::OK;
  }

  std::atomic<int> heartbeats{0};
  std::atomic<int> steps{0};
  std::atomic<int> event_reports{0};
  std::atomic<int> heartbeats_before_last_report{0};
  std::atomic<bool> finished{false};
};

TEST(CoordinatorClient, RefusedEventsAreDroppedAfterAFewTriesAndNeverHoldBackHeartbeats) {
  RefusingEvents service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(testing::loopback(0), grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  const std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(port, 0);
  {
    CoordinatorClient client(config_for(port), {"refused", 0, 1, "", ""}, fast_options());
    client.report_event(EventType::kMessage, "refused every time", 1);
    for (int i = 1; i <= 5; ++i) client.report_step(step(i));
    client.finish(Outcome::kFinished);
    ASSERT_TRUE(client.flush(std::chrono::seconds(10))) << client.stats().last_error;
    const ClientStats stats = client.stats();
    EXPECT_EQ(stats.events_dropped, 1u);
    EXPECT_EQ(stats.events_sent, 0u);
    EXPECT_EQ(stats.steps_sent, 5u);
    EXPECT_TRUE(stats.finished);
  }
  EXPECT_EQ(service.event_reports, 3) << "a few tries, then the batch is dropped";
  EXPECT_GE(service.heartbeats_before_last_report, 2) << "heartbeats went on between the tries";
  EXPECT_EQ(service.steps, 5);
  EXPECT_TRUE(service.finished);
  server->Shutdown();
}

TEST(CoordinatorClient, ReportsFlowOnceTheCoordinatorComesUp) {
  testing::TempDir dir;
  const int port = testing::free_port();
  CoordinatorClient client(config_for(port), {"late", 0, 1, "", ""}, fast_options());
  for (int i = 1; i <= 5; ++i) client.report_step(step(i));
  EXPECT_FALSE(client.stop_requested());
  auto server = start_server(dir / "c.db", port);
  ASSERT_TRUE(testing::wait_until([&] { return run_on(port, "late").run().latest().step() == 5; }))
      << client.stats().last_error;
  EXPECT_EQ(client.stats().steps_sent, 5u);
  EXPECT_EQ(client.stats().steps_dropped, 0u);
}

TEST(CoordinatorClient, RegistersAgainWithACoordinatorThatForgotIt) {
  testing::TempDir dir;
  const int port = testing::free_port();
  auto server = start_server(dir / "first.db", port);
  CoordinatorClient client(config_for(port), {"amnesia", 0, 1, "", ""}, fast_options());
  client.report_step(step(1));
  ASSERT_TRUE(testing::wait_until([&] { return run_on(port, "amnesia").run().latest().step() == 1; }));
  server.reset();
  server = start_server(dir / "second.db", port);
  client.report_step(step(2));
  ASSERT_TRUE(testing::wait_until([&] { return run_on(port, "amnesia").run().latest().step() == 2; }))
      << client.stats().last_error;
}

TEST(CoordinatorClient, RejectsBadConfiguration) {
  common::CoordinatorConfig config = config_for(1);
  EXPECT_THROW(CoordinatorClient(config, {"bad name", 0, 1, "", ""}), common::InputError);
  EXPECT_THROW(CoordinatorClient(config, {"r", 1, 1, "", ""}), common::InputError);
  EXPECT_THROW(CoordinatorClient(config, {"r", 0, 0, "", ""}), common::InputError);
  config.address = "";
  EXPECT_THROW(CoordinatorClient(config, {"r", 0, 1, "", ""}), common::InputError);
  config.address = "no-port";
  EXPECT_THROW(CoordinatorClient(config, {"r", 0, 1, "", ""}), common::InputError);
  config = config_for(1);
  config.tls_ca = "/nonexistent/ca.pem";
  EXPECT_THROW(CoordinatorClient(config, {"r", 0, 1, "", ""}), common::InputError);
  config = config_for(1);
  config.queue_capacity = 0;
  EXPECT_THROW(CoordinatorClient(config, {"r", 0, 1, "", ""}), common::InputError);
}

// gRPC 1.51 aborts the process on metadata with a line break or a non-ASCII byte (grpc/grpc#34798): the channel
// code refuses such a token with an error instead, whoever builds the channel or the call.
TEST(CoordinatorClient, TokensGrpcCannotSendAreRefusedBeforeGrpcSeesThem) {
  for (const std::string& bad : {std::string("s3cret\n"), std::string("t\xc3\xb6ken"), std::string("a b")}) {
    common::CoordinatorConfig config = config_for(1);
    config.token = bad;
    EXPECT_THROW(CoordinatorClient(config, {"r", 0, 1, "", ""}), common::InputError) << bad;
    ChannelOptions options = testing::channel_to(config.address);
    options.token = bad;
    EXPECT_THROW(make_channel(options), common::InputError) << bad;
    grpc::ClientContext context;
    EXPECT_THROW(add_token(context, bad), common::InputError) << bad;
  }
  grpc::ClientContext context;
  EXPECT_NO_THROW(add_token(context, "s3cret"));
}

TEST(CoordinatorClient, RunNameFromConfigOrFolder) {
  common::CoordinatorConfig config;
  EXPECT_EQ(CoordinatorClient::run_name_for(config, "/data/runs/fmnist v1/"), "fmnist-v1");
  EXPECT_EQ(CoordinatorClient::run_name_for(config, "runs/.hidden"), "hidden");
  EXPECT_EQ(CoordinatorClient::run_name_for(config, ""), "run");
  config.run_name = "named";
  EXPECT_EQ(CoordinatorClient::run_name_for(config, "/x"), "named");
  config.run_name = "no/slashes";
  EXPECT_THROW(CoordinatorClient::run_name_for(config, "/x"), common::InputError);
}

}  // namespace
}  // namespace ijepa::coord
