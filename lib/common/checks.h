// Checks on values that both the config and the libraries or mains take: host:port addresses, run names and
// bearer tokens. Each rule lives here once, so a value that passes `ijepa-train --validate` also passes where it
// is used (the coordinator client, the /metrics exporter, ijepa-coordinator and ijepa-ctl flags).
#pragma once

#include <cstddef>
#include <string>

namespace ijepa::common {

struct HostPort {
  std::string host;  // without brackets
  int port = 0;
};

// Splits "host:port" or "[v6]:port" with a port in 0..65535; throws InputError naming `what` when malformed.
HostPort parse_host_port(const std::string& address, const std::string& what);

// Run names: 1..kMaxRunNameBytes characters of [A-Za-z0-9._-], starting with a letter or digit (safe in metric
// labels, paths and shells).
inline constexpr size_t kMaxRunNameBytes = 128;
inline constexpr const char* kRunNameRule =
    "must be 1-128 characters of A-Z a-z 0-9 . _ - starting with a letter or digit";
bool is_valid_run_name(const std::string& name);

// Bearer tokens: empty (none) or printable ASCII without spaces (0x21-0x7E). gRPC 1.51 aborts the process on a
// header value with a line break or a non-ASCII byte (grpc/grpc#34798), and a stray trailing newline would only
// show up as UNAUTHENTICATED, so tokens are checked before they reach a channel or a server.
// Returns "" when TOKEN is fine, else what is wrong with it (never the token itself: it is a secret).
std::string token_problem(const std::string& token);
// Throws InputError "WHAT: <problem>" when token_problem(TOKEN) is not empty.
void check_token(const std::string& token, const std::string& what);

}  // namespace ijepa::common
