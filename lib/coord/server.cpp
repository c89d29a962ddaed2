// CoordinatorServer.
#include "coord/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/support/server_interceptor.h>
#include <prometheus/registry.h>

#include <algorithm>

#include "common/checks.h"
#include "common/errors.h"
#include "common/log.h"
#include "coord/channel.h"
#include "coord/database_lock.h"
#include "coord/run_registry.h"
#include "coord/service.h"
#include "coord/storage.h"
#include "metrics/coordinator_metrics.h"
#include "metrics/exporter.h"

namespace ijepa::coord {
namespace {

constexpr auto kShutdownGrace = std::chrono::seconds(2);

void check_options(const ServerOptions& o) {
  // SQLite takes an empty name for a temporary database: every run would be lost at exit.
  if (o.db_path.empty()) throw common::InputError("--db must name a database file");
  common::parse_host_port(o.listen, "--listen");
  if (!o.metrics_listen.empty()) common::parse_host_port(o.metrics_listen, "--metrics-listen");
  common::check_token(o.token, "--token");  // a token no client can send would refuse every call
  if (!(o.heartbeat_timeout_s > 0.0)) throw common::InputError("--heartbeat-timeout must be > 0 seconds");
  if (!(o.retention_s >= 0.0)) throw common::InputError("--retention must be >= 0 seconds");
  if (!(o.fail_lost_runs_after_s >= 0.0)) throw common::InputError("--fail-lost-runs-after must be >= 0 seconds");
  if (!(o.forget_after_s >= 0.0)) throw common::InputError("--forget-after must be >= 0 seconds");
  if (o.tls_cert.empty() != o.tls_key.empty()) throw common::InputError("--tls-cert and --tls-key go together");
  if (!o.tls_client_ca.empty() && o.tls_cert.empty()) {
    throw common::InputError("--tls-client-ca needs --tls-cert and --tls-key");
  }
  if (o.max_message_bytes < 1024) throw common::InputError("max message size must be >= 1024 bytes");
  if (o.max_watch_streams < 1) throw common::InputError("--max-watch-streams must be >= 1");
  if (!(o.keepalive_s >= 0.1 && o.keepalive_s <= 86400.0)) {
    throw common::InputError("--keepalive must be 0.1..86400 seconds");
  }
}

std::shared_ptr<grpc::ServerCredentials> server_credentials(const ServerOptions& o) {
  if (o.tls_cert.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl(o.tls_client_ca.empty()
                                            ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                            : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  KeyPair pair = read_key_pair(o.tls_cert, o.tls_key, "--tls-cert", "--tls-key");
  ssl.pem_key_cert_pairs.push_back({std::move(pair.private_key), std::move(pair.certificate_chain)});
  if (!o.tls_client_ca.empty()) ssl.pem_root_certs = read_certificates(o.tls_client_ca, "--tls-client-ca");
  return grpc::SslServerCredentials(ssl);
}

// Leaves server reflection out of one server: once its plugin is initialized (at static initialization, by the
// library itself), gRPC adds it to every server the process builds.
class WithoutReflection : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->erase(std::remove_if(plugins->begin(), plugins->end(),
                                  [](const std::unique_ptr<grpc::ServerBuilderPlugin>& plugin) {
                                    return dynamic_cast<grpc::reflection::ProtoServerReflectionPlugin*>(plugin.get());
                                  }),
                   plugins->end());
  }
};

// gRPC answers a request that does not parse (a string field that is not UTF-8, bytes that are not the message)
// INTERNAL with an empty message, before any handler runs; for the Coordinator's methods this makes it what it is,
// bad input, and counts it like the handlers' own refusals. The handlers never send INTERNAL without a message.
class ParseFailureInterceptor : public grpc::experimental::Interceptor {
 public:
  ParseFailureInterceptor(std::string method, metrics::CoordinatorMetrics* metrics)
      : method_(std::move(method)), metrics_(metrics) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      if (status.error_code() == grpc::StatusCode::INTERNAL && status.error_message().empty()) {
        methods->ModifySendStatus(
            grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                         "the request does not parse as a " + method_ +
                             " request (a string field that is not UTF-8, or bytes that are not this message)"));
        if (metrics_) metrics_->count_rpc(method_, status_code_name(grpc::StatusCode::INVALID_ARGUMENT));
      }
    }
    methods->Proceed();
  }

 private:
  std::string method_;
  metrics::CoordinatorMetrics* metrics_;
};

class ParseFailureInterceptors : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit ParseFailureInterceptors(metrics::CoordinatorMetrics* metrics) : metrics_(metrics) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    static const std::string prefix = "/" + std::string(v1::Coordinator::service_full_name()) + "/";
    const std::string method = info->method();
    if (method.rfind(prefix, 0) != 0) return nullptr;  // health and reflection keep gRPC's answers
    return new ParseFailureInterceptor(method.substr(prefix.size()), metrics_);
  }

 private:
  metrics::CoordinatorMetrics* metrics_;
};

}  // namespace

CoordinatorServer::CoordinatorServer(ServerOptions options) : options_(std::move(options)) {
  check_options(options_);
  const auto credentials = server_credentials(options_);
  prometheus_ = std::make_shared<prometheus::Registry>();
  metrics_ = std::make_unique<metrics::CoordinatorMetrics>(prometheus_);
  database_lock_ = std::make_unique<DatabaseLock>(options_.db_path);
  storage_ = std::make_unique<Storage>(options_.db_path);
  registry_ = std::make_unique<RunRegistry>(*storage_, metrics_.get(),
                                            RegistryOptions{options_.heartbeat_timeout_s,
                                                            options_.retention_s,
                                                            options_.fail_lost_runs_after_s,
                                                            {},
                                                            options_.forget_after_s});
  service_ =
      std::make_unique<CoordinatorService>(*registry_, metrics_.get(), options_.token, options_.max_watch_streams);

  if (!options_.metrics_listen.empty()) {
    exporter_ = std::make_unique<metrics::MetricsExporter>(options_.metrics_listen, prometheus_);
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC's reflection service cannot check the bearer token, and it describes the whole API: with a token it is
  // left out. Health stays open either way: Kubernetes probes carry no token.
  if (!options_.token.empty()) builder.SetOption(std::make_unique<WithoutReflection>());
  builder.AddListeningPort(options_.listen, credentials, &port_);
  builder.RegisterService(service_.get());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<ParseFailureInterceptors>(metrics_.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  builder.SetMaxSendMessageSize(options_.max_message_bytes);
  // gRPC sets SO_REUSEPORT by default, which would let a second coordinator share the port silently.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  const int keepalive_ms = static_cast<int>(options_.keepalive_s * 1000.0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, keepalive_ms);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, keepalive_ms);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Clients that watch ping as often as this (ChannelOptions::keepalive_interval); more often is misbehaviour.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             static_cast<int>(kMinKeepaliveInterval.count()));
  server_ = builder.BuildAndStart();
  if (!server_ || port_ == 0) throw common::InputError("--listen '" + options_.listen + "': cannot listen there");
  server_->GetHealthCheckService()->SetServingStatus(true);
  ticker_ = std::thread([this] { tick_loop(); });
}

CoordinatorServer::~CoordinatorServer() { shutdown(); }

int CoordinatorServer::metrics_port() const { return exporter_ ? exporter_->port() : 0; }

void CoordinatorServer::tick_loop() {
  // Heartbeats reach the database within a flush period; a lost worker is noticed within a tick period (a
  // quarter of the timeout, at most a second).
  const auto flush_period = std::chrono::milliseconds(200);
  const auto tick_period = std::chrono::duration<double>(std::min(1.0, options_.heartbeat_timeout_s / 4.0));
  auto next_tick = std::chrono::steady_clock::now();
  // The last failure, logged when it starts or changes and not again at every retry: a full disk would otherwise
  // log five lines a second, onto the disk that is full as often as not.
  std::string failure;
  bool database_gone = false;
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_.wait_for(lock, flush_period, [this] { return stopping_; })) {
    lock.unlock();
    try {
      if (std::chrono::steady_clock::now() >= next_tick) {
        if (!database_gone && storage_->file_replaced()) {
          database_gone = true;
          log::error(log::str("coordinator: database '", options_.db_path,
                              "' was deleted or replaced while in use: what the coordinator writes from now on goes to "
                              "the file it opened, gone when it exits; restart it to keep runs in a file again (its "
                              "ranks register again)"));
        }
        registry_->tick();
        next_tick += std::chrono::duration_cast<std::chrono::steady_clock::duration>(tick_period);
      }
      registry_->flush();
      if (!failure.empty()) log::info("coordinator: background work succeeds again; the database has caught up");
      failure.clear();
    } catch (const std::exception& e) {
      if (failure != e.what()) {
        failure = e.what();
        log::error(log::str("coordinator: background work failed: ", failure,
                            "; changes stay in memory and are retried (logged again only if the error changes)"));
      }
    }
    lock.lock();
  }
}

void CoordinatorServer::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  stop_.notify_all();
  if (ticker_.joinable()) ticker_.join();
  if (server_) {
    server_->GetHealthCheckService()->SetServingStatus(false);
    service_->shutdown();
    server_->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
    server_->Wait();
  }
  try {
    registry_->flush();
  } catch (const std::exception& e) {
    log::error(log::str("coordinator: final database write failed: ", e.what()));
  }
  exporter_.reset();
}

}  // namespace ijepa::coord
