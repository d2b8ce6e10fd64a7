// compile(): reading a hostile build's output directory, and the matcher's edge cases.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "dp/siteconfig/siteconfig.hpp"

namespace sc = dp::siteconfig;
namespace fs = std::filesystem;

namespace {

class SiteconfigCompile : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("siteconfig-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "out");
    fs::create_directories(root_ / "project");
  }
  void TearDown() override { fs::remove_all(root_); }

  void write(const fs::path& p, std::string_view text) {
    std::ofstream f(p, std::ios::binary);
    f << text;
  }

  static std::string all(const sc::compiled& c) {
    std::string s;
    for (const auto& d : c.diagnostics) {
      s += sc::to_string(d) + "\n";
    }
    return s;
  }

  fs::path root_;
};

TEST_F(SiteconfigCompile, ReadsTheThreeFilesAndNothingElse) {
  write(root_ / "out/_redirects", "/a /b 301\n");
  write(root_ / "out/_headers", "/*\n  X-A: 1\n");
  write(root_ / "out/vercel.json", R"({"redirects": [{"source": "/c", "destination": "/d"}]})");
  auto c = sc::compile(root_ / "out", {});
  EXPECT_TRUE(c.diagnostics.empty()) << all(c);
  EXPECT_EQ(sc::match(c.rules, "/a", "", false).location, "/b");
  EXPECT_EQ(sc::match(c.rules, "/c", "", false).location, "/d");
  auto none = sc::compile(root_ / "project", {});
  EXPECT_TRUE(none.diagnostics.empty());
  EXPECT_TRUE(none.rules.empty());
}

TEST_F(SiteconfigCompile, VercelJsonFromTheProjectWhenTheOutputHasNone) {
  write(root_ / "project/vercel.json", R"({"trailingSlash": false})");
  auto c = sc::compile(root_ / "out", {}, root_ / "project");
  EXPECT_TRUE(c.diagnostics.empty()) << all(c);
  EXPECT_EQ(c.rules.trailing_slash, sc::trailing_slash_mode::remove);
}

TEST_F(SiteconfigCompile, SymlinksAreNeverFollowed) {
  write(root_ / "secret", "/a /leaked 301\n");
  fs::create_symlink(root_ / "secret", root_ / "out/_redirects");
  fs::create_symlink("/etc/passwd", root_ / "out/_headers");
  auto c = sc::compile(root_ / "out", {});
  ASSERT_EQ(c.diagnostics.size(), 2u) << all(c);
  EXPECT_EQ(sc::to_string(c.diagnostics[0]),
            "_redirects: error: is a symbolic link: not read, its rules are not applied");
  EXPECT_EQ(c.diagnostics[1].level, sc::diagnostic::severity::error);
  EXPECT_TRUE(c.rules.empty());
  // The output directory itself as a symlink is refused too.
  fs::create_directory_symlink(root_ / "project", root_ / "link");
  auto d = sc::compile(root_ / "link", {});
  ASSERT_EQ(d.diagnostics.size(), 1u);
  EXPECT_EQ(d.diagnostics[0].level, sc::diagnostic::severity::error);
}

TEST_F(SiteconfigCompile, HugeFilesFifosAndDirectoriesAreRefused) {
  sc::options opt;
  opt.max_file_bytes = 1000;
  write(root_ / "out/_redirects", std::string(1001, '#'));
  ASSERT_EQ(::mkfifo((root_ / "out/_headers").c_str(), 0600), 0);
  fs::create_directory(root_ / "out/vercel.json");
  auto c = sc::compile(root_ / "out", opt);
  ASSERT_EQ(c.diagnostics.size(), 3u) << all(c);
  EXPECT_NE(c.diagnostics[0].message.find("larger than 1000 bytes"), std::string::npos);
  EXPECT_NE(c.diagnostics[1].message.find("not a regular file"), std::string::npos);
  EXPECT_NE(c.diagnostics[2].message.find("not a regular file"), std::string::npos);
  for (const auto& d : c.diagnostics) {
    EXPECT_EQ(d.level, sc::diagnostic::severity::error);
  }
  // At the limit it is read.
  write(root_ / "out/_redirects", std::string(1000, '#'));
  fs::remove(root_ / "out/_headers");
  fs::remove(root_ / "out/vercel.json");
  EXPECT_TRUE(sc::compile(root_ / "out", opt).diagnostics.empty());
}

TEST_F(SiteconfigCompile, ABadFileDoesNotStopTheOthers) {
  write(root_ / "out/_redirects", "/a /b 301\n");
  write(root_ / "out/vercel.json", "{ nope");
  auto c = sc::compile(root_ / "out", {});
  ASSERT_EQ(c.diagnostics.size(), 1u) << all(c);
  EXPECT_EQ(c.diagnostics[0].file, "vercel.json");
  EXPECT_EQ(sc::match(c.rules, "/a", "", false).location, "/b");
}

TEST(SiteconfigMatch, PatternsMatchSegmentsNotSubstrings) {
  sc::sources in;
  in.redirects = "/a/:x /r/:x\n/b/:x/c /s/:x\n/d/* /t/:splat\n";
  auto c = sc::compile_sources(in, {});
  auto go = [&](std::string_view p) { return sc::match(c.rules, p, "", false); };
  EXPECT_EQ(go("/a/1").location, "/r/1");
  EXPECT_EQ(go("/a/").type, sc::outcome::kind::none);
  EXPECT_EQ(go("/a/1/").type, sc::outcome::kind::none);
  EXPECT_EQ(go("/a/1/2").type, sc::outcome::kind::none);
  EXPECT_EQ(go("/b/1/c").location, "/s/1");
  EXPECT_EQ(go("/b/1/cc").type, sc::outcome::kind::none);
  EXPECT_EQ(go("/dd/x").type, sc::outcome::kind::none);
  EXPECT_EQ(go("").type, sc::outcome::kind::none);
  EXPECT_EQ(go("no-slash").type, sc::outcome::kind::none);
  // Captured text is percent-encoded in a Location: no header injection through a path.
  EXPECT_EQ(go("/d/x\r\ny").location, "/t/x%0D%0Ay");
  EXPECT_EQ(go("/a/%2F").location, "/r/%252F");
}

TEST(SiteconfigMatch, RewritesKeepNoQueryAndRedirectsMergeIt) {
  sc::sources in;
  in.redirects = "/r /to?a=1#f 301\n/w /page.html?ignored=1 200\n/e /empty? 302\n";
  auto c = sc::compile_sources(in, {});
  EXPECT_EQ(sc::match(c.rules, "/r", "b=2", false).location, "/to?a=1&b=2#f");
  EXPECT_EQ(sc::match(c.rules, "/r", "", false).location, "/to?a=1#f");
  EXPECT_EQ(sc::match(c.rules, "/w", "b=2", false).location, "/page.html");
  EXPECT_EQ(sc::match(c.rules, "/e", "b=2", false).location, "/empty?b=2");
}

}  // namespace
