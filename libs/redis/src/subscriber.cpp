#include "dp/redis/subscriber.hpp"

#include "link.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <deque>
#include <map>
#include <set>

namespace dp::redis::detail {

namespace asio = boost::asio;

namespace {
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

// Channels and patterns share the bookkeeping maps: 'c' or 'p' + name.
std::string key_of(bool pattern, const std::string& name) {
  return (pattern ? "p" : "c") + name;
}
}  // namespace

class subscription {
 public:
  // The link's hooks capture `this`: close() in the destructor stops them before it goes.
  subscription(asio::any_io_executor executor, options opts, std::size_t max_buffered)
      : link_(std::make_shared<link>(
            executor, std::move(opts), [this](dp::result<reply> r) { on_push(std::move(r)); },
            [this](connection& c, bool reconnect) { on_ready(c, reconnect); })),
        wake_(executor),
        max_buffered_(std::max<std::size_t>(max_buffered, 1)) {}
  ~subscription() { close(); }

  static asio::awaitable<dp::result<void>> subscribe(std::shared_ptr<subscription> self,
                                                     std::vector<std::string> names, bool pattern);
  static asio::awaitable<dp::result<message>> next(std::shared_ptr<subscription> self);
  void unsubscribe(std::vector<std::string> names, bool pattern);
  void close();

  std::uint64_t dropped() const noexcept { return dropped_; }
  std::uint64_t reconnects() const noexcept { return link_->reconnects(); }

 private:
  struct confirmation {
    explicit confirmation(const asio::any_io_executor& executor) : timer(executor) {}
    asio::steady_timer timer;  // the timeout; canceled when the last name is confirmed
    std::size_t remaining = 0;
  };

  void on_push(dp::result<reply> r);
  void on_ready(connection& c, bool reconnect);
  void confirm(const std::string& key);
  void deliver(message m);
  void push_gap();

  std::shared_ptr<link> link_;
  std::set<std::string> channels_;  // what we want subscribed, renewed on every connection
  std::set<std::string> patterns_;
  std::multimap<std::string, std::shared_ptr<confirmation>> waiting_;  // subscribe() callers
  std::set<std::string> renewing_;  // keys not yet confirmed after a reconnect
  bool gap_after_renewal_ = false;
  std::deque<message> buffer_;
  asio::steady_timer wake_;  // next() waits here; canceled when something arrives
  std::size_t max_buffered_;
  bool gap_pending_ = false;  // messages were dropped and no gap marks the spot yet
  std::uint64_t dropped_ = 0;
};

asio::awaitable<dp::result<void>> subscription::subscribe(std::shared_ptr<subscription> self,
                                                          std::vector<std::string> names,
                                                          bool pattern) {
  const char* command = pattern ? "PSUBSCRIBE" : "SUBSCRIBE";
  if (self->link_->closed()) {
    co_return dp::make_error(errc::canceled, "redis subscriber closed");
  }
  if (names.empty()) {
    co_return dp::result<void>();
  }
  auto w = std::make_shared<confirmation>(self->link_->executor());
  w->remaining = names.size();
  for (const auto& n : names) {
    (pattern ? self->patterns_ : self->channels_).insert(n);
    self->waiting_.emplace(key_of(pattern, n), w);
  }
  self->link_->start();
  // Without a connection, on_ready() subscribes everything wanted once there is one.
  if (auto* c = self->link_->current()) {
    std::vector<std::string> argv{command};
    argv.insert(argv.end(), names.begin(), names.end());
    c->send_subscription(argv);
  }
  const auto timeout = self->link_->opts().command_timeout;
  w->timer.expires_after(timeout);
  auto [ec] = co_await w->timer.async_wait(nothrow);
  std::erase_if(self->waiting_, [&](const auto& kv) { return kv.second == w; });
  if (w->remaining == 0) {
    co_return dp::result<void>();
  }
  if (self->link_->closed()) {
    co_return dp::make_error(errc::canceled, "redis subscriber closed");
  }
  if (ec == asio::error::operation_aborted) {
    co_return dp::make_error(errc::canceled, "redis {}: canceled", command);
  }
  const auto& url = self->link_->opts().url;
  co_return dp::make_error(errc::unavailable,
                           "redis {}:{}: {} not confirmed within {} ms; it stays requested and is "
                           "made when the connection is back",
                           url.host, url.port, command, timeout.count());
}

void subscription::unsubscribe(std::vector<std::string> names, bool pattern) {
  auto& wanted = pattern ? patterns_ : channels_;
  if (names.empty()) {
    names.assign(wanted.begin(), wanted.end());
  }
  for (const auto& n : names) {
    wanted.erase(n);
    renewing_.erase(key_of(pattern, n));
  }
  if (renewing_.empty() && gap_after_renewal_) {
    gap_after_renewal_ = false;
    push_gap();
  }
  if (auto* c = link_->current(); c != nullptr && !names.empty()) {
    std::vector<std::string> argv{pattern ? "PUNSUBSCRIBE" : "UNSUBSCRIBE"};
    argv.insert(argv.end(), names.begin(), names.end());
    c->send_subscription(argv);
  }
}

asio::awaitable<dp::result<message>> subscription::next(std::shared_ptr<subscription> self) {
  for (;;) {
    if (!self->buffer_.empty()) {
      message m = std::move(self->buffer_.front());
      self->buffer_.pop_front();
      co_return m;
    }
    if (self->gap_pending_) {
      self->gap_pending_ = false;
      co_return message{message_kind::gap};
    }
    if (self->link_->closed()) {
      co_return dp::make_error(errc::canceled, "redis subscriber closed");
    }
    self->wake_.expires_at(asio::steady_timer::time_point::max());
    co_await self->wake_.async_wait(nothrow);
    // Only an arrival or close() cancels wake_; anything else is the caller canceling the wait.
    if (self->buffer_.empty() && !self->gap_pending_ && !self->link_->closed()) {
      co_return dp::make_error(errc::canceled, "redis subscriber: next() canceled");
    }
  }
}

void subscription::close() {
  link_->close();
  for (auto& [key, w] : waiting_) {
    w->timer.cancel();
  }
  wake_.cancel();
}

void subscription::on_ready(connection& c, bool reconnect) {
  renewing_.clear();
  auto renew = [&](const std::set<std::string>& names, const char* command, bool pattern) {
    if (names.empty()) {
      return;
    }
    std::vector<std::string> argv{command};
    for (const auto& n : names) {
      argv.push_back(n);
      renewing_.insert(key_of(pattern, n));
    }
    c.send_subscription(argv);
  };
  renew(channels_, "SUBSCRIBE", false);
  renew(patterns_, "PSUBSCRIBE", true);
  // The gap goes out once every subscription is back, so a consumer that replays on it cannot
  // miss a message published between its replay and the renewal.
  if (reconnect) {
    gap_after_renewal_ = !renewing_.empty();
    if (renewing_.empty()) {
      push_gap();
    }
  }
}

void subscription::on_push(dp::result<reply> r) {
  if (!r || !r->is_array() || r->elements().empty()) {
    return;
  }
  const auto& e = r->elements();
  const std::string& kind = e[0].as_string();
  if (kind == "message" && e.size() == 3) {
    deliver(message{message_kind::data, {}, e[1].as_string(), e[2].as_string()});
  } else if (kind == "pmessage" && e.size() == 4) {
    deliver(message{message_kind::data, e[1].as_string(), e[2].as_string(), e[3].as_string()});
  } else if ((kind == "subscribe" || kind == "psubscribe") && e.size() >= 2) {
    confirm(key_of(kind[0] == 'p', e[1].as_string()));
  }
}

void subscription::confirm(const std::string& key) {
  auto [first, last] = waiting_.equal_range(key);
  for (auto it = first; it != last; ++it) {
    if (--it->second->remaining == 0) {
      it->second->timer.cancel();
    }
  }
  waiting_.erase(first, last);
  if (renewing_.erase(key) > 0 && renewing_.empty() && gap_after_renewal_) {
    gap_after_renewal_ = false;
    push_gap();
  }
}

void subscription::deliver(message m) {
  if (buffer_.size() >= max_buffered_) {
    ++dropped_;
    gap_pending_ = true;
    return;
  }
  if (gap_pending_) {
    gap_pending_ = false;
    buffer_.push_back(message{message_kind::gap});
  }
  buffer_.push_back(std::move(m));
  wake_.cancel();
}

void subscription::push_gap() {
  gap_pending_ = false;
  buffer_.push_back(message{message_kind::gap});
  wake_.cancel();
}

}  // namespace dp::redis::detail

namespace dp::redis {

subscriber::subscriber(boost::asio::any_io_executor executor, options opts,
                       std::size_t max_buffered)
    : impl_(std::make_shared<detail::subscription>(std::move(executor), std::move(opts),
                                                   max_buffered)) {}

subscriber::~subscriber() {
  impl_->close();
}

boost::asio::awaitable<dp::result<void>> subscriber::subscribe(std::vector<std::string> channels) {
  return detail::subscription::subscribe(impl_, std::move(channels), false);
}

boost::asio::awaitable<dp::result<void>> subscriber::psubscribe(std::vector<std::string> patterns) {
  return detail::subscription::subscribe(impl_, std::move(patterns), true);
}

void subscriber::unsubscribe(std::vector<std::string> channels) {
  impl_->unsubscribe(std::move(channels), false);
}

void subscriber::punsubscribe(std::vector<std::string> patterns) {
  impl_->unsubscribe(std::move(patterns), true);
}

boost::asio::awaitable<dp::result<message>> subscriber::next() {
  return detail::subscription::next(impl_);
}

void subscriber::close() {
  impl_->close();
}

std::uint64_t subscriber::dropped() const noexcept {
  return impl_->dropped();
}

std::uint64_t subscriber::reconnects() const noexcept {
  return impl_->reconnects();
}

}  // namespace dp::redis
