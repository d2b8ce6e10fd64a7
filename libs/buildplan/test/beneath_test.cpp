// open_beneath and resolve_beneath on a real tree, with openat2 and with the per-component walk
// that kernels before 5.6 get: the same answers from both.
#include "dp/buildplan/beneath.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "dp/test/harness.hpp"

namespace {

namespace fs = std::filesystem;
using namespace dp::buildplan;

class Beneath : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    use_openat2_for_tests(GetParam());
    fs::create_directories(root() / "a/b");
    std::ofstream(root() / "a/b/file.txt") << "abc";
    fs::create_directory_symlink("a", root() / "link-a");
    fs::create_symlink("b/file.txt", root() / "a/file-link");
    fs::create_directory_symlink("/etc", root() / "etc");
    fs::create_symlink("../../outside", root() / "a/up");
    fs::create_symlink("loop2", root() / "loop1");
    fs::create_symlink("loop1", root() / "loop2");
    dir_ = dp::unique_fd(::open(root().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(dir_);
  }
  void TearDown() override { use_openat2_for_tests(true); }
  fs::path root() const { return tmp_.path() / "root"; }

  dp::test::temp_dir tmp_{"dp-beneath"};
  dp::unique_fd dir_;
};

TEST_P(Beneath, OpensRealPathsOnly) {
  auto f = open_beneath(dir_.get(), "a/b/file.txt", O_RDONLY);
  ASSERT_TRUE(f) << f.error().message;
  char buf[8] = {};
  EXPECT_EQ(::read(f->get(), buf, sizeof buf), 3);
  EXPECT_TRUE(open_beneath(dir_.get(), "", O_RDONLY | O_DIRECTORY));
  EXPECT_TRUE(open_beneath(dir_.get(), "./a//b/", O_RDONLY | O_DIRECTORY));
  // Any symlink on the way, or at the end, is refused; so are "..", absolute paths and misses.
  for (const char* bad :
       {"link-a/b/file.txt", "a/file-link", "etc/passwd", "etc", "a/../a", "/etc/passwd", "a/up"}) {
    auto r = open_beneath(dir_.get(), bad, O_RDONLY);
    ASSERT_FALSE(r) << bad;
    EXPECT_TRUE(r.error().is(dp::errc::invalid_argument)) << bad << ": " << r.error().message;
  }
  auto missing = open_beneath(dir_.get(), "a/nope", O_RDONLY);
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(dp::errc::not_found)) << missing.error().message;
}

TEST_P(Beneath, ResolvesLinksThatStayInside) {
  EXPECT_EQ(resolve_beneath(dir_.get(), "link-a/file-link").value(), "a/b/file.txt");
  EXPECT_EQ(resolve_beneath(dir_.get(), "a/b/../../link-a/b").value(), "a/b");
  EXPECT_EQ(resolve_beneath(dir_.get(), "").value(), "");
  for (const char* outside : {"etc", "etc/passwd", "a/up", "link-a/up", "..", "a/../..", "loop1"}) {
    auto r = resolve_beneath(dir_.get(), outside);
    ASSERT_FALSE(r) << outside;
    EXPECT_TRUE(r.error().is(dp::errc::invalid_argument)) << outside << ": " << r.error().message;
  }
  auto missing = resolve_beneath(dir_.get(), "link-a/nope");
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(dp::errc::not_found)) << missing.error().message;
}

INSTANTIATE_TEST_SUITE_P(walks, Beneath, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "openat2" : "per_component"; });

}  // namespace
