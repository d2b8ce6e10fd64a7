// Request and response as handlers see them. Beast stays behind this narrow interface: the
// request reads the parsed message in place (no copies), the response is plain data that the
// server serializes itself.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "dp/core/config.hpp"
#include "dp/core/error.hpp"

namespace dp::http {

enum class method : uint8_t { get, head, post, put, patch, delete_, options, other };

std::string_view to_string(method m) noexcept;

namespace detail {
struct message;
class session;
}  // namespace detail

class request {
 public:
  http::method method() const noexcept { return method_; }
  std::string_view method_name() const noexcept;
  // The raw request-target, the path before '?' (NOT percent-decoded, so a proxy can apply its
  // own decode-then-normalize rules) and the raw query string after '?'. An absolute-form target
  // ("http://host/path?q", which servers must accept) has its path and query here too.
  std::string_view target() const noexcept;
  std::string_view path() const noexcept { return path_; }
  std::string_view query_string() const noexcept { return query_; }
  // Query parameters, percent-decoded ('+' is a space), parsed on first use.
  const std::vector<std::pair<std::string, std::string>>& query_params() const;
  std::optional<std::string> query(std::string_view name) const;
  // The host the request names: the authority of an absolute-form target, else the Host header
  // (RFC 9112 3.2.2); none only for an HTTP/1.0 request without one. The server has already
  // refused a request with two Host headers, or an HTTP/1.1 one without.
  std::optional<std::string_view> host() const;
  // Header lookup is case-insensitive; the first value wins.
  std::optional<std::string_view> header(std::string_view name) const;
  std::vector<std::pair<std::string_view, std::string_view>> headers() const;
  std::string& body() noexcept;
  const std::string& body() const noexcept;
  int version() const noexcept;  // 10 or 11
  bool keep_alive() const noexcept;
  bool wants_websocket() const noexcept;
  const dp::config::host_port& remote() const noexcept { return *remote_; }
  // Path parameters of the matched route ({name} in the pattern), percent-decoded.
  std::string_view param(std::string_view name) const noexcept;
  const std::vector<std::pair<std::string_view, std::string>>& params() const noexcept {
    return params_;
  }

 private:
  friend class detail::session;
  detail::message* msg_ = nullptr;
  const dp::config::host_port* remote_ = nullptr;
  http::method method_ = method::other;
  std::string_view authority_;  // of an absolute-form target
  std::string_view path_;
  std::string_view query_;
  std::vector<std::pair<std::string_view, std::string>> params_;
  mutable std::optional<std::vector<std::pair<std::string, std::string>>> query_params_;
};

// A region of a file, sent with sendfile(2). The descriptor is either owned (closed after
// sending) or kept open by a shared owner, such as a cache entry many responses send at once.
class file_body {
 public:
  // Opens `path` read-only; `length` defaults to the rest of the file after `offset`.
  static dp::result<file_body> open(const std::string& path, uint64_t offset = 0,
                                    std::optional<uint64_t> length = {});
  file_body(int fd, uint64_t offset, uint64_t length) noexcept
      : fd_(fd), offset_(offset), length_(length) {}
  // `fd` stays open as long as `owner` lives; this body never closes it.
  file_body(std::shared_ptr<const void> owner, int fd, uint64_t offset, uint64_t length) noexcept
      : owner_(std::move(owner)), fd_(fd), offset_(offset), length_(length) {}
  file_body(file_body&& o) noexcept
      : owner_(std::move(o.owner_)),
        fd_(std::exchange(o.fd_, -1)),
        offset_(o.offset_),
        length_(o.length_) {}
  file_body& operator=(file_body&& o) noexcept;
  file_body(const file_body&) = delete;
  file_body& operator=(const file_body&) = delete;
  ~file_body();

  int fd() const noexcept { return fd_; }
  uint64_t offset() const noexcept { return offset_; }
  uint64_t length() const noexcept { return length_; }

 private:
  void release() noexcept;

  std::shared_ptr<const void> owner_;  // set: the descriptor is the owner's
  int fd_ = -1;
  uint64_t offset_ = 0;
  uint64_t length_ = 0;
};

// A slice of an immutable buffer that others share (a cache entry): written without a copy.
struct shared_body {
  std::shared_ptr<const std::string> data;
  size_t offset = 0;
  size_t length = 0;

  std::string_view view() const { return std::string_view(*data).substr(offset, length); }
};

// A body pulled chunk by chunk: the server calls `read` with its buffer each time the previous
// bytes have been written (back-pressure); 0 bytes means the end. Without `length` the body is
// sent chunked (HTTP/1.1) or delimited by closing the connection (HTTP/1.0).
struct stream_body {
  std::function<boost::asio::awaitable<dp::result<size_t>>(std::span<char> buffer)> read;
  std::optional<uint64_t> length;
};

class sse_stream;
class websocket;

// The handler's response turns the connection into a stream; `run` owns it until it returns.
struct sse_body {
  std::function<boost::asio::awaitable<void>(sse_stream)> run;
};
struct websocket_body {
  std::function<boost::asio::awaitable<void>(websocket)> run;
};

struct response {
  unsigned status = 200;
  // Content-Length, Transfer-Encoding, Connection and Date are written by the server.
  std::vector<std::pair<std::string, std::string>> headers;
  // Fields a handler keeps ready-made (a cache's entry), written after `headers` as they are:
  // no copy per response. set() does not look at them; header() does.
  std::shared_ptr<const std::vector<std::pair<std::string, std::string>>> shared_headers;
  using body_type =
      std::variant<std::string, shared_body, file_body, stream_body, sse_body, websocket_body>;
  body_type body;
  bool close = false;  // close the connection after this response

  response() = default;
  explicit response(unsigned s) : status(s) {}
  response(unsigned s, std::string content_type, std::string b);
  // Replaces a header of the same name (case-insensitive) or adds it.
  response& set(std::string_view name, std::string_view value);
  std::optional<std::string_view> header(std::string_view name) const;
};

}  // namespace dp::http
