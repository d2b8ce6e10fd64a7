#include "dp/build/output.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "dp/test/harness.hpp"

using namespace dp::build;
namespace fs = std::filesystem;

namespace {

constexpr const char* sha_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr const char* sha_empty =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

class Output : public ::testing::Test {
 protected:
  void write(const fs::path& rel, const std::string& content = "") {
    auto p = out() / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << content;
  }
  fs::path out() const { return dir_.path(); }

  std::vector<std::string> keys(const output_listing& l) {
    std::vector<std::string> k;
    for (const auto& f : l.files) {
      k.push_back(f.key);
    }
    return k;
  }
  bool warned(const output_listing& l, std::string_view what) {
    for (const auto& w : l.warnings) {
      if (w.find(what) != std::string::npos) {
        return true;
      }
    }
    return false;
  }

  dp::test::temp_dir dir_{"dp-output"};
};

TEST_F(Output, ListsRegularFilesWithSizeAndSha256) {
  write("index.html", "abc");
  write("assets/empty.js");
  write("a..b.txt", "abc");  // ".." inside a name is harmless
  auto l = scan_output(out());
  ASSERT_TRUE(l) << l.error().message;
  EXPECT_EQ(keys(*l), (std::vector<std::string>{"a..b.txt", "assets/empty.js", "index.html"}));
  EXPECT_EQ(l->files[2].sha256, sha_abc);
  EXPECT_EQ(l->files[2].size, 3u);
  EXPECT_EQ(l->files[1].sha256, sha_empty);
  EXPECT_EQ(l->total_bytes, 6u);
  EXPECT_TRUE(l->warnings.empty());
}

TEST_F(Output, SymlinksInsideArePublishedAsTheirTarget) {
  write("assets/app.js", "abc");
  fs::create_symlink("assets/app.js", out() / "app-link.js");
  fs::create_directory_symlink("assets", out() / "static");
  auto l = scan_output(out());
  ASSERT_TRUE(l) << l.error().message;
  EXPECT_EQ(keys(*l), (std::vector<std::string>{"app-link.js", "assets/app.js", "static/app.js"}));
  EXPECT_EQ(l->files[0].sha256, sha_abc);
  EXPECT_EQ(l->files[0].source, fs::canonical(out() / "assets/app.js"));
}

TEST_F(Output, SymlinksLeavingTheOutputAreSkipped) {
  write("index.html", "abc");
  fs::create_symlink("/etc/passwd", out() / "passwd");
  fs::create_directory_symlink("/etc", out() / "etc");
  fs::create_symlink("../outside.txt", out() / "rel-escape");
  fs::create_symlink("missing.txt", out() / "broken");
  auto l = scan_output(out());
  ASSERT_TRUE(l) << l.error().message;
  EXPECT_EQ(keys(*l), (std::vector<std::string>{"index.html"}));
  EXPECT_TRUE(warned(*l, "'passwd': symlink leads outside"));
  EXPECT_TRUE(warned(*l, "'etc': symlink leads outside"));
  EXPECT_TRUE(warned(*l, "'broken': broken symlink"));
}

TEST_F(Output, SymlinkLoopsAreCut) {
  write("a/file.txt", "abc");
  fs::create_directory_symlink("..", out() / "a/up");
  fs::create_directory_symlink(".", out() / "a/self");
  auto l = scan_output(out());
  ASSERT_TRUE(l) << l.error().message;
  EXPECT_EQ(keys(*l), (std::vector<std::string>{"a/file.txt"}));
  EXPECT_TRUE(warned(*l, "'a/up': symlink loop"));
  EXPECT_TRUE(warned(*l, "'a/self': symlink loop"));
}

TEST_F(Output, SpecialFilesBadNamesAndGitAreSkipped) {
  write("ok.txt", "abc");
  ASSERT_EQ(::mkfifo((out() / "fifo").c_str(), 0600), 0);
  write("new\nline.txt");
  write("back\\slash.txt");
  write("bad\xff.txt");
  write(".git/config", "[core]");
  write(".well-known/security.txt", "abc");
  auto l = scan_output(out());
  ASSERT_TRUE(l) << l.error().message;
  EXPECT_EQ(keys(*l), (std::vector<std::string>{".well-known/security.txt", "ok.txt"}));
  EXPECT_TRUE(warned(*l, "'fifo': not a regular file"));
  EXPECT_TRUE(warned(*l, "'new?line.txt'"));
  EXPECT_TRUE(warned(*l, "backslash"));
  EXPECT_TRUE(warned(*l, "'.git'"));
  EXPECT_EQ(l->warnings.size(), 5u);
}

TEST_F(Output, FileCountLimit) {
  write("a.txt");
  write("b.txt");
  write("c.txt");
  auto l = scan_output(out(), {.max_files = 2});
  ASSERT_FALSE(l);
  EXPECT_TRUE(l.error().is(dp::errc::too_large));
  EXPECT_NE(l.error().message.find("more than 2 files"), std::string::npos);
  EXPECT_TRUE(scan_output(out(), {.max_files = 3}));
}

TEST_F(Output, TotalBytesLimit) {
  write("a.txt", "0123456789");
  auto l = scan_output(out(), {.max_bytes = 9});
  ASSERT_FALSE(l);
  EXPECT_TRUE(l.error().is(dp::errc::too_large));
  EXPECT_NE(l.error().message.find("larger than 9 bytes"), std::string::npos);
  EXPECT_TRUE(scan_output(out(), {.max_bytes = 10}));
}

TEST_F(Output, MissingDirectory) {
  auto l = scan_output(out() / "nope");
  ASSERT_FALSE(l);
  EXPECT_TRUE(l.error().is(dp::errc::not_found));
}

}  // namespace
