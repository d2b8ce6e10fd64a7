#include "dp/core/spawn.hpp"

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "dp/core/error.hpp"
#include "dp/core/log.hpp"

namespace asio = boost::asio;

namespace {

// Runs the context with stderr captured (dp::log writes there) and returns what was written.
std::string run_captured(asio::io_context& ioc) {
  testing::internal::CaptureStderr();
  ioc.run();
  return testing::internal::GetCapturedStderr();
}

asio::awaitable<void> fails() {
  co_await asio::post(asio::use_awaitable);
  throw std::runtime_error("disk on fire");
}

asio::awaitable<void> returns(int& steps) {
  co_await asio::post(asio::use_awaitable);
  ++steps;
}

}  // namespace

TEST(spawn, escaped_exception_is_logged_with_the_name_and_run_returns) {
  dp::log::configure(dp::log::level::info, dp::log::format::text);
  asio::io_context ioc;
  int done = 0;
  bool threw = false;
  dp::spawn(ioc.get_executor(), fails(), "disk watcher", [&](bool t) {
    ++done;
    threw = t;
    dp::log::info("on_done ran");
  });
  std::string out;
  ASSERT_NO_THROW(out = run_captured(ioc));
  EXPECT_EQ(done, 1);
  EXPECT_TRUE(threw);
  auto line = out.find(" error coroutine ended by an exception");
  ASSERT_NE(line, std::string::npos) << out;
  EXPECT_NE(out.find("coroutine=\"disk watcher\"", line), std::string::npos) << out;
  EXPECT_NE(out.find("error=\"disk on fire\"", line), std::string::npos) << out;
  // on_done runs after the line is written.
  EXPECT_LT(line, out.find("on_done ran")) << out;
}

TEST(spawn, normal_end_logs_nothing_and_calls_on_done) {
  dp::log::configure(dp::log::level::debug, dp::log::format::text);
  asio::io_context ioc;
  int steps = 0;
  std::optional<bool> threw;
  dp::spawn(ioc.get_executor(), returns(steps), "quiet", [&](bool t) { threw = t; });
  dp::spawn(ioc.get_executor(), returns(steps), "no callback");
  EXPECT_EQ(run_captured(ioc), "");
  EXPECT_EQ(steps, 2);
  ASSERT_TRUE(threw.has_value());
  EXPECT_FALSE(*threw);
  dp::log::configure(dp::log::level::info, dp::log::format::text);
}

TEST(spawn, cancellation_is_not_an_error) {
  dp::log::configure(dp::log::level::info, dp::log::format::text);
  asio::io_context ioc;
  asio::steady_timer timer(ioc, asio::steady_timer::time_point::max());
  int done = 0;
  // A throwing wait, canceled on purpose; and errc::canceled thrown by result::value().
  dp::spawn(
      ioc.get_executor(),
      [&]() -> asio::awaitable<void> { co_await timer.async_wait(asio::use_awaitable); },
      "timer wait", [&](bool threw) { done += threw ? 1 : 0; });
  dp::spawn(
      ioc.get_executor(),
      []() -> asio::awaitable<void> {
        co_await asio::post(asio::use_awaitable);
        dp::result<int> r = dp::make_error(dp::errc::canceled, "client closed");
        (void)r.value();
      },
      "result value", [&](bool threw) { done += threw ? 1 : 0; });
  asio::post(ioc, [&] { timer.cancel(); });
  EXPECT_EQ(run_captured(ioc), "");
  EXPECT_EQ(done, 2);

  // Visible at debug level, as a cancellation rather than an error.
  dp::log::configure(dp::log::level::debug, dp::log::format::text);
  asio::io_context ioc2;
  asio::steady_timer timer2(ioc2, asio::steady_timer::time_point::max());
  dp::spawn(
      ioc2.get_executor(),
      [&]() -> asio::awaitable<void> { co_await timer2.async_wait(asio::use_awaitable); },
      "timer wait");
  asio::post(ioc2, [&] { timer2.cancel(); });
  auto out = run_captured(ioc2);
  EXPECT_NE(out.find(" debug coroutine canceled coroutine=\"timer wait\""), std::string::npos)
      << out;
  EXPECT_EQ(out.find("exception"), std::string::npos) << out;
  dp::log::configure(dp::log::level::info, dp::log::format::text);
}

TEST(spawn, callable_keeps_its_captures_alive) {
  asio::io_context ioc;
  auto owned = std::make_shared<std::string>("still here");
  std::string seen;
  // The lambda is a temporary: its captures must outlive its first suspension.
  dp::spawn(
      ioc.get_executor(),
      [owned, &seen]() -> asio::awaitable<void> {
        co_await asio::post(asio::use_awaitable);
        seen = *owned;
      },
      "capture");
  std::weak_ptr<std::string> watch = owned;
  owned.reset();
  EXPECT_FALSE(watch.expired());
  ioc.run();
  EXPECT_EQ(seen, "still here");
  EXPECT_TRUE(watch.expired());  // released with the coroutine
}

TEST(spawn, throwing_on_done_is_logged_too) {
  dp::log::configure(dp::log::level::info, dp::log::format::text);
  asio::io_context ioc;
  int steps = 0;
  dp::spawn(ioc.get_executor(), returns(steps), "counter",
            [](bool) { throw std::logic_error("callback bug"); });
  std::string out;
  ASSERT_NO_THROW(out = run_captured(ioc));
  EXPECT_EQ(steps, 1);
  EXPECT_NE(out.find("completion of a coroutine threw coroutine=counter error=\"callback bug\""),
            std::string::npos)
      << out;
}
