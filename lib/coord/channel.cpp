// make_channel and add_token.
#include "coord/channel.h"

#include <grpcpp/grpcpp.h>

#include <fstream>
#include <sstream>

#include "common/checks.h"
#include "common/errors.h"

namespace ijepa::coord {
namespace {

constexpr int kReconnectInitialMs = 250;
constexpr int kReconnectMaxMs = 4000;

std::shared_ptr<grpc::ChannelCredentials> channel_credentials(const ChannelOptions& o) {
  if (o.tls_ca.empty()) {
    if (!o.tls_cert.empty() || !o.tls_key.empty()) {
      throw common::InputError("coordinator TLS: a client certificate needs the CA file (tls_ca) too");
    }
    return grpc::InsecureChannelCredentials();
  }
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    throw common::InputError("coordinator TLS: the client certificate and key go together");
  }
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = read_credential_file(o.tls_ca, "coordinator tls_ca");
  if (!o.tls_cert.empty()) {
    ssl.pem_cert_chain = read_credential_file(o.tls_cert, "coordinator tls_cert");
    ssl.pem_private_key = read_credential_file(o.tls_key, "coordinator tls_key");
  }
  return grpc::SslCredentials(ssl);
}

}  // namespace

std::string read_credential_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in || text.str().empty())
    throw common::InputError(what + " '" + path + "': cannot read the file or it is empty");
  return text.str();
}

std::shared_ptr<grpc::Channel> make_channel(const ChannelOptions& options) {
  common::parse_host_port(options.address, "coordinator address");
  common::check_token(options.token, "coordinator token");
  grpc::ChannelArguments arguments;
  if (options.fast_reconnect) {
    arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, kReconnectInitialMs);
    arguments.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, kReconnectInitialMs);
    arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, kReconnectMaxMs);
  }
  return grpc::CreateCustomChannel(options.address, channel_credentials(options), arguments);
}

void add_token(grpc::ClientContext& context, const std::string& token) {
  if (token.empty()) return;
  common::check_token(token, "coordinator token");  // gRPC would abort the process on some bad bytes
  context.AddMetadata("authorization", "Bearer " + token);
}

}  // namespace ijepa::coord
