// One connection: reads each request (head first, so a handler can refuse before the body),
// dispatches it to the router and decides whether the connection goes on; stop() and the drain
// deadline end it. Responses are written by response_writer.cpp.
#include "session.hpp"

#include <fmt/format.h>

#include "dp/core/log.hpp"

namespace dp::http::detail {

namespace {

http::method from_verb(bhttp::verb v) noexcept {
  switch (v) {
    case bhttp::verb::get:
      return method::get;
    case bhttp::verb::head:
      return method::head;
    case bhttp::verb::post:
      return method::post;
    case bhttp::verb::put:
      return method::put;
    case bhttp::verb::patch:
      return method::patch;
    case bhttp::verb::delete_:
      return method::delete_;
    case bhttp::verb::options:
      return method::options;
    default:
      return method::other;
  }
}

// A parse error means the client sent something that is not HTTP (400); end of stream, a
// partial message, timeouts and resets mean it went away (no answer).
bool is_malformed(const boost::system::error_code& ec) noexcept {
  return ec.category() == bhttp::make_error_code(bhttp::error::end_of_stream).category() &&
         ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message;
}

// A request-target's parts. The absolute-form ("http://host/path?q", RFC 9112 3.2.2), which a
// server must accept, names the host in place of the Host header.
struct target_parts {
  std::string_view authority;
  std::string_view path;
  std::string_view query;
};

target_parts split_target(boost::beast::string_view beast_target) noexcept {
  std::string_view t(beast_target.data(), beast_target.size());
  target_parts p;
  for (std::string_view scheme : {"http://", "https://"}) {
    if (t.size() > scheme.size() && boost::beast::iequals(t.substr(0, scheme.size()), scheme)) {
      t.remove_prefix(scheme.size());
      size_t end = t.find_first_of("/?");
      p.authority = t.substr(0, end);
      t = end == t.npos ? std::string_view{} : t.substr(end);
      if (t.empty() || t.front() == '?') {
        p.path = "/";  // "http://host" and "http://host?q" ask for the root
        p.query = t.empty() ? t : t.substr(1);
        return p;
      }
      break;
    }
  }
  size_t q = t.find('?');
  p.path = t.substr(0, q);
  p.query = q == t.npos ? std::string_view{} : t.substr(q + 1);
  return p;
}

}  // namespace

asio::awaitable<void> session::run() {
  if (auto* tls = stream_.tls()) {
    // A client that never finishes its handshake is dropped; a failed one (unknown SNI, an old
    // protocol, no shared cipher) is nothing to log per client.
    set_deadline(opts_.handshake_timeout);
    boost::system::error_code ec;
    for (auto w = tls->handshake_step(ec); w != tls_socket::want::nothing;
         w = tls->handshake_step(ec)) {
      if (w == tls_socket::want::read) {
        auto [fill_ec, n] = co_await tls->async_fill();
        tls->filled(n);
        ec = fill_ec;
      } else {
        std::tie(ec) = co_await tls->async_wait_writable();
      }
      if (ec) {
        break;
      }
    }
    clear_deadline();
    if (ec || stopping_) {
      watchdog_.cancel();
      boost::system::error_code ignored;
      stream_.socket().close(ignored);
      co_return;
    }
  } else {
    // A response goes out with a send right away; only what the socket does not take waits.
    boost::system::error_code ignored;
    stream_.socket().non_blocking(true, ignored);
  }
  for (;;) {
    // Waiting for the next request is the idle phase: stop() may end it at once.
    if (buf_.size() == 0) {
      phase_ = phase::idle;
      if (stopping_) {
        break;
      }
      set_deadline(opts_.idle_timeout);
      auto [ec, n] = co_await read_some(buf_.prepare(8192));
      clear_deadline();
      if (ec) {
        break;
      }
      buf_.commit(n);
    }
    phase_ = phase::busy;
    if (co_await handle_one() == next::close || stopping_) {
      break;
    }
  }
  if (linger_) {
    co_await linger_close();
  }
  clear_deadline();
  watchdog_.cancel();
  // No TLS close_notify: HTTP/1.1 frames every response, so the client loses nothing when the
  // connection simply closes (close sends the FIN after what is queued).
  boost::system::error_code ignored;
  stream_.socket().close(ignored);
}

asio::awaitable<next> session::handle_one() {
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(opts_.header_limit));
  // The route decides the body limit; until then, none.
  parser_->body_limit(std::numeric_limits<uint64_t>::max());
  // A request already buffered (it came with the read that ended the idle wait, or was
  // pipelined) is parsed here; an async read would only post its completion through the
  // scheduler.
  boost::system::error_code ec;
  parse_buffered(ec);
  if (!ec && !parser_->is_header_done()) {
    set_deadline(opts_.read_timeout);
    auto [read_ec, n] = co_await bhttp::async_read_header(stream_, buf_, *parser_);
    clear_deadline();
    ec = read_ec;
  }
  if (ec == bhttp::error::header_limit) {
    linger_ = true;
    co_return co_await write_error(
        431, "headers_too_large",
        fmt::format("request headers exceed {} bytes", opts_.header_limit));
  }
  if (ec) {
    // A peer that closed or timed out gets nothing; a malformed request gets a 400.
    if (is_malformed(ec)) {
      linger_ = true;
      co_return co_await write_error(400, "bad_request", ec.message());
    }
    co_return next::close;
  }
  auto& h = parser_->get();
  // RFC 9112 3.2: a request with two Host headers, or an HTTP/1.1 one without, is refused.
  if (size_t hosts = h.count(bhttp::field::host); hosts > 1 || (hosts == 0 && h.version() >= 11)) {
    linger_ = true;
    co_return co_await write_error(
        400, "bad_request",
        hosts > 1 ? "more than one Host header" : "an HTTP/1.1 request needs a Host header");
  }
  http::method m = from_verb(h.method());
  std::string_view path = split_target(h.target()).path;
  auto match = srv_->routes.match(m, path, req_.params_);
  bool has_body = !parser_->is_done();
  if (!match.target) {
    // The body of a request we refuse is not read: the connection cannot be reused.
    linger_ = linger_ || has_body;
    response res = match.allow.empty()
                       ? error_response(404, "not_found", fmt::format("no route for {}", path))
                       : error_response(405, "method_not_allowed",
                                        fmt::format("{} is not allowed here", h.method_string()));
    if (!match.allow.empty()) {
      res.set("Allow", match.allow);
    }
    res.close = has_body;
    co_return co_await write_response(res, m == method::head, h.keep_alive());
  }
  if (has_body && match.options->admit) {
    msg_.req = {};
    msg_.req.base() = h;  // the head alone; the whole request replaces it once read
    bind_request(m);
    if (auto refused = match.options->admit(req_)) {
      linger_ = true;
      refused->close = true;
      co_return co_await write_response(*refused, false, false);
    }
  }
  if (has_body) {
    size_t limit = match.options->body_limit.value_or(opts_.body_limit);
    auto length = parser_->content_length();
    if (length && *length > limit) {
      linger_ = true;
      co_return co_await write_error(413, "too_large",
                                     fmt::format("request body exceeds {} bytes", limit));
    }
    // The client waits for this before sending the body it announced.
    auto expect = h[bhttp::field::expect];
    if (h.version() >= 11 && beast::iequals(expect, "100-continue")) {
      static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
      if (!co_await write_all(cont)) {
        co_return next::close;
      }
    }
    parser_->body_limit(limit);
    set_deadline(opts_.read_timeout);
    auto [ec2, n2] = co_await bhttp::async_read(stream_, buf_, *parser_);
    clear_deadline();
    if (ec2 == bhttp::error::body_limit) {
      linger_ = true;
      co_return co_await write_error(413, "too_large",
                                     fmt::format("request body exceeds {} bytes", limit));
    }
    if (ec2) {
      if (is_malformed(ec2)) {
        linger_ = true;
        co_return co_await write_error(400, "bad_request", ec2.message());
      }
      co_return next::close;
    }
  }
  msg_.req = parser_->release();
  bind_request(m);
  bool keep_alive = msg_.req.keep_alive();
  response res;
  try {
    res = co_await (*match.target)(req_);
  } catch (const std::exception& e) {
    // A handler bug costs its request a 500, never the server.
    log::error("http handler threw",
               {{"method", req_.method_name()}, {"path", req_.path_}, {"error", e.what()}});
    res = error_response(500, "internal", "internal error");
    res.close = true;
  }
  co_return co_await write_response(res, m == method::head, keep_alive);
}

void session::bind_request(http::method m) {
  auto parts = split_target(msg_.req.target());
  req_.msg_ = &msg_;
  req_.remote_ = &remote_;
  req_.method_ = m;
  req_.authority_ = parts.authority;
  req_.path_ = parts.path;
  req_.query_ = parts.query;
  req_.query_params_.reset();
}

asio::awaitable<void> session::linger_close() {
  // Closing with unread input makes the kernel send a reset, which can destroy the error
  // response before the client reads it; so stop sending, then drain briefly.
  boost::system::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  char scratch[4096];
  size_t drained = 0;
  set_deadline(std::chrono::seconds(1));
  while (drained < 1024 * 1024) {
    auto [ec, n] = co_await stream_.async_read_some(asio::buffer(scratch));
    if (ec) {
      break;
    }
    drained += n;
  }
}

asio::awaitable<std::tuple<boost::system::error_code, size_t>> session::read_some(
    asio::mutable_buffer b) {
  auto* tls = stream_.tls();
  if (!tls) {
    // The socket itself: the session's deadline bounds the wait, not Beast's stream timer.
    co_return co_await stream_.socket().async_read_some(b);
  }
  // OpenSSL first: a record it holds already (read ahead) needs no wait.
  boost::system::error_code ec;
  size_t n = 0;
  for (auto w = tls->read_step(b, n, ec); w != tls_socket::want::nothing;
       w = tls->read_step(b, n, ec)) {
    boost::system::error_code wait_ec;
    if (w == tls_socket::want::read) {
      auto [fill_ec, filled] = co_await tls->async_fill();
      tls->filled(filled);
      wait_ec = fill_ec;
    } else {
      std::tie(wait_ec) = co_await tls->async_wait_writable();
    }
    if (wait_ec) {
      co_return std::tuple(wait_ec, size_t{0});
    }
  }
  co_return std::tuple(ec, n);
}

void session::parse_buffered(boost::system::error_code& ec) {
  if (buf_.size() == 0) {
    return;
  }
  buf_.consume(parser_->put(buf_.data(), ec));
  if (ec == bhttp::error::need_more) {
    ec = {};
  }
}

void session::set_deadline(std::chrono::steady_clock::duration d) {
  deadline_ = std::chrono::steady_clock::now() + d;
  if (!watchdog_armed_ || watchdog_.expiry() > deadline_) {
    arm_watchdog();
  }
}

void session::arm_watchdog() {
  watchdog_armed_ = true;
  watchdog_.expires_at(deadline_);
  watchdog_.async_wait([w = weak_from_this()](boost::system::error_code ec) {
    if (ec) {
      return;  // re-armed or cancelled
    }
    if (auto self = w.lock()) {
      self->on_watchdog();
    }
  });
}

void session::on_watchdog() {
  watchdog_armed_ = false;
  if (deadline_ == std::chrono::steady_clock::time_point::max()) {
    return;
  }
  if (std::chrono::steady_clock::now() < deadline_) {
    arm_watchdog();  // the deadline moved on since the timer was set
    return;
  }
  // The read or write waiting took too long: it fails, and with it the connection.
  boost::system::error_code ignored;
  stream_.socket().close(ignored);
}

void session::on_stop() {
  stopping_ = true;
  if (phase_ == phase::idle) {
    boost::system::error_code ignored;
    stream_.socket().cancel(ignored);
  }
  if (channel_) {
    channel_->close(1001, "server shutting down");
  }
}

void session::force_close() {
  boost::system::error_code ignored;
  stream_.socket().close(ignored);
}

}  // namespace dp::http::detail
