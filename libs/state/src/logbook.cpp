#include "dp/state/logbook.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <charconv>
#include <deque>
#include <random>

#include "dp/core/clock.hpp"
#include "dp/core/log.hpp"
#include "dp/core/spawn.hpp"
#include "dp/proto/json.hpp"
#include "dp/redis/client.hpp"
#include "dp/state/records.hpp"

namespace dp::state {

namespace asio = boost::asio;

struct log_writer::impl : std::enable_shared_from_this<impl> {
  impl(asio::any_io_executor ex, redis::client& r, const proto::keys& k, std::string id,
       int64_t first, log_writer_options o)
      : executor(ex),
        redis(r),
        deployment_id(std::move(id)),
        logbook(k.logbook(deployment_id)),
        channel(k.logs_channel(deployment_id)),
        next_seq(first),
        opts(o),
        idle(ex) {}

  asio::any_io_executor executor;
  redis::client& redis;
  std::string deployment_id;
  std::string logbook;
  std::string channel;
  int64_t next_seq;
  std::optional<proto::log_phase> phase;  // of the lines written from now on
  log_writer_options opts;
  std::deque<std::pair<int64_t, std::string>> pending;  // seq, event JSON
  bool sending = false;
  bool closed = false;
  asio::steady_timer idle;  // canceled whenever the buffer drains: wakes flush()

  void start() {
    if (sending || pending.empty() || closed) {
      return;
    }
    sending = true;
    dp::spawn(executor, send_loop(shared_from_this()), "log batch sender");
  }

  static asio::awaitable<void> send_loop(std::shared_ptr<impl> self) {
    auto delay = self->opts.retry_min;
    std::minstd_rand jitter(std::random_device{}());
    while (!self->pending.empty() && !self->closed) {
      size_t n = std::min(self->pending.size(), self->opts.max_batch);
      std::vector<std::vector<std::string>> commands;
      commands.reserve(n * 2 + 1);
      for (size_t i = 0; i < n; ++i) {
        const auto& [seq, json] = self->pending[i];
        commands.push_back({"XADD", self->logbook, "MAXLEN", "~",
                            std::to_string(self->opts.max_len), std::to_string(seq) + "-0", "e",
                            json});
        commands.push_back({"PUBLISH", self->channel, json});
      }
      commands.push_back({"EXPIRE", self->logbook, std::to_string(self->opts.ttl.count())});
      auto replies = co_await self->redis.pipeline(std::move(commands));
      if (self->closed) {
        break;
      }
      if (!replies) {
        // Keep the batch and try again: a log line is never dropped for a passing outage.
        log::warn("log batch not stored, retrying",
                  {{"deployment", self->deployment_id}, {"error", replies.error()}});
        asio::steady_timer wait(self->executor, delay + std::chrono::milliseconds(jitter() % 50));
        boost::system::error_code ec;
        co_await wait.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        delay = std::min(delay * 2, self->opts.retry_max);
        continue;
      }
      // Error replies here are XADDs of ids the stream already has (a batch re-sent after a
      // connection loss): those events are stored, which is all that matters.
      delay = self->opts.retry_min;
      self->pending.erase(self->pending.begin(), self->pending.begin() + static_cast<long>(n));
    }
    self->sending = false;
    self->idle.cancel();
  }
};

log_writer::log_writer(asio::any_io_executor executor, redis::client& redis,
                       const proto::keys& keys, std::string deployment_id, int64_t first_seq,
                       log_writer_options opts)
    : impl_(std::make_shared<impl>(executor, redis, keys, std::move(deployment_id), first_seq,
                                   opts)) {}

log_writer::~log_writer() {
  impl_->closed = true;
  impl_->idle.cancel();
}

void log_writer::write(proto::log_stream stream, std::string_view line) {
  proto::log_event e{impl_->deployment_id, impl_->next_seq++, now_ms(), stream,
                     std::string(line),    impl_->phase};
  std::string json;
  json.reserve(line.size() + 96);
  proto::append_json(json, e);
  impl_->pending.emplace_back(e.seq, std::move(json));
  impl_->start();
}

void log_writer::phase(proto::log_phase p) {
  impl_->phase = p;
}

asio::awaitable<dp::result<void>> log_writer::flush(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto self = impl_;
  while (!self->pending.empty() || self->sending) {
    if (std::chrono::steady_clock::now() >= deadline) {
      co_return make_error(errc::timeout, "{} log lines of {} not stored within {} ms",
                           self->pending.size(), self->deployment_id, timeout.count());
    }
    // Woken by the sender when it drains (cancel), or by the deadline.
    self->idle.expires_at(
        std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(200)));
    boost::system::error_code ec;
    co_await self->idle.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return dp::result<void>{};
}

int64_t log_writer::next_seq() const noexcept {
  return impl_->next_seq;
}
size_t log_writer::buffered() const noexcept {
  return impl_->pending.size();
}

asio::awaitable<dp::result<int64_t>> next_log_seq(redis::client& redis, const proto::keys& keys,
                                                  std::string_view deployment_id) {
  std::vector<std::string> command{"XREVRANGE", keys.logbook(deployment_id), "+", "-", "COUNT",
                                   "1"};
  auto r = co_await redis.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  if (r->elements().empty()) {
    co_return int64_t{1};
  }
  // The entry is [id, fields] and the id "<seq>-0"; anything else is not a logbook of ours.
  const auto& entry = r->elements()[0].elements();
  std::string_view id = entry.empty() ? std::string_view{} : entry[0].as_string();
  std::string_view digits = id.substr(0, id.find('-'));
  int64_t seq = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), seq);
  if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || seq < 0) {
    co_return make_error(errc::protocol, "logbook of {}: unexpected entry id '{}'", deployment_id,
                         id);
  }
  co_return seq + 1;
}

asio::awaitable<dp::result<std::vector<proto::log_event>>> read_logbook(
    redis::client& redis, const proto::keys& keys, std::string_view deployment_id,
    int64_t after_seq, size_t max) {
  std::vector<std::string> command{
      "XRANGE", keys.logbook(deployment_id), std::to_string(after_seq + 1) + "-0", "+",
      "COUNT",  std::to_string(max)};
  auto r = co_await redis.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  std::vector<proto::log_event> events;
  events.reserve(r->elements().size());
  for (const auto& entry : r->elements()) {
    // entry = [id, [field, value, ...]]
    if (entry.elements().size() != 2) {
      continue;
    }
    const auto& fields = entry.elements()[1].elements();
    for (size_t i = 0; i + 1 < fields.size(); i += 2) {
      if (fields[i].as_string() == "e") {
        auto e = proto::parse_log_event(std::string_view(fields[i + 1].as_string()));
        if (!e) {
          co_return make_error(errc::protocol, "logbook of {}: {}", deployment_id,
                               e.error().message);
        }
        events.push_back(std::move(*e));
      }
    }
  }
  co_return events;
}

}  // namespace dp::state
