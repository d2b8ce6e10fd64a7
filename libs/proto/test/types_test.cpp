#include "dp/proto/types.hpp"
#include "dp/proto/keys.hpp"

#include <gtest/gtest.h>

namespace proto = dp::proto;
using proto::deployment_status;

TEST(proto_status, names_round_trip) {
  for (int i = 0; i <= static_cast<int>(deployment_status::canceled); ++i) {
    auto s = static_cast<deployment_status>(i);
    EXPECT_EQ(proto::parse_deployment_status(proto::to_string(s)), s);
  }
  EXPECT_EQ(proto::to_string(deployment_status::installing), "installing");
  EXPECT_FALSE(proto::parse_deployment_status("Ready"));
  EXPECT_FALSE(proto::parse_deployment_status(""));
  EXPECT_EQ(proto::to_string(proto::log_stream::err), "stderr");
  EXPECT_EQ(proto::parse_log_stream("system"), proto::log_stream::system);
  EXPECT_EQ(proto::to_string(proto::serve_mode::static_files), "static");
  EXPECT_EQ(proto::parse_serve_mode("spa"), proto::serve_mode::spa);
}

TEST(proto_status, transitions) {
  using enum deployment_status;
  EXPECT_TRUE(proto::is_final(ready));
  EXPECT_TRUE(proto::is_final(failed));
  EXPECT_TRUE(proto::is_final(canceled));
  EXPECT_FALSE(proto::is_final(uploading));

  EXPECT_TRUE(proto::can_transition(queued, cloning));
  EXPECT_TRUE(proto::can_transition(cloning, building));  // no install step
  EXPECT_TRUE(proto::can_transition(uploading, ready));
  EXPECT_TRUE(proto::can_transition(queued, canceled));
  EXPECT_TRUE(proto::can_transition(building, failed));
  EXPECT_TRUE(proto::can_transition(queued, uploading));  // forward, steps may be skipped
  EXPECT_FALSE(proto::can_transition(building, cloning));
  EXPECT_FALSE(proto::can_transition(building, building));
  EXPECT_FALSE(proto::can_transition(building, queued));
  for (auto final_state : {ready, failed, canceled}) {
    for (int i = 0; i <= static_cast<int>(canceled); ++i) {
      EXPECT_FALSE(proto::can_transition(final_state, static_cast<deployment_status>(i)));
    }
  }
  static_assert(proto::can_transition(cloning, installing));
}

TEST(proto_names, dns_labels) {
  EXPECT_TRUE(proto::is_dns_label("shop"));
  EXPECT_TRUE(proto::is_dns_label("a"));
  EXPECT_TRUE(proto::is_dns_label("0"));
  EXPECT_TRUE(proto::is_dns_label("my-shop-2"));
  EXPECT_TRUE(proto::is_dns_label(std::string(63, 'a')));
  EXPECT_FALSE(proto::is_dns_label(std::string(64, 'a')));
  EXPECT_FALSE(proto::is_dns_label(""));
  EXPECT_FALSE(proto::is_dns_label("-shop"));
  EXPECT_FALSE(proto::is_dns_label("shop-"));
  EXPECT_FALSE(proto::is_dns_label("Shop"));
  EXPECT_FALSE(proto::is_dns_label("sh_op"));
  EXPECT_FALSE(proto::is_dns_label("shop.example"));
  EXPECT_FALSE(proto::is_dns_label(std::string_view("sh\0p", 4)));
}

TEST(proto_names, project_names) {
  EXPECT_TRUE(proto::is_project_name("my-shop-2"));
  EXPECT_TRUE(proto::is_project_name(std::string(proto::max_project_name, 'a')));
  EXPECT_FALSE(proto::is_project_name(std::string(proto::max_project_name + 1, 'a')));
  EXPECT_FALSE(proto::is_project_name("-shop"));
  EXPECT_FALSE(proto::is_project_name("Shop"));
  // "--" is the immutable alias's separator (and IDNA's "xn--"): not in new names, but
  // projects made before keep working.
  for (const char* name : {"a--b", "xn--shop", "shop--6v0w1y3z"}) {
    EXPECT_FALSE(proto::is_project_name(name)) << name;
    EXPECT_TRUE(proto::is_stored_project_name(name)) << name;
  }
  EXPECT_FALSE(proto::is_stored_project_name(std::string(proto::max_project_name + 1, 'a')));
  EXPECT_FALSE(proto::is_stored_project_name("-shop"));
  EXPECT_FALSE(proto::is_project_name("xn"));
  EXPECT_TRUE(proto::is_project_name("xn-shop"));
}

TEST(proto_names, env_names_and_paths) {
  EXPECT_TRUE(proto::is_env_name("VITE_API"));
  EXPECT_TRUE(proto::is_env_name("_x1"));
  EXPECT_FALSE(proto::is_env_name("1X"));
  EXPECT_FALSE(proto::is_env_name("A=B"));
  EXPECT_FALSE(proto::is_env_name(""));

  for (std::string_view ok : {"index.html", "assets/app.js", ".well-known/x", "a/..b/c..", "..."}) {
    EXPECT_TRUE(proto::is_safe_relative_path(ok)) << ok;
  }
  for (std::string_view bad :
       {"", "/etc/passwd", "../x", "a/../b", "a/..", ".", "a/./b", "a//b", "a/", "a\\b"}) {
    EXPECT_FALSE(proto::is_safe_relative_path(bad)) << bad;
  }
  EXPECT_FALSE(proto::is_safe_relative_path(std::string_view("a\0b", 3)));
}

TEST(proto_keys, default_prefix) {
  proto::keys k;
  EXPECT_EQ(k.prefix(), "dp:");
  EXPECT_EQ(k.project("shop"), "dp:project:shop");
  EXPECT_EQ(k.projects(), "dp:projects");
  EXPECT_EQ(k.deployment("01jh"), "dp:deployment:01jh");
  EXPECT_EQ(k.project_deployments("shop"), "dp:project:shop:deployments");
  EXPECT_EQ(k.alias("shop-4t6v0w1y"), "dp:alias:shop-4t6v0w1y");
  EXPECT_EQ(k.domain("www.example.com"), "dp:domain:www.example.com");
  EXPECT_EQ(k.queue(), "dp:queue:builds");
  EXPECT_EQ(k.processing(), "dp:queue:builds:processing");
  EXPECT_EQ(k.lease("01jh"), "dp:lease:01jh");
  EXPECT_EQ(k.logs_channel("01jh"), "dp:logs:01jh");
  EXPECT_EQ(k.logs_pattern(), "dp:logs:*");
  EXPECT_EQ(k.logbook("01jh"), "dp:logbook:01jh");
  EXPECT_EQ(k.events_channel(), "dp:events:deployments");
  EXPECT_EQ(k.cancel("01jh"), "dp:cancel:01jh");
  EXPECT_EQ(k.cancel_pattern(), "dp:cancel:*");
}

TEST(proto_keys, custom_prefix) {
  proto::keys k("test-42:");
  EXPECT_EQ(k.project("shop"), "test-42:project:shop");
  EXPECT_EQ(k.queue(), "test-42:queue:builds");
  EXPECT_EQ(k.logs_pattern(), "test-42:logs:*");
  proto::keys none("");
  EXPECT_EQ(none.alias("shop"), "alias:shop");
  EXPECT_EQ(none.events_channel(), "events:deployments");
  // Glob characters in a prefix match literally in PSUBSCRIBE patterns.
  proto::keys odd("a[1]*?\\:");
  EXPECT_EQ(odd.logs_channel("x"), "a[1]*?\\:logs:x");
  EXPECT_EQ(odd.logs_pattern(), "a\\[1\\]\\*\\?\\\\:logs:*");
  // And in a pattern of one key (ACL rules).
  EXPECT_EQ(proto::keys::literal(odd.cancel("x")), "a\\[1\\]\\*\\?\\\\:cancel:x");
}
