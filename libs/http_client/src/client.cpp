// The client's API: header_map, client::send and client::open, and response_stream. The
// transfers themselves run in the multi-socket driver (multi.cpp, transfer.cpp).
#include "dp/http_client/client.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "detail.hpp"

namespace dp::http_client {

// ---- header_map ----

void header_map::add(std::string name, std::string value) {
  entries_.emplace_back(std::move(name), std::move(value));
}

std::optional<std::string_view> header_map::get(std::string_view name) const {
  for (const auto& [k, v] : entries_) {
    if (iequals(k, name)) {
      return std::string_view(v);
    }
  }
  return std::nullopt;
}

std::vector<std::string_view> header_map::get_all(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const auto& [k, v] : entries_) {
    if (iequals(k, name)) {
      out.emplace_back(v);
    }
  }
  return out;
}

namespace {

// Cancellation of the awaiting coroutine ends the transfer (on the strand, where curl lives).
template <class Sig>
void on_cancel_abort(asio::any_completion_handler<Sig>& h, const std::shared_ptr<transfer>& t) {
  auto slot = asio::get_associated_cancellation_slot(h);
  if (!slot.is_connected()) {
    return;
  }
  slot.assign([w = std::weak_ptr<transfer>(t)](asio::cancellation_type) {
    auto t = w.lock();
    if (!t) {
      return;
    }
    asio::post(t->strand, [t] {
      if (auto owner = t->owner.lock()) {
        owner->abort(*t, dp::make_error(errc::canceled, "{}: canceled", t->target));
      }
    });
  });
}

}  // namespace

// ---- client ----

client::client(asio::any_io_executor ex, client_options options)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(options))) {}

client::~client() {
  // Shut down on the strand; waits still pending keep impl alive until they are canceled.
  asio::dispatch(impl_->strand(), [i = impl_] { i->shutdown(); });
}

asio::awaitable<dp::result<response>> client::send(request req) {
  auto self = impl_;
  auto t = self->prepare(req, false);
  if (!t) {
    co_return t.error();
  }
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&,
                                          void(dp::result<response>)>(
      [](auto handler, std::shared_ptr<client::impl> self, std::shared_ptr<transfer> t) {
        store(t->on_done, std::move(handler));
        on_cancel_abort(t->on_done, t);
        asio::post(self->strand(), [self, t] { self->start(t); });
      },
      asio::use_awaitable, self, *t);
}

asio::awaitable<dp::result<response_stream>> client::open(request req) {
  auto self = impl_;
  auto t = self->prepare(req, true);
  if (!t) {
    co_return t.error();
  }
  auto ready =
      co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(dp::result<void>)>(
          [](auto handler, std::shared_ptr<client::impl> self, std::shared_ptr<transfer> t) {
            store(t->on_headers, std::move(handler));
            on_cancel_abort(t->on_headers, t);
            asio::post(self->strand(), [self, t] { self->start(t); });
          },
          asio::use_awaitable, self, *t);
  if (!ready) {
    co_return ready.error();
  }
  co_return response_stream::make(std::move(*t));
}

// ---- response_stream ----

response_stream::response_stream(std::shared_ptr<state> s) : state_(std::move(s)) {}
response_stream response_stream::make(std::shared_ptr<state> s) {
  return response_stream(std::move(s));
}
response_stream::response_stream(response_stream&&) noexcept = default;

response_stream& response_stream::operator=(response_stream&& other) noexcept {
  if (this != &other) {
    response_stream old(std::move(*this));
    state_ = std::move(other.state_);
  }
  return *this;
}

response_stream::~response_stream() {
  if (!state_) {
    return;
  }
  auto strand = state_->strand;
  asio::post(strand, [t = std::move(state_)] {
    if (auto owner = t->owner.lock()) {
      owner->abort(*t,
                   dp::make_error(errc::canceled, "{}: the response stream was closed", t->target));
    }
  });
}

int response_stream::status() const noexcept {
  return state_->resp.status;
}
const header_map& response_stream::headers() const noexcept {
  return state_->resp.headers;
}

size_t response_stream::max_buffered() const noexcept {
  // Read on the reader's side after a read_some completed: the strand's writes happened before.
  return state_->max_buffered;
}

asio::awaitable<dp::result<size_t>> response_stream::read_some(std::span<char> buf) {
  if (buf.empty()) {
    co_return dp::make_error(errc::invalid_argument, "{}: read_some needs a non-empty buffer",
                             state_->target);
  }
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(dp::result<size_t>)>(
      [](auto handler, std::shared_ptr<state> t, std::span<char> buf) {
        store(t->on_read, std::move(handler));
        t->read_buf = buf;
        on_cancel_abort(t->on_read, t);
        asio::post(t->strand, [t] {
          pump_read(*t);
          // The reader has drained half the buffer: let curl deliver again (it may call
          // write_cb from inside). Waiting for half, not for one byte of room, makes each
          // pause/resume cycle move many chunks. in_multi means the client is still there.
          if (t->paused && t->in_multi && t->buffered() <= t->max_bytes / 2) {
            t->paused = false;
            curl_easy_pause(t->easy, CURLPAUSE_CONT);
          }
        });
      },
      asio::use_awaitable, state_, buf);
}

}  // namespace dp::http_client
