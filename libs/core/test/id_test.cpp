#include "dp/core/id.hpp"
#include "dp/core/clock.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <set>

TEST(id, format_and_order) {
  std::set<std::string> seen;
  std::string prev;
  for (int i = 0; i < 10000; ++i) {
    auto id = dp::new_deployment_id();
    ASSERT_TRUE(dp::is_deployment_id(id)) << id;
    ASSERT_GT(id, prev);  // strictly increasing, even within one millisecond
    prev = id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 10000u);
}

TEST(id, encodes_time) {
  uint8_t random[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  auto id = dp::make_deployment_id(1764000000000ULL, random);
  EXPECT_EQ(id.size(), 26u);
  EXPECT_EQ(dp::deployment_id_time_ms(id), 1764000000000ULL);
  EXPECT_EQ(id.substr(10), "zzzzzzzzzzzzzzzz");
  uint8_t zero[10] = {};
  EXPECT_EQ(dp::make_deployment_id(0, zero), std::string(26, '0'));
  auto now = static_cast<uint64_t>(dp::now_ms());
  auto t = dp::deployment_id_time_ms(dp::new_deployment_id());
  EXPECT_LE(t - now, 1000u);
}

TEST(id, short_id_is_random_part) {
  auto a = dp::new_deployment_id();
  EXPECT_EQ(dp::short_id(a).size(), 8u);
  EXPECT_EQ(dp::short_id("01jh5k7q3x9m2c8r4t6v0w1y3z"), "6v0w1y3z");
  // Ids made in the same millisecond have different short ids.
  auto b = dp::new_deployment_id();
  auto c = dp::new_deployment_id();
  EXPECT_NE(dp::short_id(b), dp::short_id(c));
}

TEST(id, immutable_alias_is_never_a_project_name) {
  EXPECT_EQ(dp::immutable_alias("shop", "01jh5k7q3x9m2c8r4t6v0w1y3z"), "shop--6v0w1y3z");
  // 53 characters + "--" + 8 = 63, a DNS label; 54 + "-" + 8 = 63 as well, and longer than any
  // project name (54 at most).
  std::string p53(53, 'a');
  std::string p54(54, 'a');
  EXPECT_EQ(dp::immutable_alias(p53, "01jh5k7q3x9m2c8r4t6v0w1y3z"), p53 + "--6v0w1y3z");
  EXPECT_EQ(dp::immutable_alias(p54, "01jh5k7q3x9m2c8r4t6v0w1y3z"), p54 + "-6v0w1y3z");
}

TEST(id, rejects_bad_ids) {
  EXPECT_FALSE(dp::is_deployment_id(""));
  EXPECT_FALSE(dp::is_deployment_id("01JH5K7Q3X9M2C8R4T6V0W1Y3Z"));  // uppercase
  EXPECT_FALSE(dp::is_deployment_id("01jh5k7q3x9m2c8r4t6v0w1y3u"));  // 'u' is not base32
  EXPECT_FALSE(dp::is_deployment_id("81jh5k7q3x9m2c8r4t6v0w1y3z"));  // overflows 128 bits
  EXPECT_FALSE(dp::is_deployment_id("../etc/passwd"));
  EXPECT_TRUE(dp::is_deployment_id("01jh5k7q3x9m2c8r4t6v0w1y3z"));
}
