#include "link.hpp"

#include "dp/core/log.hpp"
#include "dp/core/spawn.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace dp::redis::detail {

namespace asio = boost::asio;

namespace {
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
}

// Commands that share one timeout and one result: a single exec, a pipeline, or AUTH + SELECT.
struct link::batch {
  explicit batch(const asio::any_io_executor& executor) : timer(executor) {}
  asio::steady_timer timer;  // the timeout; canceled early once the batch is done
  std::vector<std::vector<std::string>> commands;  // emptied once hiredis holds its own copy
  std::string what;                                // "GET", "a pipeline of 3 commands"
  std::vector<reply> replies;
  std::size_t received = 0;
  std::optional<dp::error> failure;
  std::weak_ptr<connection> sent_on;
  bool done = false;       // every reply, or a failure, arrived
  bool abandoned = false;  // the caller stopped waiting
};

link::link(asio::any_io_executor executor, options opts, reply_fn push, ready_fn ready)
    : executor_(std::move(executor)),
      opts_(std::move(opts)),
      push_(std::move(push)),
      ready_(std::move(ready)),
      backoff_(executor_),
      random_(std::random_device{}()) {}

void link::start() {
  if (started_ || closed_) {
    return;
  }
  started_ = true;
  dp::spawn(
      executor_, [self = shared_from_this()] { return self->loop(); }, "redis connection loop");
}

void link::close() {
  if (closed_) {
    return;
  }
  closed_ = true;
  backoff_.cancel();
  if (opening_) {
    opening_->close();
  }
  if (conn_) {
    conn_->close();  // commands in flight end with errc::canceled
  }
  for (auto& b : queue_) {
    if (!b->done) {
      b->failure = dp::make_error(errc::canceled, "redis client closed");
      b->done = true;
      b->timer.cancel();
    }
  }
  queue_.clear();
}

asio::awaitable<dp::result<std::vector<reply>>> link::run(
    std::shared_ptr<link> self, std::vector<std::vector<std::string>> commands,
    std::chrono::milliseconds timeout) {
  if (self->closed_) {
    co_return dp::make_error(errc::canceled, "redis client closed");
  }
  if (commands.empty()) {
    co_return std::vector<reply>{};
  }
  // An empty command gets no reply from Redis and would shift every later reply.
  if (std::any_of(commands.begin(), commands.end(), [](const auto& c) { return c.empty(); })) {
    co_return dp::make_error(errc::invalid_argument, "redis: empty command");
  }
  auto b = std::make_shared<batch>(self->executor_);
  b->what = commands.size() == 1 ? commands[0][0]
                                 : fmt::format("a pipeline of {} commands", commands.size());
  b->replies.resize(commands.size());
  b->commands = std::move(commands);
  self->start();
  if (self->current() != nullptr) {
    send(b, self->conn_);
  } else {
    // Callers that gave up are dropped here, so an outage does not grow the queue without bound.
    while (!self->queue_.empty() && self->queue_.front()->abandoned) {
      self->queue_.pop_front();
    }
    self->queue_.push_back(b);
  }
  co_return co_await self->wait(std::move(b), timeout);
}

void link::send(const std::shared_ptr<batch>& b, const std::shared_ptr<connection>& c) {
  b->sent_on = c;
  for (std::size_t i = 0; i < b->commands.size(); ++i) {
    c->send(b->commands[i], [b, i](dp::result<reply> r) {
      if (b->done) {
        return;
      }
      if (!r) {
        b->failure = std::move(r).error();
        b->done = true;
        b->timer.cancel();
        return;
      }
      b->replies[i] = std::move(*r);
      if (++b->received == b->replies.size()) {
        b->done = true;
        b->timer.cancel();
      }
    });
  }
  b->commands = {};
}

asio::awaitable<dp::result<std::vector<reply>>> link::wait(std::shared_ptr<batch> b,
                                                           std::chrono::milliseconds timeout) {
  b->timer.expires_after(timeout);
  auto [ec] = co_await b->timer.async_wait(nothrow);
  if (b->done) {
    if (b->failure) {
      co_return *b->failure;
    }
    co_return std::move(b->replies);
  }
  b->abandoned = true;
  if (closed_) {
    co_return dp::make_error(errc::canceled, "redis client closed");
  }
  if (ec == asio::error::operation_aborted) {
    co_return dp::make_error(errc::canceled, "redis {}: canceled", b->what);
  }
  if (auto c = b->sent_on.lock(); c && c->is_open()) {
    // The late reply would hold up every later reply on this connection: start a fresh one.
    c->close(fmt::format("reset after {} got no reply within {} ms", b->what, timeout.count()));
    co_return dp::make_error(errc::timeout, "redis {}: no reply to {} within {} ms", c->peer(),
                             b->what, timeout.count());
  }
  co_return dp::make_error(errc::unavailable, "redis {}:{} unavailable: {} waited {} ms ({})",
                           opts_.url.host, opts_.url.port, b->what, timeout.count(),
                           last_error_.empty() ? std::string("connecting") : last_error_);
}

asio::awaitable<dp::result<void>> link::handshake(const std::shared_ptr<connection>& c) {
  const auto& url = opts_.url;
  std::vector<std::vector<std::string>> commands;
  if (!url.password.empty()) {
    commands.push_back(url.username.empty()
                           ? std::vector<std::string>{"AUTH", url.password}
                           : std::vector<std::string>{"AUTH", url.username, url.password});
  }
  if (url.db != 0) {
    commands.push_back({"SELECT", std::to_string(url.db)});
  }
  if (commands.empty()) {
    co_return dp::result<void>();
  }
  auto b = std::make_shared<batch>(executor_);
  b->what = "AUTH/SELECT";
  b->replies.resize(commands.size());
  b->commands = commands;
  send(b, c);
  auto r = co_await wait(b, opts_.connect_timeout);
  if (!r) {
    co_return r.error();
  }
  for (std::size_t i = 0; i < r->size(); ++i) {
    const reply& rep = (*r)[i];
    if (rep.is_error()) {
      // Name the command but never echo its arguments: AUTH carries the password.
      const bool auth = commands[i][0] == "AUTH";
      co_return dp::make_error(auth ? errc::unauthorized : errc::invalid_argument,
                               "redis {} refused {}: {}", c->peer(), commands[i][0],
                               rep.as_string());
    }
  }
  co_return dp::result<void>();
}

asio::awaitable<void> link::loop() {
  auto delay = opts_.reconnect_min;
  bool connected_before = false;
  while (!closed_) {
    auto c = std::make_shared<connection>(executor_, push_);
    opening_ = c;
    auto r = co_await c->open(opts_.url, opts_.connect_timeout);
    if (r) {
      r = co_await handshake(c);
    }
    opening_.reset();
    if (closed_) {
      c->close();
      break;
    }
    if (!r) {
      c->close();
      // Logged once per distinct failure, not on every retry of an outage.
      if (r.error().message != last_error_) {
        dp::log::warn("redis connect failed; retrying with backoff",
                      {{"redis", opts_.url.redacted()}, {"error", r.error()}});
      }
      last_error_ = r.error().message;
    } else {
      conn_ = c;
      last_error_.clear();
      delay = opts_.reconnect_min;
      reconnects_ += connected_before ? 1 : 0;
      dp::log::info(connected_before ? "redis reconnected" : "redis connected",
                    {{"redis", opts_.url.redacted()}});
      if (ready_) {
        ready_(*c, connected_before);
      }
      connected_before = true;
      auto queued = std::move(queue_);
      queue_.clear();
      for (auto& b : queued) {
        if (!b->abandoned && !b->done) {
          send(b, c);
        }
      }
      co_await c->wait_closed();
      conn_.reset();
      if (closed_) {
        break;
      }
      last_error_ = c->lost_error().message;
      dp::log::warn("redis connection lost; reconnecting",
                    {{"redis", opts_.url.redacted()}, {"error", last_error_}});
    }
    // Jitter spreads the reconnects of many clients after a server restart.
    const auto half = delay / 2;
    std::uniform_int_distribution<std::chrono::milliseconds::rep> jitter(0, half.count());
    backoff_.expires_after(half + std::chrono::milliseconds(jitter(random_)));
    co_await backoff_.async_wait(nothrow);
    delay = std::min(delay * 2, opts_.reconnect_max);
  }
}

}  // namespace dp::redis::detail
