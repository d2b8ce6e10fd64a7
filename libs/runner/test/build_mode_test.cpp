#include "dp/runner/build_mode.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "dp/core/id.hpp"
#include "dp/proto/json.hpp"
#include "dp/test/harness.hpp"

namespace {

const std::vector<std::string> https_only{"https"};

std::string error_of(const dp::result<std::optional<dp::proto::job>>& r) {
  return r ? std::string("(no error)") : r.error().message;
}

TEST(JobFromInput, NeedsExactlyOneSource) {
  auto none = dp::runner::job_from_input({}, https_only);
  ASSERT_FALSE(none);
  EXPECT_TRUE(none.error().is(dp::errc::invalid_argument));
  EXPECT_NE(error_of(none).find("exactly one job source"), std::string::npos);

  dp::runner::build_input two{.deployment_id = dp::new_deployment_id(), .job_file = "/job.json"};
  EXPECT_NE(error_of(dp::runner::job_from_input(two, https_only)).find("exactly one"),
            std::string::npos);
  dp::runner::build_input three{.job_file = "/job.json",
                                .git_repository_url = "https://example.com/x.git",
                                .project_id = "shop"};
  EXPECT_FALSE(dp::runner::job_from_input(three, https_only));
}

// --deployment alone is resolved later, from Redis.
TEST(JobFromInput, DeploymentAloneIsReadLater) {
  auto r = dp::runner::job_from_input({.deployment_id = dp::new_deployment_id()}, https_only);
  ASSERT_TRUE(r) << error_of(r);
  EXPECT_FALSE(r->has_value());
}

TEST(JobFromInput, ReadsAJobFile) {
  dp::test::temp_dir dir{"dp-job-from-input"};
  dp::proto::job j;
  j.deployment_id = dp::new_deployment_id();
  j.project = "shop";
  j.git_url = "https://example.com/shop.git";
  j.timeout_s = 60;
  j.enqueued_at = 1;
  auto file = dir.path() / "job.json";
  std::ofstream(file) << dp::proto::to_json(j);
  auto r = dp::runner::job_from_input({.job_file = file.string()}, https_only);
  ASSERT_TRUE(r) << error_of(r);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->deployment_id, j.deployment_id);
  EXPECT_EQ((*r)->project, "shop");
  EXPECT_EQ((*r)->git_url, j.git_url);
}

TEST(JobFromInput, RefusesUnreadableOrInvalidJobFiles) {
  dp::test::temp_dir dir{"dp-job-from-input"};
  auto missing = (dir.path() / "missing.json").string();
  EXPECT_NE(error_of(dp::runner::job_from_input({.job_file = missing}, https_only))
                .find("cannot read the job file"),
            std::string::npos);
  auto bad = dir.path() / "bad.json";
  std::ofstream(bad) << R"({"v":1,"deployment_id":"nope"})";
  auto r = dp::runner::job_from_input({.job_file = bad.string()}, https_only);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(dp::errc::invalid_argument));
  EXPECT_NE(error_of(r).find("invalid job file"), std::string::npos);
}

// The original design's GIT_REPOSITORY_URL + PROJECT_ID: a new deployment of that project.
TEST(JobFromInput, GitRepositoryUrlWithProjectIsANewDeployment) {
  dp::runner::build_input in{.git_repository_url = "https://example.com/shop.git",
                             .project_id = "shop"};
  auto r = dp::runner::job_from_input(in, https_only);
  ASSERT_TRUE(r) << error_of(r);
  ASSERT_TRUE(r->has_value());
  EXPECT_TRUE(dp::is_deployment_id((*r)->deployment_id));
  EXPECT_EQ((*r)->project, "shop");
  EXPECT_EQ((*r)->git_url, in.git_repository_url);
  EXPECT_GT((*r)->enqueued_at, 0);

  in.project_id.clear();
  EXPECT_NE(error_of(dp::runner::job_from_input(in, https_only)).find("needs PROJECT_ID"),
            std::string::npos);
}

TEST(JobFromInput, RefusesGitUrlsOfProtocolsNotAllowed) {
  dp::runner::build_input in{.git_repository_url = "file:///srv/shop.git", .project_id = "shop"};
  auto r = dp::runner::job_from_input(in, https_only);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(dp::errc::invalid_argument));
  EXPECT_TRUE(dp::runner::job_from_input(in, {"file"}));
  in.git_repository_url = "ssh://host/shop.git";
  EXPECT_FALSE(dp::runner::job_from_input(in, {"https", "http", "file"}));
}

}  // namespace
