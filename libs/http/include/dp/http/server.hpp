// The HTTP/1.1 server: one coroutine per connection on its own strand, keep-alive, pipelining,
// limits, timeouts, SSE and WebSocket, graceful shutdown. Nothing is logged per request: the
// services write their own access logs.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "dp/core/config.hpp"
#include "dp/core/error.hpp"
#include "dp/http/json.hpp"
#include "dp/http/message.hpp"
#include "dp/http/router.hpp"
#include "dp/http/stream.hpp"

namespace boost::asio {
class io_context;
}
struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace dp::http {

struct server_options {
  dp::config::host_port listen{"127.0.0.1", 0};
  size_t header_limit = 8 * 1024;                   // beyond: 431
  size_t body_limit = 1024 * 1024;                  // beyond: 413 (route_options overrides)
  std::chrono::milliseconds idle_timeout{60'000};   // keep-alive wait for the next request
  std::chrono::milliseconds read_timeout{30'000};   // one request, headers and body
  std::chrono::milliseconds write_timeout{30'000};  // no progress writing for this long: drop
  size_t max_connections = 10'000;                  // beyond: accepted and closed at once
  int threads = 1;                                  // threads run() uses
  size_t stream_queue_limit = 1024 * 1024;          // SSE/WebSocket outgoing queue (bytes)
  std::chrono::milliseconds sse_keepalive{15'000};  // comment line on an idle SSE stream
  // HTTPS: every accepted connection starts with a TLS handshake on this context (its
  // certificate, or an SNI callback choosing one), within handshake_timeout. The server takes
  // its own reference. File bodies are then copied through TLS instead of sendfile.
  ssl_ctx_st* tls_context = nullptr;
  std::chrono::milliseconds handshake_timeout{10'000};
};

class server {
 public:
  server(boost::asio::io_context& ioc, server_options options, router routes);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Binds, listens and starts accepting; fails with a clear message ("listen on
  // 127.0.0.1:9000: address already in use") when the address cannot be bound.
  dp::result<void> start();
  // The bound address (the real port when options.listen.port was 0).
  dp::config::host_port local_endpoint() const;
  uint16_t port() const;

  // Stops accepting, closes idle keep-alive connections, ends SSE/WebSocket streams, lets
  // requests in flight finish until `drain` has passed, then closes what is left. `done` runs
  // (on an io_context thread) when the last connection has ended. Thread-safe; once only.
  void stop(std::chrono::milliseconds drain = std::chrono::seconds(10),
            std::function<void()> done = {});
  // Runs the io_context on options.threads threads (this one included) until it has no work.
  void run();

  size_t connections() const noexcept;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace dp::http
