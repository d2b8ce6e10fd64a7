// Branches and previews through the API (issue 17): the target a branch gets, the env of each
// target in the job, supersede per branch, the list filters, and start_deployment.hpp's
// functions as deploy hooks and webhooks call them.
#include "../src/start_deployment.hpp"
#include "api_itest_support.hpp"
#include "dp/core/preview_alias.hpp"
#include "dp/proto/json.hpp"

namespace {

using namespace dp::api::test;
using dp::proto::deployment_status;
using dp::proto::deployment_target;

class previews : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = s_.request("POST", "/v1/projects",
                        R"({"name":"shop","git_url":"https://example.com/shop.git",)"
                        R"("production_branch":"main","env":{"API":"prod-api","ALL":"1"},)"
                        R"("preview_env":{"API":"staging-api"}})");
    ASSERT_EQ(r.status, 201) << r.body;
  }

  json::object deploy(const std::string& body, int status = 202) {
    auto r = s_.request("POST", "/v1/projects/shop/deployments", body);
    EXPECT_EQ(r.status, status) << r.body;
    return body_of(r).as_object();
  }

  // The queued jobs, newest first.
  std::vector<dp::proto::job> jobs() {
    auto r = s_.on_io([&]() -> asio::awaitable<dp::result<dp::redis::reply>> {
      std::vector<std::string> cmd{"LRANGE", s_.records().keys().queue(), "0", "-1"};
      co_return co_await s_.redis().exec(std::move(cmd));
    });
    std::vector<dp::proto::job> out;
    for (const auto& e : r->elements()) {
      out.push_back(*dp::proto::parse_job(std::string_view(e.as_string())));
    }
    return out;
  }

  dp::proto::deployment record(const std::string& id) {
    return s_
        .on_io([&]() -> asio::awaitable<dp::result<dp::proto::deployment>> {
          co_return co_await s_.records().get_deployment(id);
        })
        .value();
  }

  api_server s_;
};

TEST_F(previews, the_branch_decides_the_target_and_the_env) {
  auto prod = deploy("");
  EXPECT_EQ(prod.at("target").as_string(), "production");
  EXPECT_EQ(prod.at("branch").as_string(), "main");
  EXPECT_EQ(prod.at("trigger").as_string(), "api");
  auto preview = deploy(R"({"branch":"feature/x","trigger":"cli",)"
                        R"("commit":"3f9c2a7d1e4b8c6a0f5d2e9b7c1a4d8e6f0b3c5a"})");
  EXPECT_EQ(preview.at("target").as_string(), "preview");
  EXPECT_EQ(preview.at("trigger").as_string(), "cli");
  EXPECT_EQ(preview.at("commit").as_string(), "3f9c2a7d1e4b8c6a0f5d2e9b7c1a4d8e6f0b3c5a");
  EXPECT_EQ(preview.at("preview_urls").as_array().at(0).as_string(),
            "http://" + dp::branch_alias("shop", "feature/x") + ".localhost:8000");
  // The older name `ref` is a branch too.
  auto by_ref = s_.request("POST", "/v1/deployments", R"({"project":"shop","ref":"main"})");
  ASSERT_EQ(by_ref.status, 202) << by_ref.body;
  EXPECT_EQ(body_of(by_ref).at("target").as_string(), "production");

  auto queued = jobs();
  ASSERT_EQ(queued.size(), 3u);
  const auto& preview_job = queued[1];
  EXPECT_EQ(preview_job.deployment_id, preview.at("id").as_string());
  EXPECT_EQ(preview_job.target, deployment_target::preview);
  EXPECT_EQ(preview_job.ref, "feature/x");
  EXPECT_EQ(preview_job.env, (dp::proto::env_map{{"API", "staging-api"}, {"ALL", "1"}}));
  EXPECT_EQ(queued[2].env, (dp::proto::env_map{{"API", "prod-api"}, {"ALL", "1"}}));
  EXPECT_EQ(queued[2].target, deployment_target::production);

  // Bad input.
  for (const char* bad : {R"({"branch":"-x"})", R"({"commit":"abc"})", R"({"trigger":"webhook"})",
                          R"({"branch":"a","ref":"b"})", R"({"project":"shop"})"}) {
    auto r = s_.request("POST", "/v1/projects/shop/deployments", bad);
    EXPECT_EQ(r.status, 400) << bad << ": " << r.body;
    EXPECT_EQ(error_code_of(r), "invalid_argument");
  }
  EXPECT_EQ(s_.request("POST", "/v1/projects/nope/deployments", "{}").status, 404);
}

TEST_F(previews, a_new_deployment_supersedes_its_branch_only) {
  auto prod = std::string(deploy("").at("id").as_string());
  auto x1 = std::string(deploy(R"({"branch":"feature/x"})").at("id").as_string());
  s_.drive(x1, {deployment_status::cloning, deployment_status::building});
  auto x2 = std::string(deploy(R"({"branch":"feature/x"})").at("id").as_string());
  // The running one is asked to stop (its worker records canceled); the queued x2 is left to
  // the worker, which cancels it before it starts.
  auto asked =
      s_.on_io([&]() -> asio::awaitable<dp::result<std::optional<dp::proto::cancel_request>>> {
        co_return co_await s_.records().cancel_requested(x1);
      });
  ASSERT_TRUE(asked && *asked);
  EXPECT_EQ((*asked)->reason, "superseded by " + x2);
  auto y = std::string(deploy(R"({"branch":"feature/y"})").at("id").as_string());
  auto x3 = std::string(deploy(R"({"branch":"feature/x"})").at("id").as_string());
  s_.drive(x1, {deployment_status::canceled});
  EXPECT_EQ(record(x2).status, deployment_status::queued);
  EXPECT_EQ(record(prod).status, deployment_status::queued);
  EXPECT_EQ(record(y).status, deployment_status::queued);
  EXPECT_EQ(record(x3).status, deployment_status::queued);

  // Filters.
  auto list = body_of(s_.request("GET", "/v1/projects/shop/deployments?branch=feature/x"));
  EXPECT_EQ(list.at("deployments").as_array().size(), 3u);
  EXPECT_EQ(list.at("total").as_int64(), 5);
  list = body_of(s_.request("GET", "/v1/projects/shop/deployments?target=preview&status=canceled"));
  ASSERT_EQ(list.at("deployments").as_array().size(), 1u);
  EXPECT_EQ(list.at("deployments").as_array()[0].at("id").as_string(), x1);
  list = body_of(s_.request("GET", "/v1/projects/shop/deployments?target=production&limit=1"));
  ASSERT_EQ(list.at("deployments").as_array().size(), 1u);
  EXPECT_EQ(list.at("deployments").as_array()[0].at("id").as_string(), prod);
  EXPECT_EQ(error_code_of(s_.request("GET", "/v1/projects/shop/deployments?status=done")),
            "invalid_argument");
}

TEST_F(previews, cancel_superseded_off_keeps_the_running_build) {
  ASSERT_EQ(s_.request("PATCH", "/v1/projects/shop", R"({"cancel_superseded":false})").status, 200);
  auto x1 = std::string(deploy(R"({"branch":"feature/x"})").at("id").as_string());
  s_.drive(x1, {deployment_status::cloning});
  auto x2 = std::string(deploy(R"({"branch":"feature/x"})").at("id").as_string());
  auto asked =
      s_.on_io([&]() -> asio::awaitable<dp::result<std::optional<dp::proto::cancel_request>>> {
        co_return co_await s_.records().cancel_requested(x1);
      });
  ASSERT_TRUE(asked);
  EXPECT_FALSE(*asked);
  EXPECT_EQ(record(x1).status, deployment_status::cloning);
  auto p = body_of(s_.request("GET", "/v1/projects/shop"));
  EXPECT_FALSE(p.at("cancel_superseded").as_bool());
  EXPECT_EQ(p.at("preview_env").at("API").as_string(), "staging-api");
}

// What deploy hooks and forge webhooks call.
TEST_F(previews, start_git_deployment_and_remove_previews) {
  ASSERT_EQ(
      s_.request("POST", "/v1/projects", R"({"name":"blog","git_url":"https://e.x/b.git"})").status,
      201);
  auto started = s_.on_io([&]() -> asio::awaitable<dp::result<dp::proto::deployment>> {
    auto p = co_await s_.records().get_project("blog");
    dp::api::deployment_source src{.branch = "trunk",
                                   .commit_message = "Fix the header",
                                   .commit_author = "Ada",
                                   .trigger = dp::proto::deployment_trigger::webhook,
                                   .default_branch = "trunk"};
    dp::api::start_options so{60};
    co_return co_await dp::api::start_git_deployment(s_.records(), *p, src, so);
  });
  ASSERT_TRUE(started) << started.error().message;
  // The forge's default branch became the production branch: trunk is production.
  EXPECT_EQ(started->target, deployment_target::production);
  auto d = record(started->id);
  EXPECT_EQ(d.commit_message, "Fix the header");
  EXPECT_EQ(d.commit_author, "Ada");
  EXPECT_EQ(d.trigger, dp::proto::deployment_trigger::webhook);
  EXPECT_EQ(body_of(s_.request("GET", "/v1/projects/blog")).at("production_branch").as_string(),
            "trunk");

  auto pr = s_.on_io([&]() -> asio::awaitable<dp::result<dp::proto::deployment>> {
    auto p = co_await s_.records().get_project("blog");
    dp::api::deployment_source src{
        .branch = "trunk", .pull_request = 12, .trigger = dp::proto::deployment_trigger::webhook};
    dp::api::start_options so{60};
    co_return co_await dp::api::start_git_deployment(s_.records(), *p, src, so);
  });
  ASSERT_TRUE(pr);
  EXPECT_EQ(pr->target, deployment_target::preview);  // a pull request is always a preview
  s_.drive(pr->id, {deployment_status::uploading});
  auto live = s_.on_io([&]() -> asio::awaitable<dp::result<dp::state::transition_outcome>> {
    co_return co_await s_.records().go_live(*pr);
  });
  ASSERT_TRUE(live) << live.error().message;
  auto resolve = [&](std::string label) {
    return s_
        .on_io([&]() -> asio::awaitable<dp::result<std::optional<std::string>>> {
          co_return co_await s_.records().resolve_alias(label);
        })
        .value();
  };
  EXPECT_EQ(resolve("blog--pr-12"), pr->id);
  EXPECT_FALSE(resolve("blog"));  // never production

  auto removed = s_.on_io([&]() -> asio::awaitable<dp::result<bool>> {
    co_return co_await dp::api::remove_pull_request_preview(s_.records(), "blog", 12);
  });
  ASSERT_TRUE(removed);
  EXPECT_TRUE(*removed);
  EXPECT_FALSE(resolve("blog--pr-12"));
  auto branch_removed = s_.on_io([&]() -> asio::awaitable<dp::result<bool>> {
    co_return co_await dp::api::remove_branch_preview(s_.records(), "blog", "trunk");
  });
  ASSERT_TRUE(branch_removed);
  EXPECT_TRUE(*branch_removed);  // go-live had set blog--trunk too
  EXPECT_FALSE(resolve("blog--trunk"));
}

}  // namespace
