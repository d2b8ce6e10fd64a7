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
  http::response res(200);
  res.headers = {{"cache-control", "public, max-age=60"},
                 {"X-Content-Type-Options", "nosniff"},
                 {"ETag", "\"x\""},
                 {"Cache-Control", "private"}};
  auto edits = header_edits_for(c.rules, "/a");
  apply_header_edits(edits, res);
  // The proxy's own fields of those names are dropped, the rules' go out after the rest.
  std::vector<std::pair<std::string, std::string>> own{{"ETag", "\"x\""}};
  EXPECT_EQ(res.headers, own);
  std::vector<std::pair<std::string, std::string>> rules{{"Cache-Control", "no-cache"},
                                                         {"X-A", "1"}};
  ASSERT_TRUE(res.shared_headers);
  EXPECT_EQ(*res.shared_headers, rules);
  EXPECT_EQ(res.shared_headers, edits.set);  // the same fields, not a copy
  EXPECT_EQ(res.header("cache-control"), "no-cache");
  // No edits: untouched.
  http::response same(200);
  same.headers = {{"X-A", "x"}};
  apply_header_edits(header_edits{}, same);
  EXPECT_EQ(same.headers.size(), 1u);
  EXPECT_FALSE(same.shared_headers);
}

site with_rules(std::initializer_list<const char*> paths, siteconfig::sources src,
                size_t memo_bytes = site_rule_memo_bytes) {
  auto s = make(paths);
  auto c = siteconfig::compile_sources(src, {});
  EXPECT_TRUE(c.diagnostics.empty());
  s.rules = std::make_shared<const siteconfig::rule_set>(std::move(c.rules));
  s.rule_memo = std::make_shared<lru_cache<path_rules>>(memo_bytes);
  return s;
}

std::shared_ptr<const path_rules> remembered(const site& s, const char* rel) {
  clean_path p{rel, false};
  return remembered_rules_for(s, p, rule_path(p));
}

TEST(site_rules, outcomes_are_remembered_per_path_and_the_query_added_per_request) {
  siteconfig::sources src;
  src.redirects = "/old /new?from=old#top 301\n/blog/:year/* /posts/:year/:splat 302\n";
  src.headers = "/*\n  X-Frame-Options: DENY\n/members/*\n  Basic-Auth: a:b\n";
  auto s = with_rules({"index.html"}, src);
  auto first = remembered(s, "old");
  EXPECT_EQ(remembered(s, "old"), first);  // the same entry: worked out once
  EXPECT_EQ(s.rule_memo->size(), 1u);
  ASSERT_EQ(first->type, siteconfig::outcome::kind::redirect);
  EXPECT_EQ(first->status, 301u);
  // Each request's own query joins the remembered Location, as match() would have added it.
  for (const char* q : {"", "x=1&y", "a=%20"}) {
    std::string location = first->location;
    siteconfig::append_query(location, q);
    EXPECT_EQ(location, siteconfig::match(*s.rules, "/old", q, false).location) << q;
  }
  std::string location = first->location;
  siteconfig::append_query(location, "x=1");
  EXPECT_EQ(location, "/new?from=old&x=1#top");
  auto dynamic = remembered(s, "blog/2024/a/b");
  EXPECT_EQ(dynamic->location, "/posts/2024/a/b");
  ASSERT_TRUE(dynamic->headers.set);
  ASSERT_EQ(dynamic->headers.set->size(), 1u);
  EXPECT_EQ((*dynamic->headers.set)[0].second, "DENY");
  EXPECT_EQ(remembered(s, "about")->type, siteconfig::outcome::kind::none);
  EXPECT_NE(remembered(s, "members/x")->guard, nullptr);
  EXPECT_EQ(remembered(s, "about")->guard, nullptr);
  EXPECT_EQ(s.rule_memo->size(), 4u);
}

TEST(site_rules, the_memo_is_bounded_and_drops_the_least_recent_paths) {
  siteconfig::sources src;
  src.headers = "/*\n  X-Frame-Options: DENY\n";
  auto probe = with_rules({"index.html"}, src);
  remembered(probe, "p0");
  size_t one = probe.rule_memo->used();
  size_t bound = 3 * one + 16;  // three entries (longer paths cost a little more), not four
  auto s = with_rules({"index.html"}, src, bound);
  auto hot = remembered(s, "p0");
  for (int i = 1; i < 100; ++i) {
    std::string rel = "p" + std::to_string(i);
    remembered(s, rel.c_str());
    EXPECT_LE(s.rule_memo->used(), bound);
    EXPECT_EQ(remembered(s, "p0"), hot);  // kept: used between the others
  }
  EXPECT_EQ(s.rule_memo->size(), 3u);
  // An evicted path is worked out again, with the same result.
  auto again = remembered(s, "p1");
  EXPECT_EQ(*again->headers.set, *hot->headers.set);
}

TEST(site_rules, a_new_deployment_does_not_see_the_previous_ones_outcomes) {
  siteconfig::sources v1;
  v1.redirects = "/go /one 302\n";
  siteconfig::sources v2;
  v2.redirects = "/go /two 302\n";
  auto a = with_rules({"index.html"}, v1);
  auto b = with_rules({"index.html"}, v2);
  EXPECT_EQ(remembered(a, "go")->location, "/one");
  EXPECT_EQ(remembered(b, "go")->location, "/two");
  EXPECT_EQ(remembered(a, "go")->location, "/one");
}

}  // namespace
}  // namespace dp::proxy
