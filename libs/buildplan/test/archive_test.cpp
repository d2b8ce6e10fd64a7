// The uploaded source's unpack: tar's command, and check_unpacked_tree on real trees in a temp
// directory (what tar lets through but a source tree has no use for is refused). The hostile
// archives themselves, unpacked in the sandbox: libs/runner/test/source_hostile_itest.cpp.
#include "dp/buildplan/archive.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "dp/test/harness.hpp"

namespace {

namespace fs = std::filesystem;

class Archive : public ::testing::Test {
 protected:
  fs::path tree() {
    auto t = dir_.path() / "tree";
    fs::create_directories(t);
    return t;
  }
  dp::result<dp::buildplan::archive_report> check(dp::buildplan::archive_limits limits = {}) {
    return dp::buildplan::check_unpacked_tree(tree(), limits);
  }
  void expect_refused(const std::string& message) {
    auto r = check();
    ASSERT_FALSE(r) << message;
    EXPECT_TRUE(r.error().is(dp::errc::invalid_argument)) << r.error().message;
    EXPECT_EQ(r.error().message, message);
  }

  dp::test::temp_dir dir_{"dp-archive-test"};
};

TEST_F(Archive, TarRestoresNoOwnerAndNoPermissionsAndReadsNoVariables) {
  auto argv = dp::buildplan::source_unpack_argv("/build/source.tar.gz", "/build/src");
  auto has = [&](const std::string& a) {
    return std::find(argv.begin(), argv.end(), a) != argv.end();
  };
  EXPECT_EQ(argv.front(), "tar");
  EXPECT_TRUE(has("--no-same-owner"));
  EXPECT_TRUE(has("--no-same-permissions"));
  EXPECT_TRUE(has("--no-overwrite-dir"));
  EXPECT_TRUE(has("--gzip"));
  EXPECT_FALSE(has("--absolute-names")) << "would restore absolute names";
  auto file = std::find(argv.begin(), argv.end(), "--file");
  ASSERT_NE(file, argv.end());
  EXPECT_EQ(*(file + 1), "/build/source.tar.gz");
  auto dir = std::find(argv.begin(), argv.end(), "--directory");
  ASSERT_NE(dir, argv.end());
  EXPECT_EQ(*(dir + 1), "/build/src");
}

TEST_F(Archive, CountsFilesAndBytesOfATreeWithLinksInside) {
  auto t = tree();
  fs::create_directories(t / "src" / "deep");
  std::ofstream(t / "index.html") << "<h1>hi</h1>";
  std::ofstream(t / "src" / "deep" / "x.js") << "x";
  fs::create_hard_link(t / "index.html", t / "copy.html");
  fs::create_symlink("index.html", t / "home.html");
  fs::create_symlink("../../index.html", t / "src" / "deep" / "up.html");
  fs::create_symlink(".", t / "self");
  fs::create_symlink("missing/file", t / "dangling");
  auto r = check();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->files, 3u);
  EXPECT_EQ(r->bytes, 11u + 1u + 11u);
}

TEST_F(Archive, SymlinksLeavingTheTreeAreRefused) {
  fs::create_symlink("/etc", tree() / "etc");
  expect_refused("archive member 'etc' refused: symlink to '/etc' leaves the tree");
  fs::remove(tree() / "etc");
  fs::create_directories(tree() / "a");
  fs::create_symlink("../..", tree() / "a" / "up");
  expect_refused("archive member 'a/up' refused: symlink to '../..' leaves the tree");
  fs::remove_all(tree() / "a");
  // A chain: "a/../x" stays inside by its name, but "a" is the tree, so it leads out on disk.
  fs::create_symlink(".", tree() / "a");
  fs::create_symlink("a/../x", tree() / "b");
  expect_refused("archive member 'b' refused: symlink to 'a/../x' leaves the tree");
  fs::remove(tree() / "b");
  // A loop resolves nowhere.
  fs::create_symlink("loop2", tree() / "loop1");
  fs::create_symlink("loop1", tree() / "loop2");
  auto l = check();
  ASSERT_FALSE(l);
  EXPECT_NE(l.error().message.find("refused"), std::string::npos) << l.error().message;
}

TEST_F(Archive, FifoSocketAndDeviceAreRefused) {
  ASSERT_EQ(::mkfifo((tree() / "pipe").c_str(), 0644), 0);
  expect_refused("archive member 'pipe' refused: FIFO");
  fs::remove(tree() / "pipe");

  int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  auto path = (tree() / "sock").string();
  ASSERT_LT(path.size(), sizeof(addr.sun_path));
  std::copy(path.begin(), path.end(), addr.sun_path);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::close(s);
  expect_refused("archive member 'sock' refused: socket");
  fs::remove(tree() / "sock");

  if (::geteuid() == 0) {
    ASSERT_EQ(::mknod((tree() / "null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
    expect_refused("archive member 'null' refused: device file");
  }
}

TEST_F(Archive, LimitsAndATreeThatIsASymlink) {
  std::ofstream(tree() / "a") << std::string(5000, 'a');
  std::ofstream(tree() / "b") << "b";
  auto big = check({.max_bytes = 4096});
  ASSERT_FALSE(big);
  EXPECT_TRUE(big.error().is(dp::errc::too_large)) << big.error().message;
  auto many = check({.max_bytes = 1 << 20, .max_members = 1});
  ASSERT_FALSE(many);
  EXPECT_TRUE(many.error().is(dp::errc::too_large)) << many.error().message;
  EXPECT_EQ(many.error().message, "the archive has more than 1 members");

  // The tree's own directory swapped for a symlink is not walked.
  fs::create_symlink("/etc", dir_.path() / "swapped");
  auto swapped = dp::buildplan::check_unpacked_tree(dir_.path() / "swapped", {});
  ASSERT_FALSE(swapped);
  EXPECT_TRUE(swapped.error().is(dp::errc::io)) << swapped.error().message;
}

}  // namespace
