// Forge webhooks and deploy hooks over real HTTP against a real redis-server: signatures checked
// on the raw body (each refusal a 4xx with the JSON error), replays ignored, events turned into
// deployments and preview removals, secrets rotated, hooks created, listed, used and revoked.
#include <boost/json/serialize.hpp>

#include <fstream>
#include <future>
#include <sstream>

#include "api_itest_support.hpp"
#include "dp/core/preview_alias.hpp"
#include "dp/forge/signature.hpp"

namespace {

using namespace dp::api::test;
using ds = dp::proto::deployment_status;

const std::string token = "t0ken-for-the-api";

std::string fixture(const std::string& name) {
  const char* root = std::getenv("DP_SOURCE_DIR");
  std::ifstream in(std::string(root ? root : ".") + "/tests/fixtures/webhooks/" + name,
                   std::ios::binary);
  EXPECT_TRUE(in) << name;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// The GitHub push fixture, for `branch` at `sha`.
std::string github_push(const std::string& branch, const std::string& sha) {
  auto v = json::parse(fixture("github-push-with-new-branch.json"));
  v.as_object()["ref"] = "refs/heads/" + branch;
  v.as_object()["after"] = sha;
  v.as_object()["head_commit"].as_object()["id"] = sha;
  // The repository's default branch, which a project without one learns as its production branch.
  v.as_object()["repository"].as_object()["default_branch"] = "main";
  return json::serialize(v);
}

class webhooks : public ::testing::Test {
 protected:
  // With an API token: the webhook and hook routes must work without it.
  api_server s_{server_setup{.tokens = {token}, .webhook_max_bytes = 64 * 1024}};
  std::string secret_;
  int delivery_ = 0;

  std::map<std::string, std::string> auth() { return {{"authorization", "Bearer " + token}}; }

  void SetUp() override {
    auto r = s_.request("POST", "/v1/projects",
                        R"({"name":"shop","git_url":"https://example.com/acme/shop.git"})", auth());
    ASSERT_EQ(r.status, 201) << r.body;
    auto rotated = s_.request("POST", "/v1/projects/shop/webhook-secret", "", auth());
    ASSERT_EQ(rotated.status, 201) << rotated.body;
    auto v = body_of(rotated);
    secret_ = std::string(v.at("secret").as_string());
    EXPECT_EQ(secret_.size(), 64u);
    EXPECT_EQ(v.at("webhook_paths").at("github").as_string(), "/v1/webhooks/github/shop");
  }

  dp::test::http_response github(const std::string& event, const std::string& body,
                                 std::string delivery = {},
                                 std::optional<std::string> signature = {}) {
    if (delivery.empty()) {
      delivery = "delivery-" + std::to_string(++delivery_);
    }
    std::map<std::string, std::string> h{{"x-github-event", event},
                                         {"x-github-delivery", delivery}};
    h["x-hub-signature-256"] =
        signature.value_or("sha256=" + dp::forge::hmac_sha256_hex(secret_, body));
    return s_.request("POST", "/v1/webhooks/github/shop", body, h);
  }

  // The project's forge settings: GitHub at a port nothing answers on, with `token`.
  dp::test::http_response put_github_forge(const std::string& token) {
    json::object forge{{"forge", "github"},
                       {"api_url", "http://127.0.0.1:9"},
                       {"repository", "acme/shop"},
                       {"token", token}};
    return s_.request("PUT", "/v1/projects/shop/forge", json::serialize(forge), auth());
  }

  json::value deployment(const dp::test::http_response& r) {
    EXPECT_EQ(r.status, 202) << r.body;
    auto v = body_of(r);
    return v.is_object() && v.as_object().contains("deployment") ? v.at("deployment") : v;
  }

  int64_t deployments() {
    auto r = s_.request("GET", "/v1/projects/shop/deployments", "", auth());
    return static_cast<int64_t>(body_of(r).at("deployments").as_array().size());
  }

  std::optional<std::string> alias(const std::string& label) {
    auto r = s_.on_io([&]() -> asio::awaitable<dp::result<std::optional<std::string>>> {
      co_return co_await s_.records().resolve_alias(label);
    });
    EXPECT_TRUE(r);
    return r ? *r : std::nullopt;
  }

  void go_live(const std::string& id) {
    s_.drive(id, {ds::building, ds::uploading});
    auto r = s_.on_io([&]() -> asio::awaitable<dp::result<dp::state::transition_outcome>> {
      auto d = co_await s_.records().get_deployment(id);
      if (!d) {
        co_return d.error();
      }
      co_return co_await s_.records().go_live(*d);
    });
    ASSERT_TRUE(r && r->applied);
  }
};

TEST_F(webhooks, github_signature_example_is_the_scheme) {
  EXPECT_EQ(dp::forge::hmac_sha256_hex("It's a Secret to Everybody", "Hello, World!"),
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
}

TEST_F(webhooks, push_to_the_production_branch_deploys_production) {
  auto sha = std::string(40, 'a');
  auto d = deployment(github("push", github_push("main", sha)));
  EXPECT_EQ(d.at("branch"), "main");
  EXPECT_EQ(d.at("commit"), json::value(sha));
  EXPECT_EQ(d.at("commit_message"), "Initial commit");
  EXPECT_EQ(d.at("commit_author"), "Codertocat");
  EXPECT_EQ(d.at("trigger"), "webhook");
  EXPECT_EQ(d.at("target"), "production");
}

TEST_F(webhooks, push_to_another_branch_deploys_a_preview) {
  auto d = deployment(github("push", github_push("feature/x", std::string(40, 'b'))));
  EXPECT_EQ(d.at("branch"), "feature/x");
  EXPECT_EQ(d.at("target"), "preview");
  go_live(std::string(d.at("id").as_string()));
  EXPECT_EQ(alias(dp::branch_alias("shop", "feature/x")), std::string(d.at("id").as_string()));
  EXPECT_EQ(alias("shop"), std::nullopt);

  // The branch deleted: its alias goes.
  auto v = json::parse(fixture("github-push-tag-deleted.json"));
  v.as_object()["ref"] = "refs/heads/feature/x";
  auto r = github("push", json::serialize(v));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_of(r).at("event"), "branch_deleted");
  EXPECT_EQ(body_of(r).at("removed"), true);
  EXPECT_EQ(alias(dp::branch_alias("shop", "feature/x")), std::nullopt);
}

TEST_F(webhooks, pull_request_opened_then_closed) {
  auto d = deployment(github("pull_request", fixture("github-pull_request-opened.json")));
  EXPECT_EQ(d.at("pull_request"), 2);
  EXPECT_EQ(d.at("branch"), "changes");
  EXPECT_EQ(d.at("target"), "preview");
  auto id = std::string(d.at("id").as_string());
  go_live(id);
  EXPECT_EQ(alias("shop--pr-2"), id);

  deployment(github("pull_request", fixture("github-pull_request-synchronize.json")));
  auto closed = github("pull_request", fixture("github-pull_request-closed.json"));
  EXPECT_EQ(closed.status, 200) << closed.body;
  EXPECT_EQ(body_of(closed).at("event"), "pull_request_closed");
  EXPECT_EQ(body_of(closed).at("removed"), true);
  EXPECT_EQ(alias("shop--pr-2"), std::nullopt);
}

TEST_F(webhooks, ping_and_other_events_answer_200_and_deploy_nothing) {
  auto ping = github("ping", fixture("github-ping.json"));
  EXPECT_EQ(ping.status, 200) << ping.body;
  EXPECT_EQ(body_of(ping).at("event"), "ping");
  auto tag = github("push", fixture("github-push-tag-deleted.json"));
  EXPECT_EQ(tag.status, 200);
  EXPECT_EQ(body_of(tag).at("event"), "ignored");
  EXPECT_EQ(github("issues", "{}").status, 200);
  EXPECT_EQ(deployments(), 0);
}

TEST_F(webhooks, a_replayed_delivery_is_ignored) {
  auto body = github_push("main", std::string(40, 'c'));
  deployment(github("push", body, "same-id"));
  auto again = github("push", body, "same-id");
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(body_of(again).at("event"), "ignored");
  EXPECT_EQ(deployments(), 1);
}

TEST_F(webhooks, bad_signatures_are_401_before_anything_is_parsed) {
  auto body = github_push("main", std::string(40, 'd'));
  // Not JSON at all, wrongly signed: the signature is refused, not the body.
  auto r = github("push", "not json", {}, "sha256=" + std::string(64, '0'));
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_EQ(error_code_of(r), "unauthorized");
  // Signed by another secret, the body changed after signing, no prefix.
  EXPECT_EQ(github("push", body, {}, "sha256=" + dp::forge::hmac_sha256_hex("other", body)).status,
            401);
  EXPECT_EQ(
      github("push", body + " ", {}, "sha256=" + dp::forge::hmac_sha256_hex(secret_, body)).status,
      401);
  EXPECT_EQ(github("push", body, {}, dp::forge::hmac_sha256_hex(secret_, body)).status, 401);
  // No signature header at all.
  auto unsigned_ = s_.request("POST", "/v1/webhooks/github/shop", body,
                              {{"x-github-event", "push"}, {"x-github-delivery", "x"}});
  EXPECT_EQ(unsigned_.status, 401);
  EXPECT_EQ(error_code_of(unsigned_), "unauthorized");
  EXPECT_EQ(deployments(), 0);
  // A refused delivery id stays free for the genuine delivery.
  deployment(github("push", body, "delivery-1"));
}

TEST_F(webhooks, other_refusals_are_4xx_with_the_json_error) {
  auto body = github_push("main", std::string(40, 'e'));
  auto sig = "sha256=" + dp::forge::hmac_sha256_hex(secret_, body);
  // A signed body that is not the promised JSON.
  auto bad = github("push", "[1]");
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_EQ(error_code_of(bad), "invalid_argument");
  // No delivery id, no event name.
  auto r = s_.request("POST", "/v1/webhooks/github/shop", body,
                      {{"x-github-event", "push"}, {"x-hub-signature-256", sig}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(error_code_of(r), "invalid_argument");
  r = s_.request("POST", "/v1/webhooks/github/shop", body,
                 {{"x-github-delivery", "d"}, {"x-hub-signature-256", sig}});
  EXPECT_EQ(r.status, 400);
  // An unknown forge, an unknown project.
  r = s_.request("POST", "/v1/webhooks/bitbucket/shop", body, {});
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(error_code_of(r), "not_found");
  EXPECT_EQ(s_.request("POST", "/v1/webhooks/github/nope", body, {}).status, 404);
  // A form-encoded delivery (GitHub's other content type) and a browser page's request.
  r = s_.request("POST", "/v1/webhooks/github/shop", "payload=%7B%7D",
                 {{"content-type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(r.status, 415);
  EXPECT_EQ(error_code_of(r), "unsupported_media_type");
  r = s_.request("POST", "/v1/webhooks/github/shop", body,
                 {{"origin", "https://evil.example"}, {"x-hub-signature-256", sig}});
  EXPECT_EQ(r.status, 403);
  // Over the body limit (64 KiB here).
  r = s_.request("POST", "/v1/webhooks/github/shop", std::string(65 * 1024, ' '), {});
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(deployments(), 0);
}

TEST_F(webhooks, a_project_without_a_secret_refuses_with_403) {
  auto r = s_.request("POST", "/v1/projects",
                      R"({"name":"blog","git_url":"https://example.com/acme/blog.git"})", auth());
  ASSERT_EQ(r.status, 201);
  auto body = github_push("main", std::string(40, 'f'));
  r = s_.request("POST", "/v1/webhooks/github/blog", body,
                 {{"x-github-event", "push"},
                  {"x-github-delivery", "1"},
                  {"x-hub-signature-256", "sha256=" + dp::forge::hmac_sha256_hex(secret_, body)}});
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(error_code_of(r), "forbidden");
}

TEST_F(webhooks, rotation_retires_the_old_secret) {
  auto old = secret_;
  auto r = s_.request("POST", "/v1/projects/shop/webhook-secret", "", auth());
  ASSERT_EQ(r.status, 201);
  auto fresh = std::string(body_of(r).at("secret").as_string());
  EXPECT_NE(fresh, old);
  // Managing the secret needs the API token.
  EXPECT_EQ(s_.request("POST", "/v1/projects/shop/webhook-secret").status, 401);
  auto body = github_push("main", std::string(40, '1'));
  EXPECT_EQ(github("push", body).status, 401);  // still signed with the old one
  secret_ = fresh;
  deployment(github("push", body));
}

TEST_F(webhooks, gitlab_token_and_merge_requests) {
  auto body = fixture("gitlab-push.json");
  auto send = [&](const std::string& event, const std::string& b, const std::string& tok,
                  const std::string& uuid) {
    return s_.request(
        "POST", "/v1/webhooks/gitlab/shop", b,
        {{"x-gitlab-event", event}, {"x-gitlab-event-uuid", uuid}, {"x-gitlab-token", tok}});
  };
  EXPECT_EQ(send("Push Hook", body, secret_ + "x", "u1").status, 401);
  auto d = deployment(send("Push Hook", body, secret_, "u2"));
  EXPECT_EQ(d.at("branch"), "master");
  EXPECT_EQ(d.at("commit"), "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
  // The payload's default branch (master) became the production branch.
  EXPECT_EQ(d.at("target"), "production");
  auto mr = deployment(
      send("Merge Request Hook", fixture("gitlab-merge_request-open.json"), secret_, "u3"));
  EXPECT_EQ(mr.at("pull_request"), 1);
  EXPECT_EQ(mr.at("target"), "preview");
}

TEST_F(webhooks, gitea_signature_and_push) {
  auto body = fixture("gitea-push.json");
  auto send = [&](const std::string& sig, const std::string& delivery) {
    return s_.request(
        "POST", "/v1/webhooks/gitea/shop", body,
        {{"x-gitea-event", "push"}, {"x-gitea-delivery", delivery}, {"x-gitea-signature", sig}});
  };
  EXPECT_EQ(send(dp::forge::hmac_sha256_hex("wrong", body), "g1").status, 401);
  auto d = deployment(send(dp::forge::hmac_sha256_hex(secret_, body), "g2"));
  EXPECT_EQ(d.at("branch"), "develop");
  EXPECT_EQ(d.at("commit_message"), "Webhooks Yay!");
}

TEST_F(webhooks, deploy_hooks_are_created_listed_used_and_revoked) {
  auto r = s_.request("POST", "/v1/projects/shop/hooks", R"({"branch":"staging"})", auth());
  ASSERT_EQ(r.status, 201) << r.body;
  auto created = body_of(r);
  auto id = std::string(created.at("id").as_string());
  auto secret = std::string(created.at("secret").as_string());
  EXPECT_EQ(secret.size(), 64u);  // 256 random bits
  EXPECT_EQ(created.at("path"), json::value("/v1/hooks/" + secret));

  auto listed = s_.request("GET", "/v1/projects/shop/hooks", "", auth());
  ASSERT_EQ(listed.status, 200);
  EXPECT_EQ(listed.body.find(secret), std::string::npos) << "the list must not show the secret";
  auto hooks = body_of(listed).at("hooks").as_array();
  ASSERT_EQ(hooks.size(), 1u);
  EXPECT_EQ(hooks[0].at("id"), json::value(id));
  EXPECT_EQ(hooks[0].at("branch"), "staging");

  // No API token: the URL is the credential.
  auto used = s_.request("POST", "/v1/hooks/" + secret);
  ASSERT_EQ(used.status, 202) << used.body;
  auto d = body_of(used);
  EXPECT_EQ(d.at("branch"), "staging");
  EXPECT_EQ(d.at("trigger"), "hook");
  EXPECT_EQ(d.at("target"), "preview");

  auto wrong = s_.request("POST", "/v1/hooks/" + std::string(64, '0'));
  EXPECT_EQ(wrong.status, 404);
  EXPECT_EQ(error_code_of(wrong), "not_found");
  EXPECT_EQ(
      s_.request("POST", "/v1/hooks/" + secret, "", {{"origin", "https://evil.example"}}).status,
      403);

  // Bad input, then the revocation.
  EXPECT_EQ(s_.request("POST", "/v1/projects/shop/hooks", R"({"branch":"-x"})", auth()).status,
            400);
  EXPECT_EQ(s_.request("POST", "/v1/projects/shop/hooks", R"({})", auth()).status, 400);
  EXPECT_EQ(s_.request("POST", "/v1/projects/shop/hooks", R"({"branch":"main"})").status, 401);
  EXPECT_EQ(s_.request("DELETE", "/v1/projects/shop/hooks/" + id, "", auth()).status, 204);
  EXPECT_EQ(s_.request("DELETE", "/v1/projects/shop/hooks/" + id, "", auth()).status, 404);
  EXPECT_EQ(s_.request("POST", "/v1/hooks/" + secret).status, 404);
}

TEST_F(webhooks, deleting_the_project_forgets_its_secret_and_hooks) {
  auto r = s_.request("POST", "/v1/projects/shop/hooks", R"({"branch":"main"})", auth());
  auto secret = std::string(body_of(r).at("secret").as_string());
  ASSERT_EQ(s_.request("DELETE", "/v1/projects/shop", "", auth()).status, 204);
  EXPECT_EQ(s_.request("POST", "/v1/hooks/" + secret).status, 404);
  r = s_.request("POST", "/v1/projects",
                 R"({"name":"shop","git_url":"https://example.com/acme/shop.git"})", auth());
  ASSERT_EQ(r.status, 201);
  auto body = github_push("main", std::string(40, '2'));
  EXPECT_EQ(github("push", body).status, 403);  // the old secret is gone, not inherited
}

TEST_F(webhooks, the_commit_status_target_is_recorded_before_the_job_is_queued) {
  // A worker that takes the job the moment it is queued must already find where to report its
  // "pending" status: a worker blocked on the queue takes the job as LPUSH wakes it, and looks.
  auto f = put_github_forge("t");
  ASSERT_EQ(f.status, 200) << f.body;
  const auto& keys = s_.records().keys();
  auto taken = std::async(std::launch::async, [&] {
    return s_.on_io([&]() -> asio::awaitable<dp::result<std::pair<std::string, int64_t>>> {
      dp::redis::client worker(co_await asio::this_coro::executor, s_.redis_options());
      std::vector<std::string> take{"BLPOP", keys.queue(), "20"};
      auto job = co_await worker.exec(std::move(take), std::chrono::seconds(30));
      if (!job || job->elements().size() != 2) {
        worker.close();
        co_return job ? dp::make_error(dp::errc::internal, "no job queued") : job.error();
      }
      auto id =
          std::string(json::parse(job->elements()[1].as_string()).at("deployment_id").as_string());
      auto exists = co_await worker.exec("EXISTS", keys.commit_status(id));
      worker.close();
      if (!exists) {
        co_return exists.error();
      }
      co_return std::pair(id, exists->as_integer());
    });
  });
  // The worker is blocked on the queue before the webhook arrives.
  ASSERT_TRUE(dp::test::eventually(
      [&] { return dp::test::redis_blocked_in(s_.redis_options().url.port, "blpop"); }));
  auto sha = std::string(40, 'c');
  auto d = deployment(github("push", github_push("main", sha)));
  auto got = taken.get();
  ASSERT_TRUE(got) << got.error().describe();
  EXPECT_EQ(got->first, d.at("id").as_string());
  EXPECT_EQ(got->second, 1) << "the job was queued before its commit status target";
}

TEST_F(webhooks, forge_settings_never_return_the_token) {
  auto r = put_github_forge("ghp_secret");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body.find("ghp_secret"), std::string::npos);
  EXPECT_EQ(body_of(r).at("token_set"), true);
  EXPECT_EQ(s_.request("PUT", "/v1/projects/shop/forge", R"({"forge":"svn"})", auth()).status, 400);
  auto p = s_.request("GET", "/v1/projects/shop", "", auth());
  EXPECT_EQ(p.body.find("ghp_secret"), std::string::npos);
}

}  // namespace
