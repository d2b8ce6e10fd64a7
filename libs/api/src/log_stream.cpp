// Logs: a page of the logbook (JSON), and the live stream (SSE or WebSocket) that replays the
// logbook, then follows the hub's feed, every line exactly once and in seq order.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>

#include "dp/core/log.hpp"
#include "dp/core/spawn.hpp"
#include "dp/http/stream.hpp"
#include "dp/proto/json.hpp"
#include "dp/state/logbook.hpp"
#include "service_impl.hpp"

namespace dp::api {

namespace {

constexpr size_t replay_page = 1000;
constexpr int64_t max_log_page = 10'000;

// Wakes a follower when its client goes away (the stream closes), so it stops waiting.
template <class Stream>
asio::awaitable<void> watch_close(std::shared_ptr<follower> f, Stream s) {
  co_await s.wait_closed();
  f->closed = true;
  f->wake();
}

}  // namespace

// Where a log stream sends its messages: SSE events or WebSocket text frames.
class sink {
 public:
  virtual ~sink() = default;
  virtual asio::awaitable<dp::result<void>> log(int64_t seq, std::string_view json) = 0;
  virtual asio::awaitable<dp::result<void>> status(std::string_view json) = 0;
  // Called by the hub when the client is too slow; must not suspend. Every later log or status
  // then fails, so that no replay goes on feeding a dropped client.
  void drop(const std::string& reason) {
    dropped_ = true;
    on_drop(reason);
  }

 protected:
  virtual void on_drop(const std::string& reason) = 0;

  // Queues without waiting while there is room (try_send) and waits only when the client lags
  // (send: back-pressure). Fails once the client was dropped.
  template <class TrySend, class Send>
  asio::awaitable<dp::result<void>> deliver(TrySend try_send, Send send) {
    if (dropped_) {
      co_return make_error(errc::canceled, "log stream client dropped");
    }
    auto r = try_send();
    if (r || !r.error().is(dp::errc::too_large)) {
      co_return r;
    }
    co_return co_await send();
  }

 private:
  bool dropped_ = false;
};

namespace {

class sse_sink final : public sink {
 public:
  explicit sse_sink(http::sse_stream s) : s_(std::move(s)) {}
  asio::awaitable<dp::result<void>> log(int64_t seq, std::string_view json) override {
    auto id = std::to_string(seq);
    http::sse_event e{.data = json, .event = "log", .id = id};
    co_return co_await send(e);
  }
  asio::awaitable<dp::result<void>> status(std::string_view json) override {
    http::sse_event e{.data = json, .event = "status"};
    co_return co_await send(e);
  }
  void on_drop(const std::string& reason) override {
    // The error event goes out if there is room; otherwise the stream just ends.
    if (!s_.try_send({.data = reason, .event = "error"})) {
      s_.close(1008, reason);
    }
  }

 private:
  asio::awaitable<dp::result<void>> send(const http::sse_event& e) {
    co_return co_await deliver([&] { return s_.try_send(e); }, [&] { return s_.send(e); });
  }
  http::sse_stream s_;
};

class ws_sink final : public sink {
 public:
  explicit ws_sink(http::websocket ws) : ws_(std::move(ws)) {}
  asio::awaitable<dp::result<void>> log(int64_t, std::string_view json) override {
    // {"type":"log", + the event's own fields: one frame, no re-serialization.
    std::string frame;
    frame.reserve(json.size() + 14);
    frame.append("{\"type\":\"log\",").append(json.substr(1));
    return send(std::move(frame));
  }
  asio::awaitable<dp::result<void>> status(std::string_view json) override {
    return send(fmt::format("{{\"type\":\"status\",\"deployment\":{}}}", json));
  }
  void on_drop(const std::string& reason) override { ws_.close(1008, reason); }

 private:
  // A coroutine, so that `frame` lives until the frame is queued.
  asio::awaitable<dp::result<void>> send(std::string frame) {
    co_return co_await deliver([&] { return ws_.try_send_text(frame); },
                               [&] { return ws_.send_text(frame); });
  }
  http::websocket ws_;
};

}  // namespace

asio::awaitable<response> service::impl::get_logs(http::request& req) {
  auto d = co_await find_deployment(req.param("id"));
  if (!d) {
    co_return error(d.error());
  }
  auto since = parse_count(req.query("since"), "since", 0, INT64_MAX - 1);
  auto limit = parse_count(req.query("limit"), "limit", 1000, max_log_page);
  if (!since || !limit) {
    co_return error(!since ? since.error() : limit.error());
  }
  auto events =
      co_await state::read_logbook(redis_, opts_.keys, d->id, *since, static_cast<size_t>(*limit));
  if (!events) {
    co_return error(events.error());
  }
  std::string body = "{\"deployment_id\":\"" + d->id + "\",\"status\":\"";
  body.append(proto::to_string(d->status)).append("\",\"events\":[");
  for (size_t i = 0; i < events->size(); ++i) {
    if (i > 0) {
      body.push_back(',');
    }
    proto::append_json(body, (*events)[i]);
  }
  int64_t last = events->empty() ? *since : events->back().seq;
  body.append("],\"next_since\":").append(std::to_string(last)).append("}");
  co_return response(200, "application/json", std::move(body));
}

asio::awaitable<response> service::impl::stream_logs(http::request& req) {
  auto d = co_await find_deployment(req.param("id"));
  if (!d) {
    co_return error(d.error());
  }
  // Resume point: Last-Event-ID (sent by EventSource on reconnect) wins over ?since=.
  std::optional<std::string> since_text = req.query("since");
  if (auto h = req.header("last-event-id")) {
    since_text = std::string(*h);
  }
  auto since = parse_count(since_text, "since", 0, INT64_MAX - 1);
  if (!since) {
    co_return error(since.error());
  }
  response res;
  std::string id = d->id;
  int64_t from = *since;
  if (req.wants_websocket()) {
    res.body = http::websocket_body{[this, id, from](http::websocket ws) {
      return run_stream(id, from, std::make_unique<ws_sink>(ws), ws);
    }};
  } else {
    res.set("cache-control", "no-cache");
    res.body = http::sse_body{[this, id, from](http::sse_stream s) {
      return run_stream(id, from, std::make_unique<sse_sink>(s), s);
    }};
  }
  co_return res;
}

asio::awaitable<dp::result<void>> service::impl::replay(const std::string& id, int64_t& last,
                                                        sink& out) {
  for (;;) {
    auto events = co_await state::read_logbook(redis_, opts_.keys, id, last, replay_page);
    if (!events) {
      co_return events.error();
    }
    std::string text;
    for (const auto& e : *events) {
      text.clear();
      proto::append_json(text, e);
      if (auto r = co_await out.log(e.seq, text); !r) {
        co_return r;
      }
      last = e.seq;
    }
    if (events->size() < replay_page) {
      co_return dp::result<void>{};
    }
  }
}

asio::awaitable<dp::result<void>> service::impl::finish(const std::string& id, int64_t& last,
                                                        sink& out) {
  if (auto r = co_await replay(id, last, out); !r) {
    co_return r;
  }
  auto d = co_await records_.get_deployment(id);
  if (!d) {
    co_return d.error();
  }
  co_return co_await out.status(json::serialize(deployment_json(*d)));
}

template <class Stream>
asio::awaitable<void> service::impl::run_stream(std::string id, int64_t last,
                                                std::unique_ptr<sink> out, Stream stream) {
  auto ex = co_await asio::this_coro::executor;
  auto f = hub_.follow(ex, id);
  f->on_drop = [target = out.get(), id](const std::string& reason) {
    dp::log::warn("log stream client dropped", {{"deployment", id}, {"reason", reason}});
    target->drop(reason);
  };
  dp::spawn(ex, watch_close(f, stream), "log stream close watch");
  co_await follow(id, last, *out, *f);
  f->on_drop = nullptr;
  hub_.unfollow(f);
}

asio::awaitable<void> service::impl::follow(const std::string& id, int64_t last, sink& out,
                                            follower& f) {
  if (auto r = co_await replay(id, last, out); !r) {
    co_return;
  }
  // A final status published before we subscribed was missed: read the record.
  auto d = co_await records_.get_deployment(id);
  if (!d) {
    co_return;
  }
  if (proto::is_final(d->status)) {
    f.final = true;
  }
  for (;;) {
    if (f.closed || f.dropped) {
      co_return;
    }
    if (f.queue.empty() && !f.gap && !f.final) {
      f.signal.expires_at(asio::steady_timer::time_point::max());
      co_await f.signal.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    auto items = std::exchange(f.queue, {});
    bool need_replay = std::exchange(f.gap, false);
    for (const auto& e : items) {
      if (need_replay || e->seq <= last) {
        continue;  // already sent (the replay overlapped the live feed)
      }
      if (e->seq != last + 1) {
        need_replay = true;  // a hole: the logbook has the missing lines
        continue;
      }
      if (auto r = co_await out.log(e->seq, e->text); !r) {
        co_return;
      }
      last = e->seq;
    }
    if (f.dropped || f.closed) {
      co_return;
    }
    if (need_replay) {
      if (auto r = co_await replay(id, last, out); !r) {
        co_return;
      }
    }
    if (f.final) {
      co_await finish(id, last, out);
      co_return;
    }
  }
}

}  // namespace dp::api
