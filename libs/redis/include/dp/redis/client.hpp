// The one Redis client: hiredis on Boost.Asio behind an awaitable API.
//
// One connection per client; commands from many coroutines are pipelined over it and their
// replies matched in order. The connection is opened lazily (or by connect()), AUTH and SELECT
// run on every (re)connect, and a lost connection is re-established with exponential backoff and
// jitter. A command waits for the connection for at most its timeout, then fails with
// errc::unavailable; a command sent but unanswered within its timeout fails with errc::timeout and
// resets the connection (its late reply would otherwise hold up every later reply). A command in
// flight when the connection drops fails with errc::unavailable and is never retried.
//
// Threads: a client lives on the executor it is given. Call its member functions from coroutines
// running on that executor, which must run handlers one at a time (an io_context run by one
// thread, or a strand). Destroying the client closes it; operations still waiting end with
// errc::canceled.
//
// Blocking commands (BLMOVE, BLPOP) hold the connection until they return: give them a client of
// their own and a timeout longer than the server-side one.
#pragma once

#include "dp/core/error.hpp"
#include "dp/redis/types.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dp::redis {

namespace detail {
class link;
}

class client {
 public:
  client(boost::asio::any_io_executor executor, options opts);
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  // Opens the connection now (otherwise the first command does) and checks it with a PING.
  boost::asio::awaitable<dp::result<void>> connect();

  // One command, binary safe. A Redis error reply (WRONGTYPE, ERR ...) becomes errc::protocol
  // with the server's message. `timeout` overrides options::command_timeout for this call.
  boost::asio::awaitable<dp::result<reply>> exec(
      std::vector<std::string> argv, std::optional<std::chrono::milliseconds> timeout = {});
  // The same from separate arguments: exec("GET", key). (A braced list inside co_await does not
  // compile with gcc 12, "array used as initializer": build a vector in its own statement.)
  template <argument First, argument... Rest>
  boost::asio::awaitable<dp::result<reply>> exec(const First& first, const Rest&... rest) {
    return exec(std::vector<std::string>{std::string(std::string_view(first)),
                                         std::string(std::string_view(rest))...});
  }

  // The replies callers would otherwise unpack by hand. A missing key (or field) is nullopt;
  // a key of another type is errc::protocol (WRONGTYPE).
  boost::asio::awaitable<dp::result<std::optional<std::string>>> get(std::string_view key);
  boost::asio::awaitable<dp::result<std::optional<std::string>>> hget(std::string_view key,
                                                                      std::string_view field);
  // The members of a set, sorted (SMEMBERS has no order); a missing key is an empty set.
  boost::asio::awaitable<dp::result<std::vector<std::string>>> smembers(std::string_view key);

  // Commands sent back to back (a MULTI ... EXEC block works); every reply is returned as is,
  // error replies included. Fails as a whole when the connection fails or the timeout passes.
  boost::asio::awaitable<dp::result<std::vector<reply>>> pipeline(
      std::vector<std::vector<std::string>> commands,
      std::optional<std::chrono::milliseconds> timeout = {});

  // Closes the connection and stops reconnecting; waiting operations end with errc::canceled.
  void close();
  bool connected() const noexcept;

 private:
  std::shared_ptr<detail::link> link_;
};

}  // namespace dp::redis
