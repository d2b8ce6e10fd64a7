// Internal types shared by the server's translation units (never installed in include/).
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <variant>

#include "dp/core/error.hpp"
#include "dp/http/message.hpp"
#include "dp/http/server.hpp"
#include "tls_socket.hpp"

namespace dp::http::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;

// Every I/O object of a connection lives on the connection's strand and completes with
// as_tuple(use_awaitable) by default: `auto [ec, n] = co_await stream.async_read_some(...)`.
using strand_t = asio::strand<asio::io_context::executor_type>;
using executor_t = asio::as_tuple_t<asio::use_awaitable_t<>>::executor_with_default<strand_t>;
using tcp_stream_t = beast::basic_stream<asio::ip::tcp, executor_t>;
using wait_timer =
    asio::basic_waitable_timer<std::chrono::steady_clock,
                               asio::wait_traits<std::chrono::steady_clock>, executor_t>;
using beast_request = beast::http::request<beast::http::string_body>;
using tls_socket = basic_tls_socket<executor_t>;

// What a WebSocket over TLS calls to close it (found by ADL): close_notify, then the TCP
// connection's teardown.
inline void teardown(beast::role_type role, tls_socket& s, boost::system::error_code& ec) {
  using beast::websocket::teardown;
  s.send_close_notify();
  teardown(role, s.next_layer().socket(), ec);
}
template <class Handler>
void async_teardown(beast::role_type role, tls_socket& s, Handler&& handler) {
  using beast::websocket::async_teardown;
  s.send_close_notify();
  async_teardown(role, s.next_layer().socket(), std::forward<Handler>(handler));
}

// A connection's bytes: plain TCP, or TLS on its socket. Every read and write goes through
// here, so one session serves both; the socket is the TCP layer's either way. expires_after
// (SSE's write timeout) bounds plain TCP operations only: a TLS one waits on the socket itself,
// so the SSE writer bounds those with a timer of its own (stream.cpp).
class conn_stream {
 public:
  using executor_type = executor_t;
  using variant_t = std::variant<tcp_stream_t, tls_socket>;

  explicit conn_stream(tcp_stream_t s) : s_(std::move(s)) {}
  conn_stream(tcp_stream_t s, asio::ssl::context& tls)
      : s_(std::in_place_type<tls_socket>, std::move(s), tls) {}

  executor_type get_executor() noexcept { return tcp().get_executor(); }
  tcp_stream_t& tcp() noexcept {
    auto* t = std::get_if<tls_socket>(&s_);
    return t ? t->next_layer() : std::get<tcp_stream_t>(s_);
  }
  tcp_stream_t::socket_type& socket() noexcept { return tcp().socket(); }
  void expires_after(std::chrono::steady_clock::duration d) { tcp().expires_after(d); }
  void expires_never() { tcp().expires_never(); }
  // The TLS layer, or null on a plain connection.
  tls_socket* tls() noexcept { return std::get_if<tls_socket>(&s_); }
  variant_t& variant() noexcept { return s_; }

  template <class Buffers, class Token = asio::default_completion_token_t<executor_type>>
  auto async_read_some(const Buffers& buffers, Token&& token = Token()) {
    return std::visit(
        [&](auto& s) { return s.async_read_some(buffers, std::forward<Token>(token)); }, s_);
  }
  template <class Buffers, class Token = asio::default_completion_token_t<executor_type>>
  auto async_write_some(const Buffers& buffers, Token&& token = Token()) {
    return std::visit(
        [&](auto& s) { return s.async_write_some(buffers, std::forward<Token>(token)); }, s_);
  }

 private:
  variant_t s_;
};

// What a WebSocket over a conn_stream calls to close it (found by ADL).
inline void beast_close_socket(conn_stream& s) {
  boost::system::error_code ignored;
  s.socket().close(ignored);
}
inline void teardown(beast::role_type role, conn_stream& s, boost::system::error_code& ec) {
  std::visit(
      [&](auto& x) {
        using beast::websocket::teardown;
        teardown(role, x, ec);
      },
      s.variant());
}
template <class Handler>
void async_teardown(beast::role_type role, conn_stream& s, Handler&& handler) {
  std::visit(
      [&](auto& x) {
        using beast::websocket::async_teardown;
        async_teardown(role, x, std::forward<Handler>(handler));
      },
      s.variant());
}

struct message {
  beast_request req;
};

// A flag coroutines on one strand can wait for.
class latch {
 public:
  explicit latch(const strand_t& s) : timer_(s, std::chrono::steady_clock::time_point::max()) {}
  void set() {
    set_ = true;
    timer_.cancel();
  }
  bool is_set() const noexcept { return set_; }
  asio::awaitable<void> wait() {
    while (!set_) {
      co_await timer_.async_wait();
    }
  }

 private:
  wait_timer timer_;
  bool set_ = false;
};

// The state behind an sse_stream or websocket handle: the bounded outgoing queue, the inbound
// WebSocket messages and the open/closed state. The mutex guards the data (try_send and close
// come from any thread); wake-ups are posted to the strand, where every waiter runs.
class channel : public std::enable_shared_from_this<channel> {
 public:
  channel(strand_t strand, size_t limit)
      : strand_(std::move(strand)),
        limit_(limit),
        wake_(strand_, std::chrono::steady_clock::time_point::max()),
        changed_(strand_, std::chrono::steady_clock::time_point::max()),
        writer_done(strand_),
        reader_done(strand_) {}

  // Queues bytes; `seq` receives their position for waiting on the write.
  dp::result<void> enqueue(std::string bytes, uint64_t* seq = nullptr);
  // Waits until the queue has room, queues, then waits until written.
  asio::awaitable<dp::result<void>> send(std::string bytes);
  void close(uint16_t code, std::string reason, bool by_peer = false);
  // The handler is done: the writer flushes what is queued, then ends the stream.
  void finish();
  asio::awaitable<void> wait_closed();
  void push_inbound(std::string msg);
  asio::awaitable<dp::result<std::string>> read();

  // Writer side (strand only): takes everything queued; false when the writer should stop.
  bool take(std::deque<std::string>& out, bool& finishing);
  void written(size_t count, size_t bytes);
  asio::awaitable<void> wait_work(std::chrono::milliseconds keepalive, bool& timed_out);

  bool is_open() const;
  bool closed_by_peer() const;
  uint16_t close_code() const;
  std::string close_reason() const;
  size_t queued_bytes() const;

  // Run on the strand when the stream is closed: cancels the connection's pending I/O.
  std::function<void()> on_abort;
  const strand_t& strand() const noexcept { return strand_; }

 private:
  void pulse();

  strand_t strand_;
  size_t limit_;
  mutable std::mutex m_;
  std::deque<std::string> out_;
  std::deque<std::string> in_;
  size_t queued_ = 0;
  uint64_t enqueued_ = 0;
  uint64_t written_ = 0;
  bool closed_ = false;
  bool by_peer_ = false;
  bool finishing_ = false;
  uint16_t code_ = 1000;
  std::string reason_;
  wait_timer wake_;     // the writer waits here for work
  wait_timer changed_;  // handlers wait here for writes, inbound messages and the close

 public:
  latch writer_done;
  latch reader_done;
};

// Long-lived responses, entered after the handler returned an sse_body / websocket_body.
// `registered` is where the session keeps the channel so that stop() can close it.
// `stopping` is the session's flag: a stream opened after stop() is closed at once.
asio::awaitable<void> serve_sse(conn_stream& stream, std::string head, sse_body body,
                                const server_options& opts, bool chunked,
                                std::shared_ptr<channel>& registered, const bool& stopping);
asio::awaitable<void> serve_websocket(conn_stream& stream, beast_request& req, websocket_body body,
                                      const server_options& opts,
                                      std::shared_ptr<channel>& registered, const bool& stopping);

}  // namespace dp::http::detail
