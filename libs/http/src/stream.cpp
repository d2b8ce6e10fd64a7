#include <boost/beast/websocket.hpp>

#include <fmt/format.h>

#include "detail.hpp"
#include "dp/core/log.hpp"
#include "dp/core/spawn.hpp"
#include "dp/http/stream.hpp"

namespace dp::http {
namespace detail {

namespace websocket = beast::websocket;

constexpr size_t max_inbound_messages = 64;

dp::result<void> channel::enqueue(std::string bytes, uint64_t* seq) {
  {
    std::lock_guard lock(m_);
    if (closed_ || finishing_) {
      return make_error(errc::canceled, "stream is closed: {}", reason_);
    }
    // One message larger than the whole limit still goes out when the queue is empty.
    if (queued_ > 0 && queued_ + bytes.size() > limit_) {
      return make_error(errc::too_large, "client too slow: {} bytes queued (limit {})", queued_,
                        limit_);
    }
    queued_ += bytes.size();
    out_.push_back(std::move(bytes));
    if (seq) {
      *seq = ++enqueued_;
    } else {
      ++enqueued_;
    }
  }
  pulse();
  return {};
}

asio::awaitable<dp::result<void>> channel::send(std::string bytes) {
  // Back-pressure: wait for room first, so `send` never fails for being slow, only `try_send`.
  for (;;) {
    {
      std::lock_guard lock(m_);
      if (closed_ || queued_ == 0 || queued_ + bytes.size() <= limit_) {
        break;
      }
    }
    co_await changed_.async_wait();
  }
  uint64_t seq = 0;
  if (auto r = enqueue(std::move(bytes), &seq); !r) {
    co_return r;
  }
  for (;;) {
    {
      std::lock_guard lock(m_);
      if (written_ >= seq) {
        co_return dp::result<void>{};
      }
      if (closed_) {
        co_return make_error(errc::canceled, "stream is closed: {}", reason_);
      }
    }
    co_await changed_.async_wait();
  }
}

void channel::close(uint16_t code, std::string reason, bool by_peer) {
  {
    std::lock_guard lock(m_);
    if (closed_) {
      return;
    }
    closed_ = true;
    by_peer_ = by_peer;
    code_ = code;
    reason_ = std::move(reason);
    out_.clear();
    queued_ = 0;
  }
  asio::post(strand_, [self = shared_from_this()] {
    self->wake_.cancel();
    self->changed_.cancel();
    if (self->on_abort) {
      self->on_abort();
    }
  });
}

void channel::finish() {
  {
    std::lock_guard lock(m_);
    finishing_ = true;
  }
  pulse();
}

void channel::pulse() {
  asio::post(strand_, [self = shared_from_this()] {
    self->wake_.cancel();
    self->changed_.cancel();
  });
}

asio::awaitable<void> channel::wait_closed() {
  while (is_open()) {
    co_await changed_.async_wait();
  }
}

void channel::push_inbound(std::string msg) {
  {
    std::lock_guard lock(m_);
    if (in_.size() >= max_inbound_messages) {
      return;
    }
    in_.push_back(std::move(msg));
  }
  changed_.cancel();  // called on the strand by the reader
}

asio::awaitable<dp::result<std::string>> channel::read() {
  for (;;) {
    {
      std::lock_guard lock(m_);
      if (!in_.empty()) {
        std::string msg = std::move(in_.front());
        in_.pop_front();
        co_return msg;
      }
      if (closed_) {
        co_return make_error(errc::canceled, "websocket closed: {}", reason_);
      }
    }
    co_await changed_.async_wait();
  }
}

bool channel::take(std::deque<std::string>& out, bool& finishing) {
  std::lock_guard lock(m_);
  out.swap(out_);
  finishing = finishing_;
  return !closed_;
}

void channel::written(size_t count, size_t bytes) {
  {
    std::lock_guard lock(m_);
    written_ += count;
    queued_ -= std::min(queued_, bytes);
  }
  changed_.cancel();
}

asio::awaitable<void> channel::wait_work(std::chrono::milliseconds keepalive, bool& timed_out) {
  {
    std::lock_guard lock(m_);
    if (!out_.empty() || closed_ || finishing_) {
      timed_out = false;
      co_return;
    }
  }
  wake_.expires_after(keepalive);
  auto [ec] = co_await wake_.async_wait();
  timed_out = !ec;
}

bool channel::is_open() const {
  std::lock_guard lock(m_);
  return !closed_;
}
bool channel::closed_by_peer() const {
  std::lock_guard lock(m_);
  return by_peer_;
}
uint16_t channel::close_code() const {
  std::lock_guard lock(m_);
  return code_;
}
std::string channel::close_reason() const {
  std::lock_guard lock(m_);
  return reason_;
}
size_t channel::queued_bytes() const {
  std::lock_guard lock(m_);
  return queued_;
}

namespace {

// Runs a helper coroutine of a stream on its strand; `done` is set however it ends.
void spawn_part(const strand_t& strand, asio::awaitable<void> part, latch& done, const char* what) {
  dp::spawn(strand, std::move(part), what, [&done](bool) { done.set(); });
}

// Calls the handler's run function; an exception ends this stream only.
template <class Fn, class Handle>
asio::awaitable<void> run_handler(Fn& fn, Handle h, const char* what) {
  try {
    co_await fn(std::move(h));
  } catch (const std::exception& e) {
    log::error("http stream handler failed", {{"kind", what}, {"error", e.what()}});
  } catch (...) {
    log::error("http stream handler failed", {{"kind", what}, {"error", "unknown exception"}});
  }
}

void append_chunk(std::string& out, std::string_view data, bool chunked) {
  if (chunked) {
    fmt::format_to(std::back_inserter(out), "{:x}\r\n", data.size());
  }
  out.append(data);
  if (chunked) {
    out.append("\r\n");
  }
}

// expires_after bounds a plain connection's writes; a TLS stream's writes wait on the socket
// itself, so this timer closes the socket when one takes longer than write_timeout. Its handler
// touches nothing once the write it was armed for is over or this object is gone.
class tls_write_deadline {
 public:
  tls_write_deadline(conn_stream& stream, std::chrono::milliseconds timeout)
      : stream_(stream), timeout_(timeout), timer_(stream.get_executor()) {}
  ~tls_write_deadline() { *live_ = false; }
  void arm() {
    expired_ = false;
    if (!stream_.tls()) {
      return;
    }
    uint64_t armed = ++generation_;
    timer_.expires_after(timeout_);
    timer_.async_wait([this, live = live_, armed](boost::system::error_code e) {
      if (e || !*live || armed != generation_) {
        return;
      }
      expired_ = true;
      stream_.socket().close(e);
    });
  }
  // The write is over: a handler already queued does nothing.
  void disarm() {
    ++generation_;
    timer_.cancel();
  }
  bool expired() const noexcept { return expired_; }

 private:
  conn_stream& stream_;
  std::chrono::milliseconds timeout_;
  wait_timer timer_;
  std::shared_ptr<bool> live_ = std::make_shared<bool>(true);
  uint64_t generation_ = 0;
  bool expired_ = false;
};

asio::awaitable<void> sse_writer(conn_stream& stream, std::shared_ptr<channel> ch,
                                 const server_options& opts, bool chunked) {
  tls_write_deadline tls_deadline(stream, opts.write_timeout);
  std::deque<std::string> batch;
  std::string wire;
  for (;;) {
    bool timed_out = false;
    co_await ch->wait_work(opts.sse_keepalive, timed_out);
    bool finishing = false;
    if (!ch->take(batch, finishing)) {
      break;
    }
    // A comment line keeps proxies and browsers from timing out an idle stream.
    if (batch.empty() && timed_out) {
      batch.emplace_back(": keep-alive\n\n");
    }
    if (batch.empty() && finishing) {
      if (chunked) {
        stream.expires_after(opts.write_timeout);
        tls_deadline.arm();
        co_await asio::async_write(stream, asio::buffer("0\r\n\r\n", 5));
        tls_deadline.disarm();
      }
      break;
    }
    // One write per batch: events queued together leave together.
    wire.clear();
    size_t bytes = 0;
    for (const auto& e : batch) {
      append_chunk(wire, e, chunked);
      bytes += e.size();
    }
    stream.expires_after(opts.write_timeout);
    tls_deadline.arm();
    auto [ec, n] = co_await asio::async_write(stream, asio::buffer(wire));
    tls_deadline.disarm();
    if (ec) {
      bool timed_out_write = ec == beast::error::timeout || tls_deadline.expired();
      ch->close(1006, timed_out_write ? "write timed out" : "client disconnected", true);
      break;
    }
    ch->written(batch.size(), bytes);
    batch.clear();
  }
}

// An SSE client sends nothing after its request: a completed read means it went away.
asio::awaitable<void> sse_reader(conn_stream& stream, std::shared_ptr<channel> ch) {
  char scratch[512];
  for (;;) {
    auto [ec, n] = co_await stream.socket().async_read_some(asio::buffer(scratch));
    if (ec) {
      ch->close(1006, "client disconnected", true);
      break;
    }
  }
}

}  // namespace

asio::awaitable<void> serve_sse(conn_stream& stream, std::string head, sse_body body,
                                const server_options& opts, bool chunked,
                                std::shared_ptr<channel>& registered, const bool& stopping) {
  stream.expires_after(opts.write_timeout);
  {
    tls_write_deadline tls_deadline(stream, opts.write_timeout);
    tls_deadline.arm();
    auto [ec, n] = co_await asio::async_write(stream, asio::buffer(head));
    tls_deadline.disarm();
    if (ec) {
      co_return;
    }
  }
  stream.expires_never();
  strand_t strand = stream.get_executor();
  auto ch = std::make_shared<channel>(strand, opts.stream_queue_limit);
  ch->on_abort = [&stream] {
    boost::system::error_code ignored;  // the socket may be closed already (a write timeout)
    stream.socket().cancel(ignored);
  };
  registered = ch;
  if (stopping) {
    ch->close(1001, "server shutting down");
  }
  // The reader uses the raw socket so that it never shares tcp_stream's timers with the writer
  // (on TLS it reads records it never decrypts: it only waits for the end).
  spawn_part(strand, sse_reader(stream, ch), ch->reader_done, "sse reader");
  spawn_part(strand, sse_writer(stream, ch, opts, chunked), ch->writer_done, "sse writer");
  co_await run_handler(body.run, sse_stream(ch), "sse");
  ch->finish();
  co_await ch->writer_done.wait();
  ch->close(1000, "stream ended");
  co_await ch->reader_done.wait();
  ch->on_abort = nullptr;
  registered.reset();
}

namespace {

using ws_t = websocket::stream<conn_stream>;

asio::awaitable<void> ws_writer(ws_t& ws, std::shared_ptr<channel> ch) {
  std::deque<std::string> batch;
  bool ok = true;
  for (;;) {
    bool timed_out = false;
    co_await ch->wait_work(std::chrono::hours(24), timed_out);
    bool finishing = false;
    if (!ch->take(batch, finishing)) {
      break;
    }
    if (batch.empty() && finishing) {
      ch->close(1000, "stream ended");
      break;
    }
    size_t bytes = 0;
    for (const auto& m : batch) {
      ws.text(true);
      auto [ec, n] = co_await ws.async_write(asio::buffer(m));
      if (ec) {
        ch->close(1006, "client disconnected", true);
        ok = false;
        break;
      }
      bytes += m.size();
    }
    if (!ok) {
      break;
    }
    ch->written(batch.size(), bytes);
    batch.clear();
  }
  // A close decided on this side is announced with its code and reason.
  if (ok && !ch->closed_by_peer() && ws.is_open()) {
    std::string reason = ch->close_reason();
    websocket::close_reason cr(static_cast<websocket::close_code>(ch->close_code()),
                               reason.substr(0, 123));
    co_await ws.async_close(cr);
  }
}

asio::awaitable<void> ws_reader(ws_t& ws, std::shared_ptr<channel> ch) {
  beast::flat_buffer buf;
  for (;;) {
    auto [ec, n] = co_await ws.async_read(buf);
    if (ec) {
      ch->close(1000, ec == websocket::error::closed ? "closed by client" : "client disconnected",
                true);
      break;
    }
    ch->push_inbound(beast::buffers_to_string(buf.data()));
    buf.consume(buf.size());
  }
}

}  // namespace

asio::awaitable<void> serve_websocket(conn_stream& stream, beast_request& req, websocket_body body,
                                      const server_options& opts,
                                      std::shared_ptr<channel>& registered, const bool& stopping) {
  ws_t ws(std::move(stream));
  // The WebSocket has its own timeouts (the handshake, and pings when the client is silent);
  // tcp_stream's must be off or they would cut an idle but healthy connection.
  beast::get_lowest_layer(ws).expires_never();
  websocket::stream_base::timeout t{};
  t.handshake_timeout = opts.write_timeout;
  t.idle_timeout = opts.idle_timeout;
  t.keep_alive_pings = true;
  ws.set_option(t);
  ws.read_message_max(opts.body_limit);
  auto [ec] = co_await ws.async_accept(req);
  if (ec) {
    co_return;
  }
  strand_t strand = ws.get_executor();
  auto ch = std::make_shared<channel>(strand, opts.stream_queue_limit);
  // A writer stuck on a client that does not read is cut after write_timeout.
  wait_timer kill(strand);
  ch->on_abort = [&ws, &kill, &opts] {
    kill.expires_after(opts.write_timeout);
    kill.async_wait([&ws](boost::system::error_code e) {
      if (!e) {
        beast::get_lowest_layer(ws).socket().close(e);
      }
    });
  };
  registered = ch;
  if (stopping) {
    ch->close(1001, "server shutting down");
  }
  spawn_part(strand, ws_reader(ws, ch), ch->reader_done, "websocket reader");
  spawn_part(strand, ws_writer(ws, ch), ch->writer_done, "websocket writer");
  co_await run_handler(body.run, http::websocket(ch), "websocket");
  ch->finish();
  co_await ch->writer_done.wait();
  co_await ch->reader_done.wait();
  ch->on_abort = nullptr;
  kill.cancel();
  registered.reset();
}

}  // namespace detail

void stream_base::close(uint16_t code, std::string_view reason) {
  ch_->close(code, std::string(reason));
}
bool stream_base::is_open() const noexcept {
  return ch_->is_open();
}
std::string stream_base::close_reason() const {
  return ch_->close_reason();
}
boost::asio::awaitable<void> stream_base::wait_closed() const {
  return ch_->wait_closed();
}
size_t stream_base::queued_bytes() const noexcept {
  return ch_->queued_bytes();
}

boost::asio::awaitable<dp::result<void>> sse_stream::send(const sse_event& e) {
  return ch_->send(format_sse(e));
}
dp::result<void> sse_stream::try_send(const sse_event& e) {
  return ch_->enqueue(format_sse(e));
}

boost::asio::awaitable<dp::result<void>> websocket::send_text(std::string_view text) {
  return ch_->send(std::string(text));
}
dp::result<void> websocket::try_send_text(std::string_view text) {
  return ch_->enqueue(std::string(text));
}
boost::asio::awaitable<dp::result<std::string>> websocket::read() {
  return ch_->read();
}

}  // namespace dp::http
