// txt_resolver against a real DNS server on loopback (the harness's dns_server).
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <algorithm>

#include "dp/dns/txt_resolver.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"

namespace {

namespace asio = boost::asio;
using dp::test::run_async;

dp::dns::resolver_options through(const dp::test::dns_server& dns) {
  return {.server = *dp::dns::parse_server(dns.address())};
}

TEST(txt_resolver, reads_each_record_of_a_name) {
  dp::test::dns_server dns;
  dns.add_txt("_dp-verify.shop.example.com", "token-one");
  dns.add_txt("_dp-verify.shop.example.com", "token-two");
  dp::dns::txt_resolver resolver(through(dns));
  auto got = run_async(
      [&](asio::any_io_executor) -> asio::awaitable<dp::result<std::vector<std::string>>> {
        co_return co_await resolver.lookup("_dp-verify.shop.example.com");
      });
  ASSERT_TRUE(got) << got.error().message;
  std::sort(got->begin(), got->end());
  EXPECT_EQ(*got, (std::vector<std::string>{"token-one", "token-two"}));
}

TEST(txt_resolver, a_name_without_txt_and_a_missing_name_have_no_records) {
  dp::test::dns_server dns;
  dns.add_txt("_dp-verify.shop.example.com", "token");
  dns.clear_txt("_dp-verify.shop.example.com");
  dp::dns::txt_resolver resolver(through(dns));
  for (const char* name : {"_dp-verify.shop.example.com", "_dp-verify.nowhere.example.com"}) {
    auto got = run_async(
        [&](asio::any_io_executor) -> asio::awaitable<dp::result<std::vector<std::string>>> {
          co_return co_await resolver.lookup(name);
        });
    ASSERT_TRUE(got) << name << ": " << got.error().message;
    EXPECT_TRUE(got->empty()) << name;
  }
}

TEST(txt_resolver, a_long_value_is_read_whole) {
  // Over 255 bytes: the record holds several character-strings, read joined.
  dp::test::dns_server dns;
  std::string value(300, 'x');
  dns.add_txt("long.example.com", value);
  dp::dns::txt_resolver resolver(through(dns));
  auto got = run_async(
      [&](asio::any_io_executor) -> asio::awaitable<dp::result<std::vector<std::string>>> {
        co_return co_await resolver.lookup("long.example.com");
      });
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, std::vector<std::string>{value});
}

TEST(txt_resolver, asks_a_server_on_ipv6_loopback) {
  dp::test::dns_server dns("::1");
  ASSERT_TRUE(dns.address().starts_with("[::1]:")) << dns.address();
  dns.add_txt("_dp-verify.shop.example.com", "token-over-ipv6");
  dp::dns::txt_resolver resolver(through(dns));
  auto got = run_async(
      [&](asio::any_io_executor) -> asio::awaitable<dp::result<std::vector<std::string>>> {
        co_return co_await resolver.lookup("_dp-verify.shop.example.com");
      });
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, std::vector<std::string>{"token-over-ipv6"});
  // The same server's 127.0.0.1 is not it: the answer came over ::1.
  auto v4 = *dp::dns::parse_server("127.0.0.1:" + std::to_string(dns.port()));
  dp::dns::txt_resolver elsewhere(
      {.server = v4, .timeout = std::chrono::seconds(1), .attempts = 1});
  auto missed = run_async(
      [&](asio::any_io_executor) -> asio::awaitable<dp::result<std::vector<std::string>>> {
        co_return co_await elsewhere.lookup("_dp-verify.shop.example.com");
      });
  EXPECT_FALSE(missed);
}

TEST(txt_resolver, no_server_is_unavailable_and_the_loop_keeps_running) {
  // Nothing listens there: the lookup fails while the caller's loop still runs its timers.
  auto closed = *dp::dns::parse_server("127.0.0.1:" + std::to_string(dp::test::free_port()));
  dp::dns::txt_resolver resolver(
      {.server = closed, .timeout = std::chrono::seconds(1), .attempts = 1});
  bool ticked = false, ticked_before_the_answer = false;
  auto got = run_async(
      [&](asio::any_io_executor ex) -> asio::awaitable<dp::result<std::vector<std::string>>> {
        asio::co_spawn(
            ex,
            [&]() -> asio::awaitable<void> {
              ticked = true;
              co_return;
            },
            asio::detached);
        auto r = co_await resolver.lookup("_dp-verify.shop.example.com");
        ticked_before_the_answer = ticked;
        co_return r;
      });
  ASSERT_FALSE(got);
  EXPECT_TRUE(got.error().is(dp::errc::unavailable)) << got.error().message;
  EXPECT_TRUE(ticked_before_the_answer);
}

}  // namespace
