// The browser rules (browser.hpp) as pure functions.
#include <gtest/gtest.h>

#include "dp/api/browser.hpp"

namespace {

using namespace dp::api;

TEST(browser_rules, content_types) {
  EXPECT_TRUE(is_json_type("application/json"));
  EXPECT_TRUE(is_json_type("Application/JSON ; charset=utf-8"));
  EXPECT_FALSE(is_json_type("text/plain"));
  EXPECT_FALSE(is_json_type("application/json-patch+json"));
  EXPECT_FALSE(is_json_type(""));
  EXPECT_TRUE(is_archive_type("application/gzip"));
  EXPECT_TRUE(is_archive_type("application/x-gzip"));
  EXPECT_FALSE(is_archive_type("application/gzipx"));
}

TEST(browser_rules, host_names) {
  EXPECT_EQ(host_name("LocalHost:9000"), "localhost");
  EXPECT_EQ(host_name("[::1]:9000"), "::1");
  EXPECT_EQ(host_name("127.0.0.1"), "127.0.0.1");
  EXPECT_FALSE(host_name(""));
  EXPECT_FALSE(host_name(":80"));
  EXPECT_FALSE(host_name("a:b"));
  EXPECT_FALSE(host_name("a/b"));
  EXPECT_FALSE(host_name("[::1"));
}

TEST(browser_rules, local_hosts) {
  for (const char* h : {"localhost", "localhost:9000", "127.0.0.1:9000", "[::1]:9000", "10.1.2.3",
                        "[::ffff:127.0.0.1]"}) {
    EXPECT_TRUE(is_local_host(h, {})) << h;
  }
  for (const char* h : {"evil.example", "evil.example:9000", "localhost.evil.example",
                        "shop.localhost:9000", "127.0.0.1.nip.io", ""}) {
    EXPECT_FALSE(is_local_host(h, {})) << h;
  }
  EXPECT_TRUE(is_local_host("Devbox:9000", {"devbox"}));
  EXPECT_TRUE(is_local_host("devbox", {"devbox:9000"}));
}

TEST(browser_rules, origins) {
  std::optional<std::string_view> host = "127.0.0.1:9000";
  EXPECT_TRUE(is_allowed_origin("http://127.0.0.1:9000", host, {}));
  EXPECT_FALSE(is_allowed_origin("http://127.0.0.1:9001", host, {}));
  EXPECT_FALSE(is_allowed_origin("http://127.0.0.1", host, {}));
  EXPECT_FALSE(is_allowed_origin("https://evil.example", host, {}));
  EXPECT_FALSE(is_allowed_origin("null", host, {}));
  EXPECT_FALSE(is_allowed_origin("http://127.0.0.1:9000", std::nullopt, {}));
  // Default ports, and https in front of the API (a TLS proxy keeps Host).
  EXPECT_TRUE(is_allowed_origin("https://api.example.com", "api.example.com", {}));
  EXPECT_TRUE(is_allowed_origin("http://api.example.com", "api.example.com:80", {}));
  EXPECT_FALSE(is_allowed_origin("https://api.example.com", "api.example.com:80", {}));
  EXPECT_TRUE(is_allowed_origin("HTTP://[::1]:9000", "[::1]:9000", {}));
  // Configured origins.
  EXPECT_TRUE(is_allowed_origin("https://dash.example.com", host, {"https://Dash.example.com/"}));
  EXPECT_FALSE(
      is_allowed_origin("https://dash.example.com.evil", host, {"https://dash.example.com"}));
}

}  // namespace
