// A job whose source is an uploaded tar.gz (deployctl deploy <directory>) through the real
// build-runner binary: the archive in the file store builds to ready without git; a hostile
// archive (unpacked by tar in the sandbox) fails the build before anything runs or is published.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "dp/core/id.hpp"
#include "dp/proto/json.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/tar_writer.hpp"

namespace {

namespace fs = std::filesystem;

class SourceArchive : public ::testing::Test {
 protected:
  // A job for an archive stored under __sources/<id>.tar.gz; returns the build's result.
  dp::test::run_result build(const std::string& id) {
    dp::proto::job j;
    j.deployment_id = id;
    j.project = "site";
    j.source_archive = "__sources/" + id + ".tar.gz";
    j.timeout_s = 120;
    auto file = work_.path() / "job.json";
    std::ofstream(file) << dp::proto::to_json(j);
    return dp::test::run({DP_BUILD_RUNNER, "build", "--job", file.string()},
                         {{"STORAGE_URL", "file://" + storage_.path().string()},
                          {"REDIS_URL", ""},
                          {"TMPDIR", work_.path().string()}},
                         {}, std::chrono::seconds(120));
  }
  fs::path archive_path(const std::string& id) {
    fs::create_directories(storage_.path() / "__sources");
    return storage_.path() / "__sources" / (id + ".tar.gz");
  }

  dp::test::temp_dir storage_{"dp-archive-storage"};
  dp::test::temp_dir work_{"dp-archive-work"};
};

TEST_F(SourceArchive, UploadedDirectoryBuildsToReady) {
  // The directory as deployctl packs it: GNU tar of "." with a build script.
  dp::test::temp_dir src{"dp-archive-src"};
  std::ofstream(src.path() / "package.json")
      << R"({"name":"app","version":"1.0.0","scripts":{"build":"node build.js"}})";
  std::ofstream(src.path() / "build.js")
      << "require('fs').mkdirSync('dist');require('fs').writeFileSync('dist/index.html','hi');";
  auto id = dp::new_deployment_id();
  auto tar = dp::test::run({"tar", "--create", "--gzip", "--file", archive_path(id).string(),
                            "--directory", src.path().string(), "."});
  ASSERT_EQ(tar.exit_code, 0) << tar.output;

  auto r = build(id);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("unpacking the uploaded source __sources/" + id), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("unpacked 2 files"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("cloning"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("deployment ready"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(storage_.path() / dp::proto::output_key(id, "index.html")));
  EXPECT_TRUE(fs::exists(storage_.path() / dp::proto::manifest_key(id)));
}

TEST_F(SourceArchive, HostileArchiveFailsTheBuild) {
  // Each member with the line that refuses it: the runner's check, or tar's own in the sandbox.
  for (const auto& [member, line] : std::vector<std::pair<dp::test::tar_member, std::string>>{
           {{.name = "etc", .type = '2', .link = "/etc"},
            "source archive: archive member 'etc' refused: symlink to '/etc' leaves the tree"},
           {{.name = "../escape.txt", .content = "x"},
            "tar: ../escape.txt: Member name contains '..'"},
           {{.name = "/tmp/dp-archive-itest-escape", .content = "x"},
            "source archive: a member with an absolute name refused"}}) {
    auto id = dp::new_deployment_id();
    dp::test::write_tar_gz(
        archive_path(id),
        {{.name = "package.json", .content = R"({"scripts":{"build":"touch /tmp/ran"}})"}, member});
    auto r = build(id);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find(line), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("touch /tmp/ran"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(storage_.path() / dp::proto::output_prefix(id)));
    EXPECT_FALSE(fs::exists(work_.path().parent_path() / "escape.txt"));
  }
  EXPECT_FALSE(fs::exists("/tmp/dp-archive-itest-escape"));
  // The missing archive of a deployment is a failed build, not a crash.
  auto r = build(dp::new_deployment_id());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("source archive"), std::string::npos) << r.output;
}

}  // namespace
