// make_channel and add_token.
#include "coord/channel.h"

#include <grpcpp/grpcpp.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

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
  ssl.pem_root_certs = read_certificates(o.tls_ca, "coordinator tls_ca");
  if (!o.tls_cert.empty()) {
    KeyPair pair = read_key_pair(o.tls_cert, o.tls_key, "coordinator tls_cert", "coordinator tls_key");
    ssl.pem_cert_chain = std::move(pair.certificate_chain);
    ssl.pem_private_key = std::move(pair.private_key);
  }
  return grpc::SslCredentials(ssl);
}

std::string read_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in || text.str().empty())
    throw common::InputError(what + " '" + path + "': cannot read the file or it is empty");
  return text.str();
}

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* certificate) const { X509_free(certificate); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

std::unique_ptr<BIO, BioDeleter> memory_bio(const std::string& pem) {
  return std::unique_ptr<BIO, BioDeleter>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The first certificate in PEM, or null.
std::unique_ptr<X509, X509Deleter> first_certificate(const std::string& pem) {
  auto bio = memory_bio(pem);
  std::unique_ptr<X509, X509Deleter> certificate(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  return certificate;
}

// No passphrase: OpenSSL would otherwise prompt on the terminal for an encrypted key, which gRPC cannot use.
int no_passphrase(char*, int, int, void*) { return 0; }

}  // namespace

std::string read_certificates(const std::string& path, const std::string& what) {
  std::string pem = read_file(path, what);
  if (!first_certificate(pem)) throw common::InputError(what + " '" + path + "': holds no PEM certificate");
  return pem;
}

KeyPair read_key_pair(const std::string& certificate_path, const std::string& key_path,
                      const std::string& certificate_what, const std::string& key_what) {
  KeyPair pair{read_certificates(certificate_path, certificate_what), read_file(key_path, key_what)};
  auto bio = memory_bio(pair.private_key);
  std::unique_ptr<EVP_PKEY, KeyDeleter> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  ERR_clear_error();
  if (!key) throw common::InputError(key_what + " '" + key_path + "': holds no unencrypted PEM private key");
  const bool matches = X509_check_private_key(first_certificate(pair.certificate_chain).get(), key.get()) == 1;
  ERR_clear_error();
  if (!matches) {
    throw common::InputError(key_what + " '" + key_path + "' is not the key of the certificate in " + certificate_what +
                             " '" + certificate_path + "'");
  }
  return pair;
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
  if (options.keepalive_interval.count() > 0) {
    arguments.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(options.keepalive_interval.count()));
    arguments.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, static_cast<int>(options.keepalive_timeout.count()));
    arguments.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);  // a quiet stream is what the pings are for
  }
  return grpc::CreateCustomChannel(options.address, channel_credentials(options), arguments);
}

void add_token(grpc::ClientContext& context, const std::string& token) {
  if (token.empty()) return;
  common::check_token(token, "coordinator token");  // gRPC would abort the process on some bad bytes
  context.AddMetadata("authorization", "Bearer " + token);
}

}  // namespace ijepa::coord
