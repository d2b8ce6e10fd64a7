// The one outbound HTTP client: libcurl's multi-socket API driven by an Asio executor (no thread
// per request), with connection reuse, timeouts, bodies from and to files or buffers, streamed
// responses with back-pressure, and unix-socket targets (the Docker Engine API).
//
// HTTP error statuses are not errors: the caller reads response::status. Failures to reach the
// peer are errc::unavailable, timeouts errc::timeout; messages name the method, host and port,
// never credentials, paths or query strings (a presigned URL stays out of the logs).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "dp/core/error.hpp"

namespace dp::http_client {

struct client_options {
  size_t max_connections_per_host = 32;  // more requests to one host wait for a free connection
  size_t max_total_connections = 0;      // 0: no limit beyond the per-host one
  std::chrono::milliseconds connect_timeout{5000};
  size_t stream_buffer_bytes = 256 * 1024;  // a response_stream buffers about this much at most
  std::string proxy;                        // empty: direct; *_proxy variables are ignored
  bool verify_tls = true;
  std::string ca_file;  // empty: the system's CA store
};

// Part of a file sent as the request body, read as it is sent (never loaded whole).
struct file_region {
  std::filesystem::path path;
  uint64_t offset = 0;
  std::optional<uint64_t> length;  // empty: to the end of the file
  // >= 0: read this open file instead of opening `path` (the transfer reads a duplicate of the
  // descriptor by offset, so the caller keeps its own); for files that must not be looked up by
  // name again.
  int fd = -1;
};

// Where send() puts the response body.
struct to_buffer {
  size_t max_bytes = 64 * 1024 * 1024;  // beyond: errc::too_large
};
struct to_file {
  std::filesystem::path path;  // created or truncated; removed if the transfer fails
};

struct request {
  std::string method = "GET";  // HEAD reads no body; POST/PUT without a body send Content-Length: 0
  std::string url;  // http:// or https://; with unix_socket, e.g. http://localhost/v1.43/info
  std::vector<std::pair<std::string, std::string>> headers;
  std::variant<std::monostate, std::string, file_region> body;
  std::chrono::milliseconds timeout{30000};  // send(): the whole exchange; open(): see open()
  std::string unix_socket;                   // e.g. /var/run/docker.sock; empty: TCP
  std::variant<to_buffer, to_file> sink;     // send() only
};

// Response headers in arrival order; lookups ignore case.
class header_map {
 public:
  void add(std::string name, std::string value);
  // The first value of `name`, if any.
  std::optional<std::string_view> get(std::string_view name) const;
  std::vector<std::string_view> get_all(std::string_view name) const;
  bool contains(std::string_view name) const { return get(name).has_value(); }
  const std::vector<std::pair<std::string, std::string>>& entries() const noexcept {
    return entries_;
  }
  void clear() noexcept { entries_.clear(); }

 private:
  std::vector<std::pair<std::string, std::string>> entries_;
};

struct response {
  int status = 0;
  header_map headers;
  std::string body;  // to_buffer only
};

// A response whose body is read piece by piece. While the reader does not read, the transfer is
// paused (TCP back-pressure): at most client_options::stream_buffer_bytes plus one network chunk
// is held. Destroying the stream before the end aborts the transfer and closes its connection.
class response_stream {
 public:
  response_stream(response_stream&&) noexcept;
  response_stream& operator=(response_stream&&) noexcept;
  ~response_stream();

  int status() const noexcept;
  const header_map& headers() const noexcept;
  // Copies the next bytes of the body into buf; 0 at the end of the body.
  boost::asio::awaitable<dp::result<size_t>> read_some(std::span<char> buf);
  // The most body bytes this stream has held at once (monitoring and tests).
  size_t max_buffered() const noexcept;

  struct state;
  static response_stream make(std::shared_ptr<state> s);  // for the client

 private:
  explicit response_stream(std::shared_ptr<state> s);
  std::shared_ptr<state> state_;
};

// One curl multi handle: its connections are reused by later requests to the same host. The
// client may be used from any executor; destroying it fails the requests in flight with
// errc::canceled. Canceling an awaiting coroutine removes its transfer.
class client {
 public:
  explicit client(boost::asio::any_io_executor ex, client_options options = {});
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  // The whole exchange; the body goes to request::sink. With g++ 12, build the request as a
  // named variable: a braced temporary inside a co_await expression is miscompiled (its
  // strings are freed from the wrong address).
  boost::asio::awaitable<dp::result<response>> send(request req);
  // Returns once the status line and headers have arrived; the body is read from the stream.
  // request::timeout bounds the wait for the headers and then any stall of the peer longer
  // than it (rounded up to seconds), but not a slow reader: a paused transfer never times out.
  boost::asio::awaitable<dp::result<response_stream>> open(request req);

  class impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace dp::http_client
