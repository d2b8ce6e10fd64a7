#include "dp/core/config.hpp"

#include <gtest/gtest.h>

namespace {

using dp::config::environment;
using dp::config::parser;

struct sample {
  std::string name;
  int64_t workers = 0;
  dp::config::host_port listen;
  dp::config::redis_url redis;
  std::vector<std::string> protocols;
  std::string secret;
};

parser make_parser(sample& s) {
  parser p("svc", "a test service");
  p.add_string("NAME", &s.name, "default-name", "a name");
  p.add_int("WORKERS", &s.workers, 2, 1, 64, "workers");
  p.add_host_port("API_LISTEN", &s.listen, "127.0.0.1:9000", "listen address");
  p.add_redis_url("REDIS_URL", &s.redis, "redis://127.0.0.1:6379", "redis");
  p.add_list("PROTOCOLS", &s.protocols, "https", "protocols", {"https", "file"});
  p.add_string("TOKEN", &s.secret, "", "a secret", true);
  return p;
}

parser::outcome run(parser& p, std::vector<const char*> args, const environment& env) {
  args.insert(args.begin(), "svc");
  return p.parse(static_cast<int>(args.size()), args.data(), env);
}

TEST(config, defaults_apply_and_validate) {
  sample s;
  auto p = make_parser(s);
  ASSERT_TRUE(run(p, {}, {}).run);
  EXPECT_EQ(s.name, "default-name");
  EXPECT_EQ(s.workers, 2);
  EXPECT_EQ(s.listen.host, "127.0.0.1");
  EXPECT_EQ(s.listen.port, 9000);
  EXPECT_EQ(s.redis.port, 6379);
  EXPECT_EQ(s.protocols, std::vector<std::string>{"https"});
}

TEST(config, flags_override_environment) {
  sample s;
  auto p = make_parser(s);
  auto out =
      run(p, {"--workers", "8", "--api-listen=[::1]:81"}, {{"WORKERS", "4"}, {"NAME", "env"}});
  ASSERT_TRUE(out.run);
  EXPECT_EQ(s.workers, 8);
  EXPECT_EQ(s.name, "env");
  EXPECT_EQ(s.listen.host, "::1");
  EXPECT_EQ(s.listen.to_string(), "[::1]:81");
}

TEST(config, bad_values_exit_2) {
  for (auto env : std::vector<environment>{{{"REDIS_URL", "not a url"}},
                                           {{"API_LISTEN", "nowhere:xx"}},
                                           {{"API_LISTEN", "nowhere"}},
                                           {{"WORKERS", "0"}},
                                           {{"WORKERS", "3x"}},
                                           {{"PROTOCOLS", "https,ssh"}},
                                           {{"REDIS_URL", "http://x"}},
                                           {{"REDIS_URL", "redis://h:99999"}}}) {
    sample s;
    auto p = make_parser(s);
    testing::internal::CaptureStderr();
    auto out = run(p, {}, env);
    std::string err = testing::internal::GetCapturedStderr();
    EXPECT_FALSE(out.run);
    EXPECT_EQ(out.exit_code, 2);
    EXPECT_NE(err.find(env.begin()->first), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  }
}

TEST(config, secret_is_never_echoed) {
  std::string secret;
  int64_t n = 0;
  parser p("svc", "x");
  p.add_string("TOKEN", &secret, "", "secret", true);
  p.add_int("N", &n, 1, 1, 2, "n");
  testing::internal::CaptureStdout();
  run(p, {"--help"}, {{"TOKEN", "hunter2"}});
  std::string help = testing::internal::GetCapturedStdout();
  EXPECT_EQ(help.find("hunter2"), std::string::npos);
  EXPECT_NE(help.find("TOKEN, --token"), std::string::npos);
  EXPECT_NE(help.find("(default: 1)"), std::string::npos);
}

TEST(config, checked_list_takes_only_valid_items_and_hides_a_secret) {
  std::vector<std::string> tokens;
  parser p("svc", "x");
  p.add_checked_list(
      "TOKENS", &tokens, "tokens", [](std::string_view t) { return t.size() >= 4; },
      "each token must have at least 4 characters", true);
  ASSERT_TRUE(run(p, {}, {{"TOKENS", "abcd, efghi"}}).run);
  EXPECT_EQ(tokens, (std::vector<std::string>{"abcd", "efghi"}));
  testing::internal::CaptureStderr();
  auto bad = run(p, {}, {{"TOKENS", "abcd,xyz"}});
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_FALSE(bad.run);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(err.find("each token must have at least 4 characters"), std::string::npos) << err;
  EXPECT_EQ(err.find("xyz"), std::string::npos) << err;
}

TEST(config, unknown_flag_and_missing_value) {
  sample s;
  auto p = make_parser(s);
  testing::internal::CaptureStderr();
  EXPECT_EQ(run(p, {"--nope"}, {}).exit_code, 2);
  EXPECT_EQ(run(p, {"--workers"}, {}).exit_code, 2);
  testing::internal::GetCapturedStderr();
}

TEST(config, positionals_are_collected) {
  sample s;
  auto p = make_parser(s);
  ASSERT_TRUE(run(p, {"build", "--workers", "3", "extra"}, {}).run);
  EXPECT_EQ(p.positionals(), (std::vector<std::string>{"build", "extra"}));
}

TEST(config, redis_url_parts) {
  dp::config::redis_url u;
  ASSERT_FALSE(dp::config::parse_redis_url("redis://user:pw@cache.internal:6380/3", u));
  EXPECT_EQ(u.host, "cache.internal");
  EXPECT_EQ(u.port, 6380);
  EXPECT_EQ(u.db, 3);
  EXPECT_EQ(u.username, "user");
  EXPECT_EQ(u.password, "pw");
  EXPECT_EQ(u.redacted(), "redis://user:***@cache.internal:6380/3");
  EXPECT_TRUE(dp::config::parse_redis_url("rediss://x", u).has_value());
  // A password without an ACL user (requirepass, as deploy/local/run.sh sets it).
  dp::config::redis_url p;
  ASSERT_FALSE(dp::config::parse_redis_url("redis://:0a1b2c@127.0.0.1:6390", p));
  EXPECT_EQ(p.username, "");
  EXPECT_EQ(p.password, "0a1b2c");
  EXPECT_EQ(p.redacted(), "redis://:***@127.0.0.1:6390/0");
}

// to_string() is read back by parse_redis_url to the same parts, whatever the password holds.
TEST(config, redis_url_to_string_round_trips) {
  auto round_trip = [](const dp::config::redis_url& u) {
    dp::config::redis_url back;
    back.host = "unset";
    auto err = dp::config::parse_redis_url(u.to_string(), back);
    EXPECT_FALSE(err) << u.to_string() << ": " << *err;
    EXPECT_EQ(back.host, u.host) << u.to_string();
    EXPECT_EQ(back.port, u.port) << u.to_string();
    EXPECT_EQ(back.db, u.db) << u.to_string();
    EXPECT_EQ(back.username, u.username) << u.to_string();
    EXPECT_EQ(back.password, u.password) << u.to_string();
    return u.to_string();
  };
  dp::config::redis_url u;
  EXPECT_EQ(round_trip(u), "redis://127.0.0.1:6379/0");
  u = {.host = "cache.internal", .port = 6380, .db = 3, .username = "user", .password = "pw"};
  EXPECT_EQ(round_trip(u), "redis://user:pw@cache.internal:6380/3");
  // '@', ':' and '/' in the password, '@' and ':' in the user name.
  u = {.host = "cache.internal",
       .port = 6380,
       .db = 15,
       .username = "a@b:c",
       .password = "p@ss:w/rd%?#"};
  auto text = round_trip(u);
  EXPECT_EQ(text.find("p@ss"), std::string::npos) << text;
  EXPECT_EQ(text.rfind('@'), text.find("@cache.internal")) << text;
  // A password without a user name; a user name without a password.
  u = {.host = "127.0.0.5", .port = 7000, .db = 1, .username = "", .password = "s3cret"};
  EXPECT_EQ(round_trip(u), "redis://:s3cret@127.0.0.5:7000/1");
  u = {.host = "127.0.0.5", .port = 7000, .db = 1, .username = "default", .password = ""};
  EXPECT_EQ(round_trip(u), "redis://default@127.0.0.5:7000/1");
  // IPv6 hosts are kept without brackets and written with them.
  ASSERT_FALSE(dp::config::parse_redis_url("redis://:pw@[::1]:6390/2", u));
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(round_trip(u), "redis://:pw@[::1]:6390/2");
  u = {.host = "2001:db8::7", .port = 6379, .db = 0, .username = "", .password = "x@y"};
  EXPECT_EQ(round_trip(u), "redis://:x%40y@[2001:db8::7]:6379/0");
  // TLS is refused by the parser, so no redis_url ever stands for a rediss:// URL.
  EXPECT_EQ(*dp::config::parse_redis_url("rediss://:pw@cache.internal:6380/0", u),
            "TLS (rediss://) is not supported; use redis:// through a TLS proxy");
}

}  // namespace
