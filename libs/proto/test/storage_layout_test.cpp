#include "dp/proto/storage_layout.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

namespace proto = dp::proto;

namespace {

std::filesystem::path proto_dir() {
  if (const char* dir = std::getenv("DP_SOURCE_DIR")) {
    return std::filesystem::path(dir) / "proto";
  }
  return DP_PROTO_DIR;
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

constexpr std::string_view id = "01jh5k7q3x9m2c8r4t6v0w1y3z";

}  // namespace

TEST(proto_storage_layout, keys) {
  EXPECT_EQ(proto::output_prefix(id), "__outputs/01jh5k7q3x9m2c8r4t6v0w1y3z/");
  EXPECT_EQ(proto::output_key(id, "assets/app.js"),
            "__outputs/01jh5k7q3x9m2c8r4t6v0w1y3z/assets/app.js");
  EXPECT_EQ(proto::manifest_name, ".deployment.json");
  EXPECT_EQ(proto::manifest_key(id), "__outputs/01jh5k7q3x9m2c8r4t6v0w1y3z/.deployment.json");
  EXPECT_EQ(proto::manifest_key(id), proto::output_key(id, proto::manifest_name));
  EXPECT_EQ(proto::source_archive_key(id), "__sources/01jh5k7q3x9m2c8r4t6v0w1y3z.tar.gz");
  // Every file key of a deployment is under its prefix, and no other deployment's.
  EXPECT_TRUE(proto::output_key(id, "index.html").starts_with(proto::output_prefix(id)));
  EXPECT_FALSE(
      proto::output_key("01jh5k7q3x9m2c8r4t6v0w1y3zz", "a").starts_with(proto::output_prefix(id)));
}

// The job schema's pattern for source_archive accepts the key the API writes.
TEST(proto_storage_layout, job_schema_agrees) {
  auto schema = boost::json::parse(read_text(proto_dir() / "schemas" / "job.schema.json"));
  const auto& pattern = schema.at("properties").at("source_archive").at("pattern").as_string();
  std::regex re(std::string(pattern), std::regex::ECMAScript);
  EXPECT_TRUE(std::regex_search(proto::source_archive_key(id), re)) << pattern;
  EXPECT_FALSE(std::regex_search(proto::output_key(id, "x.tar.gz"), re)) << pattern;
}
