// The fan-out of live build logs: ONE pub/sub connection per api-server (PSUBSCRIBE logs:* and
// SUBSCRIBE events:deployments) feeds every log-stream client. Each client is a follower with a
// bounded queue; a follower that falls too far behind is dropped instead of growing memory.
// Lives on one thread with the HTTP server (the api-server runs a single-threaded io_context).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "dp/api/metrics.hpp"
#include "dp/proto/keys.hpp"
#include "dp/redis/subscriber.hpp"

namespace dp::api {

// One published log event, parsed once and shared by every follower of its deployment.
struct live_event {
  int64_t seq = 0;
  std::string text;  // the event's JSON as published
};

struct follower {
  follower(boost::asio::any_io_executor ex, std::string id)
      : deployment_id(std::move(id)), signal(ex) {}

  std::string deployment_id;
  std::deque<std::shared_ptr<const live_event>> queue;
  bool gap = false;                  // messages may have been lost: re-read the logbook
  bool final = false;                // the deployment reached a final status
  bool dropped = false;              // the queue overflowed; the client is being dropped
  bool closed = false;               // the client went away
  boost::asio::steady_timer signal;  // canceled to wake the follower
  std::function<void(const std::string& reason)> on_drop;

  void wake() { signal.cancel(); }
};

class log_hub {
 public:
  log_hub(boost::asio::any_io_executor ex, redis::options opts, proto::keys keys,
          size_t queue_limit, metrics& m);
  log_hub(const log_hub&) = delete;
  log_hub& operator=(const log_hub&) = delete;

  // Subscribes (waiting for Redis to confirm) and starts delivering. When Redis is away the
  // subscriptions are made as soon as it is back, and followers get a gap then.
  boost::asio::awaitable<dp::result<void>> start();
  void stop();

  // Register BEFORE replaying the logbook, so that nothing published meanwhile is missed.
  std::shared_ptr<follower> follow(boost::asio::any_io_executor ex, std::string deployment_id);
  void unfollow(const std::shared_ptr<follower>& f);
  size_t followers() const noexcept { return count_; }

 private:
  boost::asio::awaitable<void> run();
  void deliver(const redis::message& m);

  boost::asio::any_io_executor ex_;
  redis::subscriber sub_;
  proto::keys keys_;
  std::string logs_prefix_;
  size_t queue_limit_;
  metrics& metrics_;
  std::unordered_map<std::string, std::vector<std::shared_ptr<follower>>> by_id_;
  size_t count_ = 0;
  bool running_ = false;
};

}  // namespace dp::api
