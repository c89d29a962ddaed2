// Helpers for the coordinator tests: free loopback ports, child processes (the built binaries), a minimal
// HTTP GET, polling for a condition, and throwaway TLS certificates made with the openssl command.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "coord/channel.h"
#include "loopback.h"
#include "test_util.h"

namespace ijepa::testing {

// Plaintext to ADDRESS, or TLS with the CA (and for mutual TLS a client certificate and key) given.
inline coord::ChannelOptions channel_to(const std::string& address, const std::string& tls_ca = "",
                                        const std::string& tls_cert = "", const std::string& tls_key = "") {
  coord::ChannelOptions options;
  options.address = address;
  options.tls_ca = tls_ca;
  options.tls_cert = tls_cert;
  options.tls_key = tls_key;
  return options;
}

inline std::string bin_path(const std::string& name) { return std::string(IJEPA_BIN_DIR) + "/" + name; }

// Polls CONDITION every 50 ms until it holds or TIMEOUT passes; returns its last value. The timeout only
// bounds a failing test; passing tests never depend on it.
inline bool wait_until(const std::function<bool()>& condition,
                       std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

// A child process running ARGV with stdout and stderr appended to LOG; killed (SIGKILL) if still running
// when destroyed.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::string& log) {
    pid_ = fork();
    if (pid_ == 0) {
      if (!freopen(log.c_str(), "a", stdout) || !freopen(log.c_str(), "a", stderr)) _exit(127);
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~ChildProcess() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      wait();
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  void signal(int number) { kill(pid_, number); }
  pid_t pid() const { return pid_; }
  // Waits for the exit; returns the exit code, or 128 + signal.
  int wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    exited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
};

struct ProcessResult {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs ARGV to completion, capturing stdout and stderr separately (through files in DIR).
inline ProcessResult run_process(const std::vector<std::string>& argv, const TempDir& dir) {
  static int counter = 0;
  const std::string out = dir / ("cmd" + std::to_string(++counter) + ".out");
  const std::string err = out + ".err";
  ProcessResult result;
  const pid_t pid = fork();
  if (pid == 0) {
    if (!freopen(out.c_str(), "w", stdout) || !freopen(err.c_str(), "w", stderr)) _exit(127);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  result.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = read_file(out);
  result.err = read_file(err);
  return result;
}

// A TCP connection to 127.0.0.1:PORT (the caller closes it); -1 when it fails.
inline int connect_loopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// GET http://127.0.0.1:PORT/PATH; returns the body, or "" when the connection fails.
inline std::string http_get(int port, const std::string& path) {
  const int fd = connect_loopback(port);
  if (fd < 0) return "";
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return "";
  }
  std::string response;
  char buffer[4096];
  for (ssize_t n; (n = read(fd, buffer, sizeof(buffer))) > 0;) response.append(buffer, n);
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

// A throwaway CA, a server certificate for localhost/127.0.0.1 and a client certificate, all signed by it,
// made with the openssl command in DIR: ca.pem, server.pem, server.key, client.pem, client.key.
inline void make_test_certificates(const TempDir& dir) {
  const std::string d = dir.path().string();
  write_file(d + "/server.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  const std::string script =
      "(cd '" + d + "' && openssl req -x509 " + ec + " -keyout ca.key -out ca.pem -days 1 -subj /CN=ijepa-test-ca" +
      " && openssl req " + ec + " -keyout server.key -out server.csr -subj /CN=localhost" +
      " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -out server.pem" +
      " -extfile server.ext" + " && openssl req " + ec + " -keyout client.key -out client.csr -subj /CN=ijepa-rank" +
      " && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -out client.pem" +
      ") >/dev/null 2>&1";
  ASSERT_EQ(std::system(script.c_str()), 0) << "openssl failed: " << script;
}

}  // namespace ijepa::testing
