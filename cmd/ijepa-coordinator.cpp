// ijepa-coordinator: tracks training runs over gRPC, keeps them in SQLite across restarts and exports
// Prometheus metrics. Runs until SIGTERM or SIGINT, then shuts down cleanly (exit 0).
#include <CLI/CLI.hpp>
#include <chrono>
#include <thread>

#include "common/errors.h"
#include "common/log.h"
#include "common/logging.h"
#include "common/signals.h"
#include "coord/server.h"

int main(int argc, char** argv) {
  using ijepa::coord::ServerOptions;
  ServerOptions o;
  CLI::App app{"ijepa-coordinator: run registry (gRPC), SQLite persistence and Prometheus /metrics"};
  app.add_option("--listen", o.listen, "gRPC address host:port")->capture_default_str();
  app.add_option("--db", o.db_path, "SQLite database file (created when missing; one coordinator per file)")
      ->required();
  app.add_option("--metrics-listen", o.metrics_listen, "/metrics address host:port; empty: no /metrics")
      ->capture_default_str();
  app.add_option("--heartbeat-timeout", o.heartbeat_timeout_s, "seconds of silence before a worker is lost")
      ->capture_default_str();
  app.add_option("--retention", o.retention_s, "seconds an ended run's metric series stay in /metrics")
      ->capture_default_str();
  app.add_option(
         "--fail-lost-runs-after", o.fail_lost_runs_after_s,
         "seconds a run may be without a live worker (all lost, or none for the heartbeat timeout) before it fails")
      ->capture_default_str();
  app.add_option("--forget-after", o.forget_after_s,
                 "seconds after its end that a run leaves the database with its workers and events (0: never)")
      ->capture_default_str();
  app.add_option("--token", o.token, "bearer token every RPC must carry (or $IJEPA_COORDINATOR_TOKEN)")
      ->envname("IJEPA_COORDINATOR_TOKEN");
  app.add_option("--tls-cert", o.tls_cert, "server certificate (PEM); with --tls-key enables TLS");
  app.add_option("--tls-key", o.tls_key, "server private key (PEM)");
  app.add_option("--tls-client-ca", o.tls_client_ca, "CA (PEM) that client certificates must chain to: mutual TLS");
  app.add_option("--max-message-bytes", o.max_message_bytes, "largest request or reply")->capture_default_str();
  app.add_option("--keepalive", o.keepalive_s,
                 "seconds of quiet after which a client is pinged, and dropped (freeing its watch stream) when it does "
                 "not answer within as long")
      ->capture_default_str();
  app.add_option("--max-watch-streams", o.max_watch_streams,
                 "WatchRun streams (ijepa-ctl watch) open at once; more are refused with RESOURCE_EXHAUSTED")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  ijepa::common::init_logging(0);
  ijepa::common::install_stop_handlers();
  try {
    ijepa::coord::CoordinatorServer server(o);
    ijepa::log::info(ijepa::log::str("ijepa-coordinator: gRPC on port ", server.port(), " (", o.listen,
                                     "), /metrics on ", o.metrics_listen.empty() ? "none" : o.metrics_listen,
                                     ", database ", o.db_path, o.tls_cert.empty() ? "" : ", TLS",
                                     o.token.empty() ? "" : ", token required"));
    while (ijepa::common::stop_signal() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ijepa::log::info(ijepa::log::str("ijepa-coordinator: signal ", ijepa::common::stop_signal(), ", shutting down"));
    server.shutdown();
    return 0;
  } catch (const ijepa::common::InputError& e) {
    ijepa::log::error(ijepa::log::str("ijepa-coordinator: ", e.what()));
    return 2;
  } catch (const std::exception& e) {
    ijepa::log::error(ijepa::log::str("ijepa-coordinator: ", e.what()));
    return 1;
  }
}
