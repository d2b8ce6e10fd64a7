// job.source_archive (an uploaded directory): written only when set, and the one case where a
// job, project or deployment may have an empty git_url.
#include <gtest/gtest.h>

#include "dp/proto/json.hpp"

namespace {

dp::proto::job archive_job() {
  dp::proto::job j;
  j.deployment_id = "01jh5k7q3x9m2c8r4t6v0w1y3z";
  j.project = "site";
  j.source_archive = "__sources/01jh5k7q3x9m2c8r4t6v0w1y3z.tar.gz";
  j.timeout_s = 900;
  return j;
}

TEST(proto_source_archive, job_round_trips) {
  auto j = archive_job();
  auto text = dp::proto::to_json(j);
  EXPECT_NE(text.find(R"("source_archive":"__sources/01jh5k7q3x9m2c8r4t6v0w1y3z.tar.gz")"),
            std::string::npos);
  auto back = dp::proto::parse_job(std::string_view(text));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, j);
}

TEST(proto_source_archive, git_jobs_do_not_carry_it_and_still_need_a_url) {
  auto j = archive_job();
  j.source_archive.reset();
  j.git_url = "https://example.com/a.git";
  EXPECT_EQ(dp::proto::to_json(j).find("source_archive"), std::string::npos);
  j.git_url.clear();
  auto refused = dp::proto::parse_job(std::string_view(dp::proto::to_json(j)));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("git_url"), std::string::npos);
}

TEST(proto_source_archive, uploaded_projects_and_deployments_have_an_empty_git_url) {
  dp::proto::project p{.name = "site", .git_url = "", .created_at = 1};
  auto pb = dp::proto::parse_project(std::string_view(dp::proto::to_json(p)));
  ASSERT_TRUE(pb) << pb.error().message;
  EXPECT_EQ(*pb, p);
  dp::proto::deployment d{.id = "01jh5k7q3x9m2c8r4t6v0w1y3z", .project = "site"};
  auto db = dp::proto::parse_deployment(std::string_view(dp::proto::to_json(d)));
  ASSERT_TRUE(db) << db.error().message;
  EXPECT_EQ(*db, d);
}

}  // namespace
