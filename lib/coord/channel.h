// How clients reach a coordinator: the gRPC channel (plaintext or TLS, optionally with a client certificate)
// and the bearer token each call carries. Shared by CoordinatorClient, ijepa-ctl and the load generator.
#pragma once

#include <chrono>
#include <memory>
#include <string>

namespace grpc {
class Channel;
class ClientContext;
}  // namespace grpc

namespace ijepa::coord {

struct ChannelOptions {
  std::string address;   // host:port
  std::string token;     // empty: none
  std::string tls_ca;    // PEM file of the CA that signed the server's certificate; empty: plaintext
  std::string tls_cert;  // client certificate and key for mutual TLS (optional)
  std::string tls_key;
  // Reconnect quickly (at most every few seconds) after the coordinator comes back, instead of gRPC's
  // default backoff of up to two minutes.
  bool fast_reconnect = true;
  // > 0: while a call is open, ping the coordinator every `keepalive_interval` and drop the connection (the call
  // fails UNAVAILABLE) when a ping goes unanswered for `keepalive_timeout`, so that a long stream notices a
  // coordinator that hangs or a network that went away instead of waiting for ever. The coordinator accepts pings
  // every kMinKeepaliveInterval.
  std::chrono::milliseconds keepalive_interval{0};
  std::chrono::milliseconds keepalive_timeout{0};
};

inline constexpr std::chrono::milliseconds kMinKeepaliveInterval{5000};

// Creates the channel; connecting happens lazily on the first call, so this never blocks. Throws
// common::InputError naming the option when the address is malformed, the token is not one gRPC can send
// (common::check_token) or a file cannot be read.
std::shared_ptr<grpc::Channel> make_channel(const ChannelOptions& options);

// Reads a PEM file of one or more certificates (a CA, or a certificate chain) whole. Throws common::InputError
// naming WHAT (a flag or config key) and the file when it cannot be read or holds no PEM certificate, rather
// than leave gRPC to fail later with an error that names neither.
std::string read_certificates(const std::string& path, const std::string& what);

// A certificate chain and its private key (PEM).
struct KeyPair {
  std::string certificate_chain;
  std::string private_key;
};
// Reads both files as read_certificates does; also throws when the key is not an unencrypted PEM private key or
// does not belong to the chain's first certificate.
KeyPair read_key_pair(const std::string& certificate_path, const std::string& key_path,
                      const std::string& certificate_what, const std::string& key_what);

// Adds "authorization: Bearer TOKEN" to CONTEXT (nothing when TOKEN is empty). Throws common::InputError
// rather than pass gRPC a token that common::check_token refuses.
void add_token(grpc::ClientContext& context, const std::string& token);

}  // namespace ijepa::coord
