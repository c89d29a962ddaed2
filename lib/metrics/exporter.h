// A Prometheus registry served over HTTP at /metrics.
//
// A small server of our own rather than prometheus-cpp's civetweb Exposer: Debian's civetweb starts its threads
// with a fixed ~100 KiB stack, and in a process that has loaded LibTorch (whose libraries need a large static TLS
// block) pthread_create refuses that stack with EINVAL, so the Exposer cannot start inside ijepa-train. Scrapes
// are rare and tiny, so one thread answering one request per connection is all /metrics needs. Each connection has
// 3 seconds in all to send its request and take the answer, then it is closed, so a slow or stalled client holds up
// a scrape behind it by at most that.
//
// The listener binds exactly the host:port it is given (loopback unless configured otherwise); port 0 picks a
// free port, which port() then reports.
#pragma once

#include <memory>
#include <string>

namespace prometheus {
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
  class Server;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Server> server_;  // after registry_: stops serving before it goes
};

// The registry in Prometheus text format, as a scrape would see it (tests, debugging).
std::string serialize(prometheus::Registry& registry);

// The address a rank listens on when the configured one is LISTEN (checked by common::parse_host_port): the port
// plus `rank` (the rank's number that metrics.port_offset picks; port 0 stays 0). Throws common::InputError when
// the result leaves the range.
std::string listen_address_for_rank(const std::string& listen, int rank);

}  // namespace ijepa::metrics
