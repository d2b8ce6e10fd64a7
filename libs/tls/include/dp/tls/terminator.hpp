// TLS termination in front of a plain HTTP server of the same process: accepts on `listen`,
// completes the handshake with the certificate SNI names (server_contexts), then hands one end
// of a socketpair to `hand_off` (the proxy gives it to http::server::adopt, with the client's
// address) and relays bytes both ways between the client and the other end until either side
// closes.
//
// Why a relay rather than TLS inside dp::http's session: the session writes files with sendfile
// and its stream type runs through every response path; a relay keeps TLS in this library and
// the HTTP stack unchanged, at the cost of one socketpair hop per connection.
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
  std::chrono::milliseconds handshake_timeout{10'000};
  size_t max_connections = 10'000;
};

// Takes ownership of `fd`, the plain side of one TLS connection from `remote`.
using hand_off_fn = std::function<void(int fd, dp::config::host_port remote)>;

class terminator {
 public:
  terminator(boost::asio::io_context& ioc, terminator_options options,
             std::shared_ptr<server_contexts> contexts, hand_off_fn hand_off);
  ~terminator();
  terminator(const terminator&) = delete;
  terminator& operator=(const terminator&) = delete;

  // Binds and starts accepting ("listen on ...: address already in use" on failure).
  dp::result<void> start();
  uint16_t port() const;
  // Stops accepting; relays end when their plain side does (the HTTP server's drain).
  void stop();
  size_t connections() const noexcept;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace dp::tls
