// MetricsExporter and listen_address_for_rank.
#include "metrics/exporter.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "common/checks.h"
#include "common/errors.h"

namespace ijepa::metrics {

using common::HostPort;
using common::parse_host_port;

namespace {
// How long one connection may take to send its request and receive the answer (a scrape takes milliseconds).
constexpr std::chrono::seconds kRequestDeadline{3};
}  // namespace

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

class MetricsExporter::Server {
 public:
  Server(const HostPort& where, const std::string& listen, std::shared_ptr<prometheus::Registry> registry)
      : registry_(std::move(registry)) {
    listen_fd_ = bind_listener(where, listen);
    if (::pipe2(stop_pipe_, O_CLOEXEC) != 0) {
      ::close(listen_fd_);
      throw std::runtime_error("metrics exporter: pipe: " + std::string(std::strerror(errno)));
    }
    thread_ = std::thread([this] { serve(); });
  }

  ~Server() {
    const char stop = 1;
    (void)!::write(stop_pipe_[1], &stop, 1);
    thread_.join();
    for (int fd : {listen_fd_, stop_pipe_[0], stop_pipe_[1]}) ::close(fd);
  }

  int port() const {
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    if (::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) return 0;
    return address.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&address)->sin6_port)
                                         : ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port);
  }

 private:
  static int bind_listener(const HostPort& where, const std::string& listen) {
    const auto fail = [&](const std::string& why) {
      return common::InputError("metrics listen address '" + listen + "': cannot listen (" + why + ")");
    };
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(where.port);
    if (const int rc = ::getaddrinfo(where.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
      throw fail(::gai_strerror(rc));
    }
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, &::freeaddrinfo);
    std::string last_error = "no address";
    for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
      const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      const int on = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
      if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 16) == 0) return fd;
      last_error = std::strerror(errno);
      ::close(fd);
    }
    throw fail(last_error);
  }

  void serve() {
    while (true) {
      pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
      if (fds[1].revents != 0) return;
      if ((fds[0].revents & POLLIN) == 0) continue;
      const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      answer(client);
      ::close(client);
    }
  }

  // Reads one request and answers it; the connection then closes. One deadline covers the whole exchange: a
  // deadline per read would let a client trickling a byte at a time hold this single thread for hours.
  void answer(int client) {
    const auto deadline = std::chrono::steady_clock::now() + kRequestDeadline;
    std::string request;
    if (read_request(client, deadline, request)) send_all(client, response_to(request), deadline);
  }

  // Waits until CLIENT is ready for EVENTS (POLLIN, POLLOUT); false once the deadline passes or on an error.
  static bool wait_ready(int client, short events, std::chrono::steady_clock::time_point deadline) {
    while (true) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd fd{client, events, 0};
      const int ready = ::poll(&fd, 1, static_cast<int>(left.count()));
      if (ready > 0) return true;
      if (ready < 0 && errno != EINTR) return false;
    }
  }

  // Reads up to the end of the headers (at most 16 KiB); false when the client closes, errs or runs out of time.
  static bool read_request(int client, std::chrono::steady_clock::time_point deadline, std::string& request) {
    char buffer[4096];
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < 16384) {
      if (!wait_ready(client, POLLIN, deadline)) return false;
      const ssize_t n = ::recv(client, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      if (n <= 0) return false;
      request.append(buffer, static_cast<size_t>(n));
    }
    return true;
  }

  static void send_all(int client, const std::string& response, std::chrono::steady_clock::time_point deadline) {
    for (size_t sent = 0; sent < response.size();) {
      if (!wait_ready(client, POLLOUT, deadline)) return;
      const ssize_t n = ::send(client, response.data() + sent, response.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  }

  std::string response_to(const std::string& request) const {
    const size_t line_end = request.find("\r\n");
    const std::string line = request.substr(0, line_end);
    const bool is_get = line.rfind("GET ", 0) == 0 || line.rfind("HEAD ", 0) == 0;
    const size_t path_start = line.find(' ') + 1;
    const std::string path = line.substr(path_start, line.find(' ', path_start) - path_start);
    std::string status = "200 OK", body;
    if (!is_get) {
      status = "405 Method Not Allowed";
    } else if (path == "/metrics" || path.rfind("/metrics?", 0) == 0) {
      body = serialize(*registry_);
    } else {
      status = "404 Not Found";
      body = "see /metrics\n";
    }
    std::string response = "HTTP/1.1 " + status + "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n" +
                           "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    if (line.rfind("HEAD ", 0) != 0) response += body;
    return response;
  }

  std::shared_ptr<prometheus::Registry> registry_;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::thread thread_;
};

MetricsExporter::MetricsExporter(const std::string& listen, std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)),
      server_(std::make_unique<Server>(parse_host_port(listen, "metrics listen address"), listen, registry_)) {}

MetricsExporter::~MetricsExporter() = default;

int MetricsExporter::port() const { return server_->port(); }

std::string serialize(prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

}  // namespace ijepa::metrics
