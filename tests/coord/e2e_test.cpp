// End to end with the built binaries on loopback ports: a client reports a run to ijepa-coordinator and
// ijepa-ctl shows, watches and stops it; the coordinator killed and restarted keeps the run while the client
// carries on; a silent worker is declared lost; a run whose workers are all lost fails and leaves /metrics, and
// a resumed job of another world size takes it over; token and mutual TLS are enforced; bad flags and a database
// in use exit 2; a real Prometheus scrapes the run's step; and a short burst of the load generator sees no errors.
#include <gtest/gtest.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "coord/client.h"
#include "coord_test_util.h"
#include "coordinator_process.h"

namespace ijepa::coord {
namespace {

using testing::bin_path;
using testing::Coordinator;
using testing::ctl;
using testing::loopback;
using testing::run_process;
using testing::show_json;
using testing::wait_until;

common::CoordinatorConfig client_config(const std::string& address, const std::string& token = "") {
  common::CoordinatorConfig config;
  config.address = address;
  config.token = token;
  config.heartbeat_s = 0.1;
  return config;
}

ClientOptions quick() {
  ClientOptions options;
  options.backoff_initial = std::chrono::milliseconds(50);
  options.backoff_max = std::chrono::milliseconds(500);
  return options;
}

metrics::StepReport step(int64_t n) {
  metrics::StepReport r;
  r.step = n;
  r.epoch = n / 10;
  r.loss = 2.0 / static_cast<double>(n);
  r.images_per_second = 500;
  r.step_seconds = 0.05;
  r.images = 32;
  return r;
}

TEST(CoordinatorEndToEnd, CtlShowsAFinishedRunWithItsStepCount) {
  testing::TempDir dir;
  Coordinator coordinator(dir);
  {
    CoordinatorClient client(client_config(coordinator.address()), {"e2e-flow", 0, 1, "meta:\n  seed: 0\n", ""},
                             quick());
    for (int i = 1; i <= 25; ++i) client.report_step(step(i));
    client.report_event(EventType::kEvaluationResult, "knn top-1", 25, 0.42);
    client.finish(Outcome::kFinished);
    ASSERT_TRUE(client.flush(std::chrono::seconds(30))) << client.stats().last_error;
  }
  const auto runs = run_process(ctl(coordinator.address(), {"runs", "--json"}), dir);
  ASSERT_EQ(runs.code, 0) << runs.err;
  const nlohmann::json listed = nlohmann::json::parse(runs.out);
  ASSERT_EQ(listed["runs"].size(), 1u);
  EXPECT_EQ(listed["runs"][0]["name"], "e2e-flow");
  EXPECT_EQ(listed["runs"][0]["state"], "finished");
  EXPECT_EQ(listed["runs"][0]["step"], 25);

  EXPECT_EQ(listed["total"], 1);

  const auto table = run_process(ctl(coordinator.address(), {"runs"}), dir);
  ASSERT_EQ(table.code, 0);
  EXPECT_NE(table.out.find("e2e-flow"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("finished"), std::string::npos);
  EXPECT_EQ(table.out.find("--limit"), std::string::npos) << "every run is shown: " << table.out;
  EXPECT_EQ(run_process(ctl(coordinator.address(), {"runs", "--limit", "0"}), dir).code, 2);

  const auto shown = run_process(ctl(coordinator.address(), {"show", "e2e-flow"}), dir);
  ASSERT_EQ(shown.code, 0);
  EXPECT_NE(shown.out.find("evaluation_result"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("25 (epoch 2)"), std::string::npos) << shown.out;
  const nlohmann::json detail = show_json(coordinator.address(), "e2e-flow", dir);
  EXPECT_EQ(detail["workers"][0]["state"], "finished");

  const auto missing = run_process(ctl(coordinator.address(), {"show", "nope"}), dir);
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("NOT_FOUND"), std::string::npos);
  EXPECT_TRUE(missing.out.empty());
}

TEST(CoordinatorEndToEnd, CtlWatchesAndStopsARun) {
  testing::TempDir dir;
  Coordinator coordinator(dir);
  CoordinatorClient client(client_config(coordinator.address()), {"e2e-stop", 0, 1, "", ""}, quick());
  client.report_step(step(1));
  ASSERT_TRUE(wait_until([&] { return client.stats().steps_sent == 1; }));
  testing::ChildProcess watch(ctl(coordinator.address(), {"watch", "e2e-stop", "--json"}), dir / "watch.log");

  const auto stop = run_process(ctl(coordinator.address(), {"stop", "e2e-stop", "--reason", "test over"}), dir);
  ASSERT_EQ(stop.code, 0) << stop.err;
  ASSERT_TRUE(wait_until([&] { return client.stop_requested(); }));
  EXPECT_EQ(client.stop_reason(), "test over");
  client.finish(Outcome::kStopped);
  ASSERT_TRUE(client.flush(std::chrono::seconds(30)));

  EXPECT_EQ(watch.wait(), 0);
  const std::string watched = testing::read_file(dir / "watch.log");
  EXPECT_NE(watched.find("\"state\":\"stopped\""), std::string::npos) << watched;
  EXPECT_NE(watched.find("stop_requested"), std::string::npos);
  const auto again = run_process(ctl(coordinator.address(), {"stop", "e2e-stop"}), dir);
  EXPECT_EQ(again.code, 1);  // already ended
}

// ijepa_coordinator_watch_streams on COORDINATOR's /metrics is N.
bool open_watch_streams(const Coordinator& coordinator, int n) {
  return testing::http_get(coordinator.metrics_port(), "/metrics")
             .find("ijepa_coordinator_watch_streams " + std::to_string(n) + "\n") != std::string::npos;
}

// A watch beyond --max-watch-streams is one clear line and exit 1; the slot comes back when a watcher leaves.
TEST(CoordinatorEndToEnd, CtlWatchBeyondTheStreamLimitSaysSo) {
  testing::TempDir dir;
  Coordinator coordinator(dir, {"--max-watch-streams", "1"});
  CoordinatorClient client(client_config(coordinator.address()), {"e2e-limit", 0, 1, "", ""}, quick());
  ASSERT_TRUE(wait_until([&] { return client.stats().registered; }));
  const auto open_streams = [&](int n) { return open_watch_streams(coordinator, n); };
  auto first =
      std::make_unique<testing::ChildProcess>(ctl(coordinator.address(), {"watch", "e2e-limit"}), dir / "first.log");
  ASSERT_TRUE(wait_until([&] { return open_streams(1); }));

  const auto refused = run_process(ctl(coordinator.address(), {"watch", "e2e-limit"}), dir);
  EXPECT_EQ(refused.code, 1);
  EXPECT_TRUE(refused.out.empty()) << refused.out;
  EXPECT_EQ(refused.err.rfind("ijepa-ctl: coordinator " + coordinator.address() + ": RESOURCE_EXHAUSTED: ", 0), 0u)
      << refused.err;
  EXPECT_NE(refused.err.find("--max-watch-streams 1"), std::string::npos) << refused.err;
  EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;

  first.reset();  // SIGKILL: the connection drops without a goodbye
  ASSERT_TRUE(wait_until([&] { return open_streams(0); })) << coordinator.log();
  testing::ChildProcess second(ctl(coordinator.address(), {"watch", "e2e-limit"}), dir / "second.log");
  ASSERT_TRUE(wait_until([&] { return open_streams(1); }));
  client.finish(Outcome::kFinished);
  ASSERT_TRUE(client.flush(std::chrono::seconds(30)));
  EXPECT_EQ(second.wait(), 0) << testing::read_file(dir / "second.log");
}

// A watch never waits for ever: not on a server that takes the connection and never answers (--timeout; gRPC
// alone gave up after 20 s), nor on a coordinator that stops answering mid-stream (its pings go unanswered).
TEST(CoordinatorEndToEnd, CtlWatchGivesUpOnACoordinatorThatDoesNotAnswer) {
  testing::TempDir dir;
  const testing::LoopbackSocket silent(/*listening=*/true);
  auto start = std::chrono::steady_clock::now();
  const auto unanswered = run_process(ctl(silent.address(), {"--timeout", "1", "watch", "r"}), dir);
  EXPECT_EQ(unanswered.code, 1);
  EXPECT_NE(unanswered.err.find("DEADLINE_EXCEEDED: no answer within --timeout"), std::string::npos) << unanswered.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8));

  Coordinator coordinator(dir);
  CoordinatorClient client(client_config(coordinator.address()), {"e2e-hang", 0, 1, "", ""}, quick());
  ASSERT_TRUE(wait_until([&] { return client.stats().registered; }));
  testing::ChildProcess watch(ctl(coordinator.address(), {"--timeout", "1", "watch", "e2e-hang"}), dir / "w.log");
  ASSERT_TRUE(wait_until([&] { return open_watch_streams(coordinator, 1); }));
  coordinator.process().signal(SIGSTOP);
  start = std::chrono::steady_clock::now();
  const int code = watch.wait();  // a ping within 10 s, unanswered for 1 s
  coordinator.process().signal(SIGCONT);
  EXPECT_EQ(code, 1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(25));
  EXPECT_NE(testing::read_file(dir / "w.log").find("UNAVAILABLE"), std::string::npos)
      << testing::read_file(dir / "w.log");
}

// A watcher that stops answering (its host or network gone; here a stopped process) is dropped after the
// coordinator's --keepalive ping goes unanswered, and its stream slot is free again.
TEST(CoordinatorEndToEnd, AWatcherThatStopsAnsweringFreesItsStream) {
  testing::TempDir dir;
  Coordinator coordinator(dir, {"--keepalive", "1", "--max-watch-streams", "1"});
  CoordinatorClient client(client_config(coordinator.address()), {"e2e-gone", 0, 1, "", ""}, quick());
  ASSERT_TRUE(wait_until([&] { return client.stats().registered; }));
  testing::ChildProcess gone(ctl(coordinator.address(), {"watch", "e2e-gone"}), dir / "gone.log");
  ASSERT_TRUE(wait_until([&] { return open_watch_streams(coordinator, 1); }));
  gone.signal(SIGSTOP);
  ASSERT_TRUE(wait_until([&] { return open_watch_streams(coordinator, 0); }, std::chrono::seconds(20)))
      << coordinator.log();
  testing::ChildProcess next(ctl(coordinator.address(), {"watch", "e2e-gone"}), dir / "next.log");
  ASSERT_TRUE(wait_until([&] { return open_watch_streams(coordinator, 1); })) << testing::read_file(dir / "next.log");
}

TEST(CoordinatorEndToEnd, RestartKeepsTheRunAndTheClientCarriesOn) {
  testing::TempDir dir;
  auto coordinator = std::make_unique<Coordinator>(dir);
  const int port = coordinator->port();
  CoordinatorClient client(client_config(coordinator->address()), {"e2e-restart", 0, 1, "", ""}, quick());
  for (int i = 1; i <= 10; ++i) client.report_step(step(i));
  ASSERT_TRUE(wait_until([&] { return show_json(loopback(port), "e2e-restart", dir)["run"]["step"] == 10; }));
  const double created = show_json(loopback(port), "e2e-restart", dir)["run"]["created_time"];

  coordinator->process().signal(SIGKILL);
  coordinator->process().wait();
  for (int i = 11; i <= 20; ++i) client.report_step(step(i));  // queued while the coordinator is gone
  coordinator = std::make_unique<Coordinator>(dir, std::vector<std::string>{}, port);

  ASSERT_TRUE(wait_until([&] { return show_json(loopback(port), "e2e-restart", dir)["run"]["step"] == 20; }))
      << coordinator->log();
  const nlohmann::json detail = show_json(loopback(port), "e2e-restart", dir);
  EXPECT_EQ(detail["run"]["created_time"], created);
  EXPECT_EQ(detail["run"]["state"], "running");
  EXPECT_EQ(client.stats().steps_dropped, 0u);
  client.finish(Outcome::kFinished);
  ASSERT_TRUE(client.flush(std::chrono::seconds(30)));
  EXPECT_EQ(show_json(loopback(port), "e2e-restart", dir)["run"]["state"], "finished");
}

TEST(CoordinatorEndToEnd, SilentWorkerIsLostAndItsRunStalls) {
  testing::TempDir dir;
  Coordinator coordinator(dir, {"--heartbeat-timeout", "1"});
  {
    CoordinatorClient client(client_config(coordinator.address()), {"e2e-lost", 0, 1, "", ""}, quick());
    ASSERT_TRUE(wait_until([&] { return client.stats().registered; }));
  }  // the rank vanishes without finishing
  ASSERT_TRUE(
      wait_until([&] { return show_json(coordinator.address(), "e2e-lost", dir)["run"]["state"] == "stalled"; }));
  const nlohmann::json detail = show_json(coordinator.address(), "e2e-lost", dir);
  EXPECT_EQ(detail["workers"][0]["state"], "lost");
  EXPECT_NE(detail["run"]["reason"].get<std::string>().find("rank 0 lost"), std::string::npos);
  bool saw_lost = false;
  for (const auto& e : detail["events"]) saw_lost |= e["type"] == "worker_lost";
  EXPECT_TRUE(saw_lost);
  const std::string metrics = testing::http_get(coordinator.metrics_port(), "/metrics");
  EXPECT_NE(metrics.find("ijepa_coordinator_workers{state=\"lost\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("ijepa_coordinator_runs{state=\"stalled\"} 1"), std::string::npos);
}

bool has_event(const nlohmann::json& detail, const std::string& type, const std::string& text) {
  for (const auto& e : detail["events"]) {
    if (e["type"] == type && e["message"].get<std::string>().find(text) != std::string::npos) return true;
  }
  return false;
}

TEST(CoordinatorEndToEnd, RunWhoseWorkersAreAllLostFailsAndLeavesTheMetrics) {
  testing::TempDir dir;
  Coordinator coordinator(dir, {"--heartbeat-timeout", "1", "--fail-lost-runs-after", "1", "--retention", "1"});
  {
    CoordinatorClient client(client_config(coordinator.address()), {"e2e-abandoned", 0, 1, "", ""}, quick());
    client.report_step(step(5));
    ASSERT_TRUE(wait_until([&] { return client.stats().steps_sent == 1; }));
  }  // the rank vanishes without finishing
  ASSERT_TRUE(wait_until([&] {
    return show_json(coordinator.address(), "e2e-abandoned", dir)["run"]["state"] == "failed";
  })) << coordinator.log();
  const nlohmann::json detail = show_json(coordinator.address(), "e2e-abandoned", dir);
  const std::string reason = detail["run"]["reason"];
  EXPECT_EQ(reason.rfind("all workers lost: no heartbeat since ", 0), 0u) << reason;
  EXPECT_NE(reason.find("none came back within 1.0 s"), std::string::npos) << reason;
  EXPECT_TRUE(has_event(detail, "run_ended", "failed: all workers lost")) << detail.dump();
  const auto active = run_process(ctl(coordinator.address(), {"runs", "--json"}), dir);
  ASSERT_EQ(active.code, 0) << active.err;
  EXPECT_EQ(nlohmann::json::parse(active.out)["runs"][0]["state"], "failed");

  ASSERT_TRUE(wait_until([&] {
    return testing::http_get(coordinator.metrics_port(), "/metrics").find("run=\"e2e-abandoned\"") == std::string::npos;
  })) << testing::http_get(coordinator.metrics_port(), "/metrics");
  EXPECT_NE(
      testing::http_get(coordinator.metrics_port(), "/metrics").find("ijepa_coordinator_runs{state=\"failed\"} 1"),
      std::string::npos);
}

TEST(CoordinatorEndToEnd, ResumedJobOfAnotherWorldSizeTakesOverItsLostRun) {
  testing::TempDir dir;
  Coordinator coordinator(dir, {"--heartbeat-timeout", "1"});  // the default grace period: minutes
  {
    CoordinatorClient crashed(client_config(coordinator.address()), {"e2e-resume", 0, 1, "", ""}, quick());
    crashed.report_step(step(5));
    ASSERT_TRUE(wait_until([&] { return crashed.stats().steps_sent == 1; }));
  }
  ASSERT_TRUE(
      wait_until([&] { return show_json(coordinator.address(), "e2e-resume", dir)["run"]["state"] == "stalled"; }));

  CoordinatorClient rank1(client_config(coordinator.address()), {"e2e-resume", 1, 2, "", ""}, quick());
  CoordinatorClient rank0(client_config(coordinator.address()), {"e2e-resume", 0, 2, "", ""}, quick());
  rank0.report_step(step(6));
  rank1.report_step(step(6));
  ASSERT_TRUE(wait_until([&] { return rank0.stats().steps_sent == 1 && rank1.stats().steps_sent == 1; }))
      << rank0.stats().last_error << " / " << rank1.stats().last_error;
  const nlohmann::json detail = show_json(coordinator.address(), "e2e-resume", dir);
  EXPECT_EQ(detail["run"]["state"], "running");
  EXPECT_EQ(detail["run"]["world_size"], 2);
  EXPECT_TRUE(has_event(detail, "run_ended", "taken over by a job with world size 2")) << detail.dump();
  EXPECT_TRUE(has_event(detail, "run_created", "reopened (was failed) with world size 2")) << detail.dump();
}

TEST(CoordinatorEndToEnd, TokenIsEnforced) {
  testing::TempDir dir;
  Coordinator coordinator(dir, {"--token", "s3cret"});
  const auto anonymous = run_process(ctl(coordinator.address(), {"runs"}), dir);
  EXPECT_EQ(anonymous.code, 1);
  EXPECT_NE(anonymous.err.find("UNAUTHENTICATED"), std::string::npos) << anonymous.err;
  EXPECT_EQ(run_process(ctl(coordinator.address(), {"--token", "wrong", "runs"}), dir).code, 1);
  EXPECT_EQ(run_process(ctl(coordinator.address(), {"--token", "s3cret", "runs"}), dir).code, 0);
  setenv("IJEPA_COORDINATOR_TOKEN", "s3cret", 1);
  const auto from_env = run_process(ctl(coordinator.address(), {"runs", "--json"}), dir);
  unsetenv("IJEPA_COORDINATOR_TOKEN");
  EXPECT_EQ(from_env.code, 0);

  CoordinatorClient client(client_config(coordinator.address(), "s3cret"), {"e2e-token", 0, 1, "", ""}, quick());
  client.report_step(step(3));
  ASSERT_TRUE(wait_until([&] { return client.stats().steps_sent == 1; })) << client.stats().last_error;
}

TEST(CoordinatorEndToEnd, MutualTlsIsEnforced) {
  testing::TempDir dir;
  testing::make_test_certificates(dir);
  Coordinator coordinator(
      dir, {"--tls-cert", dir / "server.pem", "--tls-key", dir / "server.key", "--tls-client-ca", dir / "ca.pem"});
  const std::string address = "localhost:" + std::to_string(coordinator.port());
  const std::vector<std::string> ca{"--tls-ca", dir / "ca.pem"};
  const std::vector<std::string> cert{"--tls-cert", dir / "client.pem", "--tls-key", dir / "client.key"};
  auto with = [&](std::vector<std::string> args, const std::vector<std::string>& more) {
    args.insert(args.end(), more.begin(), more.end());
    return args;
  };
  EXPECT_EQ(run_process(ctl(address, with(with(ca, cert), {"runs"})), dir).code, 0);
  EXPECT_EQ(run_process(ctl(address, with(ca, {"runs", "--timeout", "3"})), dir).code, 1);
  EXPECT_EQ(run_process(ctl(address, {"runs", "--timeout", "3"}), dir).code, 1);

  common::CoordinatorConfig config = client_config(address);
  config.tls_ca = dir / "ca.pem";
  config.tls_cert = dir / "client.pem";
  config.tls_key = dir / "client.key";
  CoordinatorClient client(config, {"e2e-tls", 0, 1, "", ""}, quick());
  client.report_step(step(1));
  ASSERT_TRUE(wait_until([&] { return client.stats().steps_sent == 1; })) << client.stats().last_error;
}

TEST(CoordinatorEndToEnd, BadFlagsExitWithCodeTwo) {
  testing::TempDir dir;
  const std::string coordinator = bin_path("ijepa-coordinator");
  EXPECT_EQ(run_process({coordinator, "--listen", "127.0.0.1:0"}, dir).code, 2);  // no --db
  const auto bad_listen = run_process({coordinator, "--db", dir / "c.db", "--listen", "nohost"}, dir);
  EXPECT_EQ(bad_listen.code, 2);
  EXPECT_NE(bad_listen.err.find("--listen"), std::string::npos) << bad_listen.err;
  const auto bad_tls = run_process({coordinator, "--db", dir / "c.db", "--listen", "127.0.0.1:0", "--metrics-listen",
                                    "", "--tls-cert", dir / "none.pem", "--tls-key", dir / "none.key"},
                                   dir);
  EXPECT_EQ(bad_tls.code, 2);
  EXPECT_NE(bad_tls.err.find("none."), std::string::npos) << bad_tls.err;
  EXPECT_EQ(run_process({coordinator, "--db", dir / "c.db", "--heartbeat-timeout", "-1"}, dir).code, 2);
  const auto bad_grace = run_process({coordinator, "--db", dir / "c.db", "--fail-lost-runs-after=-5"}, dir);
  EXPECT_EQ(bad_grace.code, 2);
  EXPECT_NE(bad_grace.err.find("--fail-lost-runs-after must be >= 0 seconds"), std::string::npos) << bad_grace.err;
  const auto not_a_number = run_process({coordinator, "--db", dir / "c.db", "--fail-lost-runs-after", "soon"}, dir);
  EXPECT_EQ(not_a_number.code, 2);
  EXPECT_NE(not_a_number.err.find("--fail-lost-runs-after"), std::string::npos) << not_a_number.err;
  const auto no_watches = run_process({coordinator, "--db", dir / "c.db", "--max-watch-streams", "0"}, dir);
  EXPECT_EQ(no_watches.code, 2);
  EXPECT_NE(no_watches.err.find("--max-watch-streams must be >= 1"), std::string::npos) << no_watches.err;
  for (const char* timeout : {"0", "-1", "nan", "1e300"}) {
    const auto bad_timeout = run_process(ctl("127.0.0.1:1", {"--timeout", timeout, "runs"}), dir);
    EXPECT_EQ(bad_timeout.code, 2) << timeout;
    EXPECT_NE(bad_timeout.err.find("--timeout must be"), std::string::npos) << bad_timeout.err;
  }
  EXPECT_EQ(run_process({bin_path("ijepa-ctl"), "frobnicate"}, dir).code, 2);
  EXPECT_EQ(run_process({bin_path("ijepa-ctl"), "show"}, dir).code, 2);
}

// Two coordinators on one database would overwrite each other's records: the second exits 2 naming the file.
TEST(CoordinatorEndToEnd, ASecondCoordinatorOnTheSameDatabaseExitsWithCodeTwo) {
  testing::TempDir dir;
  Coordinator first(dir);
  const auto second = run_process(
      {bin_path("ijepa-coordinator"), "--db", dir / "c.db", "--listen", "127.0.0.1:0", "--metrics-listen", ""}, dir);
  EXPECT_EQ(second.code, 2);
  const std::string expected = "database '" + (dir / "c.db") + "' is in use by another coordinator (pid " +
                               std::to_string(first.process().pid()) + ")";
  EXPECT_NE(second.err.find(expected), std::string::npos) << second.err;
}

// A token gRPC cannot carry (a line break, a non-ASCII byte) is one line naming the flag and exit 2, never a
// gRPC abort or a coordinator that refuses every call.
TEST(CoordinatorEndToEnd, BadTokensExitWithCodeTwoNamingTheFlag) {
  testing::TempDir dir;
  // --heartbeat-timeout is bad too, so that a coordinator accepting the token still exits rather than serves.
  const auto coordinator = run_process({bin_path("ijepa-coordinator"), "--db", dir / "c.db", "--listen", "127.0.0.1:0",
                                        "--metrics-listen", "", "--token", "s3cret\n", "--heartbeat-timeout", "-1"},
                                       dir);
  EXPECT_EQ(coordinator.code, 2);
  EXPECT_NE(coordinator.err.find("--token: must be printable ASCII"), std::string::npos) << coordinator.err;
  const auto ctl_flag = run_process(ctl("127.0.0.1:1", {"--token", "t\xc3\xb6ken", "runs"}), dir);
  EXPECT_EQ(ctl_flag.code, 2) << ctl_flag.err;
  EXPECT_EQ(ctl_flag.err.rfind("ijepa-ctl: --token: must be printable ASCII", 0), 0u) << ctl_flag.err;
  EXPECT_EQ(std::count(ctl_flag.err.begin(), ctl_flag.err.end(), '\n'), 1) << ctl_flag.err;
  setenv("IJEPA_COORDINATOR_TOKEN", "s3cret\n", 1);
  const auto ctl_variable = run_process(ctl("127.0.0.1:1", {"runs"}), dir);
  unsetenv("IJEPA_COORDINATOR_TOKEN");
  EXPECT_EQ(ctl_variable.code, 2) << ctl_variable.err;
}

TEST(CoordinatorEndToEnd, PrometheusScrapesTheRunStep) {
  if (access("/usr/bin/prometheus", X_OK) != 0) GTEST_SKIP() << "Debian's prometheus package is not installed";
  testing::TempDir dir;
  Coordinator coordinator(dir);
  CoordinatorClient client(client_config(coordinator.address()), {"prom-run", 0, 1, "", ""}, quick());
  client.report_step(step(42));
  ASSERT_TRUE(wait_until([&] { return client.stats().steps_sent == 1; }));

  const int prometheus_port = testing::free_port();
  testing::write_file(dir / "prometheus.yml",
                      "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                      "scrape_configs:\n  - job_name: ijepa-coordinator\n    static_configs:\n"
                      "      - targets: ['" +
                          loopback(coordinator.metrics_port()) + "']\n");
  testing::ChildProcess prometheus(
      {"/usr/bin/prometheus", "--config.file=" + (dir / "prometheus.yml"), "--storage.tsdb.path=" + (dir / "tsdb"),
       "--web.listen-address=" + loopback(prometheus_port)},
      dir / "prometheus.log");
  const std::string query = "/api/v1/query?query=ijepa_train_step%7Brun%3D%22prom-run%22%7D";
  std::string value;
  const bool scraped = wait_until(
      [&] {
        const std::string body = testing::http_get(prometheus_port, query);
        if (body.empty()) return false;
        const nlohmann::json reply = nlohmann::json::parse(body, nullptr, false);
        if (reply.is_discarded() || reply["data"]["result"].empty()) return false;
        value = reply["data"]["result"][0]["value"][1];
        return true;
      },
      std::chrono::seconds(60));
  ASSERT_TRUE(scraped) << testing::read_file(dir / "prometheus.log");
  EXPECT_EQ(value, "42");
}

TEST(CoordinatorEndToEnd, LoadGeneratorShortRunHasNoErrors) {
  testing::TempDir dir;
  Coordinator coordinator(dir);
  const auto load =
      run_process({bin_path("ijepa-coord-load"), "--coordinator", coordinator.address(), "--workers", "40",
                   "--duration", "3", "--rate", "2", "--pid", std::to_string(coordinator.process().pid()), "--json"},
                  dir);
  ASSERT_EQ(load.code, 0) << load.out << load.err;
  const nlohmann::json report = nlohmann::json::parse(load.out);
  EXPECT_EQ(report["errors"], 0);
  EXPECT_EQ(report["setup_errors"], 0);
  EXPECT_GT(report["requests"].get<int>(), 100);
  EXPECT_GT(report["coordinator"]["peak_rss_bytes"].get<int64_t>(), 0);
}

}  // namespace
}  // namespace ijepa::coord
