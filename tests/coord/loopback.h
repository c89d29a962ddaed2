// Loopback sockets for the coordinator's tests and load generator: free ports, and a listener that accepts
// connections but never answers (a hanging coordinator). No GoogleTest here: ijepa-coord-load uses it too.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace ijepa::testing {

inline std::string loopback(int port) { return "127.0.0.1:" + std::to_string(port); }

// A TCP socket on 127.0.0.1 at a port the kernel picks; `listening` keeps it accepting connections (the kernel
// completes the handshakes) that nothing ever reads.
class LoopbackSocket {
 public:
  explicit LoopbackSocket(bool listening) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    if (listening) listen(fd_, 16);
    socklen_t length = sizeof(address);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
  }
  ~LoopbackSocket() { close(fd_); }
  LoopbackSocket(const LoopbackSocket&) = delete;
  LoopbackSocket& operator=(const LoopbackSocket&) = delete;

  int port() const { return port_; }
  std::string address() const { return loopback(port_); }

 private:
  int fd_;
  int port_ = 0;
};

// A port on 127.0.0.1 that was free a moment ago (a tiny race with other processes is accepted).
inline int free_port() { return LoopbackSocket(/*listening=*/false).port(); }

}  // namespace ijepa::testing
