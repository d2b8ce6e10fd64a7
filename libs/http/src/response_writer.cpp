// Writing a response on a session: the head, a body in memory, a file (sendfile, the head held
// back with MSG_MORE; copied in chunks over TLS), a stream (chunked), and the JSON error
// responses.
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <limits>
#include <span>

#include <fmt/format.h>

#include "dp/core/log.hpp"
#include "session.hpp"

namespace dp::http::detail {

namespace {

using namespace std::string_view_literals;

constexpr size_t stream_chunk = 64 * 1024;

// The Date header changes once a second; formatting it per response would be waste.
std::string_view http_date() {
  thread_local std::time_t last = 0;
  thread_local char buf[64];
  thread_local size_t len = 0;
  std::time_t now = std::time(nullptr);
  if (now != last) {
    std::tm t{};
    ::gmtime_r(&now, &t);
    len = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &t);
    last = now;
  }
  return {buf, len};
}

// memchr, vectorized, twice: find_first_of("\r\n") calls memchr once per character of `s`.
bool has_crlf(std::string_view s) noexcept {
  return s.find('\r') != s.npos || s.find('\n') != s.npos;
}

void append_number(std::string& out, uint64_t n) {
  char digits[20];
  out.append(digits, std::to_chars(digits, digits + sizeof digits, n).ptr);
}

}  // namespace

// Appended piece by piece into the session's reused buffer: the head is built once per response,
// so a format string parsed each time was a measurable share of a cache hit.
void session::build_head(const response& res, std::optional<uint64_t> length, bool chunked,
                         bool keep_alive) {
  head_.clear();
  auto reason = bhttp::obsolete_reason(static_cast<bhttp::status>(res.status));
  head_.append("HTTP/1.1 "sv);
  append_number(head_, res.status);
  head_.push_back(' ');
  head_.append(reason.data(), reason.size());
  head_.append("\r\nDate: "sv).append(http_date()).append("\r\n"sv);
  auto write_fields = [this](const std::vector<std::pair<std::string, std::string>>& fields) {
    for (const auto& [name, value] : fields) {
      // A line break in a header would let a value forge headers or a second response.
      if (has_crlf(name) || has_crlf(value)) {
        log::warn("http response header dropped: contains a line break", {{"name", name}});
        continue;
      }
      head_.append(name).append(": "sv).append(value).append("\r\n"sv);
    }
  };
  write_fields(res.headers);
  if (res.shared_headers) {
    write_fields(*res.shared_headers);
  }
  bool no_body_status = res.status < 200 || res.status == 204 || res.status == 304;
  if (length && !no_body_status) {
    head_.append("Content-Length: "sv);
    append_number(head_, *length);
    head_.append("\r\n"sv);
  }
  if (chunked) {
    head_.append("Transfer-Encoding: chunked\r\n"sv);
  }
  if (!keep_alive) {
    head_.append("Connection: close\r\n"sv);
  } else if (msg_.req.version() == 10) {
    head_.append("Connection: keep-alive\r\n"sv);
  }
  head_.append("\r\n"sv);
}

bool session::write_now(std::array<std::string_view, 3>& pieces, write_wait& wait) {
  wait = write_wait::none;
  if (auto* tls = stream_.tls()) {
    // Pieces that fit one record together are packed into it: a small response is one record
    // (and one segment), not a record per piece.
    constexpr size_t record = 16 * 1024;
    size_t total = pieces[0].size() + pieces[1].size() + pieces[2].size();
    if (total <= record && !pieces[1].empty()) {
      tls_out_.assign(pieces[0]).append(pieces[1]).append(pieces[2]);
      pieces = {tls_out_, {}, {}};
    }
    for (std::string_view& piece : pieces) {
      while (!piece.empty()) {
        boost::system::error_code ec;
        size_t n = 0;
        auto w = tls->write_step(asio::buffer(piece), n, ec);
        if (w != tls_socket::want::nothing) {
          wait = w == tls_socket::want::read ? write_wait::readable : write_wait::writable;
          return true;
        }
        if (ec || n == 0) {
          return false;
        }
        piece.remove_prefix(n);
      }
    }
    return true;
  }
  std::array<asio::const_buffer, 3> bufs;
  size_t used = 0;
  for (std::string_view piece : pieces) {
    if (!piece.empty()) {
      bufs[used++] = asio::buffer(piece);
    }
  }
  if (used == 0) {
    return true;
  }
  boost::system::error_code ec;
  size_t n =
      stream_.socket().write_some(std::span<const asio::const_buffer>(bufs.data(), used), ec);
  if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
    return false;
  }
  for (std::string_view& piece : pieces) {
    size_t k = std::min(n, piece.size());
    piece.remove_prefix(k);
    n -= k;
    if (!piece.empty()) {
      wait = write_wait::writable;
    }
  }
  return true;
}

asio::awaitable<bool> session::write_all(std::string_view a, std::string_view b,
                                         std::string_view c) {
  std::array<std::string_view, 3> pieces{a, b, c};
  write_wait wait;
  if (!write_now(pieces, wait)) {
    co_return false;
  }
  co_return wait == write_wait::none || co_await write_rest(pieces, wait);
}

asio::awaitable<bool> session::write_rest(std::array<std::string_view, 3> pieces, write_wait wait) {
  while (wait != write_wait::none) {
    // The deadline is per wait: a slow reader that keeps taking bytes is not cut.
    set_deadline(opts_.write_timeout);
    boost::system::error_code ec;
    auto* tls = stream_.tls();
    if (wait == write_wait::readable) {
      auto [fill_ec, filled] = co_await tls->async_fill();
      tls->filled(filled);
      ec = fill_ec;
    } else {
      std::tie(ec) = co_await stream_.socket().async_wait(tcp::socket::wait_write);
    }
    clear_deadline();
    if (ec || !write_now(pieces, wait)) {
      co_return false;
    }
  }
  co_return true;
}

asio::awaitable<next> session::write_error(unsigned status, std::string_view code,
                                           std::string_view message) {
  response res = error_response(status, code, message);
  res.close = true;
  msg_.req = {};  // the version of a request we could not read: answer as HTTP/1.1
  co_return co_await write_response(res, false, false);
}

asio::awaitable<next> session::write_response(response& res, bool head_only, bool keep_alive) {
  keep_alive = keep_alive && !res.close && !stopping_;
  bool http11 = msg_.req.version() >= 11;
  if (std::holds_alternative<std::string>(res.body) ||
      std::holds_alternative<shared_body>(res.body)) {
    auto* s = std::get_if<std::string>(&res.body);
    std::string_view body = s ? std::string_view(*s) : std::get<shared_body>(res.body).view();
    build_head(res, body.size(), false, keep_alive);
    // Most responses leave at once: no coroutine frame for the write unless it has to wait.
    std::array<std::string_view, 3> pieces{head_, head_only ? std::string_view{} : body, {}};
    write_wait wait;
    bool ok = write_now(pieces, wait);
    if (ok && wait != write_wait::none) {
      ok = co_await write_rest(pieces, wait);
    }
    co_return ok&& keep_alive ? next::keep_alive : next::close;
  }
  if (auto* f = std::get_if<file_body>(&res.body)) {
    build_head(res, f->length(), false, keep_alive);
    bool ok;
    if (head_only || f->length() == 0) {
      ok = co_await write_all(head_);
    } else if (stream_.tls()) {
      ok = co_await copy_file(head_, *f);
    } else {
      ok = co_await write_head_before_file(head_) && co_await send_file(*f);
    }
    co_return ok&& keep_alive ? next::keep_alive : next::close;
  }
  if (auto* st = std::get_if<stream_body>(&res.body)) {
    co_return co_await send_stream(res, *st, head_only, keep_alive);
  }
  if (auto* sse = std::get_if<sse_body>(&res.body)) {
    if (!res.header("Content-Type")) {
      res.headers.emplace_back("Content-Type", "text/event-stream");
    }
    res.set("Cache-Control", "no-cache");
    // Tells an nginx in front not to buffer the stream.
    res.set("X-Accel-Buffering", "no");
    // HTTP/1.0 has no chunked encoding: the stream ends when the connection does.
    build_head(res, std::nullopt, http11, http11);
    phase_ = phase::streaming;
    co_await serve_sse(stream_, head_, std::move(*sse), opts_, http11, channel_, stopping_);
    co_return next::close;
  }
  auto& ws = std::get<websocket_body>(res.body);
  if (!req_.wants_websocket()) {
    co_return co_await write_error(426, "upgrade_required",
                                   "this endpoint needs a WebSocket upgrade");
  }
  phase_ = phase::streaming;
  co_await serve_websocket(stream_, msg_.req, std::move(ws), opts_, channel_, stopping_);
  co_return next::close;
}

// The head is held back for the file's first bytes (MSG_MORE, as nginx's tcp_nopush), so the
// two leave in full segments instead of a lone head packet followed by the body. sendfile's last
// piece pushes everything out.
asio::awaitable<bool> session::write_head_before_file(std::string_view head) {
  auto& sock = stream_.socket();
  boost::system::error_code ec;
  sock.native_non_blocking(true, ec);
  if (!ec) {
    ssize_t n = ::send(sock.native_handle(), head.data(), head.size(), MSG_MORE | MSG_NOSIGNAL);
    if (n > 0) {
      head.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      co_return false;
    }
  }
  co_return head.empty() || co_await write_all(head);
}

asio::awaitable<bool> session::send_file(const file_body& f) {
  auto& sock = stream_.socket();
  boost::system::error_code ec;
  sock.native_non_blocking(true, ec);
  if (ec) {
    co_return false;
  }
  off_t off = static_cast<off_t>(f.offset());
  uint64_t left = f.length();
  while (left > 0) {
    ssize_t n = ::sendfile(sock.native_handle(), f.fd(), &off,
                           static_cast<size_t>(std::min<uint64_t>(left, 1u << 30)));
    if (n > 0) {
      left -= static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n == 0 || errno != EAGAIN) {
      // The file shrank or the socket failed: the promised length cannot be kept.
      co_return false;
    }
    // The socket buffer is full: wait for room, but not longer than the write timeout.
    set_deadline(opts_.write_timeout);
    auto [wec] = co_await sock.async_wait(tcp::socket::wait_write);
    clear_deadline();
    if (wec) {
      co_return false;
    }
  }
  co_return true;
}

asio::awaitable<bool> session::copy_file(std::string_view head, const file_body& f) {
  if (!chunk_buf_) {
    chunk_buf_ = std::make_unique<char[]>(stream_chunk);
  }
  // The head shares the first buffer with the file's first bytes: a small response leaves in
  // one TLS record.
  size_t lead = head.size() <= stream_chunk / 2 ? head.size() : 0;
  if (lead == 0 && !co_await write_all(head)) {
    co_return false;
  }
  std::memcpy(chunk_buf_.get(), head.data(), lead);
  uint64_t off = f.offset();
  uint64_t left = f.length();
  while (left > 0) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(left, stream_chunk - lead));
    ssize_t n = ::pread(f.fd(), chunk_buf_.get() + lead, want, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      co_return false;  // the file shrank: the promised length cannot be kept
    }
    if (!co_await write_all({chunk_buf_.get(), lead + static_cast<size_t>(n)})) {
      co_return false;
    }
    lead = 0;
    off += static_cast<uint64_t>(n);
    left -= static_cast<uint64_t>(n);
  }
  co_return true;
}

asio::awaitable<next> session::send_stream(response& res, stream_body& body, bool head_only,
                                           bool keep_alive) {
  bool http11 = msg_.req.version() >= 11;
  bool chunked = !body.length && http11;
  // Without a length or chunking, only closing the connection can end the body.
  keep_alive = keep_alive && (body.length || chunked);
  if (head_only) {
    build_head(res, body.length, false, keep_alive);
    co_return co_await write_all(head_) && keep_alive ? next::keep_alive : next::close;
  }
  if (!chunk_buf_) {
    chunk_buf_ = std::make_unique<char[]>(stream_chunk);
  }
  // The first chunk is pulled before the head, so a producer failing at once still gets an
  // honest status instead of a truncated 200.
  std::span<char> span(chunk_buf_.get(), stream_chunk);
  auto first = co_await body.read(span);
  if (!first) {
    log::warn("http stream body failed before the first byte", {{"error", first.error()}});
    response err = error_response(502, "bad_gateway", "the response body could not be read");
    err.close = !keep_alive;
    co_return co_await write_response(err, false, keep_alive);
  }
  build_head(res, body.length, chunked, keep_alive);
  uint64_t sent = 0;
  size_t n = *first;
  std::string frame;
  bool first_write = true;
  for (;;) {
    if (body.length && sent + n > *body.length) {
      co_return next::close;  // the producer broke its promise; the client sees a short body
    }
    if (n == 0) {
      break;
    }
    frame.clear();
    if (first_write) {
      frame.append(head_);
      first_write = false;
    }
    if (chunked) {
      fmt::format_to(std::back_inserter(frame), "{:x}\r\n", n);
    }
    std::string_view data(chunk_buf_.get(), n);
    std::string_view tail = chunked ? std::string_view("\r\n") : std::string_view{};
    if (!co_await write_all(frame, data, tail)) {
      co_return next::close;
    }
    sent += n;
    auto r = co_await body.read(span);
    if (!r) {
      log::warn("http stream body failed", {{"error", r.error()}, {"sent", sent}});
      co_return next::close;
    }
    n = *r;
  }
  if (body.length && sent != *body.length) {
    co_return next::close;
  }
  std::string_view end = chunked ? std::string_view("0\r\n\r\n") : std::string_view{};
  if (!co_await write_all(first_write ? std::string_view(head_) : std::string_view{}, end)) {
    co_return next::close;
  }
  co_return keep_alive ? next::keep_alive : next::close;
}

}  // namespace dp::http::detail
