#include <sys/sendfile.h>
#include <sys/socket.h>

#include <cerrno>

#include <boost/beast/websocket/rfc6455.hpp>

#include <atomic>
#include <ctime>
#include <limits>
#include <thread>
#include <unordered_set>

#include <fmt/format.h>

#include "detail.hpp"
#include "dp/core/log.hpp"
#include "dp/core/spawn.hpp"
#include "dp/http/server.hpp"

namespace dp::http {
namespace detail {

namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using accept_executor_t =
    asio::as_tuple_t<asio::use_awaitable_t<>>::executor_with_default<strand_t>;
using acceptor_t = asio::basic_socket_acceptor<tcp, accept_executor_t>;

constexpr size_t stream_chunk = 64 * 1024;

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

bool has_crlf(std::string_view s) noexcept {
  return s.find_first_of("\r\n") != s.npos;
}

class session;

// What a connection does after a response.
enum class next { keep_alive, close };

struct server_state : std::enable_shared_from_this<server_state> {
  server_state(asio::io_context& io, server_options o, router r)
      : ioc(io),
        opts(std::move(o)),
        routes(std::move(r)),
        accept_strand(asio::make_strand(io)),
        acceptor(accept_executor_t(accept_strand)),
        drain_timer(accept_strand) {}

  asio::awaitable<void> accept_loop();
  void stop(std::chrono::milliseconds drain, std::function<void()> done);
  void remove(const std::shared_ptr<session>& s);
  void maybe_done();  // under mu

  asio::io_context& ioc;
  server_options opts;
  router routes;
  strand_t accept_strand;
  acceptor_t acceptor;
  wait_timer drain_timer;
  dp::config::host_port bound;

  std::mutex mu;
  std::unordered_set<std::shared_ptr<session>> sessions;
  bool stopping = false;
  bool accepting = false;
  std::function<void()> on_done;
  std::atomic<size_t> count{0};
};

class session : public std::enable_shared_from_this<session> {
 public:
  session(std::shared_ptr<server_state> srv, tcp_stream_t stream, dp::config::host_port remote)
      : srv_(std::move(srv)),
        opts_(srv_->opts),
        stream_(std::move(stream)),
        watchdog_(stream_.get_executor()),
        remote_(std::move(remote)) {}

  asio::awaitable<void> run();
  // Both run on the session's strand.
  void on_stop();
  void force_close();
  strand_t strand() { return stream_.get_executor(); }

 private:
  enum class phase { idle, busy, streaming };

  asio::awaitable<next> handle_one();
  asio::awaitable<next> write_response(response& res, bool head_only, bool keep_alive);
  asio::awaitable<next> write_error(unsigned status, std::string_view code,
                                    std::string_view message);
  // Points req_ (the handler's view) at msg_.req: path, query, method, peer.
  void bind_request(http::method m);
  void build_head(const response& res, std::optional<uint64_t> length, bool chunked,
                  bool keep_alive);
  asio::awaitable<bool> write_all(std::string_view a, std::string_view b = {});
  asio::awaitable<bool> write_head_before_file(std::string_view head);
  asio::awaitable<bool> send_file(const file_body& f);
  asio::awaitable<next> send_stream(response& res, stream_body& body, bool head_only,
                                    bool keep_alive);
  asio::awaitable<void> linger_close();

  std::shared_ptr<server_state> srv_;
  const server_options& opts_;
  tcp_stream_t stream_;
  wait_timer watchdog_;
  uint64_t watchdog_gen_ = 0;
  beast::flat_buffer buf_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  message msg_;
  request req_;
  dp::config::host_port remote_;
  std::string head_;
  std::unique_ptr<char[]> chunk_buf_;
  std::shared_ptr<channel> channel_;
  phase phase_ = phase::idle;
  bool stopping_ = false;
  bool linger_ = false;  // the client may still be sending: drain before closing
};

asio::awaitable<void> session::run() {
  for (;;) {
    // Waiting for the next request is the idle phase: stop() may end it at once.
    if (buf_.size() == 0) {
      phase_ = phase::idle;
      if (stopping_) {
        break;
      }
      stream_.expires_after(opts_.idle_timeout);
      auto [ec, n] = co_await stream_.async_read_some(buf_.prepare(8192));
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
  boost::system::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream_.socket().close(ignored);
}

asio::awaitable<next> session::handle_one() {
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(opts_.header_limit));
  // The route decides the body limit; until then, none.
  parser_->body_limit(std::numeric_limits<uint64_t>::max());
  stream_.expires_after(opts_.read_timeout);
  auto [ec, n] = co_await bhttp::async_read_header(stream_, buf_, *parser_);
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
    stream_.expires_after(opts_.read_timeout);
    auto [ec2, n2] = co_await bhttp::async_read(stream_, buf_, *parser_);
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

void session::build_head(const response& res, std::optional<uint64_t> length, bool chunked,
                         bool keep_alive) {
  head_.clear();
  auto reason = bhttp::obsolete_reason(static_cast<bhttp::status>(res.status));
  fmt::format_to(std::back_inserter(head_), "HTTP/1.1 {} {}\r\nDate: {}\r\n", res.status,
                 std::string_view(reason.data(), reason.size()), http_date());
  for (const auto& [name, value] : res.headers) {
    // A line break in a header would let a value forge headers or a second response.
    if (has_crlf(name) || has_crlf(value)) {
      log::warn("http response header dropped: contains a line break", {{"name", name}});
      continue;
    }
    head_.append(name).append(": ").append(value).append("\r\n");
  }
  bool no_body_status = res.status < 200 || res.status == 204 || res.status == 304;
  if (length && !no_body_status) {
    fmt::format_to(std::back_inserter(head_), "Content-Length: {}\r\n", *length);
  }
  if (chunked) {
    head_.append("Transfer-Encoding: chunked\r\n");
  }
  if (!keep_alive) {
    head_.append("Connection: close\r\n");
  } else if (msg_.req.version() == 10) {
    head_.append("Connection: keep-alive\r\n");
  }
  head_.append("\r\n");
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

asio::awaitable<bool> session::write_all(std::string_view a, std::string_view b) {
  std::array<asio::const_buffer, 2> bufs{asio::buffer(a), asio::buffer(b)};
  stream_.expires_after(opts_.write_timeout);
  auto [ec, n] = co_await asio::async_write(stream_, bufs);
  co_return !ec;
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
    bool ok = co_await write_all(head_, head_only ? std::string_view{} : body);
    co_return ok&& keep_alive ? next::keep_alive : next::close;
  }
  if (auto* f = std::get_if<file_body>(&res.body)) {
    build_head(res, f->length(), false, keep_alive);
    bool ok = !head_only && f->length() > 0 ? co_await write_head_before_file(head_)
                                            : co_await write_all(head_);
    if (ok && !head_only) {
      ok = co_await send_file(*f);
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
    uint64_t gen = ++watchdog_gen_;
    watchdog_.expires_after(opts_.write_timeout);
    watchdog_.async_wait([w = weak_from_this(), gen](boost::system::error_code e) {
      auto self = w.lock();
      if (!e && self && self->watchdog_gen_ == gen) {
        boost::system::error_code ignored;
        self->stream_.socket().cancel(ignored);
      }
    });
    auto [wec] = co_await sock.async_wait(tcp::socket::wait_write);
    ++watchdog_gen_;
    watchdog_.cancel();
    if (wec) {
      co_return false;
    }
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
    std::array<asio::const_buffer, 3> bufs{asio::buffer(frame), asio::buffer(data),
                                           asio::buffer(tail)};
    stream_.expires_after(opts_.write_timeout);
    auto [ec, w] = co_await asio::async_write(stream_, bufs);
    if (ec) {
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

asio::awaitable<void> session::linger_close() {
  // Closing with unread input makes the kernel send a reset, which can destroy the error
  // response before the client reads it; so stop sending, then drain briefly.
  boost::system::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  char scratch[4096];
  size_t drained = 0;
  stream_.expires_after(std::chrono::seconds(1));
  while (drained < 1024 * 1024) {
    auto [ec, n] = co_await stream_.async_read_some(asio::buffer(scratch));
    if (ec) {
      break;
    }
    drained += n;
  }
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

asio::awaitable<void> server_state::accept_loop() {
  for (;;) {
    auto [ec, sock] = co_await acceptor.async_accept(executor_t(asio::make_strand(ioc)));
    if (ec) {
      if (!acceptor.is_open() || ec == asio::error::operation_aborted) {
        break;
      }
      // Out of descriptors: wait a little rather than spin.
      log::warn("http accept failed", {{"error", ec.message()}});
      wait_timer pause(accept_strand, std::chrono::milliseconds(50));
      co_await pause.async_wait();
      continue;
    }
    if (count.load(std::memory_order_relaxed) >= opts.max_connections) {
      continue;  // the socket closes when it goes out of scope
    }
    boost::system::error_code rec;
    auto ep = sock.remote_endpoint(rec);
    dp::config::host_port remote{rec ? std::string{} : ep.address().to_string(),
                                 rec ? uint16_t{0} : ep.port()};
    sock.set_option(tcp::no_delay(true), rec);
    auto s = std::make_shared<session>(shared_from_this(), tcp_stream_t(std::move(sock)),
                                       std::move(remote));
    {
      std::lock_guard lock(mu);
      sessions.insert(s);
      count.fetch_add(1, std::memory_order_relaxed);
      if (stopping) {
        asio::post(s->strand(), [s] { s->on_stop(); });
      }
    }
    // A named lambda owning the session (gcc bug 107288 with temporaries in co_spawn).
    auto session_main = [s]() -> asio::awaitable<void> { co_await s->run(); };
    dp::spawn(s->strand(), session_main, "http session",
              [self = shared_from_this(), s](bool) { self->remove(s); });
  }
  std::lock_guard lock(mu);
  accepting = false;
  maybe_done();
}

void server_state::remove(const std::shared_ptr<session>& s) {
  std::lock_guard lock(mu);
  sessions.erase(s);
  count.fetch_sub(1, std::memory_order_relaxed);
  maybe_done();
}

void server_state::maybe_done() {
  if (!stopping || accepting || !sessions.empty()) {
    return;
  }
  asio::post(accept_strand, [self = shared_from_this(), done = std::move(on_done)] {
    self->drain_timer.cancel();
    if (done) {
      done();
    }
  });
  on_done = nullptr;
}

void server_state::stop(std::chrono::milliseconds drain, std::function<void()> done) {
  std::lock_guard lock(mu);
  if (stopping) {
    return;
  }
  stopping = true;
  on_done = std::move(done);
  asio::post(accept_strand, [self = shared_from_this(), drain] {
    boost::system::error_code ignored;
    self->acceptor.close(ignored);
    // After the drain deadline, whatever is still open is closed.
    self->drain_timer.expires_after(drain);
    self->drain_timer.async_wait([self](boost::system::error_code ec) {
      if (ec) {
        return;
      }
      std::lock_guard lock(self->mu);
      for (const auto& s : self->sessions) {
        asio::post(s->strand(), [s] { s->force_close(); });
      }
    });
  });
  for (const auto& s : sessions) {
    asio::post(s->strand(), [s] { s->on_stop(); });
  }
  maybe_done();
}

}  // namespace detail

// ---- request ----

std::string_view request::method_name() const noexcept {
  auto s = msg_->req.method_string();
  return {s.data(), s.size()};
}
std::string_view request::target() const noexcept {
  auto s = msg_->req.target();
  return {s.data(), s.size()};
}
const std::vector<std::pair<std::string, std::string>>& request::query_params() const {
  if (!query_params_) {
    query_params_ = parse_query(query_);
  }
  return *query_params_;
}
std::optional<std::string> request::query(std::string_view name) const {
  for (const auto& [k, v] : query_params()) {
    if (k == name) {
      return v;
    }
  }
  return std::nullopt;
}
std::optional<std::string_view> request::host() const {
  if (!authority_.empty()) {
    return authority_;
  }
  return header("Host");
}
std::optional<std::string_view> request::header(std::string_view name) const {
  auto it = msg_->req.find(boost::beast::string_view(name.data(), name.size()));
  if (it == msg_->req.end()) {
    return std::nullopt;
  }
  return std::string_view(it->value().data(), it->value().size());
}
std::vector<std::pair<std::string_view, std::string_view>> request::headers() const {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  for (const auto& f : msg_->req) {
    out.emplace_back(std::string_view(f.name_string().data(), f.name_string().size()),
                     std::string_view(f.value().data(), f.value().size()));
  }
  return out;
}
std::string& request::body() noexcept {
  return msg_->req.body();
}
const std::string& request::body() const noexcept {
  return msg_->req.body();
}
int request::version() const noexcept {
  return static_cast<int>(msg_->req.version());
}
bool request::keep_alive() const noexcept {
  return msg_->req.keep_alive();
}
bool request::wants_websocket() const noexcept {
  return boost::beast::websocket::is_upgrade(msg_->req);
}
std::string_view request::param(std::string_view name) const noexcept {
  for (const auto& [k, v] : params_) {
    if (k == name) {
      return v;
    }
  }
  return {};
}

// ---- server ----

struct server::impl {
  std::shared_ptr<detail::server_state> state;
};

server::server(boost::asio::io_context& ioc, server_options options, router routes)
    : impl_(std::make_shared<impl>()) {
  impl_->state = std::make_shared<detail::server_state>(ioc, std::move(options), std::move(routes));
}

server::~server() {
  // Sessions keep the state alive; without a stop() they would outlive the server object.
  stop(std::chrono::milliseconds(0));
}

dp::result<void> server::start() {
  namespace asio = boost::asio;
  auto& st = *impl_->state;
  const auto& listen = st.opts.listen;
  std::string what = fmt::format("listen on {}", listen.to_string());
  boost::system::error_code ec;
  asio::ip::tcp::endpoint ep;
  auto addr = asio::ip::make_address(listen.host, ec);
  if (!ec) {
    ep = {addr, listen.port};
  } else {
    // A host name: start-up only, so a blocking resolve is fine.
    asio::ip::tcp::resolver resolver(st.ioc);
    auto results = resolver.resolve(listen.host, std::to_string(listen.port), ec);
    if (ec || results.empty()) {
      return make_error(ec ? ec : asio::error::host_not_found, what);
    }
    ep = results.begin()->endpoint();
  }
  st.acceptor.open(ep.protocol(), ec);
  if (!ec) {
    st.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  }
  if (!ec) {
    st.acceptor.bind(ep, ec);
  }
  if (!ec) {
    st.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    boost::system::error_code ignored;
    st.acceptor.close(ignored);
    return make_error(ec, what);
  }
  auto local = st.acceptor.local_endpoint(ec);
  st.bound = {local.address().to_string(), local.port()};
  {
    std::lock_guard lock(st.mu);
    st.accepting = true;
  }
  auto accept_main = [state = impl_->state]() -> asio::awaitable<void> {
    co_await state->accept_loop();
  };
  dp::spawn(st.accept_strand, accept_main, "http accept loop");
  return {};
}

dp::config::host_port server::local_endpoint() const {
  return impl_->state->bound;
}
uint16_t server::port() const {
  return impl_->state->bound.port;
}
size_t server::connections() const noexcept {
  return impl_->state->count.load();
}

void server::stop(std::chrono::milliseconds drain, std::function<void()> done) {
  impl_->state->stop(drain, std::move(done));
}

void server::run() {
  auto& ioc = impl_->state->ioc;
  std::vector<std::thread> extra;
  for (int i = 1; i < impl_->state->opts.threads; ++i) {
    extra.emplace_back([&ioc] { ioc.run(); });
  }
  ioc.run();
  for (auto& t : extra) {
    t.join();
  }
}

}  // namespace dp::http
