// The commit statuses the worker sends, as a stand-in forge (fake_forge.py) receives them: for
// GitHub, GitLab and Gitea, a build that goes live (pending, success), one that fails (pending,
// failure), one canceled while building (pending, canceled) and one superseded while queued
// (canceled only), each request's method, URL, authentication and JSON body as the forge's
// REST reference documents it:
//   GitHub  POST /repos/{owner}/{repo}/statuses/{sha}, "Authorization: Bearer", state
//           error|failure|pending|success, target_url, description, context
//   GitLab  POST /projects/{id or url-encoded path}/statuses/{sha}, "PRIVATE-TOKEN", state
//           pending|running|success|failed|canceled, target_url, description, name
//   Gitea   POST /repos/{owner}/{repo}/statuses/{sha}, "Authorization: token", state
//           pending|success|error|failure|warning, target_url, description, context
#include "dp/core/clock.hpp"
#include "dp/state/hooks.hpp"
#include "recording_peer.hpp"
#include "worker_test_support.hpp"

namespace {

using namespace dp::worker_test;
using dp::test::redis_server;

struct forge_case {
  std::string forge;
  std::string api_path;                      // the API's root on the forge's host
  std::string status_path;                   // of repository "acme/shop", before "/<sha>"
  std::pair<std::string, std::string> auth;  // the header that carries the token
  std::string context_key;                   // "context", GitLab: "name"
  std::map<std::string, std::string> state;  // ours -> the forge's
};

// Forge settings of `project` and the sha and URL the api notes for a webhook's deployment.
void note_status(const redis_server& server, const std::string& project, const std::string& id,
                 const std::string& sha, const dp::state::forge_settings& f) {
  asio::io_context ioc;
  dp::redis::client redis(ioc.get_executor(), options_for(server));
  dp::state::hooks hooks(redis, dp::proto::keys(prefix));
  dp::test::run_async(ioc, [&]() -> asio::awaitable<void> {
    auto set = co_await hooks.set_forge(project, f);
    EXPECT_TRUE(set) << (set ? "" : set.error().message);
    const std::string url = "http://" + project + "--abc.localhost:8000";
    auto noted = co_await hooks.set_commit_status_target(id, sha, url, std::chrono::hours(1));
    EXPECT_TRUE(noted) << (noted ? "" : noted.error().message);
    redis.close();
  }());
}

void check_requests_of(const forge_case& c) {
  redis_server server;
  recording_peer forge("fake_forge.py", {});
  dp::state::forge_settings settings{.forge = c.forge,
                                     .api_url = forge.endpoint() + c.api_path,
                                     .repository = "acme/shop",
                                     .token = "tok-" + c.forge};
  const std::string live_sha(40, 'a'), failed_sha(40, 'b'), canceled_sha(40, 'c'),
      superseded_sha(40, 'd'), newer_sha(40, 'e');
  auto live = enqueue(server, "live");
  auto failed = enqueue(server, "failed");
  cmd(server, {"SET", prefix + "fake:mode:" + failed, "exit1"});
  auto canceled = enqueue(server, "canceled");
  cmd(server, {"SET", prefix + "fake:mode:" + canceled, "hang"});
  auto superseded = enqueue(server, "burst");
  auto newer = enqueue(server, "burst");
  note_status(server, "live", live, live_sha, settings);
  note_status(server, "failed", failed, failed_sha, settings);
  note_status(server, "canceled", canceled, canceled_sha, settings);
  note_status(server, "burst", superseded, superseded_sha, settings);
  note_status(server, "burst", newer, newer_sha, settings);

  threaded_worker w(server, dp::worker::make_process_launcher(fake_launcher(server)),
                    fast_options(), threaded_worker::with_commit_statuses{});
  ASSERT_TRUE(eventually([&] { return has_status(server, canceled, "building"); }));
  run_sync<bool>(server, [&](dp::state::records& records) -> asio::awaitable<bool> {
    const dp::proto::cancel_request req{canceled, dp::now_ms(), "changed my mind"};
    co_return (co_await records.request_cancel(req)).has_value();
  });
  for (const auto& id : {live, failed, canceled, superseded, newer}) {
    EXPECT_TRUE(eventually([&] { return dp::proto::is_final(get(server, id).status); })) << id;
  }
  // 2 + 2 + 2 + 1 + 2: the superseded deployment never built, so it never was pending.
  ASSERT_TRUE(eventually([&] { return forge.requests().size() == 9; })) << forge.requests().size();

  std::map<std::string, std::vector<boost::json::object>> by_sha;
  for (auto& r : forge.requests()) {
    std::string path(r.at("path").as_string());
    by_sha[path.substr(path.rfind('/') + 1)].push_back(r);
    // The request itself, whatever its state.
    EXPECT_EQ(r.at("method").as_string(), "POST");
    EXPECT_EQ(path.substr(0, path.rfind('/')), c.api_path + c.status_path) << path;
    const auto& headers = r.at("headers").as_object();
    ASSERT_TRUE(headers.contains(c.auth.first)) << path;
    EXPECT_EQ(headers.at(c.auth.first).as_string(), c.auth.second);
    EXPECT_EQ(headers.at("content-type").as_string(), "application/json");
    if (c.forge == "github") {
      EXPECT_EQ(headers.at("accept").as_string(), "application/vnd.github+json");
      EXPECT_EQ(headers.at("x-github-api-version").as_string(), "2022-11-28");
    }
    const auto& body = r.at("body").as_object();
    EXPECT_EQ(body.size(), 4u) << boost::json::serialize(body);
    EXPECT_EQ(body.at(c.context_key).as_string(), "deploy-platform");
    EXPECT_EQ(body.at("target_url").as_string().subview().find("http://"), 0u);
  }
  auto states = [&](const std::string& sha) {
    std::vector<std::string> out;
    for (const auto& r : by_sha[sha]) {
      const auto& body = r.at("body").as_object();
      out.push_back(std::string(body.at("state").as_string()) + " " +
                    std::string(body.at("description").as_string()));
    }
    return out;
  };
  auto s = c.state;
  EXPECT_EQ(states(live_sha),
            (std::vector<std::string>{s["pending"] + " building", s["success"] + " deployed"}));
  EXPECT_EQ(states(failed_sha),
            (std::vector<std::string>{s["pending"] + " building", s["failure"] + " build failed"}));
  EXPECT_EQ(states(canceled_sha),
            (std::vector<std::string>{s["pending"] + " building",
                                      s["canceled"] + " canceled: changed my mind"}));
  EXPECT_EQ(states(superseded_sha),
            (std::vector<std::string>{s["canceled"] + " canceled: superseded by " + newer}));
  EXPECT_EQ(states(newer_sha),
            (std::vector<std::string>{s["pending"] + " building", s["success"] + " deployed"}));
  EXPECT_EQ(by_sha[live_sha].at(1).at("body").as_object().at("target_url").as_string(),
            "http://live--abc.localhost:8000");
}

TEST(commit_status, github_requests) {
  check_requests_of({.forge = "github",
                     .api_path = "/api/v3",
                     .status_path = "/repos/acme/shop/statuses",
                     .auth = {"authorization", "Bearer tok-github"},
                     .context_key = "context",
                     .state = {{"pending", "pending"},
                               {"success", "success"},
                               {"failure", "failure"},
                               {"canceled", "error"}}});
}

TEST(commit_status, gitlab_requests) {
  check_requests_of({.forge = "gitlab",
                     .api_path = "/api/v4",
                     .status_path = "/projects/acme%2Fshop/statuses",
                     .auth = {"private-token", "tok-gitlab"},
                     .context_key = "name",
                     .state = {{"pending", "pending"},
                               {"success", "success"},
                               {"failure", "failed"},
                               {"canceled", "canceled"}}});
}

TEST(commit_status, gitea_requests) {
  check_requests_of({.forge = "gitea",
                     .api_path = "/api/v1",
                     .status_path = "/repos/acme/shop/statuses",
                     .auth = {"authorization", "token tok-gitea"},
                     .context_key = "context",
                     .state = {{"pending", "pending"},
                               {"success", "success"},
                               {"failure", "failure"},
                               {"canceled", "error"}}});
}

}  // namespace
