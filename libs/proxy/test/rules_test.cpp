// The proxy's pure rules: hostile paths, Host headers, resolution, conditionals, ranges,
// Accept-Encoding and the LRU.
#include <gtest/gtest.h>

#include <set>

#include "dp/core/preview_alias.hpp"

#include "dp/proxy/lru.hpp"
#include "dp/proxy/rules.hpp"

namespace {

using namespace dp::proxy;

TEST(decode_path, normalizes_plain_paths) {
  struct row {
    const char* raw;
    const char* rel;
    bool dir;
  };
  for (auto r : std::vector<row>{{"/", "", true},
                                 {"/index.html", "index.html", false},
                                 {"/a/b/", "a/b", true},
                                 {"//a///b", "a/b", false},
                                 {"/a/./b/.", "a/b", true},
                                 {"/caf%C3%A9", "caf\xC3\xA9", false},
                                 {"/a%20b+c", "a b+c", false},
                                 {"/...", "...", false},
                                 {"/a..b", "a..b", false}}) {
    auto p = decode_path(r.raw);
    ASSERT_TRUE(p) << r.raw;
    EXPECT_EQ(p->rel, r.rel) << r.raw;
    EXPECT_EQ(p->dir, r.dir) << r.raw;
  }
}

TEST(decode_path, refuses_hostile_paths) {
  for (const std::string& raw :
       std::vector<std::string>{"",        "index.html", "*",      "http://x/",
                                "/..",     "/a/../b",    "/a/..",  "/%2e%2e/etc/passwd",
                                "/%2E%2E", "/.%2e/x",    "/a%2fb", "/a%2F..%2Fb",
                                "/a\\b",   "/a%5cb",     "/a%00b", "/a%0d%0aSet-Cookie:x",
                                "/%",      "/%4",        "/%zz",   "/%g0",
                                "/a%7f"}) {
    EXPECT_FALSE(decode_path(raw)) << raw;
  }
  EXPECT_FALSE(decode_path(std::string(1, '/') + std::string(1100, 'a')));
  EXPECT_TRUE(decode_path(std::string(1, '/') + std::string(1000, 'a')));
  EXPECT_FALSE(decode_path(std::string("/a\0b", 4)));
}

TEST(encode_path, keeps_unreserved_and_slashes) {
  EXPECT_EQ(encode_path("/about"), "/about");
  EXPECT_EQ(encode_path("/a b/caf\xC3\xA9?#"), "/a%20b/caf%C3%A9%3F%23");
}

TEST(parse_host, finds_labels_and_domains) {
  auto label = parse_host("Shop.LocalHost:8000", "localhost");
  ASSERT_TRUE(label);
  EXPECT_EQ(label->type, host_target::kind::label);
  EXPECT_EQ(label->name, "shop");
  auto trailing = parse_host("shop-1ab2.example.test.", "example.test");
  ASSERT_TRUE(trailing);
  EXPECT_EQ(trailing->name, "shop-1ab2");
  // Preview labels (dp/core/preview_alias.hpp) are labels like any other.
  for (const std::string& preview :
       {dp::branch_alias("shop", "Feature/X"), dp::pull_request_alias("shop", 42),
        dp::branch_alias("shop", "deadbeef"), dp::branch_alias(std::string(54, 'p'), "main")}) {
    auto h = parse_host(preview + ".localhost:8000", "localhost");
    ASSERT_TRUE(h) << preview;
    EXPECT_EQ(h->type, host_target::kind::label) << preview;
    EXPECT_EQ(h->name, preview);
  }
  auto domain = parse_host("www.Example.com", "localhost");
  ASSERT_TRUE(domain);
  EXPECT_EQ(domain->type, host_target::kind::domain);
  EXPECT_EQ(domain->name, "www.example.com");
  for (const std::string& none :
       std::vector<std::string>{"localhost", "localhost:80", "127.0.0.1:8000", "[::1]:8000",
                                "a.b.localhost", "xlocalhost.com.localhost.a.localhost"}) {
    auto h = parse_host(none, "localhost");
    ASSERT_TRUE(h) << none;
    EXPECT_EQ(h->type, host_target::kind::none) << none;
  }
  for (const std::string& bad : std::vector<std::string>{
           "", ":80", "shop.localhost:", "shop.localhost:99999", "shop..localhost",
           "-shop.localhost", "sh op.localhost", "shop_x.localhost", "[::1", "shop.localhost:80:80",
           std::string(70, 'a') + ".localhost", "shop.localhost/x", "shop.localhost\r\nx"}) {
    EXPECT_FALSE(parse_host(bad, "localhost")) << bad;
  }
}

dp::proto::manifest sample(dp::proto::serve_mode mode) {
  dp::proto::manifest m;
  m.deployment_id = "01jh5k7q3x9m2c8r4t6v0w1y3z";
  m.created_at = 1764000009000;
  m.mode = mode;
  for (const char* p :
       {"index.html", "about.html", "docs/index.html", "docs/guide/intro.html", "404.html",
        "docs/404.html", "app.js", "app.js.br", "app.js.gz", "raw", "raw.html"}) {
    m.files[p] = dp::proto::manifest_entry{10, std::string(64, 'a'), "text/html", ""};
  }
  return m;
}

std::string show(const site& s, const char* raw) {
  auto p = decode_path(raw);
  if (!p) {
    return "400";
  }
  auto r = resolve(s, *p);
  switch (r.type) {
    case resolution::kind::file:
      return std::to_string(r.status) + " " + r.file->path;
    case resolution::kind::redirect:
      return "308 " + r.location;
    case resolution::kind::not_found:
      break;
  }
  return "404";
}

TEST(resolve, static_mode) {
  site s = make_site(sample(dp::proto::serve_mode::static_files));
  EXPECT_EQ(show(s, "/"), "200 index.html");
  EXPECT_EQ(show(s, "/about"), "200 about.html");
  EXPECT_EQ(show(s, "/about.html"), "308 /about");
  EXPECT_EQ(show(s, "/index.html"), "308 /");
  EXPECT_EQ(show(s, "/docs/index.html"), "308 /docs/");
  EXPECT_EQ(show(s, "/docs"), "308 /docs/");
  EXPECT_EQ(show(s, "/docs/"), "200 docs/index.html");
  EXPECT_EQ(show(s, "/docs/guide/intro"), "200 docs/guide/intro.html");
  EXPECT_EQ(show(s, "/docs/guide/nope"), "404 docs/404.html");
  EXPECT_EQ(show(s, "/docs/guide/"), "404 docs/404.html");
  EXPECT_EQ(show(s, "/nope/deeper"), "404 404.html");
  EXPECT_EQ(show(s, "/app.js"), "200 app.js");
  // A file named "raw" wins over raw.html, so raw.html is served as itself.
  EXPECT_EQ(show(s, "/raw"), "200 raw");
  EXPECT_EQ(show(s, "/raw.html"), "200 raw.html");
}

TEST(resolve, spa_mode) {
  site s = make_site(sample(dp::proto::serve_mode::spa));
  EXPECT_EQ(show(s, "/dashboard/settings"), "200 index.html");
  EXPECT_EQ(show(s, "/dashboard/"), "200 index.html");
  EXPECT_EQ(show(s, "/missing.js"), "404 404.html");
  EXPECT_EQ(show(s, "/docs/missing.css"), "404 docs/404.html");
  EXPECT_EQ(show(s, "/about"), "200 about.html");
}

// SvelteKit (adapter-static) and Next.js (output: "export") write a page as name.html beside a
// folder name/ holding its sub-pages, with no name/index.html.
TEST(resolve, page_beside_a_folder_without_an_index) {
  for (auto mode : {dp::proto::serve_mode::static_files, dp::proto::serve_mode::spa}) {
    dp::proto::manifest m;
    m.deployment_id = "01jh5k7q3x9m2c8r4t6v0w1y3z";
    m.mode = mode;
    for (const char* p : {"index.html", "404.html", "blog.html", "blog/first-post.html",
                          "blog/2024.html", "blog/2024/summer.html", "raw", "raw.html"}) {
      m.files[p] = dp::proto::manifest_entry{10, std::string(64, 'a'), "text/html", ""};
    }
    site s = make_site(m);
    EXPECT_EQ(show(s, "/blog"), "200 blog.html");
    EXPECT_EQ(show(s, "/blog/"), "308 /blog");
    EXPECT_EQ(show(s, "/blog.html"), "308 /blog");
    EXPECT_EQ(show(s, "/blog/first-post"), "200 blog/first-post.html");
    EXPECT_EQ(show(s, "/blog/first-post/"), "308 /blog/first-post");
    EXPECT_EQ(show(s, "/blog/2024"), "200 blog/2024.html");
    EXPECT_EQ(show(s, "/blog/2024/"), "308 /blog/2024");
    EXPECT_EQ(show(s, "/blog/2024/summer"), "200 blog/2024/summer.html");
    // A file named "raw" is what "/raw" serves; "/raw/" does not send the reader there.
    EXPECT_EQ(show(s, "/raw/"),
              mode == dp::proto::serve_mode::spa ? "200 index.html" : "404 404.html");
  }
}

TEST(resolve, plain_404_without_a_page) {
  auto m = sample(dp::proto::serve_mode::static_files);
  m.files.erase("404.html");
  site s = make_site(m);
  EXPECT_EQ(show(s, "/nope"), "404");
}

TEST(make_site, links_precompressed_variants) {
  site s = make_site(sample(dp::proto::serve_mode::spa));
  const site_file* js = s.find("app.js");
  ASSERT_NE(js, nullptr);
  ASSERT_NE(js->br, nullptr);
  EXPECT_EQ(js->br->path, "app.js.br");
  ASSERT_NE(js->gzip, nullptr);
  EXPECT_EQ(js->gzip->path, "app.js.gz");
  EXPECT_EQ(js->etag, "\"" + std::string(64, 'a') + "\"");
  EXPECT_EQ(s.last_modified, "Mon, 24 Nov 2025 16:00:09 GMT");
}

TEST(conditional, etag_lists_weak_and_star) {
  EXPECT_TRUE(etag_matches("\"abc\"", "\"abc\""));
  EXPECT_TRUE(etag_matches("W/\"abc\"", "\"abc\""));
  EXPECT_TRUE(etag_matches("\"x\", W/\"abc\" ,\"y\"", "\"abc\""));
  EXPECT_TRUE(etag_matches("*", "\"abc\""));
  EXPECT_FALSE(etag_matches("\"abcd\"", "\"abc\""));
  EXPECT_FALSE(etag_matches("abc", "\"abc\""));
  EXPECT_FALSE(etag_matches("", "\"abc\""));
}

TEST(conditional, http_dates) {
  auto t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT");
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, 784111777);
  EXPECT_EQ(format_http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_FALSE(parse_http_date("yesterday"));
  EXPECT_FALSE(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT trailing"));
}

TEST(range, single_ranges) {
  using k = range_result::kind;
  auto r = parse_range("bytes=0-99", 1000);
  EXPECT_EQ(r.type, k::partial);
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(r.last, 99u);
  r = parse_range("bytes=900-", 1000);
  EXPECT_EQ(r.type, k::partial);
  EXPECT_EQ(r.last, 999u);
  r = parse_range("bytes=990-5000", 1000);
  EXPECT_EQ(r.last, 999u);
  r = parse_range("bytes=-100", 1000);
  EXPECT_EQ(r.first, 900u);
  r = parse_range("bytes=-5000", 1000);
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(parse_range("bytes=1000-", 1000).type, k::unsatisfiable);
  EXPECT_EQ(parse_range("bytes=-0", 1000).type, k::unsatisfiable);
  EXPECT_EQ(parse_range("bytes=0-", 0).type, k::unsatisfiable);
  // Ignored: the whole representation is sent.
  for (const char* full : {"", "bytes=5-1", "items=0-1", "bytes=a-b", "bytes=0-1,5-6",
                           "bytes=", "bytes=-", "bytes=99999999999999999999-"}) {
    EXPECT_EQ(parse_range(full, 1000).type, k::full) << full;
  }
}

TEST(accept_encoding, negotiation) {
  EXPECT_EQ(negotiate_encoding("gzip, deflate, br", true, true), "br");
  EXPECT_EQ(negotiate_encoding("gzip, deflate, br", false, true), "gzip");
  EXPECT_EQ(negotiate_encoding("gzip;q=1.0, br;q=0.5", true, true), "gzip");
  EXPECT_EQ(negotiate_encoding("br;q=0, gzip", true, true), "gzip");
  EXPECT_EQ(negotiate_encoding("br;q=0, gzip;q=0", true, true), "");
  EXPECT_EQ(negotiate_encoding("", true, true), "");
  EXPECT_EQ(negotiate_encoding("identity", true, true), "");
  EXPECT_EQ(negotiate_encoding("*", true, true), "br");
  EXPECT_EQ(negotiate_encoding("gzip;q=0.5, identity;q=1", true, true), "");
  EXPECT_EQ(negotiate_encoding("BR;Q=0.9", true, false), "br");
  EXPECT_EQ(negotiate_encoding("br;q=abc", true, false), "");
  EXPECT_EQ(negotiate_encoding("deflate", true, true), "");
}

TEST(accept_encoding, identity_excluded) {
  EXPECT_EQ(negotiate_encoding("br, identity;q=0", true, true), "br");
  EXPECT_EQ(negotiate_encoding("gzip, identity;q=0", true, true), "gzip");
  EXPECT_EQ(negotiate_encoding("*;q=0.5, identity;q=0", true, true), "br");
  // Nothing acceptable: identity anyway rather than a 406 (what browsers and nginx do).
  EXPECT_EQ(negotiate_encoding("deflate, identity;q=0", true, true), "");
  EXPECT_EQ(negotiate_encoding("gzip;q=0.8, br;q=0.9", true, true), "br");
  EXPECT_EQ(negotiate_encoding("gzip;q=0.9, br;q=0.8", true, true), "gzip");
  EXPECT_EQ(negotiate_encoding("gzip, br", false, false), "");
}

// A manifest whose variants have their own digests, as the runner writes them.
site site_with_variants() {
  dp::proto::manifest m;
  m.deployment_id = "01jh5k7q3x9m2c8r4t6v0w1y3z";
  m.files["app.js"] = {5000, std::string(64, 'a'), "text/javascript; charset=utf-8", "x"};
  m.files["app.js.br"] = {1200, std::string(64, 'b'), "application/x-brotli", "x"};
  m.files["app.js.gz"] = {1500, std::string(64, 'c'), "application/gzip", "x"};
  m.files["style.css"] = {5000, std::string(64, 'd'), "text/css; charset=utf-8", "x"};
  m.files["style.css.gz"] = {1500, std::string(64, 'e'), "application/gzip", "x"};
  m.files["index.html"] = {500, std::string(64, 'f'), "text/html; charset=utf-8", "x"};
  return make_site(m);
}

TEST(representation, variant_selection_etags_and_vary) {
  site s = site_with_variants();
  const site_file& js = *s.find("app.js");
  auto br = choose_representation(js, "gzip, deflate, br");
  EXPECT_EQ(br.coding, "br");
  EXPECT_EQ(br.file->path, "app.js.br");
  EXPECT_EQ(br.file->size, 1200u);
  EXPECT_TRUE(br.vary);
  auto gz = choose_representation(js, "gzip");
  EXPECT_EQ(gz.coding, "gzip");
  EXPECT_EQ(gz.file->path, "app.js.gz");
  auto plain = choose_representation(js, "");
  EXPECT_EQ(plain.coding, "");
  EXPECT_EQ(plain.file, &js);
  EXPECT_TRUE(plain.vary) << "the identity response varies too";
  // Each representation has its own ETag.
  std::set<std::string> etags{br.file->etag, gz.file->etag, plain.file->etag};
  EXPECT_EQ(etags.size(), 3u);
  EXPECT_EQ(br.file->etag, "\"" + std::string(64, 'b') + "\"");
  // Only the variants that exist: a br client of style.css gets identity, a gzip one gzip.
  const site_file& css = *s.find("style.css");
  EXPECT_EQ(choose_representation(css, "br").coding, "");
  EXPECT_EQ(choose_representation(css, "br, gzip").file->path, "style.css.gz");
  // A file without variants: one representation, no Vary.
  auto home = choose_representation(*s.find("index.html"), "br, gzip");
  EXPECT_EQ(home.file->path, "index.html");
  EXPECT_FALSE(home.vary);
}

TEST(lru, evicts_least_recently_used_by_cost) {
  lru_cache<std::string> c(100);
  c.put("a", std::make_shared<const std::string>("A"), 40);
  c.put("b", std::make_shared<const std::string>("B"), 40);
  ASSERT_NE(c.get("a"), nullptr);  // a is now the most recent
  c.put("c", std::make_shared<const std::string>("C"), 40);
  EXPECT_EQ(c.get("b"), nullptr);
  EXPECT_NE(c.get("a"), nullptr);
  EXPECT_NE(c.get("c"), nullptr);
  EXPECT_EQ(c.used(), 80u);
  // Too big for the whole cache: not kept, and nothing else is evicted for it.
  c.put("huge", std::make_shared<const std::string>("H"), 101);
  EXPECT_EQ(c.get("huge"), nullptr);
  EXPECT_EQ(c.size(), 2u);
  // Replacing a key re-charges it.
  c.put("a", std::make_shared<const std::string>("A2"), 10);
  EXPECT_EQ(*c.get("a"), "A2");
  EXPECT_EQ(c.used(), 50u);
  EXPECT_EQ(c.hits(), 4u);
  EXPECT_EQ(c.misses(), 2u);
}

TEST(lru, a_value_outlives_its_eviction) {
  lru_cache<std::string> c(10);
  c.put("a", std::make_shared<const std::string>("keep"), 10);
  auto held = c.get("a");
  c.put("b", std::make_shared<const std::string>("B"), 10);
  EXPECT_EQ(c.get("a"), nullptr);
  EXPECT_EQ(*held, "keep");
}

}  // namespace
