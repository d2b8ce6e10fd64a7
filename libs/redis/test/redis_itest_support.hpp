// Helpers for the Redis integration tests: client options for a harness redis-server, commands
// as vectors, and a bounded wait for the next message.
#pragma once

#include "dp/core/spawn.hpp"
#include "dp/redis/client.hpp"
#include "dp/redis/subscriber.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/options.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <functional>

namespace dp::redis::testing {

using namespace std::chrono_literals;
namespace asio = boost::asio;
using dp::test::co_eventually;
using dp::test::co_sleep;
using dp::test::run_async;

// A command as a vector, built outside the co_await expression (gcc 12 rejects braced lists there).
template <class... Args>
std::vector<std::string> cmd(const Args&... args) {
  return {std::string(args)...};
}

inline options options_for(const dp::test::redis_server& server) {
  options o = dp::test::redis_options(server);
  o.command_timeout = options{}.command_timeout;  // the library's, above redis_options' 2 s
  o.reconnect_max = 500ms;                        // quick recovery after a restart
  return o;
}

// next(), or errc::timeout after `limit`; the abandoned next() is canceled.
inline asio::awaitable<dp::result<message>> next_within(subscriber& s,
                                                        std::chrono::milliseconds limit) {
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer t(co_await asio::this_coro::executor, limit);
  auto v = co_await (s.next() || t.async_wait(asio::use_awaitable));
  if (v.index() == 0) {
    co_return std::get<0>(std::move(v));
  }
  co_return dp::make_error(errc::timeout, "no message within {} ms", limit.count());
}

}  // namespace dp::redis::testing
