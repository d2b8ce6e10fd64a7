// A hostile uploaded source (deployctl deploy <directory>, __sources/<id>.tar.gz): tar unpacks it
// inside the sandbox as the build's uid, so a symlink out with a file written through it, "../"
// and absolute names, a hard link to a host file, a FIFO, a device, a set-uid file, a gzip bomb
// and an absurd member count touch nothing outside the build's work directory: each fails the
// build with a line that names it, or lands inside the tree. A plain archive still deploys.
// Real bubblewrap, tar and the file store; the archives are written by the test.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "dp/core/id.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/test/tar_writer.hpp"
#include "hostile_support.hpp"

namespace {

namespace fs = std::filesystem;
using dp::runner::build_outcome;
using dp::test::read_file;
using dp::test::tar_member;

bool can_mount() {
  return ::geteuid() == 0 && fs::exists("/dev/loop-control");
}

class HostileSource : public ::testing::Test {
 protected:
  struct result : dp::runner::testing::build_run {
    std::string id;
  };

  // Where the archive of deployment `id` goes in the file store.
  fs::path archive_path(const std::string& id) {
    auto p = storage_.path() / dp::proto::source_archive_key(id);
    fs::create_directories(p.parent_path());
    return p;
  }

  // Builds the archive stored for `id`: a static site (no package.json) unless the archive says
  // otherwise; `build_command` runs after the unpack.
  result build(const std::string& id, dp::runner::runner_options o = {},
               std::optional<std::string> build_command = std::nullopt) {
    dp::proto::job j;
    j.deployment_id = id;
    j.project = "hostile";
    j.source_archive = dp::proto::source_archive_key(id);
    j.build_command = std::move(build_command);
    j.timeout_s = 120;
    o.work_root = work_.path();
    o.network = dp::runner::network_mode::none;
    return {dp::runner::testing::run_build(j, o, storage_.path(), logs_.path()), id};
  }

  // An archive of an index.html and `hostile`, built.
  result build_members(const std::vector<tar_member>& hostile,
                       std::optional<std::string> build_command = std::nullopt) {
    auto id = dp::new_deployment_id();
    std::vector<tar_member> members{{.name = "index.html", .content = "<h1>site</h1>"}};
    members.insert(members.end(), hostile.begin(), hostile.end());
    dp::test::write_tar_gz(archive_path(id), members);
    return build(id, {}, std::move(build_command));
  }

  // The outside directory holds only the secret, unchanged; nothing was written beside the work
  // directories either.
  void expect_outside_untouched(const result& r) {
    outside_.expect_untouched(r.log);
    for (const auto& e : fs::directory_iterator(work_.path().parent_path())) {
      EXPECT_NE(e.path().filename(), "escape.txt") << r.log;
    }
  }

  bool published(const result& r) const {
    return fs::exists(storage_.path() / dp::proto::output_prefix(r.id));
  }

  void expect_failed_with(const result& r, const std::string& line) {
    EXPECT_EQ(r.report.outcome, build_outcome::failed) << r.report.error << "\n" << r.log;
    EXPECT_NE(r.log.find(line), std::string::npos) << "missing: " << line << "\n" << r.log;
    EXPECT_NE(r.report.error.find("source archive: "), std::string::npos) << r.report.error;
    EXPECT_FALSE(published(r)) << r.log;
    // Nothing of the build ran.
    EXPECT_EQ(r.log.find("build: running"), std::string::npos) << r.log;
  }

  dp::runner::testing::outside_secret outside_{"source"};
  dp::test::temp_dir storage_{"dp-source-storage"};
  dp::test::temp_dir work_{"dp-source-work"};
  dp::test::temp_dir logs_{"dp-source-logs"};
};

TEST_F(HostileSource, PlainArchiveDeploys) {
  auto id = dp::new_deployment_id();
  dp::test::write_tar_gz(archive_path(id),
                         {{.name = "./", .type = '5', .mode = 0700},
                          {.name = "./index.html", .content = "<h1>site</h1>"},
                          {.name = "./about/", .type = '5'},
                          {.name = "./about/index.html", .content = "about"},
                          {.name = "./home.html", .type = '2', .link = "index.html"},
                          {.name = "./copy.html", .type = '1', .link = "./index.html"}});
  auto r = build(id);
  ASSERT_EQ(r.report.outcome, build_outcome::ready) << r.report.error << "\n" << r.log;
  EXPECT_NE(r.log.find("unpacked 3 files (31 B)"), std::string::npos) << r.log;
  // Unpacked by the build's uid inside the sandbox, which was set up first.
  EXPECT_LT(r.log.find("sandbox: bubblewrap"), r.log.find("unpacked 3 files")) << r.log;
  auto out = storage_.path() / dp::proto::output_prefix(id);
  EXPECT_EQ(read_file(out / "index.html"), "<h1>site</h1>");
  EXPECT_EQ(read_file(out / "about/index.html"), "about");
  EXPECT_EQ(read_file(out / "copy.html"), "<h1>site</h1>");
}

// In a build container (SANDBOX=none, docker and ECS) the same code path unpacks as the build's
// uid, switched by setpriv in front of tar; a hostile member fails the same way.
TEST_F(HostileSource, ContainerModeUnpacksAsTheBuildsUid) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs a root runner to switch to the build's uid";
  }
  // The build's uid must pass through the work root, as through a container's /tmp.
  fs::permissions(work_.path(), fs::perms(0755));
  dp::runner::runner_options o;
  o.sandbox = false;
  auto id = dp::new_deployment_id();
  dp::test::write_tar_gz(archive_path(id), {{.name = "index.html", .content = "<h1>site</h1>"}});
  auto r = build(id, o, "stat -c 'owner %u.' index.html && mkdir dist && cp index.html dist/");
  ASSERT_EQ(r.report.outcome, build_outcome::ready) << r.report.error << "\n" << r.log;
  EXPECT_NE(r.log.find("warning: sandbox none"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("owner 2"), std::string::npos) << "not the build's uid (200000+)\n" << r.log;

  auto bad = dp::new_deployment_id();
  dp::test::write_tar_gz(archive_path(bad),
                         {{.name = "out", .type = '2', .link = outside_.dir().string()},
                          {.name = "out/written.txt", .content = "x"}});
  auto r2 = build(bad, o);
  expect_failed_with(r2, "out/written.txt: Cannot open: Not a directory");
  expect_outside_untouched(r2);
}

TEST_F(HostileSource, SymlinkOutAndAFileThroughIt) {
  auto r = build_members({{.name = "out", .type = '2', .link = outside_.dir().string()},
                          {.name = "out/written.txt", .content = "x"}});
  expect_failed_with(r, "out/written.txt: Cannot open: Not a directory");
  expect_outside_untouched(r);
  // The same through a relative link that climbs out of the work directory.
  std::string climb;
  for (int i = 0; i < 12; ++i) {
    climb += "../";
  }
  auto r2 = build_members(
      {{.name = "up", .type = '2', .link = climb + outside_.dir().relative_path().string()},
       {.name = "up/written.txt", .content = "x"}});
  expect_failed_with(r2, "up/written.txt: Cannot open: Not a directory");
  expect_outside_untouched(r2);
  // A symlink out alone unpacks, and is refused before anything reads the tree.
  auto r3 = build_members({{.name = "etc", .type = '2', .link = "/etc"}});
  expect_failed_with(r3, "archive member 'etc' refused: symlink to '/etc' leaves the tree");
  auto r4 = build_members({{.name = "a", .type = '2', .link = "."},
                           {.name = "b", .type = '2', .link = "a/../escape.txt"}});
  expect_failed_with(r4,
                     "archive member 'b' refused: symlink to 'a/../escape.txt' leaves the tree");
}

TEST_F(HostileSource, DotDotAndAbsoluteNames) {
  auto r = build_members({{.name = "../../../../../../escape.txt", .content = "x"}});
  expect_failed_with(r, "Member name contains '..'");
  expect_outside_untouched(r);
  // An absolute name, or a hard link to one: tar unpacks it beneath the tree and says so; the
  // runner refuses it then.
  auto absolute = (outside_.dir() / "absolute.txt").string();
  for (const auto& members : std::vector<std::vector<tar_member>>{
           {{.name = absolute, .content = "x"}},
           {{.name = "/" + absolute, .content = "x"}},
           {{.name = "copy.html", .type = '1', .link = "/index.html"}}}) {
    auto r2 = build_members(members);
    expect_failed_with(r2, "tar: Removing leading `/");
    EXPECT_EQ(r2.report.error,
              "source archive: a member with an absolute name refused (tar unpacked it beneath the "
              "tree)");
    expect_outside_untouched(r2);
  }
}

TEST_F(HostileSource, HardLinkToAHostFile) {
  for (const auto& target : {outside_.file().string(), std::string("/etc/passwd")}) {
    auto passwd = read_file("/etc/passwd");
    auto r = build_members({{.name = "h", .type = '1', .link = target}});
    expect_failed_with(r, "h: Cannot hard link to");
    expect_outside_untouched(r);
    EXPECT_EQ(read_file("/etc/passwd"), passwd);
  }
}

TEST_F(HostileSource, FifoAndDeviceAreRefused) {
  auto r = build_members({{.name = "pipe", .type = '6'}});
  expect_failed_with(r, "archive member 'pipe' refused: FIFO");
  // tar cannot make a device as the build's uid (a 0:0 "whiteout" it may: refused after).
  auto r2 = build_members({{.name = "null", .type = '3'}});
  EXPECT_EQ(r2.report.outcome, build_outcome::failed) << r2.log;
  EXPECT_TRUE(r2.log.find("null: Cannot mknod") != std::string::npos ||
              r2.log.find("archive member 'null' refused: device file") != std::string::npos)
      << r2.log;
  EXPECT_FALSE(published(r2));
}

TEST_F(HostileSource, SetuidBitIsDropped) {
  auto r = build_members({{.name = "run.sh", .content = "#!/bin/sh\n", .mode = 06755}},
                         "stat -c 'mode %a owner %u.' run.sh && mkdir dist && cp index.html dist/");
  ASSERT_EQ(r.report.outcome, build_outcome::ready) << r.report.error << "\n" << r.log;
  EXPECT_NE(r.log.find("mode 755 owner "), std::string::npos) << r.log;
  EXPECT_EQ(r.log.find("mode 6755"), std::string::npos) << r.log;
  // Owned by the build's uid, not by root or by the archive's owner.
  EXPECT_EQ(r.log.find("owner 0."), std::string::npos) << r.log;
}

// 1 GiB of zeros (about 1 MiB compressed) against a 64 MiB filesystem: the unpack fills the
// build's own disk only, and the build fails naming the quota.
TEST_F(HostileSource, GzipBombFillsOnlyTheBuildsQuota) {
  if (!can_mount()) {
    GTEST_SKIP() << "needs root and /dev/loop-control to mount a filesystem per build";
  }
  auto id = dp::new_deployment_id();
  auto script = logs_.path() / "bomb.py";
  std::ofstream(script) << R"PY(
import io, sys, tarfile
class Zeros(io.RawIOBase):
    def __init__(self, n): self.n = n
    def readable(self): return True
    def readinto(self, b):
        k = min(len(b), self.n); b[:k] = bytes(k); self.n -= k; return k
with tarfile.open(sys.argv[1], "w:gz", compresslevel=1) as t:
    i = tarfile.TarInfo("index.html"); i.size = 5; t.addfile(i, io.BytesIO(b"hello"))
    i = tarfile.TarInfo("zeros"); i.size = 1 << 30; t.addfile(i, Zeros(i.size))
)PY";
  auto cmd = "python3 " + script.string() + " " + archive_path(id).string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  ASSERT_LT(fs::file_size(archive_path(id)), uint64_t{8} << 20);
  dp::runner::runner_options o;
  o.disk_bytes = uint64_t{64} << 20;
  auto r = build(id, o);
  expect_failed_with(r, "tar: zeros: Wrote only");
  EXPECT_EQ(r.report.error,
            "source archive: unpack stopped: disk quota of 64 MiB (BUILD_DISK_MB) reached")
      << r.log;
  expect_outside_untouched(r);
}

TEST_F(HostileSource, AbsurdMemberCountIsRefused) {
  auto id = dp::new_deployment_id();
  std::vector<tar_member> members;
  for (int i = 0; i < 300; ++i) {
    members.push_back({.name = "f" + std::to_string(i), .content = "x"});
  }
  dp::test::write_tar_gz(archive_path(id), members);
  dp::runner::runner_options o;
  o.archive.max_members = 200;
  auto r = build(id, o);
  expect_failed_with(r, "the archive has more than 200 members");
}

}  // namespace
