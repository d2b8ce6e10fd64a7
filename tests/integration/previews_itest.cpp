// Branch previews through the real binaries (issue 17): the api-server, a build-runner worker with
// the process launcher and the proxy, on a real redis-server and a git repository on disk (or
// served over git's smart HTTP by tests/harness/git-http.py). The production branch deploys to
// production; another branch deploys a preview served at its branch alias, built with the
// preview's environment, while production stays as it was. A deployment naming a commit builds
// exactly that commit; a fork's pull request is built from its pull request ref, only when the
// project allows it, with fork_env alone.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <fstream>
#include <sstream>
#include <string>

#include "dp/core/preview_alias.hpp"
#include "dp/forge/signature.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"

namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

// The page says which file and which STAGE (the target's env) built it.
const std::map<std::string, dp::test::git_file> site = {
    {"package.json", R"({"name":"site","version":"1.0.0","scripts":{"build":"node build.js"}})"},
    {"build.js",
     "const fs = require('fs');\n"
     "fs.mkdirSync('dist');\n"
     "fs.writeFileSync('dist/index.html',\n"
     "  fs.readFileSync('page.txt', 'utf8').trim() + ' ' + process.env.STAGE);\n"},
    {"page.txt", "main page"}};

class Previews : public ::testing::Test {
 protected:
  void SetUp() override {
    std::map<std::string, std::string> env{{"REDIS_URL", redis_.url()},
                                           {"STORAGE_URL", "file://" + storage_.path().string()},
                                           {"ALLOWED_GIT_PROTOCOLS", "file,http"},
                                           {"LOG_FORMAT", "json"},
                                           {"BASE_DOMAIN", "localhost"},
                                           {"BUILD_MEMORY_MB", "512"},
                                           {"BUILD_PIDS_MAX", "256"},
                                           {"TMPDIR", work_.path().string()}};
    auto with = [&](std::map<std::string, std::string> more) {
      more.insert(env.begin(), env.end());
      return more;
    };
    proxy_.emplace(dp::test::process_options{
        .argv = {PROXY_BIN},
        .env = with({{"PROXY_LISTEN", "127.0.0.1:0"}, {"ADMIN_LISTEN", "127.0.0.1:0"}})});
    proxy_port_ = dp::test::reported_port(*proxy_);
    api_.emplace(dp::test::process_options{
        .argv = {API_SERVER_BIN},
        .env = with({{"API_LISTEN", "127.0.0.1:0"}, {"SITE_PORT", std::to_string(proxy_port_)}})});
    api_port_ = dp::test::reported_port(*api_);
    worker_.emplace(
        dp::test::process_options{.argv = {BUILD_RUNNER_BIN, "worker"},
                                  .env = with({{"LAUNCHER", "process"}, {"WORKER_DRAIN_S", "2"}})});
  }

  json::value call(const std::string& method, const std::string& target,
                   const std::string& body = {}, int expect = 0) {
    auto r = dp::test::http_request(api_port_, method, target, body,
                                    {{"content-type", "application/json"}});
    EXPECT_TRUE(r) << method << " " << target;
    if (!r) {
      return nullptr;
    }
    if (expect != 0) {
      EXPECT_EQ(r->status, expect) << method << " " << target << ": " << r->body;
    }
    return r->body.empty() ? json::value(nullptr) : json::parse(r->body);
  }

  // Waits for the deployment to end; returns its record.
  json::object finished(const std::string& id) {
    json::object d;
    EXPECT_TRUE(dp::test::eventually(
        [&] {
          d = call("GET", "/v1/deployments/" + id).as_object();
          auto s = d.at("status").as_string();
          return s == "ready" || s == "failed" || s == "canceled";
        },
        180s))
        << id;
    return d;
  }

  // A signed delivery of a forge's webhook to project `name` (its secret made on first use).
  dp::test::http_response webhook(const std::string& name, const std::string& forge,
                                  const std::string& event, const std::string& body) {
    if (!secrets_.contains(name)) {
      auto made = call("POST", "/v1/projects/" + name + "/webhook-secret", {}, 201);
      secrets_[name] = std::string(made.at("secret").as_string());
    }
    const auto& secret = secrets_[name];
    auto delivery = "delivery-" + std::to_string(++deliveries_);
    std::map<std::string, std::string> h{{"content-type", "application/json"}};
    if (forge == "github") {
      h["x-github-event"] = event;
      h["x-github-delivery"] = delivery;
      h["x-hub-signature-256"] = "sha256=" + dp::forge::hmac_sha256_hex(secret, body);
    } else if (forge == "gitlab") {
      h["x-gitlab-event"] = event;
      h["x-gitlab-event-uuid"] = delivery;
      h["x-gitlab-token"] = secret;
    } else {
      h["x-gitea-event"] = event;
      h["x-gitea-delivery"] = delivery;
      h["x-gitea-signature"] = dp::forge::hmac_sha256_hex(secret, body);
    }
    auto r =
        dp::test::http_request(api_port_, "POST", "/v1/webhooks/" + forge + "/" + name, body, h);
    EXPECT_TRUE(r);
    return r ? *r : dp::test::http_response{};
  }

  // What the proxy serves at http://<label>.localhost/.
  std::string page(const std::string& label) {
    auto r =
        dp::test::http_request(proxy_port_, "GET", "/", {},
                               {{"host", label + ".localhost:" + std::to_string(proxy_port_)}});
    if (!r) {
      return "(no answer)";
    }
    return r->status == 200 ? r->body : "(" + std::to_string(r->status) + ")";
  }

  dp::test::redis_server redis_;
  dp::test::temp_dir storage_{"dp-previews-storage"};
  dp::test::temp_dir work_{"dp-previews-work"};
  std::optional<dp::test::child_process> proxy_, api_, worker_;
  uint16_t proxy_port_ = 0, api_port_ = 0;
  std::map<std::string, std::string> secrets_;
  int deliveries_ = 0;
};

json::value fixture(const std::string& name) {
  std::ifstream in(dp::test::source_dir() / "tests/fixtures/webhooks" / name, std::ios::binary);
  EXPECT_TRUE(in) << name;
  std::ostringstream out;
  out << in.rdbuf();
  return json::parse(out.str());
}

// GitHub's push example for `branch` at `sha`.
std::string github_push(const std::string& branch, const std::string& sha) {
  auto v = fixture("github-push-with-new-branch.json");
  v.as_object()["ref"] = "refs/heads/" + branch;
  v.as_object()["after"] = sha;
  v.as_object()["head_commit"].as_object()["id"] = sha;
  return json::serialize(v);
}

TEST_F(Previews, ProductionBranchGoesLiveAndAnotherBranchGetsAPreview) {
  dp::test::git_repo repo(site);
  auto git = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"git", "-C", repo.path().string()});
    auto r = dp::test::run(args, dp::test::git_repo::git_env());
    ASSERT_EQ(r.exit_code, 0) << r.output;
  };
  git({"checkout", "-q", "-b", "feature/x"});
  auto feature_commit = repo.commit({{"page.txt", "feature page"}}, "feature: new page");
  git({"checkout", "-q", "main"});

  call("POST", "/v1/projects",
       json::serialize(json::object{{"name", "shop"},
                                    {"git_url", repo.url()},
                                    {"production_branch", "main"},
                                    {"production_env", {{"STAGE", "production"}}},
                                    {"preview_env", {{"STAGE", "preview"}}}}),
       201);

  auto prod = call("POST", "/v1/projects/shop/deployments", "{}", 202).as_object();
  EXPECT_EQ(prod.at("target").as_string(), "production");
  EXPECT_EQ(prod.at("branch").as_string(), "main");
  auto prod_id = std::string(prod.at("id").as_string());
  auto p = finished(prod_id);
  ASSERT_EQ(p.at("status").as_string(), "ready") << json::serialize(p);
  EXPECT_EQ(page("shop"), "main page production");
  EXPECT_EQ(page("shop--main"), "main page production");

  auto preview =
      call("POST", "/v1/projects/shop/deployments",
           R"({"branch":"feature/x","commit":")" + feature_commit + R"(","trigger":"cli"})", 202)
          .as_object();
  EXPECT_EQ(preview.at("target").as_string(), "preview");
  EXPECT_EQ(preview.at("trigger").as_string(), "cli");
  auto preview_id = std::string(preview.at("id").as_string());
  auto v = finished(preview_id);
  ASSERT_EQ(v.at("status").as_string(), "ready") << json::serialize(v);
  EXPECT_EQ(v.at("commit").as_string(), feature_commit);
  const auto feature_alias = dp::branch_alias("shop", "feature/x");
  EXPECT_EQ(v.at("preview_urls").as_array().at(0).as_string(),
            "http://" + feature_alias + ".localhost:" + std::to_string(proxy_port_));

  // The preview at its branch alias and its immutable URL; production unchanged.
  EXPECT_EQ(page(feature_alias), "feature page preview");
  EXPECT_EQ(page(std::string(v.at("alias").as_string())), "feature page preview");
  EXPECT_EQ(page("shop"), "main page production");
  auto project = call("GET", "/v1/projects/shop", {}, 200).as_object();
  EXPECT_EQ(project.at("production_deployment_id").as_string(), prod_id);

  // The build log says what it built and for where.
  auto logs = json::serialize(call("GET", "/v1/deployments/" + preview_id + "/logs", {}, 200));
  EXPECT_NE(logs.find("(branch feature/x) at commit " + feature_commit + " for a preview"),
            std::string::npos)
      << logs;
  EXPECT_NE(logs.find("cloned commit " + feature_commit + " of feature/x"), std::string::npos)
      << logs;

  // Filters.
  auto list = call("GET", "/v1/projects/shop/deployments?target=preview", {}, 200).as_object();
  ASSERT_EQ(list.at("deployments").as_array().size(), 1u);
  EXPECT_EQ(list.at("deployments").as_array()[0].at("id").as_string(), preview_id);
  list = call("GET", "/v1/projects/shop/deployments?branch=main&status=ready", {}, 200).as_object();
  ASSERT_EQ(list.at("deployments").as_array().size(), 1u);
  EXPECT_EQ(list.at("deployments").as_array()[0].at("id").as_string(), prod_id);
  EXPECT_EQ(call("GET", "/v1/projects/shop/deployments?target=staging", {}, 400)
                .at("error")
                .at("code")
                .as_string(),
            "invalid_argument");
}

// A project without a production branch builds the remote's default on a deploy without one,
// and learns that branch's name from the clone.
TEST_F(Previews, ADefaultBranchBuildTeachesTheProductionBranch) {
  dp::test::git_repo repo(site);
  call("POST", "/v1/projects",
       json::serialize(json::object{{"name", "blog"}, {"git_url", repo.url()}}), 201);
  auto d = call("POST", "/v1/projects/blog/deployments", {}, 202).as_object();
  EXPECT_EQ(d.at("target").as_string(), "production");
  EXPECT_TRUE(d.at("branch").is_null());
  auto done = finished(std::string(d.at("id").as_string()));
  ASSERT_EQ(done.at("status").as_string(), "ready") << json::serialize(done);
  EXPECT_EQ(done.at("branch").as_string(), "main");
  EXPECT_TRUE(dp::test::eventually([&] {
    auto p = call("GET", "/v1/projects/blog");
    return p.as_object().at("production_branch") == "main";
  }));
  EXPECT_EQ(page("blog"), "main page undefined");
}

// A deployment naming an older commit of its branch builds that commit, not the head; a commit
// that is not on the branch (another branch's, or none at all) fails with the reason.
TEST_F(Previews, ADeploymentNamingACommitBuildsExactlyThatCommit) {
  dp::test::git_repo repo(site);
  auto first = repo.head();
  repo.commit({{"page.txt", "second page"}}, "second");
  auto git = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"git", "-C", repo.path().string()});
    auto r = dp::test::run(args, dp::test::git_repo::git_env());
    ASSERT_EQ(r.exit_code, 0) << r.output;
  };
  git({"checkout", "-q", "-b", "other"});
  auto elsewhere = repo.commit({{"page.txt", "other page"}}, "on another branch");
  git({"checkout", "-q", "main"});
  call("POST", "/v1/projects",
       json::serialize(
           json::object{{"name", "shop"}, {"git_url", repo.url()}, {"production_branch", "main"}}),
       201);

  auto d = call("POST", "/v1/projects/shop/deployments", R"({"commit":")" + first + R"("})", 202)
               .as_object();
  EXPECT_EQ(d.at("commit").as_string(), first);
  auto id = std::string(d.at("id").as_string());
  auto done = finished(id);
  ASSERT_EQ(done.at("status").as_string(), "ready") << json::serialize(done);
  EXPECT_EQ(done.at("commit").as_string(), first);
  EXPECT_EQ(page("shop"), "main page undefined");
  auto logs = json::serialize(call("GET", "/v1/deployments/" + id + "/logs", {}, 200));
  EXPECT_NE(logs.find("cloned commit " + first + " of main"), std::string::npos) << logs;

  // The head, without a commit: the second page.
  auto head = call("POST", "/v1/projects/shop/deployments", "{}", 202).as_object();
  ASSERT_EQ(finished(std::string(head.at("id").as_string())).at("status").as_string(), "ready");
  EXPECT_EQ(page("shop"), "second page undefined");

  for (const auto& sha : {elsewhere, std::string(40, 'f')}) {
    auto bad = call("POST", "/v1/projects/shop/deployments", R"({"commit":")" + sha + R"("})", 202)
                   .as_object();
    auto failed = finished(std::string(bad.at("id").as_string()));
    EXPECT_EQ(failed.at("status").as_string(), "failed") << json::serialize(failed);
    EXPECT_EQ(std::string(failed.at("error").as_string()),
              "commit " + sha +
                  " is not on refs/heads/main: not among its last 1000 commits, or the server "
                  "does not have it");
  }
  EXPECT_EQ(page("shop"), "second page undefined");
  // Not a sha: refused at the API.
  auto refused = call("POST", "/v1/projects/shop/deployments", R"({"commit":"main"})", 400);
  EXPECT_EQ(refused.at("error").at("code").as_string(), "invalid_argument");
}

// Over git's smart HTTP (protocol v2 serves any reachable commit by id): a push webhook naming
// a commit that is no longer the branch's head builds that commit.
TEST_F(Previews, AWebhookNamingAnOlderCommitBuildsItOverSmartHttp) {
  dp::test::git_repo repo(site);
  auto first = repo.commit({{"page.txt", "pushed page"}}, "pushed");
  repo.commit({{"page.txt", "newer page"}}, "newer");
  dp::test::temp_dir root("dp-previews-git-http");
  auto r = dp::test::run({"git", "clone", "--quiet", "--bare", repo.path().string(),
                          (root.path() / "shop.git").string()},
                         dp::test::git_repo::git_env());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  dp::test::child_process git_http(dp::test::process_options{
      .argv = {(dp::test::source_dir() / "tests/harness/git-http.py").string(),
               root.path().string()}});
  auto port = dp::test::reported_port(git_http);
  call("POST", "/v1/projects",
       json::serialize(
           json::object{{"name", "shop"},
                        {"git_url", "http://127.0.0.1:" + std::to_string(port) + "/shop.git"},
                        {"production_branch", "main"}}),
       201);
  auto res = webhook("shop", "github", "push", github_push("main", first));
  ASSERT_EQ(res.status, 202) << res.body;
  auto d = json::parse(res.body).at("deployment").as_object();
  EXPECT_EQ(d.at("commit").as_string(), first);
  auto done = finished(std::string(d.at("id").as_string()));
  ASSERT_EQ(done.at("status").as_string(), "ready") << json::serialize(done);
  EXPECT_EQ(done.at("commit").as_string(), first);
  EXPECT_EQ(page("shop"), "pushed page undefined");
}

// A pull request from a fork: skipped (202, the reason) while the project does not build them;
// once it does, built from the base repository's pull request ref with fork_env only (no
// preview_env, no env), served at the pull request's alias and not at any branch alias.
TEST_F(Previews, AForkPullRequestIsSkippedUnlessAllowedAndThenBuiltWithoutSecrets) {
  dp::test::git_repo repo(site);
  auto git = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"git", "-C", repo.path().string()});
    auto r = dp::test::run(args, dp::test::git_repo::git_env());
    EXPECT_EQ(r.exit_code, 0) << r.output;
  };
  // What a forge keeps of a fork's pull requests in the base repository: refs/pull/<n>/head
  // (GitHub, Gitea) and refs/merge-requests/<iid>/head (GitLab), on no branch of its own.
  git({"checkout", "-q", "--detach"});
  auto fork_commit = repo.commit({{"page.txt", "fork page"}}, "from a fork");
  git({"update-ref", "refs/pull/2/head", fork_commit});
  git({"update-ref", "refs/merge-requests/1/head", fork_commit});
  git({"checkout", "-q", "main"});
  call("POST", "/v1/projects",
       json::serialize(json::object{{"name", "shop"},
                                    {"git_url", repo.url()},
                                    {"production_branch", "main"},
                                    {"env", {{"STAGE", "secret-env"}}},
                                    {"preview_env", {{"STAGE", "secret-preview"}}}}),
       201);
  auto github_pr = fixture("github-pull_request-opened-from-fork.json");
  github_pr.at_pointer("/pull_request/head").as_object()["sha"] = fork_commit;
  auto body = json::serialize(github_pr);

  auto skipped = webhook("shop", "github", "pull_request", body);
  ASSERT_EQ(skipped.status, 202) << skipped.body;
  auto v = json::parse(skipped.body).as_object();
  EXPECT_EQ(v.at("skipped").as_string(), "fork pull request");
  EXPECT_EQ(v.at("reason").as_string().subview().rfind("skipped: fork pull request #2", 0), 0u)
      << skipped.body;
  EXPECT_FALSE(v.contains("deployment"));
  EXPECT_EQ(
      call("GET", "/v1/projects/shop/deployments", {}, 200).at("deployments").as_array().size(),
      0u);

  call("PATCH", "/v1/projects/shop",
       R"({"fork_pull_requests":true,"fork_env":{"STAGE":"fork-safe"}})", 200);
  auto built = webhook("shop", "github", "pull_request", body);
  ASSERT_EQ(built.status, 202) << built.body;
  auto d = json::parse(built.body).at("deployment").as_object();
  EXPECT_EQ(d.at("fork"), true);
  EXPECT_EQ(d.at("branch").as_string(), "refs/pull/2/head");
  EXPECT_EQ(d.at("target").as_string(), "preview");
  auto id = std::string(d.at("id").as_string());
  auto done = finished(id);
  ASSERT_EQ(done.at("status").as_string(), "ready") << json::serialize(done);
  EXPECT_EQ(done.at("commit").as_string(), fork_commit);
  EXPECT_EQ(done.at("cache").as_string(), "off");
  EXPECT_EQ(page("shop--pr-2"), "fork page fork-safe");
  // The fork's branch name ("changes") is not a branch of the project's.
  EXPECT_EQ(page(dp::branch_alias("shop", "changes")), "(404)");
  EXPECT_EQ(page(dp::branch_alias("shop", "refs/pull/2/head")), "(404)");
  EXPECT_EQ(page("shop"), "(404)");

  // GitLab's merge request from a fork: refs/merge-requests/<iid>/head.
  auto gitlab_mr = fixture("gitlab-merge_request-open-from-fork.json");
  gitlab_mr.at_pointer("/object_attributes/last_commit").as_object()["id"] = fork_commit;
  auto mr = webhook("shop", "gitlab", "Merge Request Hook", json::serialize(gitlab_mr));
  ASSERT_EQ(mr.status, 202) << mr.body;
  auto m = json::parse(mr.body).at("deployment").as_object();
  EXPECT_EQ(m.at("branch").as_string(), "refs/merge-requests/1/head");
  ASSERT_EQ(finished(std::string(m.at("id").as_string())).at("status").as_string(), "ready");
  EXPECT_EQ(page("shop--pr-1"), "fork page fork-safe");
}

}  // namespace
