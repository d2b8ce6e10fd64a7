// Long-lived streams a handler gets from an sse_body or websocket_body response.
//
// Each stream has a bounded outgoing queue. `send` waits until the message is written (for a
// handler that produces at the client's pace); `try_send` only queues, from any thread, and fails
// with errc::too_large when the queue holds more than server_options::stream_queue_limit bytes:
// that is how a fan-out drops a slow client (call close with a reason) instead of growing memory.
// The awaitable members must be awaited from the handler's own coroutine (the connection's
// strand); try_send, close and is_open may be called from anywhere.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "dp/core/error.hpp"

namespace dp::http {

namespace detail {
class channel;
}

struct sse_event {
  std::string_view data;  // may hold several lines: each becomes its own "data:" line
  std::string_view event;
  std::string_view id;
  std::optional<unsigned> retry_ms;
};

// The wire form of one event: "id: 7\nevent: log\ndata: a\ndata: b\n\n".
std::string format_sse(const sse_event& e);

class stream_base {
 public:
  // Ends the stream: a WebSocket gets a close frame with `code` and `reason`; an SSE response
  // is ended. Queued messages are dropped. Idempotent.
  void close(uint16_t code = 1000, std::string_view reason = {});
  bool is_open() const noexcept;
  // Why the stream closed ("client disconnected", "server shutting down", a close reason).
  std::string close_reason() const;
  // Completes when the stream is closed by the client, close() or the server stopping.
  boost::asio::awaitable<void> wait_closed() const;
  // Bytes queued and not yet written.
  size_t queued_bytes() const noexcept;

 protected:
  explicit stream_base(std::shared_ptr<detail::channel> c) : ch_(std::move(c)) {}
  std::shared_ptr<detail::channel> ch_;
};

class sse_stream : public stream_base {
 public:
  explicit sse_stream(std::shared_ptr<detail::channel> c) : stream_base(std::move(c)) {}
  boost::asio::awaitable<dp::result<void>> send(const sse_event& e);
  dp::result<void> try_send(const sse_event& e);
};

class websocket : public stream_base {
 public:
  explicit websocket(std::shared_ptr<detail::channel> c) : stream_base(std::move(c)) {}
  boost::asio::awaitable<dp::result<void>> send_text(std::string_view text);
  dp::result<void> try_send_text(std::string_view text);
  // The next message from the client (pings and pongs are answered by the server). Fails with
  // errc::canceled once the stream is closed. At most 64 unread messages are kept; more are
  // dropped, so a handler that never reads still notices the close.
  boost::asio::awaitable<dp::result<std::string>> read();
};

}  // namespace dp::http
