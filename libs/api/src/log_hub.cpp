#include "log_hub.hpp"

#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

#include "dp/core/log.hpp"
#include "dp/core/spawn.hpp"
#include "dp/proto/json.hpp"

namespace dp::api {

namespace asio = boost::asio;

log_hub::log_hub(asio::any_io_executor ex, redis::options opts, proto::keys keys,
                 size_t queue_limit, metrics& m)
    : ex_(ex),
      sub_(ex, std::move(opts)),
      keys_(std::move(keys)),
      logs_prefix_(keys_.logs_channel("")),
      queue_limit_(queue_limit),
      metrics_(m) {}

asio::awaitable<dp::result<void>> log_hub::start() {
  auto logs = co_await sub_.psubscribe(keys_.logs_pattern());
  auto events = co_await sub_.subscribe(keys_.events_channel());
  if (!running_) {
    running_ = true;
    dp::spawn(ex_, run(), "log hub");
  }
  if (!logs) {
    co_return logs.error();
  }
  co_return events;
}

void log_hub::stop() {
  sub_.close();
}

std::shared_ptr<follower> log_hub::follow(asio::any_io_executor ex, std::string deployment_id) {
  auto f = std::make_shared<follower>(ex, deployment_id);
  by_id_[std::move(deployment_id)].push_back(f);
  ++count_;
  metrics_.set_stream_clients(static_cast<int64_t>(count_));
  return f;
}

void log_hub::unfollow(const std::shared_ptr<follower>& f) {
  auto it = by_id_.find(f->deployment_id);
  if (it == by_id_.end()) {
    return;
  }
  auto& v = it->second;
  if (auto pos = std::find(v.begin(), v.end(), f); pos != v.end()) {
    v.erase(pos);
    --count_;
    metrics_.set_stream_clients(static_cast<int64_t>(count_));
  }
  if (v.empty()) {
    by_id_.erase(it);
  }
}

asio::awaitable<void> log_hub::run() {
  for (;;) {
    auto m = co_await sub_.next();
    if (!m) {
      if (!m.error().is(dp::errc::canceled)) {
        dp::log::error("log hub stopped reading pub/sub", {{"error", m.error()}});
      }
      break;
    }
    deliver(*m);
  }
  // Followers still waiting re-read the logbook; their own checks end them.
  for (auto& [id, followers] : by_id_) {
    for (auto& f : followers) {
      f->gap = true;
      f->wake();
    }
  }
}

void log_hub::deliver(const redis::message& m) {
  if (m.kind == redis::message_kind::gap) {
    for (auto& [id, followers] : by_id_) {
      for (auto& f : followers) {
        f->gap = true;
        f->wake();
      }
    }
    return;
  }
  if (m.channel.starts_with(logs_prefix_)) {
    auto it = by_id_.find(m.channel.substr(logs_prefix_.size()));
    if (it == by_id_.end()) {
      return;  // nobody follows this build: not even parsed
    }
    auto event = proto::parse_log_event(std::string_view(m.payload));
    if (!event) {
      dp::log::warn("ignored a malformed log event",
                    {{"channel", m.channel}, {"error", event.error()}});
      return;
    }
    auto shared = std::make_shared<const live_event>(live_event{event->seq, m.payload});
    // Copied: on_drop may end a follower, which unfollows it from this vector.
    auto followers = it->second;
    for (auto& f : followers) {
      if (f->dropped || f->closed) {
        continue;
      }
      if (f->queue.size() >= queue_limit_) {
        f->dropped = true;
        f->queue.clear();
        metrics_.count_dropped_client();
        if (f->on_drop) {
          f->on_drop(fmt::format("client too slow: more than {} log events waiting", queue_limit_));
        }
      } else {
        f->queue.push_back(shared);
      }
      f->wake();
    }
    return;
  }
  if (m.channel == keys_.events_channel()) {
    auto event = proto::parse_deployment_event(std::string_view(m.payload));
    if (!event) {
      dp::log::warn("ignored a malformed deployment event", {{"error", event.error()}});
      return;
    }
    const auto* status = std::get_if<proto::status_event>(&*event);
    if (!status) {
      return;
    }
    metrics_.count_status_event(proto::to_string(status->status));
    if (!proto::is_final(status->status)) {
      return;
    }
    if (auto it = by_id_.find(status->deployment_id); it != by_id_.end()) {
      for (auto& f : it->second) {
        f->final = true;
        f->wake();
      }
    }
  }
}

}  // namespace dp::api
