// The REST API over real HTTP against a real redis-server and file storage: every bad input of
// the issue as its own test, the project/deployment lifecycle, auth, health and metrics.
#include <ifaddrs.h>
#include <netinet/in.h>

#include <boost/json/serialize.hpp>
#include <boost/json/value_from.hpp>

#include "api_itest_support.hpp"
#include "dp/buildplan/cache.hpp"
#include "dp/core/clock.hpp"
#include "dp/proto/json.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/redis/subscriber.hpp"
#include "dp/state/protection.hpp"

namespace {

using namespace dp::api::test;
using dp::proto::deployment_status;
using ds = deployment_status;

class api : public ::testing::Test {
 protected:
  api_server s_;

  std::string deploy(const std::string& body) {
    auto r = s_.request("POST", "/v1/deployments", body);
    EXPECT_EQ(r.status, 202) << r.body;
    auto v = body_of(r);
    return v.is_object() ? std::string(v.at("id").as_string()) : std::string();
  }
  void make_project(const std::string& name) {
    auto r = s_.request(
        "POST", "/v1/projects",
        R"({"name":")" + name + R"(","git_url":"https://example.com/)" + name + R"(.git"})");
    ASSERT_EQ(r.status, 201) << r.body;
  }
};

// ---- bad input ------------------------------------------------------------------------------

TEST_F(api, malformed_json_is_400) {
  auto r = s_.request("POST", "/v1/projects", R"({"name":"shop",)");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(error_code_of(r), "invalid_argument");
  EXPECT_EQ(s_.request("POST", "/v1/deployments", "not json").status, 400);
}

TEST_F(api, wrong_types_are_400) {
  EXPECT_EQ(s_.request("POST", "/v1/projects", R"({"name":1,"git_url":"https://x.y/z"})").status,
            400);
  EXPECT_EQ(s_.request("POST", "/v1/deployments", R"({"project":["shop"]})").status, 400);
  make_project("shop");
  auto r = s_.request("PATCH", "/v1/projects/shop", R"({"env":{"A":1}})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("env.A"), std::string::npos) << r.body;
}

TEST_F(api, body_over_one_mib_is_413) {
  std::string big = R"({"name":"shop","git_url":"https://x.y/z","build_command":")" +
                    std::string(1024 * 1024, 'a') + "\"}";
  auto r = s_.request("POST", "/v1/projects", big);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(error_code_of(r), "too_large");
}

TEST_F(api, unknown_project_is_404) {
  EXPECT_EQ(s_.request("GET", "/v1/projects/nope").status, 404);
  EXPECT_EQ(s_.request("GET", "/v1/projects/nope/deployments").status, 404);
  auto r = s_.request("POST", "/v1/deployments", R"({"project":"nope"})");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(error_code_of(r), "not_found");
}

TEST_F(api, unknown_deployment_is_404) {
  auto id = dp::new_deployment_id();
  EXPECT_EQ(s_.request("GET", "/v1/deployments/" + id).status, 404);
  EXPECT_EQ(s_.request("GET", "/v1/deployments/not-an-id").status, 404);
  EXPECT_EQ(s_.request("POST", "/v1/deployments/" + id + "/cancel").status, 404);
  EXPECT_EQ(s_.request("DELETE", "/v1/deployments/" + id).status, 404);
  EXPECT_EQ(s_.request("GET", "/v1/deployments/" + id + "/logs").status, 404);
  EXPECT_EQ(s_.request("GET", "/v1/deployments/" + id + "/logs/stream").status, 404);
}

TEST_F(api, invalid_names_are_400) {
  for (const char* name : {"Shop", "-shop", "shop-", "sh_op", "", "a.b"}) {
    auto r = s_.request("POST", "/v1/projects",
                        std::string(R"({"name":")") + name + R"(","git_url":"https://x.y/z"})");
    EXPECT_EQ(r.status, 400) << name;
  }
  EXPECT_EQ(s_.request("GET", "/v1/projects/Shop").status, 400);
  EXPECT_EQ(s_.request("POST", "/v1/deployments", R"({"project":"UPPER"})").status, 400);
}

TEST_F(api, disallowed_git_urls_are_400) {
  for (const char* url :
       {"ssh://git@github.com/acme/shop", "ext::sh -c touch% /tmp/pwned", "file:///srv/repo",
        "-uhttps://github.com/acme/shop", "git@github.com:acme/shop.git"}) {
    auto r = s_.request("POST", "/v1/deployments",
                        std::string(R"({"project":"shop","git_url":")") + url + "\"}");
    EXPECT_EQ(r.status, 400) << url << ": " << r.body;
  }
  EXPECT_EQ(s_.request("POST", "/project", R"({"gitURL":"ssh://x/y"})").status, 400);
  // Nothing was created by the refused requests.
  EXPECT_EQ(s_.request("GET", "/v1/projects/shop").status, 404);
}

TEST_F(api, promoting_a_deployment_that_is_not_ready_is_409) {
  make_project("shop");
  auto id = deploy(R"({"project":"shop"})");
  auto promote = [&] {
    return s_.request("POST", "/v1/projects/shop/promote", R"({"deployment_id":")" + id + "\"}");
  };
  EXPECT_EQ(promote().status, 409);
  s_.drive(id, {ds::building, ds::failed});
  auto r = promote();
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(error_code_of(r), "conflict");
}

// ---- lifecycle ------------------------------------------------------------------------------

TEST_F(api, projects_crud) {
  auto r = s_.request("POST", "/v1/projects",
                      R"({"name":"shop","git_url":"https://example.com/shop.git","branch":"main",)"
                      R"("env":{"VITE_API":"https://api.example.com"}})");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(
      s_.request("POST", "/v1/projects", R"({"name":"shop","git_url":"https://example.com/x.git"})")
          .status,
      409);
  make_project("blog");
  auto list = body_of(s_.request("GET", "/v1/projects"));
  ASSERT_EQ(list.at("projects").as_array().size(), 2u);
  EXPECT_EQ(list.at("projects").as_array()[0].at("name").as_string(), "blog");
  EXPECT_EQ(list.at("projects").as_array()[0].at("url").as_string(), "http://blog.localhost:8000");
  EXPECT_TRUE(list.at("projects").as_array()[0].at("production_deployment_id").is_null());

  r = s_.request("PATCH", "/v1/projects/shop", R"({"branch":null,"build_command":"make"})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto p = body_of(s_.request("GET", "/v1/projects/shop"));
  EXPECT_TRUE(p.at("production_branch").is_null());
  EXPECT_EQ(p.at("build_command").as_string(), "make");
  EXPECT_EQ(p.at("env").at("VITE_API").as_string(), "https://api.example.com");
  EXPECT_EQ(p.at("url").as_string(), "http://shop.localhost:8000");
  EXPECT_TRUE(p.at("production_deployment_id").is_null());

  EXPECT_EQ(s_.request("DELETE", "/v1/projects/blog").status, 204);
  EXPECT_EQ(s_.request("GET", "/v1/projects/blog").status, 404);
}

// install_scripts and redirects_shadowing travel project → job; GET shows the settings the
// newest planned build ran.
TEST_F(api, install_scripts_and_effective_settings) {
  make_project("shop");
  auto p = body_of(s_.request("GET", "/v1/projects/shop"));
  EXPECT_EQ(p.at("install_scripts"), json::value(true));
  EXPECT_TRUE(p.at("effective_settings").is_null());
  EXPECT_EQ(s_.request("PATCH", "/v1/projects/shop", R"({"install_scripts":"no"})").status, 400);
  ASSERT_EQ(s_.request("PATCH", "/v1/projects/shop", R"({"install_scripts":false})").status, 200);
  EXPECT_EQ(body_of(s_.request("GET", "/v1/projects/shop")).at("install_scripts"),
            json::value(false));
  EXPECT_EQ(p.at("redirects_shadowing"), json::value("files"));
  auto refused = s_.request("PATCH", "/v1/projects/shop", R"({"redirects_shadowing":"cf"})");
  EXPECT_EQ(refused.status, 400);
  EXPECT_NE(refused.body.find("redirects_shadowing"), std::string::npos) << refused.body;
  ASSERT_EQ(s_.request("PATCH", "/v1/projects/shop", R"({"redirects_shadowing":"rules"})").status,
            200);
  EXPECT_EQ(body_of(s_.request("GET", "/v1/projects/shop")).at("redirects_shadowing"),
            json::value("rules"));

  auto planned = deploy(R"({"project":"shop"})");
  auto job = s_.on_io([&]() -> asio::awaitable<dp::result<dp::redis::reply>> {
    std::vector<std::string> cmd{"LINDEX", s_.records().keys().queue(), "0"};
    co_return co_await s_.redis().exec(std::move(cmd));
  });
  ASSERT_TRUE(job && job->is_string()) << "the job on the queue";
  auto parsed = dp::proto::parse_job(std::string_view(job->as_string()));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_FALSE(parsed->install_scripts);
  EXPECT_EQ(parsed->shadowing, dp::proto::redirects_shadowing::rules);

  dp::proto::build_settings settings{.framework = "astro",
                                     .package_manager = "npm",
                                     .install_command = {"npm ci --ignore-scripts", false},
                                     .build_command = {"npm run build", false},
                                     .output_dir = dp::proto::build_setting{"site", true}};
  auto stored = s_.on_io([&]() -> asio::awaitable<dp::result<void>> {
    dp::proto::hash_fields fields{{"build_settings", json::serialize(json::value_from(settings))}};
    co_return co_await s_.records().set_fields(planned, fields);
  });
  ASSERT_TRUE(stored);
  // A newer deployment that has not planned yet (queued) does not hide it.
  deploy(R"({"project":"shop"})");
  auto e = body_of(s_.request("GET", "/v1/projects/shop")).at("effective_settings");
  EXPECT_EQ(
      e, json::parse(R"({"framework":"astro","package_manager":"npm",)"
                     R"("install_command":{"value":"npm ci --ignore-scripts","source":"detected"},)"
                     R"("build_command":{"value":"npm run build","source":"detected"},)"
                     R"("output_dir":{"value":"site","source":"project"},"deployment_id":")" +
                     planned + "\"}"));
  EXPECT_EQ(body_of(s_.request("GET", "/v1/deployments/" + planned)).at("build_settings"),
            json::value_from(settings));
}

TEST_F(api, deploy_a_git_url_creates_the_project_and_queues_a_job) {
  auto r = s_.request("POST", "/v1/deployments",
                      R"({"git_url":"https://github.com/acme/shop","project":"shop","ref":"v1"})");
  ASSERT_EQ(r.status, 202) << r.body;
  auto d = body_of(r);
  std::string id(d.at("id").as_string());
  EXPECT_TRUE(dp::is_deployment_id(id));
  EXPECT_EQ(d.at("project").as_string(), "shop");
  EXPECT_EQ(d.at("status").as_string(), "queued");
  EXPECT_EQ(d.at("url").as_string(),
            "http://shop--" + std::string(dp::short_id(id)) + ".localhost:8000");
  EXPECT_EQ(d.at("alias_url").as_string(), "http://shop.localhost:8000");
  EXPECT_EQ(r.headers["location"], "/v1/deployments/" + id);
  EXPECT_EQ(s_.request("GET", "/v1/projects/shop").status, 200);

  // The job carries the project's settings, the ref and BUILD_TIMEOUT_S.
  auto job_text = s_.on_io([&]() -> asio::awaitable<dp::result<dp::redis::reply>> {
    std::vector<std::string> cmd{"LINDEX", s_.records().keys().queue(), "0"};
    co_return co_await s_.redis().exec(std::move(cmd));
  });
  ASSERT_TRUE(job_text && job_text->is_string());
  auto job = dp::proto::parse_job(std::string_view(job_text->as_string()));
  ASSERT_TRUE(job) << job.error().message;
  EXPECT_EQ(job->deployment_id, id);
  EXPECT_EQ(job->git_url, "https://github.com/acme/shop");
  EXPECT_EQ(job->ref, "v1");
  EXPECT_EQ(job->timeout_s, 123);

  // Deploying the same name from another repository is refused.
  EXPECT_EQ(s_.request("POST", "/v1/deployments",
                       R"({"git_url":"https://github.com/other/shop","project":"shop"})")
                .status,
            409);
  // Without a name, the repository's name is used.
  auto again = body_of(
      s_.request("POST", "/v1/deployments", R"({"git_url":"https://github.com/acme/Blog.git"})"));
  EXPECT_EQ(again.at("project").as_string(), "blog");
}

TEST_F(api, legacy_project_endpoint) {
  auto r =
      s_.request("POST", "/project", R"({"gitURL":"https://github.com/acme/shop","slug":"x1"})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto v = body_of(r);
  EXPECT_EQ(v.at("status").as_string(), "queued");
  EXPECT_EQ(v.at("data").at("projectSlug").as_string(), "x1");
  EXPECT_EQ(v.at("data").at("url").as_string(), "http://x1.localhost:8000");
}

TEST_F(api, deployments_listed_newest_first_with_pages) {
  make_project("shop");
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(deploy(R"({"project":"shop"})"));
    // Distinct created_at scores: the next deployment is made in a later millisecond.
    const auto made = dp::now_ms();
    ASSERT_TRUE(dp::test::eventually([&] { return dp::now_ms() > made; }));
  }
  std::vector<std::string> seen;
  std::string target = "/v1/projects/shop/deployments?limit=2";
  for (int page = 0; page < 5; ++page) {
    auto v = body_of(s_.request("GET", target));
    EXPECT_EQ(v.at("total").as_int64(), 5);
    for (const auto& d : v.at("deployments").as_array()) {
      seen.emplace_back(d.at("id").as_string());
    }
    if (v.at("next_cursor").is_null()) {
      break;
    }
    target = "/v1/projects/shop/deployments?limit=2&cursor=" +
             std::string(v.at("next_cursor").as_string());
  }
  std::vector<std::string> expected(ids.rbegin(), ids.rend());
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(s_.request("GET", "/v1/projects/shop/deployments?limit=1000").status, 400);
}

TEST_F(api, promote_rollback_and_delete) {
  make_project("shop");
  auto first = deploy(R"({"project":"shop"})");
  auto second = deploy(R"({"project":"shop"})");
  for (const auto& id : {first, second}) {
    s_.drive(id, {ds::cloning, ds::installing, ds::building, ds::uploading, ds::ready});
  }
  auto put = s_.on_io([&]() {
    return s_.storage().put_buffer(dp::proto::output_key(first, "index.html"), "<h1>1</h1>", {});
  });
  ASSERT_TRUE(put);
  auto resolve = [&] {
    auto r = s_.on_io([&]() { return s_.records().resolve_alias("shop"); });
    return r && *r ? **r : std::string();
  };
  auto promote = [&](const std::string& id) {
    return s_.request("POST", "/v1/projects/shop/promote", R"({"deployment_id":")" + id + "\"}");
  };
  ASSERT_EQ(promote(second).status, 200);
  EXPECT_EQ(resolve(), second);
  // Rollback: the older ready deployment.
  auto r = promote(first);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_of(r).at("alias_url").as_string(), "http://shop.localhost:8000");
  EXPECT_EQ(resolve(), first);
  EXPECT_EQ(body_of(s_.request("GET", "/v1/projects/shop")).at("production_deployment_id"),
            json::value(first));
  EXPECT_EQ(body_of(s_.request("GET", "/v1/projects"))
                .at("projects")
                .at(0)
                .at("production_deployment_id"),
            json::value(first));

  // The one in production cannot be deleted; another can, with its files.
  EXPECT_EQ(s_.request("DELETE", "/v1/deployments/" + first).status, 409);
  ASSERT_EQ(promote(second).status, 200);
  EXPECT_TRUE(std::filesystem::exists(s_.files() / dp::proto::output_key(first, "index.html")));
  EXPECT_EQ(s_.request("DELETE", "/v1/deployments/" + first).status, 204);
  EXPECT_FALSE(std::filesystem::exists(s_.files() / dp::proto::output_key(first, "index.html")));
  EXPECT_EQ(s_.request("GET", "/v1/deployments/" + first).status, 404);

  // A deployment of another project is refused.
  make_project("blog");
  EXPECT_EQ(
      s_.request("POST", "/v1/projects/blog/promote", R"({"deployment_id":")" + second + "\"}")
          .status,
      409);

  // Deleting the project takes its deployments, their files and its production alias with it.
  EXPECT_EQ(s_.request("DELETE", "/v1/projects/shop").status, 204);
  EXPECT_EQ(resolve(), "");
  EXPECT_EQ(s_.request("GET", "/v1/deployments/" + second).status, 404);
  EXPECT_EQ(s_.request("GET", "/v1/projects/shop").status, 404);
}

// What the proxies cache per host and no alias event names is announced on events:routes: a
// domain added, the protection changed, the project deleted (with the aliases it removed). A
// change the proxies do not cache (install_scripts) announces nothing.
TEST_F(api, route_events_name_what_proxies_drop) {
  make_project("shop");
  dp::test::run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dp::redis::subscriber sub(ex, s_.redis_options());
    EXPECT_TRUE(co_await sub.subscribe(s_.records().keys().routes_channel()));
    // The requests block this thread; the events wait in the subscriber's socket meanwhile.
    auto next = [&]() -> asio::awaitable<dp::proto::route_event> {
      auto m = co_await sub.next();
      if (!m) {
        ADD_FAILURE() << m.error().message;
        co_return dp::proto::route_event{};
      }
      auto e = dp::proto::parse_route_event(std::string_view(m->payload));
      if (!e) {
        ADD_FAILURE() << m->payload << ": " << e.error().message;
        co_return dp::proto::route_event{};
      }
      co_return *e;
    };
    EXPECT_EQ(s_.request("PATCH", "/v1/projects/shop", R"({"install_scripts":false})").status, 200);
    EXPECT_EQ(
        s_.request("POST", "/v1/projects/shop/domains", R"({"domain":"www.shop.example.com"})")
            .status,
        201);
    auto e = co_await next();
    EXPECT_EQ(e.project, "shop");
    EXPECT_TRUE(e.aliases.empty());
    EXPECT_EQ(e.domains, std::vector<std::string>{"www.shop.example.com"});
    EXPECT_GT(e.ts_ms, 0);

    EXPECT_EQ(s_.request("PATCH", "/v1/projects/shop",
                         R"({"protection":{"scope":"all","username":"a","password":"b"}})")
                  .status,
              200);
    e = co_await next();
    EXPECT_EQ(e.project, "shop");
    EXPECT_TRUE(e.aliases.empty());
    EXPECT_TRUE(e.domains.empty());

    EXPECT_EQ(s_.request("DELETE", "/v1/projects/shop").status, 204);
    e = co_await next();
    EXPECT_EQ(e.project, "shop");
    EXPECT_EQ(e.aliases, std::vector<std::string>{"shop"});
    EXPECT_EQ(e.domains, std::vector<std::string>{"www.shop.example.com"});
    sub.close();
  });
}

// Protection: the password goes in once and is stored only as its hash; the API shows
// password_set, a scope change keeps the credentials, null removes them.
TEST_F(api, protection_keeps_the_password_hashed) {
  make_project("shop");
  auto r =
      s_.request("PATCH", "/v1/projects/shop",
                 R"({"protection":{"scope":"previews","username":"alice","password":"s3cret"}})");
  ASSERT_EQ(r.status, 200) << r.body;
  auto shown = json::parse(R"({"scope":"previews","username":"alice","password_set":true})");
  EXPECT_EQ(body_of(r).at("protection"), shown);
  EXPECT_EQ(r.body.find("s3cret"), std::string::npos);
  EXPECT_EQ(r.body.find("pbkdf2"), std::string::npos);
  auto got = s_.request("GET", "/v1/projects/shop");
  EXPECT_EQ(body_of(got).at("protection"), shown);
  EXPECT_EQ(got.body.find("pbkdf2"), std::string::npos);
  auto stored = s_.on_io([&]() { return s_.records().get_project("shop"); });
  ASSERT_TRUE(stored);
  ASSERT_TRUE(stored->protection);
  EXPECT_TRUE(stored->protection->password_hash.starts_with("pbkdf2-sha256$"));
  EXPECT_TRUE(dp::state::verify_password("s3cret", stored->protection->password_hash));

  r = s_.request("PATCH", "/v1/projects/shop", R"({"protection":{"scope":"all"}})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_of(r).at("protection").at("scope"), json::value("all"));
  auto kept = s_.on_io([&]() { return s_.records().get_project("shop"); });
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->protection->password_hash, stored->protection->password_hash);

  for (const char* bad : {R"({"protection":{"scope":"some"}})", R"({"protection":"all"})",
                          R"({"protection":{"scope":"all","username":"a:b"}})",
                          R"({"protection":{"scope":"all","password":""}})",
                          R"({"protection":{"scope":"all","hash":"x"}})"}) {
    r = s_.request("PATCH", "/v1/projects/shop", bad);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_EQ(error_code_of(r), "invalid_argument");
  }
  make_project("blog");
  r = s_.request("PATCH", "/v1/projects/blog", R"({"protection":{"scope":"all"}})");
  EXPECT_EQ(r.status, 400) << "no credentials to keep";
  r = s_.request("PATCH", "/v1/projects/shop", R"({"protection":null})");
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(body_of(r).at("protection").is_null());
}

// Retention: the policy in force (the project's overrides over RETENTION_*), the storage use,
// and a pruned deployment refused by promote with its reason.
TEST_F(api, retention_usage_and_a_pruned_deployment) {
  make_project("shop");
  auto retention = [&] { return body_of(s_.request("GET", "/v1/projects/shop")).at("retention"); };
  EXPECT_EQ(retention(), json::parse(R"({"keep_deployments":10,"keep_production_days":30})"));
  auto r = s_.request("PATCH", "/v1/projects/shop", R"({"keep_deployments":2})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_of(r).at("keep_deployments"), json::value(2));
  EXPECT_EQ(retention(), json::parse(R"({"keep_deployments":2,"keep_production_days":30})"));
  for (const char* bad : {R"({"keep_deployments":0})", R"({"keep_production_days":-1})",
                          R"({"keep_deployments":"3"})", R"({"keep_production_days":1.5})"}) {
    r = s_.request("PATCH", "/v1/projects/shop", bad);
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_EQ(error_code_of(r), "invalid_argument");
  }
  ASSERT_EQ(s_.request("PATCH", "/v1/projects/shop", R"({"keep_deployments":null})").status, 200);
  EXPECT_EQ(retention().at("keep_deployments"), json::value(10));

  auto first = deploy(R"({"project":"shop"})");
  auto second = deploy(R"({"project":"shop"})");
  for (const auto& id : {first, second}) {
    s_.drive(id, {ds::cloning, ds::building, ds::uploading, ds::ready});
    dp::proto::hash_fields sizes{{"files", "4"}, {"bytes", "2048"}};
    auto set = s_.on_io([&]() { return s_.records().set_fields(id, sizes); });
    ASSERT_TRUE(set);
  }
  auto usage = [&] { return body_of(s_.request("GET", "/v1/projects/shop")).at("usage"); };
  EXPECT_EQ(usage(), json::parse(R"({"outputs":{"files":8,"bytes":4096},)"
                                 R"("sources":{"files":0,"bytes":0},"cache":{"bytes":0},)"
                                 R"("total_bytes":4096,"deployments":2,"pruned":0})"));
  // The build cache's bytes come from its index; one that does not parse says null.
  dp::buildplan::cache_index index;
  index.entries.push_back({.name = "modules-a.tar.zst", .key = "k", .bytes = 1000});
  index.entries.push_back(
      {.name = "store-b.tar.zst", .kind = dp::buildplan::cache_kind::store, .bytes = 24});
  auto put_index = [&](std::string text) {
    return s_.on_io([&]() {
      return s_.storage().put_buffer(dp::proto::cache_index_key("shop"), std::move(text), {});
    });
  };
  ASSERT_TRUE(put_index(dp::buildplan::to_json(index)));
  EXPECT_EQ(usage().at("cache"), json::parse(R"({"bytes":1024})"));
  EXPECT_EQ(usage().at("total_bytes"), json::value(4096 + 1024));
  ASSERT_TRUE(put_index("{not json"));
  EXPECT_EQ(usage().at("cache"), json::parse(R"({"bytes":null})"));
  EXPECT_EQ(usage().at("total_bytes"), json::value(4096));
  ASSERT_EQ(s_.request("DELETE", "/v1/projects/shop/cache").status, 200);
  EXPECT_EQ(usage().at("cache"), json::parse(R"({"bytes":0})"));

  auto marked = s_.on_io([&]() { return s_.records().mark_pruned(first, "shop"); });
  ASSERT_TRUE(marked && *marked);
  auto promote = [&](const std::string& id) {
    return s_.request("POST", "/v1/projects/shop/promote", R"({"deployment_id":")" + id + "\"}");
  };
  r = promote(first);
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(error_code_of(r), "conflict");
  EXPECT_NE(r.body.find("pruned"), std::string::npos) << r.body;
  EXPECT_TRUE(body_of(s_.request("GET", "/v1/deployments/" + first)).at("pruned_at").is_int64());
  EXPECT_EQ(usage().at("outputs"), json::parse(R"({"files":4,"bytes":2048})"));
  EXPECT_EQ(usage().at("pruned"), json::value(1));
  auto list = body_of(s_.request("GET", "/v1/projects"));
  EXPECT_EQ(list.at("projects").as_array()[0].at("usage").at("total_bytes"), json::value(2048));
  EXPECT_EQ(promote(second).status, 200);
}

TEST_F(api, cancel) {
  make_project("shop");
  auto queued = deploy(R"({"project":"shop"})");
  auto r = s_.request("POST", "/v1/deployments/" + queued + "/cancel");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(body_of(r).at("status").as_string(), "canceled");
  EXPECT_EQ(s_.request("POST", "/v1/deployments/" + queued + "/cancel").status, 409);

  // A running build is asked to stop: the durable request is left for its worker.
  auto running = deploy(R"({"project":"shop"})");
  s_.drive(running, {ds::building});
  r = s_.request("POST", "/v1/deployments/" + running + "/cancel");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(body_of(r).at("status").as_string(), "building");
  auto asked = s_.on_io([&]() { return s_.records().cancel_requested(running); });
  ASSERT_TRUE(asked && *asked);
  // A running deployment cannot be deleted.
  EXPECT_EQ(s_.request("DELETE", "/v1/deployments/" + running).status, 409);
}

TEST_F(api, logs_as_json) {
  make_project("shop");
  auto id = deploy(R"({"project":"shop"})");
  s_.on_io([&]() -> asio::awaitable<dp::result<void>> {
      dp::state::log_writer w(co_await asio::this_coro::executor, s_.redis(), s_.records().keys(),
                              id);
      for (int i = 1; i <= 30; ++i) {
        w.write(i % 3 == 0 ? dp::proto::log_stream::err : dp::proto::log_stream::out,
                "line " + std::to_string(i));
      }
      co_return co_await w.flush(std::chrono::seconds(5));
    }).value();
  auto v = body_of(s_.request("GET", "/v1/deployments/" + id + "/logs?since=10&limit=5"));
  ASSERT_EQ(v.at("events").as_array().size(), 5u);
  EXPECT_EQ(v.at("events").as_array()[0].at("seq").as_int64(), 11);
  EXPECT_EQ(v.at("events").as_array()[0].at("line").as_string(), "line 11");
  EXPECT_EQ(v.at("next_since").as_int64(), 15);
  EXPECT_EQ(v.at("status").as_string(), "queued");
  EXPECT_EQ(s_.request("GET", "/v1/deployments/" + id + "/logs?since=x").status, 400);
}

// ---- operations -----------------------------------------------------------------------------

TEST_F(api, health_readiness_metrics_and_openapi) {
  EXPECT_EQ(s_.request("GET", "/healthz").status, 200);
  EXPECT_EQ(s_.request("GET", "/readyz").status, 200);
  make_project("shop");
  deploy(R"({"project":"shop"})");
  auto m = s_.request("GET", "/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("dp_http_requests_total{route=\"/v1/deployments\",method=\"POST\","
                        "status=\"202\"} 1"),
            std::string::npos)
      << m.body;
  EXPECT_NE(m.body.find("dp_queue_depth 1\n"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("dp_deployments{status=\"queued\"} 1\n"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("dp_deployments{status=\"ready\"} 0\n"), std::string::npos) << m.body;
  auto doc = body_of(s_.request("GET", "/v1/openapi.json"));
  EXPECT_EQ(doc.at("openapi").as_string(), "3.1.0");
  EXPECT_TRUE(doc.at("paths").as_object().contains("/v1/deployments/{id}/logs/stream"));
  auto page = s_.request("GET", "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("<!doctype html>"), std::string::npos);
}

TEST_F(api, dashboard_files_carry_a_strict_csp_and_an_etag) {
  auto page = s_.request("GET", "/");
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.headers["content-type"], "text/html; charset=utf-8");
  const auto& csp = page.headers["content-security-policy"];
  EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("script-src 'self';"), std::string::npos) << csp;
  EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos) << csp;
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos) << csp;
  // The page loads its module and stylesheet from /ui/, and holds no inline script or style.
  EXPECT_NE(page.body.find(R"(<script type="module" src="/ui/app.js">)"), std::string::npos);
  EXPECT_EQ(page.body.find("<style"), std::string::npos);

  auto app = s_.request("GET", "/ui/app.js");
  ASSERT_EQ(app.status, 200);
  EXPECT_EQ(app.headers["content-type"], "text/javascript; charset=utf-8");
  EXPECT_EQ(app.headers["cache-control"], "no-cache");
  EXPECT_EQ(app.headers["x-content-type-options"], "nosniff");
  auto etag = app.headers["etag"];
  ASSERT_FALSE(etag.empty());
  auto again = s_.request("GET", "/ui/app.js", {}, {{"if-none-match", etag}});
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  EXPECT_NE(s_.request("GET", "/ui/app.css").headers["etag"], etag);
  EXPECT_EQ(s_.request("GET", "/ui/app.css").headers["content-type"], "text/css; charset=utf-8");
  for (const char* name :
       {"common.js", "overview.js", "project.js", "settings.js", "deployment.js"}) {
    EXPECT_EQ(s_.request("GET", std::string("/ui/") + name).status, 200) << name;
  }

  auto missing = s_.request("GET", "/ui/nothing.js");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(error_code_of(missing), "not_found");
}

TEST(api_readiness, readyz_fails_when_redis_is_gone) {
  // Its own server: the fixture's redis-server must not be stopped under the other tests.
  api_server s;
  EXPECT_EQ(s.request("GET", "/readyz").status, 200);
  s.on_io([&]() -> asio::awaitable<dp::result<void>> {
    std::vector<std::string> cmd{"SHUTDOWN", "NOSAVE"};
    co_await s.redis().exec(std::move(cmd));
    co_return dp::result<void>{};
  });
  auto r = s.request("GET", "/readyz");
  EXPECT_GE(r.status, 500);
  EXPECT_EQ(s.request("GET", "/healthz").status, 200);
}

// ---- auth -----------------------------------------------------------------------------------

TEST(api_auth, bearer_tokens) {
  const std::string token = "0123456789abcdef0123";
  api_server s({.tokens = {token, "another-token-of-16"}});
  auto r = s.request("GET", "/v1/projects");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(error_code_of(r), "unauthorized");
  EXPECT_NE(r.headers["www-authenticate"].find("Bearer"), std::string::npos);
  r = s.request("GET", "/v1/projects", {}, {{"authorization", "Bearer wrong-token-xxxxxxxx"}});
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(s.request("GET", "/v1/projects", {}, {{"authorization", "Bearer " + token}}).status,
            200);
  EXPECT_EQ(s.request("GET", "/v1/projects", {}, {{"authorization", "bearer another-token-of-16"}})
                .status,
            200);
  EXPECT_EQ(s.request("GET", "/metrics").status, 401);
  // Public: the probes, the page and the API description.
  EXPECT_EQ(s.request("GET", "/healthz").status, 200);
  EXPECT_EQ(s.request("GET", "/").status, 200);
  EXPECT_EQ(s.request("GET", "/v1/openapi.json").status, 200);

  // A directory upload without a token is refused on its head: the 50 MiB it announces are
  // never read (nor sent).
  asio::io_context ioc;
  asio::ip::tcp::socket sock(ioc);
  sock.connect({asio::ip::address_v4::loopback(), s.port()});
  asio::write(sock, asio::buffer(fmt::format("POST /v1/deployments?project=shop HTTP/1.1\r\nHost: "
                                             "t\r\nContent-Type: application/gzip\r\n"
                                             "Content-Length: {}\r\n\r\n",
                                             50 << 20)));
  std::string answer;
  std::array<char, 4096> buf{};
  boost::system::error_code ec;
  while (!ec && answer.find("}}") == std::string::npos) {
    answer.append(buf.data(), sock.read_some(asio::buffer(buf), ec));
  }
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 401")) << answer;
  EXPECT_NE(answer.find("a bearer token is required"), std::string::npos) << answer;
}

// An address of this machine that is not loopback, or empty.
std::string non_loopback_address() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) {
    return {};
  }
  std::string found;
  for (auto* a = list; a && found.empty(); a = a->ifa_next) {
    if (a->ifa_addr && a->ifa_addr->sa_family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(a->ifa_addr);
      auto address = asio::ip::address_v4(ntohl(in->sin_addr.s_addr));
      if (!address.is_loopback()) {
        found = address.to_string();
      }
    }
  }
  freeifaddrs(list);
  return found;
}

TEST(api_auth, local_mode_refuses_other_hosts_with_403) {
  auto address = non_loopback_address();
  if (address.empty()) {
    GTEST_SKIP() << "no non-loopback IPv4 address on this machine";
  }
  api_server s({.listen_host = "0.0.0.0"});
  EXPECT_EQ(s.request("GET", "/v1/projects").status, 200);  // loopback
  // The same server reached through a non-loopback address of this machine.
  asio::io_context ioc;
  asio::ip::tcp::socket sock(ioc);
  sock.connect({asio::ip::make_address(address), s.port()});
  std::string req = "GET /v1/projects HTTP/1.0\r\nHost: x\r\n\r\n";
  asio::write(sock, asio::buffer(req));
  std::string reply;
  boost::system::error_code ec;
  char buf[4096];
  for (;;) {
    size_t n = sock.read_some(asio::buffer(buf), ec);
    if (ec) {
      break;
    }
    reply.append(buf, n);
  }
  EXPECT_TRUE(reply.starts_with("HTTP/1.0 403") || reply.starts_with("HTTP/1.1 403")) << reply;
  EXPECT_NE(reply.find("\"forbidden\""), std::string::npos) << reply;
}

}  // namespace
