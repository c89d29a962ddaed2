// A Prometheus registry served over HTTP at /metrics (prometheus-cpp's civetweb Exposer).
//
// The listener binds exactly the host:port it is given (loopback unless configured otherwise); port 0 picks a
// free port, which port() then reports.
#pragma once

#include <memory>
#include <string>

namespace prometheus {
class Exposer;
class Registry;
}  // namespace prometheus

namespace ijepa::metrics {

class MetricsExporter {
 public:
  // Starts serving `registry` at http://LISTEN/metrics. LISTEN is host:port ("127.0.0.1:9464", "[::1]:0").
  // Throws common::InputError naming the address when it is malformed or cannot be bound.
  MetricsExporter(const std::string& listen, std::shared_ptr<prometheus::Registry> registry);
  ~MetricsExporter();
  MetricsExporter(const MetricsExporter&) = delete;
  MetricsExporter& operator=(const MetricsExporter&) = delete;

  // The bound TCP port (useful after asking for port 0).
  int port() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;  // after registry_: stops serving before it goes
};

// The registry in Prometheus text format, as a scrape would see it (tests, debugging).
std::string serialize(prometheus::Registry& registry);

// Splits "host:port" or "[v6]:port"; throws common::InputError naming `what` when malformed.
struct HostPort {
  std::string host;  // without brackets
  int port = 0;
};
HostPort parse_host_port(const std::string& address, const std::string& what);

// The address rank `rank` of a job listens on when the configured one is LISTEN: the port plus the rank
// (port 0 stays 0). Throws common::InputError when the result leaves the port range.
std::string listen_address_for_rank(const std::string& listen, int rank);

}  // namespace ijepa::metrics
