// Helpers for the Redis integration tests: a coroutine runner with a hard limit, assertions usable
// inside coroutines, and client options for a harness redis-server.
#pragma once

#include "dp/redis/client.hpp"
#include "dp/redis/subscriber.hpp"
#include "dp/test/harness.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <functional>

// ASSERT_* returns void, which a coroutine cannot: these end the coroutine instead.
#define CO_ASSERT_TRUE(cond)                  \
  if (!(cond)) {                              \
    ADD_FAILURE() << "expected true: " #cond; \
    co_return;                                \
  }
#define CO_ASSERT_OK(res)                                          \
  if (!(res)) {                                                    \
    ADD_FAILURE() << #res " failed: " << (res).error().describe(); \
    co_return;                                                     \
  }

namespace dp::redis::testing {

using namespace std::chrono_literals;
namespace asio = boost::asio;

// Runs one test body on a fresh io_context, for at most `limit`: a hang fails the test.
inline void run(std::function<asio::awaitable<void>(asio::any_io_executor)> body,
                std::chrono::seconds limit = 60s) {
  asio::io_context ioc;
  bool done = false;
  std::exception_ptr error;
  asio::co_spawn(ioc, body(ioc.get_executor()), [&](std::exception_ptr e) {
    done = true;
    error = e;
  });
  ioc.run_for(limit);
  if (error) {
    std::rethrow_exception(error);
  }
  ASSERT_TRUE(done) << "the test did not finish within " << limit.count() << " s";
}

inline asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

// A command as a vector, built outside the co_await expression (gcc 12 rejects braced lists there).
template <class... Args>
std::vector<std::string> cmd(const Args&... args) {
  return {std::string(args)...};
}

inline options options_for(const dp::test::redis_server& server) {
  options o;
  o.url.host = "127.0.0.1";
  o.url.port = server.port();
  o.reconnect_max = 500ms;  // quick recovery after a restart
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
