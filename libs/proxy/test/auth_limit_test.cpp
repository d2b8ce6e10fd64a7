#include "dp/proxy/auth_limit.hpp"

#include <gtest/gtest.h>

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

TEST(auth_failure_limit, the_table_is_bounded) {
  auth_failure_limit limit({.max_failures = 1, .window = 60s, .max_clients = 100});
  auto t0 = clock::now();
  for (int i = 0; i < 80; ++i) {
    limit.failed("10.0.0." + std::to_string(i), t0);
  }
  for (int i = 0; i < 20; ++i) {
    limit.failed("10.0.1." + std::to_string(i), t0 + 30s);
  }
  EXPECT_EQ(limit.size(), 100u);
  // Full, mostly of ended windows: those are forgotten, the running ones kept.
  limit.failed("10.0.2.0", t0 + 61s);
  EXPECT_EQ(limit.size(), 21u);
  EXPECT_TRUE(limit.blocked("10.0.1.5", t0 + 61s));
  EXPECT_FALSE(limit.blocked("10.0.0.7", t0 + 61s));
  // Full of running windows: it starts over.
  for (int i = 1; i < 80; ++i) {
    limit.failed("10.0.2." + std::to_string(i), t0 + 62s);
  }
  EXPECT_EQ(limit.size(), 100u);
  limit.failed("10.0.3.0", t0 + 63s);
  EXPECT_EQ(limit.size(), 1u);
  EXPECT_TRUE(limit.blocked("10.0.3.0", t0 + 63s));
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
