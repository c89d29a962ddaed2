// Shared value checks: host:port addresses, run names and bearer tokens, each accepted or refused as a whole.
#include "common/checks.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/errors.h"

namespace ijepa::common {
namespace {

TEST(Checks, HostPort) {
  EXPECT_EQ(parse_host_port("[::1]:80", "x").host, "::1");
  EXPECT_EQ(parse_host_port("127.0.0.1:65535", "x").port, 65535);
  for (const std::string& bad : std::vector<std::string>{"", "9000", ":9000", "host:", "host:70000", "host:-1",
                                                         "host:12x", "::1:80", "[::1:80"}) {
    EXPECT_THROW(parse_host_port(bad, "x"), InputError) << bad;
  }
  try {
    parse_host_port("host:70000", "metrics.listen");
    FAIL() << "accepted port 70000";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "metrics.listen: 'host:70000' is not host:port (port must be 0..65535)");
  }
}

TEST(Checks, RunNames) {
  for (const std::string& good : std::vector<std::string>{"a", "jepa-fmnist_v1.2", std::string(128, 'x')}) {
    EXPECT_TRUE(is_valid_run_name(good)) << good;
  }
  for (const std::string& bad :
       std::vector<std::string>{"", "-x", ".x", "a b", "a/b", "a\nb", "\xc3\xa4", std::string(129, 'x')}) {
    EXPECT_FALSE(is_valid_run_name(bad)) << bad;
  }
}

TEST(Checks, TokensArePrintableAsciiWithoutSpaces) {
  for (const std::string& good : std::vector<std::string>{"", "s3cret", "!~a-Z_0.9+/=", std::string(512, 'k')}) {
    EXPECT_EQ(token_problem(good), "") << good;
    EXPECT_NO_THROW(check_token(good, "--token"));
  }
  for (const std::string& bad :
       std::vector<std::string>{"s3cret\n", "a b", "tab\there", "\xc3\xa4", std::string(1, '\0'), "del\x7f", "cr\r"}) {
    EXPECT_NE(token_problem(bad), "") << bad;
    EXPECT_THROW(check_token(bad, "--token"), InputError) << bad;
  }
  try {
    check_token("s3cret\n", "--token");
    FAIL() << "accepted a trailing newline";
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("--token: must be printable ASCII", 0), 0u) << message;
    EXPECT_NE(message.find("character 7 of 7 is byte 0x0a"), std::string::npos) << message;
    EXPECT_EQ(message.find("s3cret"), std::string::npos) << "the message must not show the secret";
    EXPECT_EQ(message.find('\n'), std::string::npos) << "one line";
  }
}

}  // namespace
}  // namespace ijepa::common
