// `_headers`: blocks, merging, removal, forbidden headers, limits, Basic-Auth.
#include <gtest/gtest.h>

#include "dp/siteconfig/siteconfig.hpp"

namespace sc = dp::siteconfig;

namespace {

sc::compiled compile_headers(std::string text, sc::options opt = {}) {
  opt.pbkdf2_iterations = 1000;  // the tests hash many passwords under ASan
  sc::sources in;
  in.headers = std::move(text);
  return sc::compile_sources(in, opt);
}

std::string all(const sc::compiled& c) {
  std::string s;
  for (const auto& d : c.diagnostics) {
    s += sc::to_string(d) + "\n";
  }
  return s;
}

std::string headers(const sc::rule_set& r, std::string_view path) {
  std::vector<sc::header_field> out;
  sc::headers_for(r, path, out);
  std::string s;
  for (const auto& f : out) {
    s += std::string(f.name) + "=" + f.value + ";";
  }
  return s;
}

std::string basic(std::string_view user_pass) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out = "Basic ";
  size_t i = 0;
  for (; i + 2 < user_pass.size(); i += 3) {
    uint32_t n = (uint8_t(user_pass[i]) << 16) | (uint8_t(user_pass[i + 1]) << 8) |
                 uint8_t(user_pass[i + 2]);
    for (int k = 18; k >= 0; k -= 6) {
      out += alphabet[(n >> k) & 63];
    }
  }
  if (size_t rest = user_pass.size() - i; rest > 0) {
    uint32_t n = uint8_t(user_pass[i]) << 16;
    if (rest == 2) {
      n |= uint8_t(user_pass[i + 1]) << 8;
    }
    out += alphabet[(n >> 18) & 63];
    out += alphabet[(n >> 12) & 63];
    out += rest == 2 ? alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

TEST(SiteconfigHeaders, MatchingRulesMergeInFileOrderAndJoinRepeats) {
  auto c = compile_headers(
      "/*\n  X-A: 1\n  Cache-Control: public\n/assets/*\n  Cache-Control: "
      "immutable\n/assets/app.js\n  X-B: 2\n");
  EXPECT_TRUE(c.diagnostics.empty()) << all(c);
  EXPECT_EQ(headers(c.rules, "/assets/app.js"), "X-A=1;Cache-Control=public, immutable;X-B=2;");
  EXPECT_EQ(headers(c.rules, "/index.html"), "X-A=1;Cache-Control=public;");
}

TEST(SiteconfigHeaders, RemovalDropsWhatEarlierRulesSetAndIsReported) {
  auto c = compile_headers(
      "/*\n  Content-Security-Policy: default-src 'self'\n  X-Frame-Options: DENY\n/embed/*\n  ! "
      "X-Frame-Options\n  ! Cache-Control\n");
  EXPECT_TRUE(c.diagnostics.empty()) << all(c);
  std::vector<sc::header_field> out;
  std::vector<std::string_view> removed;
  sc::headers_for(c.rules, "/embed/x", out, &removed);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].name, "Content-Security-Policy");
  ASSERT_EQ(removed.size(), 2u);
  EXPECT_EQ(removed[0], "X-Frame-Options");
  EXPECT_EQ(removed[1], "Cache-Control");
  // A removal applies to the earlier rules only: a later rule may set the header again.
  auto d = compile_headers("/a\n  ! X-A\n/*\n  X-A: 1\n");
  sc::headers_for(d.rules, "/a", out, &removed);
  EXPECT_EQ(out.size(), 1u);
  EXPECT_TRUE(removed.empty());
}

TEST(SiteconfigHeaders, HopByHopAndFramingHeadersAreRefused) {
  auto c = compile_headers(
      "/*\n  Content-Length: 0\n  transfer-encoding: chunked\n  Connection: close\n  Keep-Alive: "
      "1\n  Upgrade: h2c\n"
      "  TE: trailers\n  Trailer: X\n  Host: evil\n  Content-Encoding: gzip\n  ETag: x\n  ! "
      "Content-Length\n  X-Ok: 1\n");
  EXPECT_EQ(c.diagnostics.size(), 11u) << all(c);
  EXPECT_EQ(headers(c.rules, "/"), "X-Ok=1;");
}

TEST(SiteconfigHeaders, MalformedLinesAreWarnings) {
  auto c = compile_headers(
      "  X-Orphan: 1\n/a\n  no colon here\n  Bad Name: 1\n  X-Ctl: a\x01"
      "b\nrelative\n  X-Under-Bad: 1\nhttps://host.example/*\n  X-Host: 1\n/ok\n  X-Good: 1\n");
  EXPECT_EQ(c.diagnostics.size(), 6u) << all(c);
  EXPECT_EQ(c.diagnostics[0].line, 1u);
  EXPECT_EQ(headers(c.rules, "/ok"), "X-Good=1;");
  EXPECT_EQ(c.rules.header_rules.size(), 1u);
}

TEST(SiteconfigHeaders, LimitsAreCloudflares) {
  std::string text;
  for (int i = 0; i < 101; ++i) {
    text += "/p" + std::to_string(i) + "\n  X-N: " + std::to_string(i) + "\n";
  }
  text += "/long\n  X-Long: " + std::string(2000, 'v') + "\n";
  auto c = compile_headers(text);
  EXPECT_EQ(c.rules.header_rules.size(), 100u);
  ASSERT_EQ(c.diagnostics.size(), 2u) << all(c);
  EXPECT_EQ(sc::to_string(c.diagnostics[0]),
            "_headers:201: warning: rule dropped: more than 100 header rules");
  EXPECT_NE(c.diagnostics[1].message.find("2000 characters"), std::string::npos);
}

TEST(SiteconfigHeaders, BasicAuthBecomesAProtectionHashedNeverInClear) {
  auto c = compile_headers(
      "/private/*\n  Basic-Auth: alice:s3cret bob:hunter2:with:colons\n  X-Robots-Tag: noindex\n");
  EXPECT_TRUE(c.diagnostics.empty()) << all(c);
  const sc::protection_rule* p = sc::protection_for(c.rules, "/private/doc");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(sc::protection_for(c.rules, "/public"), nullptr);
  EXPECT_TRUE(sc::verify(*p, basic("alice:s3cret")));
  EXPECT_TRUE(sc::verify(*p, basic("bob:hunter2:with:colons")));
  EXPECT_TRUE(sc::verify(*p, "basic  " + basic("alice:s3cret").substr(6)));
  EXPECT_FALSE(sc::verify(*p, basic("alice:wrong")));
  EXPECT_FALSE(sc::verify(*p, basic("mallory:s3cret")));
  EXPECT_FALSE(sc::verify(*p, basic("alice")));
  EXPECT_FALSE(sc::verify(*p, "Bearer x"));
  EXPECT_FALSE(sc::verify(*p, "Basic !!!"));
  EXPECT_FALSE(sc::verify(*p, ""));
  // Basic-Auth is not sent as a header, and the passwords are nowhere in the compiled file.
  EXPECT_EQ(headers(c.rules, "/private/doc"), "X-Robots-Tag=noindex;");
  std::string json = sc::to_json(c.rules);
  EXPECT_EQ(json.find("s3cret"), std::string::npos);
  EXPECT_EQ(json.find("hunter2"), std::string::npos);
  auto back = sc::parse_rule_set(json);
  ASSERT_TRUE(back) << back.error().message;
  const sc::protection_rule* q = sc::protection_for(*back, "/private/");
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(sc::verify(*q, basic("alice:s3cret")));
  // Salted: the same password twice hashes differently.
  auto again = compile_headers("/private/*\n  Basic-Auth: alice:s3cret\n");
  EXPECT_NE(again.rules.protections[0].users[0].hash_hex, p->users[0].hash_hex);
}

TEST(SiteconfigHeaders, BasicAuthIsBoundedAndCountsAsARule) {
  std::string users;
  for (int i = 0; i < 60; ++i) {
    users += " u" + std::to_string(i) + ":p";
  }
  auto c = compile_headers("/a\n  Basic-Auth:" + users + "\n/b\n  Basic-Auth:" + users + "\n");
  ASSERT_EQ(c.diagnostics.size(), 1u) << all(c);
  EXPECT_NE(c.diagnostics[0].message.find("more than 100 Basic-Auth users"), std::string::npos);
  EXPECT_EQ(c.rules.protections.size(), 1u);
  std::string text;
  for (int i = 0; i < 101; ++i) {
    text += "/p" + std::to_string(i) + "\n  Basic-Auth: u:p\n";
  }
  auto d = compile_headers(text);
  EXPECT_EQ(d.rules.protections.size(), 100u);
  EXPECT_EQ(d.diagnostics.size(), 1u) << all(d);
}

TEST(SiteconfigHeaders, BadBasicAuthIsAWarningWithoutThePassword) {
  auto c = compile_headers("/a\n  Basic-Auth: nopassword\n/b\n  Basic-Auth: :pw-without-user\n");
  ASSERT_EQ(c.diagnostics.size(), 2u) << all(c);
  EXPECT_EQ(all(c).find("pw-without-user"), std::string::npos);
  EXPECT_TRUE(c.rules.protections.empty());
}

TEST(SiteconfigHeaders, StaticAndDynamicRulesKeepFileOrder) {
  auto c = compile_headers("/*\n  X-V: a\n/x\n  X-V: b\n/:p\n  X-V: c\n/x\n  X-V: d\n");
  EXPECT_EQ(headers(c.rules, "/x"), "X-V=a, b, c, d;");
  EXPECT_EQ(c.rules.dynamic_header_rules.size(), 2u);
}

}  // namespace
