#include "dp/buildplan/output.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "dp/test/harness.hpp"

using namespace dp::buildplan;
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
  EXPECT_EQ(l->files[0].path, "assets/app.js");
}

// Links to links, through a directory link, and up and back down: resolved beneath the output
// directory as the kernel would, to a path of real directories.
TEST_F(Output, SymlinkChainsInsideResolveToTheRealFile) {
  write("assets/js/app.js", "abc");
  fs::create_directory_symlink("assets/js", out() / "js");
  fs::create_symlink("js/app.js", out() / "first.js");
  fs::create_symlink("../first.js", out() / "assets/second.js");
  fs::create_symlink("js/../../assets/js/app.js", out() / "assets/third.js");
  auto l = scan_output(out());
  ASSERT_TRUE(l) << l.error().message;
  EXPECT_EQ(keys(*l), (std::vector<std::string>{"assets/js/app.js", "assets/second.js",
                                                "assets/third.js", "first.js", "js/app.js"}));
  for (const auto& f : l->files) {
    EXPECT_EQ(f.path, "assets/js/app.js") << f.key;
    EXPECT_EQ(f.sha256, sha_abc) << f.key;
  }
  // A link through a directory link that leaves: skipped, whatever it names on the host.
  fs::create_directory_symlink("/etc", out() / "etc");
  fs::create_symlink("etc/passwd", out() / "via-etc");
  fs::create_symlink("assets/../../x", out() / "climbs-out");
  l = scan_output(out());
  ASSERT_TRUE(l) << l.error().message;
  EXPECT_EQ(l->files.size(), 5u);
  EXPECT_TRUE(warned(*l, "'via-etc': symlink leads outside"));
  EXPECT_TRUE(warned(*l, "'climbs-out': symlink leads outside"));
}

// What the upload reads is the inode validated: a file swapped afterwards, for a symlink to a
// secret or for another file (even of the same size), is refused, never read.
TEST_F(Output, UploadReopensOnlyTheValidatedFile) {
  dp::test::temp_dir outside{"dp-output-secret"};
  std::ofstream(outside.path() / "secret.txt") << "SECRET";
  write("a.txt", "abc");
  write("b.txt", "abc");
  write("sub/c.txt", "abc");
  dp::unique_fd dir(::open(out().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(dir);
  auto l = scan_output(dir.get());
  ASSERT_TRUE(l) << l.error().message;
  ASSERT_EQ(l->files.size(), 3u);

  // Untouched: the same bytes.
  auto same = open_output_file(dir.get(), l->files[0]);
  ASSERT_TRUE(same) << same.error().message;
  char buf[16] = {};
  EXPECT_EQ(::read(same->get(), buf, sizeof buf), 3);
  EXPECT_EQ(std::string(buf, 3), "abc");

  // a.txt becomes a symlink to the secret; b.txt another file of the same size; the directory
  // sub becomes a symlink to the secret's directory.
  fs::rename(out() / "a.txt", out() / "a.moved");
  fs::create_symlink(outside.path() / "secret.txt", out() / "a.txt");
  fs::rename(out() / "b.txt", out() / "b.moved");  // kept, so its inode number is not reused
  write("b.txt", "xyz");
  fs::rename(out() / "sub", out() / "sub.moved");
  fs::create_directory_symlink(outside.path(), out() / "sub");
  std::ofstream(outside.path() / "c.txt") << "abc";
  for (const auto& f : l->files) {
    auto fd = open_output_file(dir.get(), f);
    ASSERT_FALSE(fd) << f.key << " was opened after the swap";
    EXPECT_TRUE(fd.error().is(dp::errc::conflict)) << fd.error().message;
  }
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
