#include "dp/core/error.hpp"
#include "dp/core/errc_table.hpp"

#include <gtest/gtest.h>
#include <boost/system/system_error.hpp>

#include <set>
#include <string_view>

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

TEST(error, errc_table_has_one_row_per_code) {
  std::set<std::string_view> names;
  for (int v = 0; v <= static_cast<int>(dp::errc::internal); ++v) {
    auto e = static_cast<dp::errc>(v);
    const auto& row = dp::errc_row(e);
    EXPECT_EQ(row.code, e);
    EXPECT_TRUE(names.insert(row.name).second) << row.name;
    // The category's message is the table's description.
    EXPECT_EQ(dp::make_error_code(e).message(), row.description);
    EXPECT_GE(row.http_status, 400u);
    EXPECT_LT(row.http_status, 600u);
  }
  EXPECT_EQ(dp::errc_row(dp::errc::not_found).name, "not_found");
  EXPECT_EQ(dp::errc_row(dp::errc::not_found).http_status, 404u);
  EXPECT_EQ(dp::errc_row(dp::errc::unavailable).http_status, 503u);
  // A value outside the enum: an internal error of unknown kind.
  EXPECT_EQ(dp::make_error_code(static_cast<dp::errc>(99)).message(), "unknown error");
  EXPECT_EQ(dp::errc_row(99).name, "internal");
  EXPECT_EQ(dp::errc_row(-1).http_status, 500u);
}
