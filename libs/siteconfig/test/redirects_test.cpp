// `_redirects`: the format's edge cases (limits, comments, CRLF, BOM, codes, shadowing, order).
#include <gtest/gtest.h>

#include "dp/siteconfig/siteconfig.hpp"

namespace sc = dp::siteconfig;

namespace {

sc::compiled compile_redirects(std::string text, sc::options opt = {}) {
  sc::sources in;
  in.redirects = std::move(text);
  return sc::compile_sources(in, opt);
}

std::string all(const sc::compiled& c) {
  std::string s;
  for (const auto& d : c.diagnostics) {
    s += sc::to_string(d) + "\n";
  }
  return s;
}

sc::outcome go(const sc::compiled& c, std::string_view path, std::string_view query = {},
               bool file = false) {
  return sc::match(c.rules, path, query, file);
}

TEST(SiteconfigRedirects, DefaultStatusIs302AndCodesAreChecked) {
  auto c = compile_redirects(
      "/a /b\n/c /d 301\n/e /f 303\n/g /h 307\n/i /j 308\n/k /l 404\n/m /n 299\n/o /p abc\n/q /r "
      "301 Country=us\n");
  EXPECT_EQ(go(c, "/a").status, 302u);
  EXPECT_EQ(go(c, "/c").status, 301u);
  EXPECT_EQ(go(c, "/e").status, 303u);
  EXPECT_EQ(go(c, "/g").status, 307u);
  EXPECT_EQ(go(c, "/i").status, 308u);
  EXPECT_EQ(go(c, "/k").type, sc::outcome::kind::none);
  EXPECT_EQ(go(c, "/q").type, sc::outcome::kind::none);
  ASSERT_EQ(c.diagnostics.size(), 4u) << all(c);
  EXPECT_EQ(sc::to_string(c.diagnostics[0]),
            "_redirects:6: warning: rule dropped: status 404 is not supported (200, 301, 302, 303, "
            "307, 308)");
  EXPECT_EQ(c.diagnostics[1].line, 7u);
  EXPECT_NE(c.diagnostics[2].message.find("conditions"), std::string::npos);
  EXPECT_EQ(c.diagnostics[3].line, 9u);
}

TEST(SiteconfigRedirects, CommentsBlankLinesCrlfAndBom) {
  auto c = compile_redirects(
      "\xEF\xBB\xBF/a /b 301\r\n\r\n  # a comment\r\n/c /d 301 # trailing "
      "comment\r\n\t/e\t/f\t\r\n");
  EXPECT_TRUE(c.diagnostics.empty()) << all(c);
  EXPECT_EQ(go(c, "/a").location, "/b");
  EXPECT_EQ(go(c, "/c").location, "/d");
  EXPECT_EQ(go(c, "/e").location, "/f");
}

TEST(SiteconfigRedirects, MalformedLinesAreWarnings) {
  auto c = compile_redirects(
      "/only-source\nrelative /x\n/x relative\nhttps://host/a /b\n/s key=:v /b\n");
  ASSERT_EQ(c.diagnostics.size(), 5u) << all(c);
  for (const auto& d : c.diagnostics) {
    EXPECT_EQ(d.level, sc::diagnostic::severity::warning);
  }
  EXPECT_TRUE(c.rules.empty());
}

TEST(SiteconfigRedirects, ProxyingToAnotherHostIsRefused) {
  auto c = compile_redirects(
      "/api/* https://api.example.com/:splat 200\n/ok/* //evil.example/:splat 200\n");
  ASSERT_EQ(c.diagnostics.size(), 2u) << all(c);
  EXPECT_NE(c.diagnostics[0].message.find("proxy"), std::string::npos);
  EXPECT_TRUE(c.rules.empty());
}

TEST(SiteconfigRedirects, RewriteServesAnotherPathDecoded) {
  auto c =
      compile_redirects("/app/* /app/index.html 200\n/caf%C3%A9 /menu%20du%20jour.html?x=1 200\n");
  EXPECT_TRUE(c.diagnostics.empty()) << all(c);
  auto o = go(c, "/app/x/y", "q=1");
  EXPECT_EQ(o.type, sc::outcome::kind::rewrite);
  EXPECT_EQ(o.status, 200u);
  EXPECT_EQ(o.location, "/app/index.html");
  // The source was percent-decoded at compile time: it matches the decoded path.
  EXPECT_EQ(go(c, "/café").location, "/menu du jour.html");
}

TEST(SiteconfigRedirects, RewritesStayInsideTheDeployment) {
  auto c = compile_redirects(
      "/a /../etc/passwd 200\n/b/* /x/%2e%2e/:splat 200\n/c/* /x/.:splat. 200\n/d /x%0A 200\n");
  EXPECT_EQ(c.diagnostics.size(), 4u) << all(c);
  EXPECT_TRUE(c.rules.empty());
  // A redirect may name any URL: the browser resolves it.
  EXPECT_TRUE(compile_redirects("/a /../b 301\n").diagnostics.empty());
}

TEST(SiteconfigRedirects, ShadowingByFilesIsTheDefaultAndForceOverrides) {
  auto c = compile_redirects("/* /index.html 200\n/old /new 301\n/kept /forced 301!\n");
  // A file for the path wins over a rule without '!' (Netlify; the default).
  EXPECT_EQ(go(c, "/app.js", {}, true).type, sc::outcome::kind::none);
  EXPECT_EQ(go(c, "/route", {}, false).location, "/index.html");
  EXPECT_EQ(go(c, "/old", {}, true).type,
            sc::outcome::kind::none);  // every rule yields to the file
  EXPECT_EQ(go(c, "/kept", {}, true).location, "/forced");
  sc::options cf;
  cf.shadow = sc::shadowing::rules_win;
  auto d = compile_redirects("/old /new 301\n", cf);
  EXPECT_EQ(go(d, "/old", {}, true).location, "/new");
}

TEST(SiteconfigRedirects, FirstMatchWinsAcrossStaticAndDynamic) {
  auto c =
      compile_redirects("/a /first 301\n/a /second 301\n/b/* /dyn 301\n/b/x /static-after 301\n");
  EXPECT_EQ(go(c, "/a").location, "/first");
  // Cloudflare counts a static rule after the first dynamic one as dynamic: order is kept.
  EXPECT_EQ(go(c, "/b/x").location, "/dyn");
  EXPECT_EQ(c.rules.static_redirects.size(), 2u);
  EXPECT_EQ(c.rules.dynamic_redirects.size(), 2u);
}

TEST(SiteconfigRedirects, LimitsDropRulesWithAWarningEach) {
  std::string text;
  for (int i = 0; i < 2003; ++i) {
    text += "/s" + std::to_string(i) + " /t 301\n";
  }
  for (int i = 0; i < 102; ++i) {
    text += "/d" + std::to_string(i) + "/* /t 301\n";
  }
  text += "/long /" + std::string(1000, 'x') + "\n";
  auto c = compile_redirects(text);
  EXPECT_EQ(c.rules.static_redirects.size(), 2000u);
  EXPECT_EQ(c.rules.dynamic_redirects.size(), 100u);
  ASSERT_EQ(c.diagnostics.size(), 6u) << all(c);
  EXPECT_EQ(sc::to_string(c.diagnostics[0]),
            "_redirects:2001: warning: rule dropped: more than 2000 static rules");
  EXPECT_EQ(sc::to_string(c.diagnostics[3]),
            "_redirects:2104: warning: rule dropped: more than 100 dynamic rules");
  EXPECT_NE(c.diagnostics[5].message.find("longer than 1000 characters"), std::string::npos);
}

TEST(SiteconfigRedirects, PlaceholdersSplatsAndQueries) {
  auto c = compile_redirects(
      "/news/:year/:month/:date/:slug /blog/:year/:month/:date/:slug 301\n"
      "/files/* /f/:splat 302\n"
      "/pre* /p/:splat 302\n"
      "/post-:id.html /posts/:id 301\n"
      "/dot/.:name /hidden/:name 301\n");
  EXPECT_TRUE(c.diagnostics.empty()) << all(c);
  EXPECT_EQ(go(c, "/news/2024/01/02/hello").location, "/blog/2024/01/02/hello");
  EXPECT_EQ(go(c, "/files/a b/c", "x=1&y=2").location, "/f/a%20b/c?x=1&y=2");
  EXPECT_EQ(go(c, "/prefix/x").location, "/p/fix/x");
  EXPECT_EQ(go(c, "/post-42.html").location, "/posts/42");
  EXPECT_EQ(go(c, "/post-.html").type, sc::outcome::kind::none);
  EXPECT_EQ(go(c, "/dot/.env").location, "/hidden/env");
}

// The proxy remembers a redirect per path and adds each request's query afterwards: the same
// Location as matching with the query.
TEST(SiteconfigRedirects, AppendQueryIsWhatMatchAdds) {
  auto c = compile_redirects(
      "/a /b 301\n/q /b?k=v 301\n/f /b#top 301\n/qf /b?k=v#top 301\n/e /b? 301\n");
  EXPECT_TRUE(c.diagnostics.empty()) << all(c);
  for (const char* path : {"/a", "/q", "/f", "/qf", "/e"}) {
    for (const char* query : {"", "x=1&y", "z=%2F"}) {
      std::string location = go(c, path).location;
      sc::append_query(location, query);
      EXPECT_EQ(location, go(c, path, query).location) << path << "?" << query;
    }
  }
  std::string location = "/b?k=v#top";
  sc::append_query(location, "x=1");
  EXPECT_EQ(location, "/b?k=v&x=1#top");
}

TEST(SiteconfigRedirects, UnsupportedPatternsAreWarnings) {
  auto c = compile_redirects("/a/*/* /x\n/a/%2F /x\n/a/%zz /x\n/a/../b /x\n/:a/:a /x\n/:a-:b /x\n");
  EXPECT_EQ(c.diagnostics.size(), 6u) << all(c);
  EXPECT_TRUE(c.rules.empty());
}

TEST(SiteconfigRedirects, CompiledFormRoundTrips) {
  auto c = compile_redirects("/a /b 301\n/c/:x/* /d/:x/:splat 308!\n");
  auto text = sc::to_json(c.rules);
  auto r = sc::parse_rule_set(text);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(sc::to_json(*r), text);
  EXPECT_EQ(sc::match(*r, "/c/1/2/3", "", true).location, "/d/1/2/3");
  // Paths are bytes: a rule for a path that is not UTF-8 survives the JSON form.
  auto latin1 = compile_redirects("/caf%E9 /x 301\n/\xff\xfe /y 301\n");
  auto latin1_back = sc::parse_rule_set(sc::to_json(latin1.rules));
  ASSERT_TRUE(latin1_back) << latin1_back.error().message;
  EXPECT_EQ(sc::match(*latin1_back, "/caf\xE9", "", false).location, "/x");
  EXPECT_EQ(sc::match(*latin1_back, "/\xff\xfe", "", false).location, "/y");
  EXPECT_FALSE(sc::parse_rule_set(R"({"version":2})"));
  EXPECT_FALSE(sc::parse_rule_set("[]"));
  EXPECT_FALSE(sc::parse_rule_set("{"));
}

}  // namespace
