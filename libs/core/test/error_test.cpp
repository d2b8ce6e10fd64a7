#include "dp/core/error.hpp"

#include <gtest/gtest.h>
#include <boost/system/system_error.hpp>

namespace {
dp::result<int> parse_positive(int v) {
  if (v <= 0) {
    return dp::make_error(dp::errc::invalid_argument, "field 'n' must be positive, got {}", v);
  }
  return v;
}
}  // namespace

TEST(error, result_carries_code_and_message) {
  auto ok = parse_positive(3);
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 3);
  auto bad = parse_positive(-1);
  ASSERT_FALSE(bad);
  EXPECT_TRUE(bad.error().is(dp::errc::invalid_argument));
  EXPECT_EQ(bad.error().message, "field 'n' must be positive, got -1");
  EXPECT_THROW(bad.value(), boost::system::system_error);
  EXPECT_EQ(dp::make_error_code(dp::errc::timeout).message(), "timed out");
}
