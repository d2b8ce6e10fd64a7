// TLS termination in front of a plain HTTP listener of the same process: accepts on `listen`,
// completes the handshake with the certificate SNI names (server_contexts), then relays bytes
// both ways between the client and `upstream` (the proxy's own loopback listener for HTTPS
// requests) until either side closes.
//
// Why a relay rather than TLS inside dp::http's session: the session writes files with sendfile
// and its stream type runs through every response path; a relay keeps TLS in this library and
// the HTTP stack unchanged, at the cost of one loopback hop per connection.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "dp/core/config.hpp"
#include "dp/core/error.hpp"
#include "dp/tls/server_contexts.hpp"

namespace boost::asio {
class io_context;
}

namespace dp::tls {

struct terminator_options {
  dp::config::host_port listen{"127.0.0.1", 0};
  dp::config::host_port upstream{"127.0.0.1", 0};
  std::chrono::milliseconds handshake_timeout{10'000};
  size_t max_connections = 10'000;
};

class terminator {
 public:
  terminator(boost::asio::io_context& ioc, terminator_options options,
             std::shared_ptr<server_contexts> contexts);
  ~terminator();
  terminator(const terminator&) = delete;
  terminator& operator=(const terminator&) = delete;

  // Binds and starts accepting ("listen on ...: address already in use" on failure).
  dp::result<void> start();
  uint16_t port() const;
  // Stops accepting; relays end when their upstream connection does (the HTTP server's drain).
  void stop();
  size_t connections() const noexcept;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace dp::tls
