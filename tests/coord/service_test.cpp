// The gRPC surface of an in-process CoordinatorServer on a loopback port: the whole run lifecycle, watch
// streams, error codes for bad input, the bearer token, message size limits, TLS and mutual TLS, and the
// standard health and reflection services.
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/impl/codegen/sync_stream.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <map>
#include <thread>
#include <utility>

#include "common/errors.h"
#include "coord/channel.h"
#include "coord/server.h"
#include "coord_test_util.h"
#include "ijepa/coordinator/v1/coordinator.grpc.pb.h"

namespace ijepa::coord {
namespace {

namespace v1 = ::ijepa::coordinator::v1;

class ServiceTest : public ::testing::Test {
 protected:
  // With METRICS, also /metrics on a free port.
  void start(ServerOptions options = {}, bool metrics = false) {
    options.listen = "127.0.0.1:0";
    options.metrics_listen = metrics ? "127.0.0.1:0" : "";
    options.db_path = dir_ / "c.db";
    server_ = std::make_unique<CoordinatorServer>(options);
  }

  std::unique_ptr<v1::Coordinator::Stub> stub(ChannelOptions options = {}) {
    if (options.address.empty()) options.address = testing::loopback(server_->port());
    return v1::Coordinator::NewStub(make_channel(options));
  }

  static std::unique_ptr<grpc::ClientContext> context(const std::string& token = "") {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    add_token(*c, token);
    return c;
  }

  testing::TempDir dir_;
  std::unique_ptr<CoordinatorServer> server_;
};

v1::CreateRunRequest create_request(const std::string& name, int world_size = 1) {
  v1::CreateRunRequest r;
  r.set_name(name);
  r.set_world_size(world_size);
  r.set_host("node-0");
  return r;
}

v1::RegisterWorkerRequest register_request(const std::string& run, int rank = 0) {
  v1::RegisterWorkerRequest r;
  r.set_run(run);
  r.set_rank(rank);
  r.set_host("node-0");
  r.set_pid(1234);
  return r;
}

v1::HeartbeatRequest heartbeat_request(const std::string& run, int64_t step) {
  v1::HeartbeatRequest r;
  r.set_run(run);
  r.set_state(v1::WORKER_STATE_TRAINING);
  r.set_step(step);
  v1::StepMetrics* m = r.add_metrics();
  m->set_step(step);
  m->set_loss(0.5);
  m->set_step_seconds(0.1);
  return r;
}

TEST_F(ServiceTest, RunLifecycle) {
  start({}, true);
  auto s = stub();
  v1::CreateRunResponse created;
  ASSERT_TRUE(s->CreateRun(context().get(), create_request("life"), &created).ok());
  EXPECT_TRUE(created.created());
  v1::RegisterWorkerResponse registered;
  ASSERT_TRUE(s->RegisterWorker(context().get(), register_request("life"), &registered).ok());
  v1::HeartbeatResponse beat;
  ASSERT_TRUE(s->Heartbeat(context().get(), heartbeat_request("life", 3), &beat).ok());
  EXPECT_FALSE(beat.stop_requested());

  v1::ReportEventsRequest events;
  events.set_run("life");
  v1::Event* e = events.add_events();
  e->set_type(v1::EVENT_TYPE_EVALUATION_RESULT);
  e->set_value(0.71);
  e->set_message("knn top-1");
  v1::ReportEventsResponse reported;
  ASSERT_TRUE(s->ReportEvents(context().get(), events, &reported).ok());

  v1::StopRunRequest stop;
  stop.set_name("life");
  stop.set_reason("enough");
  v1::StopRunResponse stopped;
  ASSERT_TRUE(s->StopRun(context().get(), stop, &stopped).ok());
  ASSERT_TRUE(s->Heartbeat(context().get(), heartbeat_request("life", 4), &beat).ok());
  EXPECT_TRUE(beat.stop_requested());
  EXPECT_EQ(beat.stop_reason(), "enough");

  v1::FinishRunRequest finish;
  finish.set_run("life");
  finish.set_outcome(v1::RUN_OUTCOME_STOPPED);
  v1::FinishRunResponse finished;
  ASSERT_TRUE(s->FinishRun(context().get(), finish, &finished).ok());
  EXPECT_EQ(finished.run().state(), v1::RUN_STATE_STOPPED);

  v1::GetRunRequest get;
  get.set_name("life");
  get.set_include_config(true);
  v1::GetRunResponse detail;
  ASSERT_TRUE(s->GetRun(context().get(), get, &detail).ok());
  EXPECT_EQ(detail.run().latest().step(), 4);
  ASSERT_EQ(detail.workers_size(), 1);
  EXPECT_EQ(detail.workers(0).pid(), 1234);
  bool saw_eval = false;
  for (const v1::Event& event : detail.events()) saw_eval |= event.type() == v1::EVENT_TYPE_EVALUATION_RESULT;
  EXPECT_TRUE(saw_eval);

  v1::ListRunsResponse list;
  ASSERT_TRUE(s->ListRuns(context().get(), v1::ListRunsRequest(), &list).ok());
  ASSERT_EQ(list.runs_size(), 1);

  const std::string metrics = testing::http_get(server_->metrics_port(), "/metrics");
  EXPECT_NE(metrics.find("ijepa_train_step{run=\"life\"} 4"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("ijepa_coordinator_rpcs_total{code=\"OK\",method=\"Heartbeat\"} 2"), std::string::npos);
}

TEST_F(ServiceTest, WatchStreamsChangesAndEndsWithTheRun) {
  start({}, /*metrics=*/true);
  auto s = stub();
  v1::CreateRunResponse created;
  ASSERT_TRUE(s->CreateRun(context().get(), create_request("w"), &created).ok());
  v1::RegisterWorkerResponse registered;
  ASSERT_TRUE(s->RegisterWorker(context().get(), register_request("w"), &registered).ok());

  grpc::ClientContext watch_context;
  v1::WatchRunRequest watch;
  watch.set_name("w");
  auto reader = s->WatchRun(&watch_context, watch);
  v1::WatchRunResponse update;
  ASSERT_TRUE(reader->Read(&update));
  EXPECT_EQ(update.run().state(), v1::RUN_STATE_RUNNING);

  v1::HeartbeatResponse beat;
  ASSERT_TRUE(s->Heartbeat(context().get(), heartbeat_request("w", 7), &beat).ok());
  do {
    ASSERT_TRUE(reader->Read(&update));
  } while (update.run().latest().step() != 7);

  v1::FinishRunRequest finish;
  finish.set_run("w");
  finish.set_outcome(v1::RUN_OUTCOME_FINISHED);
  v1::FinishRunResponse finished;
  ASSERT_TRUE(s->FinishRun(context().get(), finish, &finished).ok());
  while (reader->Read(&update)) {
  }
  EXPECT_EQ(update.run().state(), v1::RUN_STATE_FINISHED);
  EXPECT_TRUE(reader->Finish().ok());

  // The stream is counted but stays out of the latency histogram: it lasted as long as this test watched.
  const std::string metrics = testing::http_get(server_->metrics_port(), "/metrics");
  EXPECT_NE(metrics.find("ijepa_coordinator_rpcs_total{code=\"OK\",method=\"WatchRun\"} 1"), std::string::npos)
      << metrics;
  EXPECT_EQ(metrics.find("ijepa_coordinator_rpc_duration_seconds_count{method=\"WatchRun\"}"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("ijepa_coordinator_rpc_duration_seconds_count{method=\"Heartbeat\"} 1"), std::string::npos)
      << metrics;
}

// An open watch of RUN on S: the stream, its context, and whether the first update arrived.
struct OpenWatch {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::WatchRunResponse>> reader;
  bool first_read = false;
};

std::unique_ptr<OpenWatch> open_watch(v1::Coordinator::Stub& s, const std::string& run) {
  auto watch = std::make_unique<OpenWatch>();
  v1::WatchRunRequest request;
  request.set_name(run);
  watch->reader = s.WatchRun(&watch->context, request);
  v1::WatchRunResponse update;
  watch->first_read = watch->reader->Read(&update);
  return watch;
}

TEST_F(ServiceTest, WatchStreamsBeyondTheLimitAreRefusedUntilOneEnds) {
  ServerOptions options;
  options.max_watch_streams = 2;
  start(options, /*metrics=*/true);
  auto s = stub();
  v1::CreateRunResponse created;
  ASSERT_TRUE(s->CreateRun(context().get(), create_request("a"), &created).ok());
  ASSERT_TRUE(s->CreateRun(context().get(), create_request("b"), &created).ok());
  const auto metric = [&](const std::string& series) {
    const std::string metrics = testing::http_get(server_->metrics_port(), "/metrics");
    return metrics.find(series) != std::string::npos;
  };

  auto first = open_watch(*s, "a");
  auto second = open_watch(*s, "b");
  ASSERT_TRUE(first->first_read && second->first_read);
  EXPECT_TRUE(metric("ijepa_coordinator_watch_streams 2"));
  auto refused = open_watch(*s, "a");
  EXPECT_FALSE(refused->first_read);
  const grpc::Status status = refused->reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(status.error_message().find("--max-watch-streams 2"), std::string::npos) << status.error_message();
  EXPECT_TRUE(metric("ijepa_coordinator_watch_streams_refused_total 1"));
  EXPECT_TRUE(metric("ijepa_coordinator_rpcs_total{code=\"RESOURCE_EXHAUSTED\",method=\"WatchRun\"} 1"));
  // Other calls are served as usual meanwhile.
  v1::ListRunsResponse list;
  EXPECT_TRUE(s->ListRuns(context().get(), v1::ListRunsRequest(), &list).ok());

  // A client that cancels frees its slot.
  first->context.TryCancel();
  EXPECT_EQ(first->reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(testing::wait_until([&] { return metric("ijepa_coordinator_watch_streams 1"); }));
  auto third = open_watch(*s, "a");
  EXPECT_TRUE(third->first_read);

  // So does a run that ends: its stream ends with it.
  v1::FinishRunRequest finish;
  finish.set_run("b");
  finish.set_outcome(v1::RUN_OUTCOME_FINISHED);
  v1::FinishRunResponse finished;
  ASSERT_TRUE(s->FinishRun(context().get(), finish, &finished).ok());
  v1::WatchRunResponse update;
  while (second->reader->Read(&update)) {
  }
  EXPECT_TRUE(second->reader->Finish().ok());
  ASSERT_TRUE(testing::wait_until([&] { return metric("ijepa_coordinator_watch_streams 1"); }));
  auto fourth = open_watch(*s, "a");
  EXPECT_TRUE(fourth->first_read);
  third->context.TryCancel();
  fourth->context.TryCancel();
  third->reader->Finish();
  fourth->reader->Finish();
}

// Open streams end at shutdown, within about the server's grace period, and the watchers hear why (UNAVAILABLE:
// before, the stream ended OK although its run went on).
TEST_F(ServiceTest, ShutdownEndsOpenWatchStreamsPromptly) {
  start();
  auto s = stub();
  v1::CreateRunResponse created;
  ASSERT_TRUE(s->CreateRun(context().get(), create_request("w"), &created).ok());
  std::vector<std::unique_ptr<OpenWatch>> watches;
  for (int i = 0; i < 8; ++i) {
    watches.push_back(open_watch(*s, "w"));
    ASSERT_TRUE(watches.back()->first_read);
  }
  const auto start_time = std::chrono::steady_clock::now();
  server_->shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - start_time, std::chrono::seconds(5));
  for (auto& watch : watches) {
    v1::WatchRunResponse update;
    while (watch->reader->Read(&update)) {
    }
    const grpc::Status status = watch->reader->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_NE(status.error_message().find("shutting down"), std::string::npos) << status.error_message();
  }
}

// Writes that keep failing (here a trigger refuses them, as a full disk would) are logged once, not at every retry
// five times a second, and their end once; the heartbeats kept in memory meanwhile reach the database then.
TEST_F(ServiceTest, AFailingDatabaseIsLoggedOnceAndCatchesUp) {
  start();
  auto s = stub();
  v1::CreateRunResponse created;
  ASSERT_TRUE(s->CreateRun(context().get(), create_request("full"), &created).ok());
  v1::RegisterWorkerResponse registered;
  ASSERT_TRUE(s->RegisterWorker(context().get(), register_request("full"), &registered).ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "c.db").c_str(), &db), SQLITE_OK);
  const auto exec = [&](const char* sql) { ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK); };
  exec("CREATE TRIGGER refuse BEFORE INSERT ON workers BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END");

  ::testing::internal::CaptureStderr();
  v1::HeartbeatResponse beat;
  for (int step = 1; step <= 10; ++step) {
    ASSERT_TRUE(s->Heartbeat(context().get(), heartbeat_request("full", step), &beat).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // a flush period
  }
  exec("DROP TRIGGER refuse");
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const std::string log = ::testing::internal::GetCapturedStderr();
  size_t failures = 0;
  for (size_t at = 0; (at = log.find("background work failed", at)) != std::string::npos; ++at) ++failures;
  EXPECT_EQ(failures, 1u) << log;
  EXPECT_NE(log.find("database or disk is full"), std::string::npos) << log;
  EXPECT_NE(log.find("background work succeeds again"), std::string::npos) << log;
  server_.reset();
  sqlite3_stmt* statement = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT record FROM workers", -1, &statement, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(statement), SQLITE_ROW);
  v1::Worker worker;
  ASSERT_TRUE(worker.ParseFromArray(sqlite3_column_blob(statement, 0), sqlite3_column_bytes(statement, 0)));
  EXPECT_EQ(worker.step(), 10);
  sqlite3_finalize(statement);
  sqlite3_close(db);
}

// A database deleted under a running coordinator is said at once: SQLite goes on writing to the deleted file, and
// every run would be lost at exit without a word.
TEST_F(ServiceTest, ADatabaseDeletedWhileInUseIsSaid) {
  start();
  ::testing::internal::CaptureStderr();
  std::filesystem::remove(dir_ / "c.db");
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // two ticks
  const std::string log = ::testing::internal::GetCapturedStderr();
  const std::string expected = "database '" + (dir_ / "c.db") + "' was deleted or replaced while in use";
  const size_t first = log.find(expected);
  EXPECT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find(expected, first + 1), std::string::npos) << "said once: " << log;
}

TEST_F(ServiceTest, BadInputGetsInvalidArgumentOrNotFound) {
  start();
  auto s = stub();
  v1::CreateRunResponse created;
  EXPECT_EQ(s->CreateRun(context().get(), create_request("bad name"), &created).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s->CreateRun(context().get(), create_request("ok", 0), &created).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(s->CreateRun(context().get(), create_request("ok", 2), &created).ok());
  EXPECT_EQ(s->CreateRun(context().get(), create_request("ok", 3), &created).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  v1::RegisterWorkerResponse registered;
  EXPECT_EQ(s->RegisterWorker(context().get(), register_request("ok", 5), &registered).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s->RegisterWorker(context().get(), register_request("missing"), &registered).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::HeartbeatResponse beat;
  EXPECT_EQ(s->Heartbeat(context().get(), heartbeat_request("ok", 1), &beat).error_code(), grpc::StatusCode::NOT_FOUND);
  // A rank outside the run's world size is bad input for every worker call alike.
  v1::HeartbeatRequest out_of_range = heartbeat_request("ok", 1);
  out_of_range.set_rank(5);
  EXPECT_EQ(s->Heartbeat(context().get(), out_of_range, &beat).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::ReportEventsRequest events;
  events.set_run("ok");
  events.set_rank(5);
  v1::ReportEventsResponse reported;
  EXPECT_EQ(s->ReportEvents(context().get(), events, &reported).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::FinishRunRequest finish;
  finish.set_run("ok");
  finish.set_rank(5);
  finish.set_outcome(v1::RUN_OUTCOME_FINISHED);
  v1::FinishRunResponse finished;
  EXPECT_EQ(s->FinishRun(context().get(), finish, &finished).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::HeartbeatRequest negative = heartbeat_request("ok", 1);
  negative.mutable_metrics(0)->set_step_seconds(-5);
  EXPECT_EQ(s->Heartbeat(context().get(), negative, &beat).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::ClientContext watch_context;
  v1::WatchRunRequest watch;
  watch.set_name("../etc");
  v1::WatchRunResponse update;
  auto reader = s->WatchRun(&watch_context, watch);
  EXPECT_FALSE(reader->Read(&update));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// Calls /ijepa.coordinator.v1.Coordinator/METHOD on the server at PORT with BYTES as the request, as they are.
grpc::Status call_with_bytes(int port, const std::string& method, const std::string& bytes) {
  auto channel = make_channel(testing::channel_to(testing::loopback(port)));
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice slice(bytes);
  const grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  const std::string path = "/" + std::string(v1::Coordinator::service_full_name()) + "/" + method;
  const grpc::internal::RpcMethod rpc(path.c_str(), grpc::internal::RpcMethod::NORMAL_RPC);
  return grpc::internal::BlockingUnaryCall(channel.get(), rpc, &c, request, &response);
}

// A request that does not parse is bad input like any other (gRPC alone answered INTERNAL with no message, and the
// call went uncounted).
TEST_F(ServiceTest, RequestsThatDoNotParseGetInvalidArgument) {
  start({}, /*metrics=*/true);
  // name (field 1) "a\xff": not UTF-8; then world_size 1 and host "h".
  const grpc::Status not_utf8 = call_with_bytes(server_->port(), "CreateRun",
                                                std::string("\x0a\x02"
                                                            "a\xff\x10\x01\x22\x01h",
                                                            9));
  EXPECT_EQ(not_utf8.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(not_utf8.error_message().find("does not parse as a CreateRun request"), std::string::npos)
      << not_utf8.error_message();
  EXPECT_EQ(call_with_bytes(server_->port(), "StopRun", "\xff\xff\xff\xff").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  const std::string metrics = testing::http_get(server_->metrics_port(), "/metrics");
  EXPECT_NE(metrics.find("ijepa_coordinator_rpcs_total{code=\"INVALID_ARGUMENT\",method=\"CreateRun\"} 1"),
            std::string::npos)
      << metrics;
  // The server goes on serving.
  v1::ListRunsResponse list;
  EXPECT_TRUE(stub()->ListRuns(context().get(), v1::ListRunsRequest(), &list).ok());
}

TEST_F(ServiceTest, OversizedMessageIsRefused) {
  start();
  v1::CreateRunRequest huge = create_request("huge");
  huge.set_config_text(std::string(5 << 20, 'x'));
  v1::CreateRunResponse created;
  EXPECT_EQ(stub()->CreateRun(context().get(), huge, &created).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  huge.set_config_text(std::string((1 << 20) + 1, 'x'));  // under the message limit, over the config limit
  EXPECT_EQ(stub()->CreateRun(context().get(), huge, &created).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// Each of the Coordinator's RPCs once, with TOKEN (empty: none), in an order that succeeds with the right token
// (the run ends before it is watched, so the stream ends): method -> status code.
std::map<std::string, grpc::StatusCode> call_every_rpc(v1::Coordinator::Stub& s, const std::string& token) {
  const auto c = [&] {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    add_token(*context, token);
    return context;
  };
  std::map<std::string, grpc::StatusCode> codes;
  v1::CreateRunResponse created;
  codes["CreateRun"] = s.CreateRun(c().get(), create_request("r"), &created).error_code();
  v1::RegisterWorkerResponse registered;
  codes["RegisterWorker"] = s.RegisterWorker(c().get(), register_request("r"), &registered).error_code();
  v1::HeartbeatResponse beat;
  codes["Heartbeat"] = s.Heartbeat(c().get(), heartbeat_request("r", 1), &beat).error_code();
  v1::ReportEventsRequest events;
  events.set_run("r");
  events.add_events()->set_type(v1::EVENT_TYPE_MESSAGE);
  v1::ReportEventsResponse reported;
  codes["ReportEvents"] = s.ReportEvents(c().get(), events, &reported).error_code();
  v1::GetRunRequest get;
  get.set_name("r");
  v1::GetRunResponse detail;
  codes["GetRun"] = s.GetRun(c().get(), get, &detail).error_code();
  v1::ListRunsResponse list;
  codes["ListRuns"] = s.ListRuns(c().get(), v1::ListRunsRequest(), &list).error_code();
  v1::StopRunRequest stop;
  stop.set_name("r");
  v1::StopRunResponse stopped;
  codes["StopRun"] = s.StopRun(c().get(), stop, &stopped).error_code();
  v1::FinishRunRequest finish;
  finish.set_run("r");
  finish.set_outcome(v1::RUN_OUTCOME_STOPPED);
  v1::FinishRunResponse finished;
  codes["FinishRun"] = s.FinishRun(c().get(), finish, &finished).error_code();
  v1::WatchRunRequest watch;
  watch.set_name("r");
  const auto watch_context = c();
  auto reader = s.WatchRun(watch_context.get(), watch);
  v1::WatchRunResponse update;
  while (reader->Read(&update)) {
  }
  codes["WatchRun"] = reader->Finish().error_code();
  return codes;
}

TEST_F(ServiceTest, TokenIsRequiredOnEveryCall) {
  ServerOptions options;
  options.token = "s3cret";
  start(options, true);
  auto s = stub();
  const int methods = google::protobuf::DescriptorPool::generated_pool()
                          ->FindServiceByName(v1::Coordinator::service_full_name())
                          ->method_count();
  for (const std::string& token : {std::string(), std::string("wrong")}) {
    const auto codes = call_every_rpc(*s, token);
    EXPECT_EQ(static_cast<int>(codes.size()), methods) << "a method is missing here";
    for (const auto& [method, code] : codes) {
      EXPECT_EQ(code, grpc::StatusCode::UNAUTHENTICATED) << method << " with token '" << token << "'";
    }
  }
  for (const auto& [method, code] : call_every_rpc(*s, "s3cret")) {
    EXPECT_EQ(code, grpc::StatusCode::OK) << method;
  }
  const std::string metrics = testing::http_get(server_->metrics_port(), "/metrics");
  EXPECT_NE(metrics.find("code=\"UNAUTHENTICATED\",method=\"ListRuns\"} 2"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("code=\"UNAUTHENTICATED\",method=\"WatchRun\"} 2"), std::string::npos) << metrics;
}

// grpc.health.v1.Health/Check with an empty request (the whole server): the reply is status=SERVING (1).
TEST_F(ServiceTest, ServesStandardHealthChecks) {
  ServerOptions options;
  options.token = "s3cret";  // probes carry no token; health stays open
  start(options);
  auto channel = make_channel(testing::channel_to(testing::loopback(server_->port())));
  grpc::ClientContext c;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
  grpc::Slice empty("");
  request = grpc::ByteBuffer(&empty, 1);
  const grpc::internal::RpcMethod method("/grpc.health.v1.Health/Check", grpc::internal::RpcMethod::NORMAL_RPC);
  const grpc::Status status = grpc::internal::BlockingUnaryCall(channel.get(), method, &c, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));
}

// grpc.reflection.v1alpha list_services ("*") on the server at PORT with TOKEN: the reply's bytes (empty when none
// came) and the call's status.
std::pair<std::string, grpc::Status> list_services(int port, const std::string& token = "") {
  auto channel = make_channel(testing::channel_to(testing::loopback(port)));
  grpc::ClientContext c;
  add_token(c, token);
  const grpc::internal::RpcMethod method("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                         grpc::internal::RpcMethod::BIDI_STREAMING);
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(channel.get(), method, &c));
  grpc::Slice request(std::string("\x3a\x01*", 3));  // field 7 (list_services) = "*"
  stream->Write(grpc::ByteBuffer(&request, 1));
  stream->WritesDone();
  std::string bytes;
  grpc::ByteBuffer reply;
  while (stream->Read(&reply)) {
    std::vector<grpc::Slice> slices;
    if (!reply.Dump(&slices).ok()) continue;
    for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return {bytes, stream->Finish()};
}

// The reply names the coordinator's service.
TEST_F(ServiceTest, ServesReflection) {
  start();
  const auto [bytes, status] = list_services(server_->port());
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_NE(bytes.find("ijepa.coordinator.v1.Coordinator"), std::string::npos);
  EXPECT_NE(bytes.find("grpc.health.v1.Health"), std::string::npos);
}

// Reflection cannot check the token, so a server that requires one does not offer it, to anyone.
TEST_F(ServiceTest, NoReflectionWhenATokenIsRequired) {
  ServerOptions options;
  options.token = "s3cret";
  start(options);
  for (const std::string& token : {std::string(), std::string("s3cret")}) {
    const auto [bytes, status] = list_services(server_->port(), token);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED) << token;
    EXPECT_EQ(bytes.find("ijepa.coordinator.v1.Coordinator"), std::string::npos) << token;
  }
}

class TlsTest : public ServiceTest {
 protected:
  void SetUp() override { testing::make_test_certificates(certs_); }
  ServerOptions tls_options(bool mutual) {
    ServerOptions options;
    options.tls_cert = certs_ / "server.pem";
    options.tls_key = certs_ / "server.key";
    if (mutual) options.tls_client_ca = certs_ / "ca.pem";
    return options;
  }
  bool can_list(ChannelOptions options) {
    options.address = "localhost:" + std::to_string(server_->port());
    v1::ListRunsResponse list;
    return stub(options)->ListRuns(context().get(), v1::ListRunsRequest(), &list).ok();
  }
  testing::TempDir certs_;
};

TEST_F(TlsTest, ServerCertificateOnly) {
  start(tls_options(false));
  EXPECT_TRUE(can_list(testing::channel_to("", certs_ / "ca.pem")));
  EXPECT_FALSE(can_list({}));  // plaintext against TLS
}

TEST_F(TlsTest, MutualTlsNeedsAClientCertificate) {
  start(tls_options(true));
  EXPECT_TRUE(can_list(testing::channel_to("", certs_ / "ca.pem", certs_ / "client.pem", certs_ / "client.key")));
  EXPECT_FALSE(can_list(testing::channel_to("", certs_ / "ca.pem")));
  EXPECT_FALSE(can_list({}));
}

TEST_F(TlsTest, MissingOrMismatchedFilesAreInputErrors) {
  ServerOptions options = tls_options(false);
  options.tls_key.clear();
  EXPECT_THROW(start(options), common::InputError);
  options = tls_options(false);
  options.tls_cert = certs_ / "missing.pem";
  EXPECT_THROW(start(options), common::InputError);
  EXPECT_THROW(make_channel(testing::channel_to("localhost:1", certs_ / "missing.pem")), common::InputError);
  EXPECT_THROW(make_channel(testing::channel_to("localhost:1", "", certs_ / "client.pem", certs_ / "client.key")),
               common::InputError);
}

// Files that exist but hold the wrong thing are refused up front naming the flag and the file: before, gRPC
// refused them when the server started, and the one error shown blamed --listen (on the client side, every call
// failed UNAVAILABLE: "empty address list").
TEST_F(TlsTest, GarbageOrMismatchedPemFilesAreInputErrorsNamingThem) {
  testing::write_file(certs_ / "garbage.pem", "not a certificate\n");
  const auto refused = [&](ServerOptions options, const std::string& expected) {
    try {
      start(options);
      ADD_FAILURE() << "started with " << expected;
    } catch (const common::InputError& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  };
  ServerOptions options = tls_options(false);
  options.tls_cert = certs_ / "garbage.pem";
  refused(options, "--tls-cert '" + options.tls_cert + "': holds no PEM certificate");
  options = tls_options(false);
  options.tls_key = certs_ / "garbage.pem";
  refused(options, "--tls-key '" + options.tls_key + "': holds no unencrypted PEM private key");
  options = tls_options(false);
  options.tls_key = certs_ / "client.key";
  refused(options, "--tls-key '" + options.tls_key + "' is not the key of the certificate in --tls-cert '" +
                       options.tls_cert + "'");
  options = tls_options(true);
  options.tls_client_ca = certs_ / "garbage.pem";
  refused(options, "--tls-client-ca '" + options.tls_client_ca + "': holds no PEM certificate");

  EXPECT_THROW(make_channel(testing::channel_to("localhost:1", certs_ / "garbage.pem")), common::InputError);
  EXPECT_THROW(
      make_channel(testing::channel_to("localhost:1", certs_ / "ca.pem", certs_ / "client.pem", certs_ / "server.key")),
      common::InputError);
  EXPECT_NO_THROW(make_channel(
      testing::channel_to("localhost:1", certs_ / "ca.pem", certs_ / "client.pem", certs_ / "client.key")));
}

TEST_F(ServiceTest, ASecondServerOnTheSameDatabaseIsRefusedUntilTheFirstEnds) {
  start();
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.metrics_listen = "";
  options.db_path = dir_ / "c.db";
  try {
    CoordinatorServer second(options);
    ADD_FAILURE() << "a second coordinator opened the database";
  } catch (const common::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("database '" + options.db_path + "' is in use by another coordinator"),
              std::string::npos)
        << e.what();
  }
  // Nor through a symlink to it: each would overwrite the other's records.
  std::filesystem::create_symlink(options.db_path, dir_ / "link.db");
  options.db_path = dir_ / "link.db";
  EXPECT_THROW(CoordinatorServer{options}, common::InputError);
  server_.reset();
  EXPECT_NO_THROW(CoordinatorServer{options});
}

TEST_F(ServiceTest, BadServerOptionsAreInputErrors) {
  ServerOptions options;
  options.heartbeat_timeout_s = 0;
  EXPECT_THROW(start(options), common::InputError);
  options = {};
  options.db_path = "/nonexistent-dir/x/c.db";
  EXPECT_THROW(CoordinatorServer{options}, common::InputError);
  options.listen = "127.0.0.1:0";
  options.metrics_listen = "";
  options.db_path = "";  // SQLite's temporary database, gone at exit
  EXPECT_THROW(CoordinatorServer{options}, common::InputError);
  start();
  options = {};
  options.listen = testing::loopback(server_->port());  // taken
  options.metrics_listen = "";
  options.db_path = dir_ / "other.db";
  EXPECT_THROW(CoordinatorServer{options}, common::InputError);
}

}  // namespace
}  // namespace ijepa::coord
