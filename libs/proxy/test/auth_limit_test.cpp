#include "dp/proxy/auth_limit.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>

namespace dp::proxy {
namespace {

using namespace std::chrono_literals;
using clock = auth_failure_limit::clock;

TEST(auth_failure_limit, refuses_a_client_over_the_limit_until_its_window_ends) {
  auth_failure_limit limit({.max_failures = 3, .window = 60s});
  auto t0 = clock::now();
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(limit.blocked("192.0.2.1", t0 + std::chrono::seconds(i)));
    limit.failed("192.0.2.1", t0 + std::chrono::seconds(i));
  }
  auto wait = limit.blocked("192.0.2.1", t0 + 10s);
  ASSERT_TRUE(wait);
  EXPECT_EQ(*wait, 50s);
  EXPECT_EQ(limit.blocked("192.0.2.1", t0 + 59s + 500ms), 1s);  // rounded up
  EXPECT_FALSE(limit.blocked("192.0.2.2", t0 + 10s));           // another client
  EXPECT_FALSE(limit.blocked("192.0.2.1", t0 + 60s));           // the window ended
  // A new window counts afresh.
  limit.failed("192.0.2.1", t0 + 61s);
  EXPECT_FALSE(limit.blocked("192.0.2.1", t0 + 62s));
}

TEST(auth_failure_limit, a_full_table_forgets_the_client_whose_last_guess_is_oldest) {
  auth_failure_limit limit({.max_failures = 1, .window = 60s, .max_clients = 100});
  auto t0 = clock::now();
  for (int i = 0; i < 100; ++i) {
    limit.failed("10.0.0." + std::to_string(i), t0);
  }
  // 10.0.0.0 guesses again (refused): it is now the most recent, 10.0.0.1 the oldest.
  EXPECT_TRUE(limit.blocked("10.0.0.0", t0 + 1s));
  limit.failed("10.0.1.0", t0 + 2s);
  EXPECT_EQ(limit.size(), 100u);
  EXPECT_FALSE(limit.blocked("10.0.0.1", t0 + 2s));  // forgotten
  EXPECT_TRUE(limit.blocked("10.0.0.0", t0 + 2s));   // kept, still refused
  EXPECT_TRUE(limit.blocked("10.0.0.2", t0 + 2s));   // every other window is kept
  EXPECT_TRUE(limit.blocked("10.0.1.0", t0 + 2s));
}

// Many IPv6 /64s guessing once each cannot make the table forget an address that keeps guessing:
// its count goes on until it is refused, and it stays refused while the others come and go.
TEST(auth_failure_limit, a_full_table_keeps_counting_a_client_that_keeps_guessing) {
  auth_failure_limit limit({.max_failures = 10, .window = 60s, .max_clients = 100});
  const std::string attacker = auth_failure_limit::client_of("2001:db8:ffff:1::1");
  auto t0 = clock::now();
  int others = 0;
  auto others_come = [&](clock::time_point t) {
    for (int i = 0; i < 60; ++i, ++others) {
      auto address = fmt::format("2001:db8:{:x}:{:x}::1", others / 65536, others % 65536);
      limit.failed(auth_failure_limit::client_of(address), t);
    }
  };
  for (int guess = 0; guess < 10; ++guess) {
    auto t = t0 + std::chrono::seconds(guess);
    EXPECT_FALSE(limit.blocked(attacker, t)) << guess;
    limit.failed(attacker, t);
    others_come(t);
    EXPECT_LE(limit.size(), 100u);
  }
  ASSERT_GT(others, 100);  // the table was full many times over
  for (int knock = 10; knock < 50; ++knock) {
    auto t = t0 + std::chrono::seconds(knock);
    auto wait = limit.blocked(attacker, t);
    ASSERT_TRUE(wait) << knock;
    EXPECT_EQ(*wait, std::chrono::seconds(60 - knock));
    others_come(t);
  }
  EXPECT_EQ(limit.size(), 100u);
  EXPECT_FALSE(limit.blocked(attacker, t0 + 60s));  // its window ended
}

TEST(auth_failure_limit, ipv6_clients_are_their_64s) {
  EXPECT_EQ(auth_failure_limit::client_of("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
  EXPECT_EQ(auth_failure_limit::client_of("[2001:db8:1:2:ffff:1:2:3]"), "2001:db8:1:2::/64");
  EXPECT_NE(auth_failure_limit::client_of("2001:db8:1:3::1"),
            auth_failure_limit::client_of("2001:db8:1:2::1"));
  EXPECT_EQ(auth_failure_limit::client_of("::ffff:192.0.2.1"), "192.0.2.1");
  EXPECT_EQ(auth_failure_limit::client_of("192.0.2.1"), "192.0.2.1");
  EXPECT_EQ(auth_failure_limit::client_of("not-an-address"), "not-an-address");
}

}  // namespace
}  // namespace dp::proxy
