#include "dp/core/log.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>

TEST(log, text_line_quotes_ambiguous_values) {
  dp::log::configure(dp::log::level::info, dp::log::format::text);
  auto line = dp::log::format_line(dp::log::level::warn, "lease expired",
                                   {{"id", "abc"}, {"why", "two words"}, {"n", 3}});
  EXPECT_NE(line.find(" warn  lease expired id=abc why=\"two words\" n=3\n"), std::string::npos)
      << line;
}

TEST(log, json_line_is_valid_json_for_any_bytes) {
  dp::log::configure(dp::log::level::debug, dp::log::format::json, "test");
  auto line = dp::log::format_line(dp::log::level::error, "bad \xff bytes\n",
                                   {{"path", "a\"b\\c\x01"}, {"n", 42}, {"ok", true}});
  auto v = boost::json::parse(line);
  const auto& o = v.as_object();
  EXPECT_EQ(o.at("level"), "error");
  EXPECT_EQ(o.at("service"), "test");
  EXPECT_EQ(o.at("n"), 42);
  EXPECT_EQ(o.at("ok"), true);
  EXPECT_EQ(o.at("path"), "a\"b\\c\x01");
  EXPECT_EQ(o.at("msg"), "bad \xEF\xBF\xBD bytes\n");
  dp::log::configure(dp::log::level::info, dp::log::format::text);
}

TEST(log, levels_filter) {
  dp::log::configure(dp::log::level::warn, dp::log::format::text);
  EXPECT_FALSE(dp::log::enabled(dp::log::level::info));
  EXPECT_TRUE(dp::log::enabled(dp::log::level::error));
  dp::log::configure(dp::log::level::info, dp::log::format::text);
}
