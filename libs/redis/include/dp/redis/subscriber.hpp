// Pub/sub on a dedicated Redis connection: SUBSCRIBE and PSUBSCRIBE, messages read one at a time
// with next().
//
// On a lost connection the subscriber reconnects with backoff, renews every channel and pattern,
// and then delivers a message of kind gap: whatever was published while it was away is lost, so a
// consumer that needs every message replays from its own log at that point.
//
// Buffering is bounded: at most `max_buffered` messages wait for next(). When the buffer is full,
// newer messages are dropped (counted by dropped()) and a gap is delivered in their place, so a
// slow consumer costs bounded memory and learns that it must catch up.
//
// Threads: as dp::redis::client, the subscriber lives on its executor; call it from coroutines on
// that executor. One consumer calls next() at a time.
#pragma once

#include "dp/core/error.hpp"
#include "dp/redis/types.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dp::redis {

namespace detail {
class subscription;
}

class subscriber {
 public:
  subscriber(boost::asio::any_io_executor executor, options opts,
             std::size_t max_buffered = 10'000);
  ~subscriber();
  subscriber(const subscriber&) = delete;
  subscriber& operator=(const subscriber&) = delete;

  // Adds channels (patterns) and waits until Redis confirms them, at most
  // options::command_timeout. On failure they stay requested and are subscribed as soon as the
  // connection is back; unsubscribe() withdraws them.
  boost::asio::awaitable<dp::result<void>> subscribe(std::vector<std::string> channels);
  boost::asio::awaitable<dp::result<void>> psubscribe(std::vector<std::string> patterns);
  // subscribe("a", "b"): a braced list inside co_await does not compile with gcc 12.
  template <argument First, argument... Rest>
  boost::asio::awaitable<dp::result<void>> subscribe(const First& first, const Rest&... rest) {
    return subscribe(std::vector<std::string>{std::string(std::string_view(first)),
                                              std::string(std::string_view(rest))...});
  }
  template <argument First, argument... Rest>
  boost::asio::awaitable<dp::result<void>> psubscribe(const First& first, const Rest&... rest) {
    return psubscribe(std::vector<std::string>{std::string(std::string_view(first)),
                                               std::string(std::string_view(rest))...});
  }
  // Withdraws channels (patterns); an empty list withdraws all. Messages already buffered stay.
  void unsubscribe(std::vector<std::string> channels);
  void punsubscribe(std::vector<std::string> patterns);

  // The next message or gap, in the order Redis sent them. Waits as long as it takes; ends with
  // errc::canceled when the subscriber is closed or the wait is canceled.
  boost::asio::awaitable<dp::result<message>> next();

  void close();
  std::uint64_t dropped() const noexcept;     // messages dropped because the buffer was full
  std::uint64_t reconnects() const noexcept;  // connections re-established after a loss

 private:
  std::shared_ptr<detail::subscription> impl_;
};

}  // namespace dp::redis
