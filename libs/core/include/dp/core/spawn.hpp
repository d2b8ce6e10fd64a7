// The one way to start a coroutine that nobody awaits. An exception that escapes it is logged
// with the coroutine's name and goes no further: io_context::run() never throws because of it,
// and no error is dropped silently (asio::detached drops them).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <concepts>
#include <functional>
#include <string>
#include <utility>

namespace dp {

// Runs when the coroutine has ended, after the log line if it threw; `threw` is true when an
// exception (a cancellation included) ended it. Not called if the executor's context is
// destroyed while the coroutine is suspended.
using spawn_done = std::function<void(bool threw)>;

// Starts `coroutine` on `executor`. `what` names it in the log line ("http session",
// "redis connection loop"). A cancellation (operation_aborted, or errc::canceled thrown by
// result::value()) is logged at debug level: a coroutine stopped on purpose is not an error.
void spawn(const boost::asio::any_io_executor& executor, boost::asio::awaitable<void> coroutine,
           std::string what, spawn_done on_done = {});

namespace detail {
// Keeps the callable (a lambda and its captures) in this frame while its coroutine runs: calling
// a lambda coroutine as a temporary would leave its captures dangling.
template <class F>
boost::asio::awaitable<void> call_owned(F f) {
  co_await f();
}
}  // namespace detail

// The same for a callable that returns the coroutine, e.g. a lambda that owns what the
// coroutine uses: `dp::spawn(ex, [s] { return s->run(); }, "http session")`.
template <class F>
requires std::invocable<F&> && std::same_as<std::invoke_result_t<F&>, boost::asio::awaitable<void>>
void spawn(const boost::asio::any_io_executor& executor, F f, std::string what,
           spawn_done on_done = {}) {
  spawn(executor, detail::call_owned(std::move(f)), std::move(what), std::move(on_done));
}

}  // namespace dp
