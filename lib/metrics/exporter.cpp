// MetricsExporter and the host:port helpers.
#include "metrics/exporter.h"

#include <prometheus/exposer.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <charconv>
#include <stdexcept>

#include "common/errors.h"

namespace ijepa::metrics {

HostPort parse_host_port(const std::string& address, const std::string& what) {
  const auto bad = [&](const std::string& why) {
    return common::InputError(what + ": '" + address + "' is not host:port (" + why + ")");
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

std::string listen_address_for_rank(const std::string& listen, int rank) {
  HostPort hp = parse_host_port(listen, "metrics.listen");
  if (hp.port != 0) hp.port += rank;
  if (hp.port > 65535) {
    throw common::InputError("metrics.listen: port of '" + listen + "' plus rank " + std::to_string(rank) +
                             " exceeds 65535");
  }
  const bool v6 = hp.host.find(':') != std::string::npos;
  return (v6 ? "[" + hp.host + "]" : hp.host) + ":" + std::to_string(hp.port);
}

MetricsExporter::MetricsExporter(const std::string& listen, std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)) {
  parse_host_port(listen, "metrics listen address");
  try {
    // One serving thread: scrapes are rare and cheap; the default of two would be wasted.
    exposer_ = std::make_unique<prometheus::Exposer>(listen, 1);
  } catch (const std::exception& e) {
    throw common::InputError("metrics listen address '" + listen + "': cannot listen (" + e.what() + ")");
  }
  exposer_->RegisterCollectable(registry_);
}

MetricsExporter::~MetricsExporter() = default;

int MetricsExporter::port() const {
  const std::vector<int> ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

std::string serialize(prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

}  // namespace ijepa::metrics
