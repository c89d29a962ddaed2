// Shared value checks (see checks.h).
#include "common/checks.h"

#include <cctype>
#include <charconv>
#include <cstdio>

#include "common/errors.h"

namespace ijepa::common {

HostPort parse_host_port(const std::string& address, const std::string& what) {
  const auto bad = [&](const std::string& why) {
    return InputError(what + ": '" + address + "' is not host:port (" + why + ")");
  };
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) throw bad("missing host or port");
  HostPort result;
  result.host = address.substr(0, colon);
  if (result.host.front() == '[') {
    if (result.host.size() < 3 || result.host.back() != ']') throw bad("unbalanced brackets");
    result.host = result.host.substr(1, result.host.size() - 2);
  } else if (result.host.find(':') != std::string::npos) {
    throw bad("an IPv6 host needs brackets");
  }
  const std::string port = address.substr(colon + 1);
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), result.port);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || result.port < 0 || result.port > 65535) {
    throw bad("port must be 0..65535");
  }
  return result;
}

bool is_valid_run_name(const std::string& name) {
  if (name.empty() || name.size() > kMaxRunNameBytes || !std::isalnum(static_cast<unsigned char>(name[0]))) {
    return false;
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

std::string token_problem(const std::string& token) {
  for (size_t i = 0; i < token.size(); ++i) {
    const auto byte = static_cast<unsigned char>(token[i]);
    if (byte >= 0x21 && byte <= 0x7e) continue;
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", byte);
    const std::string hint = byte == '\n' || byte == '\r' ? " (a line break: a trailing newline?)" : "";
    return "must be printable ASCII without spaces (0x21-0x7E); character " + std::to_string(i + 1) + " of " +
           std::to_string(token.size()) + " is byte " + hex + hint;
  }
  return "";
}

void check_token(const std::string& token, const std::string& what) {
  const std::string problem = token_problem(token);
  if (!problem.empty()) throw InputError(what + ": " + problem);
}

}  // namespace ijepa::common
