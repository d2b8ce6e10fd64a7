// vercel.json: invalid JSON, unknown keys, unsupported path-to-regexp forms, precedence.
#include <gtest/gtest.h>

#include "dp/siteconfig/siteconfig.hpp"

namespace sc = dp::siteconfig;

namespace {

sc::compiled compile_vercel(std::string text) {
  sc::sources in;
  in.vercel_json = std::move(text);
  return sc::compile_sources(in, {});
}

std::string all(const sc::compiled& c) {
  std::string s;
  for (const auto& d : c.diagnostics) {
    s += sc::to_string(d) + "\n";
  }
  return s;
}

TEST(SiteconfigVercel, InvalidJsonIsAnErrorWithItsLine) {
  auto c = compile_vercel("{\n  \"redirects\": [\n    { \"source\": \"/a\", }\n  ]\n}\n");
  ASSERT_EQ(c.diagnostics.size(), 1u) << all(c);
  EXPECT_EQ(c.diagnostics[0].level, sc::diagnostic::severity::error);
  EXPECT_EQ(c.diagnostics[0].line, 3u);
  EXPECT_TRUE(c.rules.empty());
  auto d = compile_vercel("[1, 2]");
  ASSERT_EQ(d.diagnostics.size(), 1u);
  EXPECT_EQ(d.diagnostics[0].level, sc::diagnostic::severity::error);
  auto e = compile_vercel("{\"a\": 1} trailing");
  ASSERT_EQ(e.diagnostics.size(), 1u);
  EXPECT_EQ(e.diagnostics[0].level, sc::diagnostic::severity::error);
  auto f = compile_vercel(std::string(100, '['));
  ASSERT_EQ(f.diagnostics.size(), 1u);
}

TEST(SiteconfigVercel, UnknownKeysAndUnsupportedFormsAreWarningsNamingTheRule) {
  auto c = compile_vercel(R"J({
    "framework": "vite", "functions": {}, "cleanUrls": "yes",
    "redirects": [
      {"source": "/a/:id(\\d+)", "destination": "/b"},
      {"source": "/a/{x}?", "destination": "/b"},
      {"source": "/ok", "destination": "/fine", "basePath": false},
      {"source": "/bad", "destination": "/x", "statusCode": 404},
      {"source": "/q", "destination": "/r", "missing": [{"type": "cookie", "key": "c"}]},
      {"source": 1, "destination": "/x"},
      "not an object"
    ],
    "rewrites": [{"source": "/api/(.*)", "destination": "https://api.example.com/$1"},
                 {"source": "/x", "destination": "relative"}],
    "headers": [{"source": "/(.*)", "headers": [{"key": "Connection", "value": "close"},
                                               {"key": "X-Ok", "value": "1"}]}]
})J");
  std::string text = all(c);
  EXPECT_NE(text.find("key 'framework' ignored"), std::string::npos) << text;
  EXPECT_NE(text.find("key 'functions' ignored"), std::string::npos) << text;
  EXPECT_NE(text.find("'cleanUrls' ignored: not a boolean"), std::string::npos) << text;
  EXPECT_NE(text.find("redirects[0] dropped: this path-to-regexp form is not supported"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("redirects[1] dropped"), std::string::npos) << text;
  EXPECT_NE(text.find("redirects[2]: key 'basePath' ignored"), std::string::npos) << text;
  EXPECT_NE(text.find("redirects[3] dropped: 'statusCode'"), std::string::npos) << text;
  EXPECT_NE(text.find("redirects[4] dropped: conditions"), std::string::npos) << text;
  EXPECT_NE(text.find("redirects[5] dropped"), std::string::npos) << text;
  EXPECT_NE(text.find("redirects[6] dropped: not an object"), std::string::npos) << text;
  EXPECT_NE(text.find("rewrites[0] dropped: an external rewrite"), std::string::npos) << text;
  EXPECT_NE(text.find("rewrites[1] dropped"), std::string::npos) << text;
  EXPECT_NE(text.find("headers[0].headers[0] dropped: Connection"), std::string::npos) << text;
  EXPECT_EQ(sc::match(c.rules, "/ok", "", false).location, "/fine");
  EXPECT_EQ(c.rules.static_redirects.size() + c.rules.dynamic_redirects.size(), 1u);
  for (const auto& d : c.diagnostics) {
    EXPECT_EQ(d.level, sc::diagnostic::severity::warning);
  }
}

TEST(SiteconfigVercel, TrailingSlashTrueAddsOneExceptToFiles) {
  auto c = compile_vercel(R"J({"trailingSlash": true})J");
  EXPECT_EQ(sc::match(c.rules, "/about", "a=1", false).location, "/about/?a=1");
  EXPECT_EQ(sc::match(c.rules, "/about", "", false).status, 308u);
  EXPECT_EQ(sc::match(c.rules, "/about/", "", false).type, sc::outcome::kind::none);
  EXPECT_EQ(sc::match(c.rules, "/styles.css", "", false).type, sc::outcome::kind::none);
  EXPECT_EQ(sc::match(c.rules, "/", "", false).type, sc::outcome::kind::none);
  EXPECT_EQ(sc::match(c.rules, "/a b", "", false).location, "/a%20b/");
}

TEST(SiteconfigVercel, RedirectsComeBeforeFilesAndRewritesAfter) {
  auto c = compile_vercel(R"J({
    "rewrites": [{"source": "/(.*)", "destination": "/index.html"}],
    "redirects": [{"source": "/old", "destination": "/new", "permanent": true}]
})J");
  EXPECT_TRUE(c.diagnostics.empty()) << all(c);
  EXPECT_EQ(sc::match(c.rules, "/old", "", true).location, "/new");
  EXPECT_EQ(sc::match(c.rules, "/asset.js", "", true).type, sc::outcome::kind::none);
  EXPECT_EQ(sc::match(c.rules, "/route", "", false).location, "/index.html");
}

TEST(SiteconfigVercel, ParametersWithPrefixAndSuffixAndHeaderValues) {
  auto c = compile_vercel(R"J({
    "redirects": [{"source": "/post-:id.html", "destination": "/posts/:id"}],
    "headers": [{"source": "/user/:name", "headers": [{"key": "X-User", "value": "hello :name"}]}]
  })J");
  EXPECT_TRUE(c.diagnostics.empty()) << all(c);
  EXPECT_EQ(sc::match(c.rules, "/post-7.html", "", false).location, "/posts/7");
  std::vector<sc::header_field> out;
  sc::headers_for(c.rules, "/user/ann", out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].value, "hello ann");
}

}  // namespace
