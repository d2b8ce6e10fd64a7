// Running coroutines in tests: the one way to run a test body on an io_context, assertions that
// work inside a coroutine, and waits on a condition instead of sleeps.
//
//   dp::test::run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
//     auto r = co_await client.get("k");
//     CO_ASSERT_OK(r);
//     CO_ASSERT_TRUE(co_await dp::test::co_eventually([&] { return seen; }));
//   });
//
// Every wait here has a bound, and the bound only keeps a broken test from hanging: it is never
// what the test checks.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

// GoogleTest's ASSERT_* return void, which a coroutine cannot: these record the failure and end
// the coroutine with co_return (in a coroutine returning awaitable<void>).
#define CO_ASSERT_TRUE(cond)                     \
  if (!(cond)) {                                 \
    ADD_FAILURE() << "expected true: " << #cond; \
    co_return;                                   \
  }
#define CO_ASSERT_OK(res)                                          \
  if (!(res)) {                                                    \
    ADD_FAILURE() << #res " failed: " << (res).error().describe(); \
    co_return;                                                     \
  }
#define CO_ASSERT_EQ(a, b) \
  if (!((a) == (b))) {     \
    EXPECT_EQ(a, b);       \
    co_return;             \
  }

namespace dp::test {

// Runs `coroutine` on `io` until it and everything it started are done, and returns its value.
// What it threw is rethrown here (GoogleTest reports it with its message). If `limit` passes
// first, throws std::runtime_error: a hang fails the test instead of stopping the suite. `io` may
// have run before (it is restarted).
template <class T>
T run_async(boost::asio::io_context& io, boost::asio::awaitable<T> coroutine,
            std::chrono::milliseconds limit = std::chrono::seconds(60)) {
  std::exception_ptr error;
  bool done = false;
  std::optional<std::conditional_t<std::is_void_v<T>, bool, T>> value;
  io.restart();
  if constexpr (std::is_void_v<T>) {
    boost::asio::co_spawn(io, std::move(coroutine), [&](std::exception_ptr e) {
      error = e;
      done = true;
    });
  } else {
    boost::asio::co_spawn(io, std::move(coroutine), [&](std::exception_ptr e, T v) {
      error = e;
      if (!e) {
        value.emplace(std::move(v));
      }
      done = true;
    });
  }
  io.run_for(limit);
  if (error) {
    std::rethrow_exception(error);
  }
  if (!done) {
    throw std::runtime_error("the test coroutine did not finish within " +
                             std::to_string(limit.count()) + " ms");
  }
  if constexpr (!std::is_void_v<T>) {
    return std::move(*value);
  }
}

// Runs `body` on a fresh io_context, as above. `body` takes the io_context's executor or the
// io_context itself and returns an awaitable.
template <class F>
auto run_async(F&& body, std::chrono::milliseconds limit = std::chrono::seconds(60)) {
  boost::asio::io_context io;
  if constexpr (std::is_invocable_v<F&, boost::asio::io_context&>) {
    return run_async(io, body(io), limit);
  } else {
    return run_async(io, body(boost::asio::any_io_executor(io.get_executor())), limit);
  }
}

// Polls `cond` (a callable returning bool) from a thread outside any io_context until it holds
// or `timeout` passes; returns whether it holds.
template <class Cond>
bool eventually(Cond&& cond, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return cond();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// Suspends the calling coroutine for `d`: for tests whose subject is time itself (a timeout, a
// TTL), and between polls of co_eventually. Never as a stand-in for a condition.
inline boost::asio::awaitable<void> co_sleep(std::chrono::milliseconds d) {
  boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, d);
  co_await t.async_wait(boost::asio::use_awaitable);
}

// eventually() inside a coroutine: `cond` returns bool or awaitable<bool>, and the io_context
// keeps running between polls.
template <class Cond>
boost::asio::awaitable<bool> co_eventually(
    Cond cond, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    bool holds = false;
    if constexpr (std::is_same_v<std::invoke_result_t<Cond&>, boost::asio::awaitable<bool>>) {
      holds = co_await cond();
    } else {
      holds = cond();
    }
    if (holds) {
      co_return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      co_return false;
    }
    co_await co_sleep(std::chrono::milliseconds(5));
  }
}

}  // namespace dp::test
