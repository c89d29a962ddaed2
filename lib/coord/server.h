// A running coordinator: the gRPC server (Coordinator service, grpc.health.v1 health, server reflection when no
// token is required), its SQLite-backed registry, the Prometheus exporter and the ticker that detects silent
// workers.
//
//   coord::CoordinatorServer server(options);   // listening once constructed
//   ... server.shutdown();                        // or let the destructor do it
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace grpc {
class Server;
}
namespace prometheus {
class Registry;
}
namespace ijepa::metrics {
class CoordinatorMetrics;
class MetricsExporter;
}  // namespace ijepa::metrics

namespace ijepa::coord {

class DatabaseLock;
class Storage;
class RunRegistry;
class CoordinatorService;

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";         // gRPC host:port; port 0 picks a free one
  std::string db_path = "ijepa-coordinator.db";   // SQLite file (created when missing), one coordinator each
  std::string metrics_listen = "127.0.0.1:9464";  // /metrics host:port; empty: none
  double heartbeat_timeout_s = 30.0;
  double retention_s = 3600.0;            // ended runs' metric series stay this long
  double fail_lost_runs_after_s = 600.0;  // a run without a live worker this long ends FAILED
  double forget_after_s = 30 * 86400.0;   // ended runs leave the database this long after (0: never)
  std::string token;     // bearer token every Coordinator RPC must carry (and no reflection then); empty: none
  std::string tls_cert;  // PEM files; cert and key enable TLS
  std::string tls_key;
  std::string tls_client_ca;  // with TLS: require client certificates signed by this CA (mutual TLS)
  int max_message_bytes = 4 << 20;
  // Ping a client whose connection has been quiet this long and drop the connection when the ping goes unanswered
  // as long: a watcher whose host or network went away frees its stream.
  double keepalive_s = 60.0;
  int max_watch_streams = 256;  // WatchRun streams open at once (each holds a thread); more: RESOURCE_EXHAUSTED
};

class CoordinatorServer {
 public:
  // Locks and opens the database, binds both listeners and starts serving. Throws common::InputError naming the
  // flag or file when an option is invalid, a file unreadable, the database in use by another coordinator
  // (DatabaseLock) or an address cannot be bound.
  explicit CoordinatorServer(ServerOptions options);
  ~CoordinatorServer();
  CoordinatorServer(const CoordinatorServer&) = delete;
  CoordinatorServer& operator=(const CoordinatorServer&) = delete;

  int port() const { return port_; }
  int metrics_port() const;  // 0 without /metrics

  // Ends watch streams, stops accepting calls, waits briefly for calls in flight and stops the ticker.
  // Idempotent.
  void shutdown();

 private:
  void tick_loop();

  ServerOptions options_;
  std::shared_ptr<prometheus::Registry> prometheus_;
  std::unique_ptr<metrics::CoordinatorMetrics> metrics_;
  std::unique_ptr<DatabaseLock> database_lock_;  // before storage_: held before the database opens, until it closes
  std::unique_ptr<Storage> storage_;
  std::unique_ptr<RunRegistry> registry_;
  std::unique_ptr<CoordinatorService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<metrics::MetricsExporter> exporter_;
  int port_ = 0;
  std::mutex mutex_;
  std::condition_variable stop_;
  bool stopping_ = false;
  std::thread ticker_;
};

}  // namespace ijepa::coord
