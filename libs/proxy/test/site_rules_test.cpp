#include "dp/proxy/site_rules.hpp"

#include <gtest/gtest.h>

namespace dp::proxy {
namespace {

site make(std::initializer_list<const char*> paths) {
  proto::manifest m;
  m.deployment_id = "01jh5k7q3x9m2c8r4t6v0w1y3z";
  for (const char* p : paths) {
    m.files[p] = proto::manifest_entry{1, std::string(64, 'a'), "text/html", ""};
  }
  return make_site(m);
}

TEST(site_rules, rule_path_keeps_the_trailing_slash) {
  EXPECT_EQ(rule_path({"", true}), "/");
  EXPECT_EQ(rule_path({"a/b", false}), "/a/b");
  EXPECT_EQ(rule_path({"a/b", true}), "/a/b/");
}

TEST(site_rules, a_file_exists_as_served_clean) {
  auto s = make({"index.html", "about.html", "docs/index.html", "app.js"});
  EXPECT_TRUE(file_exists(s, {"", true}));
  EXPECT_TRUE(file_exists(s, {"about", false}));
  EXPECT_TRUE(file_exists(s, {"docs", false}));
  EXPECT_TRUE(file_exists(s, {"docs", true}));
  EXPECT_TRUE(file_exists(s, {"app.js", false}));
  EXPECT_FALSE(file_exists(s, {"about", true}));
  EXPECT_FALSE(file_exists(s, {"missing", false}));
}

TEST(site_rules, rewrite_paths_stay_inside_the_deployment) {
  auto p = rewrite_path("/posts//a/./b/");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->rel, "posts/a/b");
  EXPECT_TRUE(p->dir);
  EXPECT_FALSE(rewrite_path("/a/../etc"));
  EXPECT_FALSE(rewrite_path("/a\\b"));
  EXPECT_FALSE(rewrite_path("/a\nb"));
}

TEST(site_rules, a_rewrite_follows_clean_url_redirects_inside) {
  auto s = make({"index.html", "docs/index.html"});
  auto r = resolve_rewrite(s, *rewrite_path("/index.html"));
  ASSERT_EQ(r.type, resolution::kind::file);
  EXPECT_EQ(r.file->path, "index.html");
  r = resolve_rewrite(s, *rewrite_path("/docs"));
  ASSERT_EQ(r.type, resolution::kind::file);
  EXPECT_EQ(r.file->path, "docs/index.html");
}

TEST(site_rules, header_rules_replace_and_remove_the_proxys_own) {
  siteconfig::sources src;
  src.headers = "/*\n  Cache-Control: no-cache\n  ! X-Content-Type-Options\n  X-A: 1\n";
  auto c = siteconfig::compile_sources(src, {});
  ASSERT_TRUE(c.diagnostics.empty());
  std::vector<std::pair<std::string, std::string>> h{{"Cache-Control", "public, max-age=60"},
                                                     {"X-Content-Type-Options", "nosniff"},
                                                     {"ETag", "\"x\""}};
  apply_rule_headers(c.rules, "/a", h);
  std::vector<std::pair<std::string, std::string>> want{
      {"ETag", "\"x\""}, {"Cache-Control", "no-cache"}, {"X-A", "1"}};
  EXPECT_EQ(h, want);
}

}  // namespace
}  // namespace dp::proxy
