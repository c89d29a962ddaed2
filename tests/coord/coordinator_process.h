// A real ijepa-coordinator for tests (a child process on free loopback ports) and ijepa-ctl commands against it.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "coord_test_util.h"

namespace ijepa::testing {

// True when something accepts connections on 127.0.0.1:PORT.
inline bool port_open(int port) {
  const int fd = connect_loopback(port);
  if (fd >= 0) close(fd);
  return fd >= 0;
}

// ijepa-coordinator on free loopback ports with its database in DIR, ready to serve once constructed.
class Coordinator {
 public:
  Coordinator(const TempDir& dir, const std::vector<std::string>& extra = {}, int port = 0)
      : port_(port ? port : free_port()), metrics_port_(free_port()), log_(dir / "coordinator.log") {
    std::vector<std::string> argv{
        bin_path("ijepa-coordinator"), "--listen", loopback(port_), "--db", dir / "c.db", "--metrics-listen",
        loopback(metrics_port_)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_ = std::make_unique<ChildProcess>(argv, log_);
    EXPECT_TRUE(wait_until([&] { return port_open(port_); })) << read_file(log_);
  }
  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  std::string address() const { return loopback(port_); }
  ChildProcess& process() { return *process_; }
  std::string log() const { return read_file(log_); }

 private:
  int port_;
  int metrics_port_;
  std::string log_;
  std::unique_ptr<ChildProcess> process_;
};

inline std::vector<std::string> ctl(const std::string& address, std::vector<std::string> args) {
  std::vector<std::string> argv{bin_path("ijepa-ctl"), "--coordinator", address};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// `ijepa-ctl show RUN --json`, parsed; null when the command fails.
inline nlohmann::json show_json(const std::string& address, const std::string& run, const TempDir& dir) {
  const auto result = run_process(ctl(address, {"show", run, "--json"}), dir);
  return result.code == 0 ? nlohmann::json::parse(result.out) : nlohmann::json();
}

}  // namespace ijepa::testing
