// Branch previews through the real binaries (issue 17): the api-server, a build-runner worker with
// the process launcher and the proxy, on a real redis-server and a git repository on disk. The
// production branch deploys to production; another branch deploys a preview served at its
// branch alias, built with the preview's environment, while production stays as it was.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <string>

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
    std::map<std::string, std::string> env{
        {"REDIS_URL", redis_.url()},       {"STORAGE_URL", "file://" + storage_.path().string()},
        {"ALLOWED_GIT_PROTOCOLS", "file"}, {"LOG_FORMAT", "json"},
        {"BASE_DOMAIN", "localhost"},      {"BUILD_MEMORY_MB", "512"},
        {"BUILD_PIDS_MAX", "256"},         {"TMPDIR", work_.path().string()}};
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
};

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
  EXPECT_EQ(v.at("preview_urls").as_array().at(0).as_string(),
            "http://shop--feature-x.localhost:" + std::to_string(proxy_port_));

  // The preview at its branch alias and its immutable URL; production unchanged.
  EXPECT_EQ(page("shop--feature-x"), "feature page preview");
  EXPECT_EQ(page(std::string(v.at("alias").as_string())), "feature page preview");
  EXPECT_EQ(page("shop"), "main page production");
  auto project = call("GET", "/v1/projects/shop", {}, 200).as_object();
  EXPECT_EQ(project.at("production_deployment_id").as_string(), prod_id);

  // The build log says what it built and for where.
  auto logs = json::serialize(call("GET", "/v1/deployments/" + preview_id + "/logs", {}, 200));
  EXPECT_NE(logs.find("(branch feature/x) for a preview"), std::string::npos) << logs;
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

}  // namespace
