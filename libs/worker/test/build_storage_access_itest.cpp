// build_storage_access against a stand-in STS on 127.0.0.1 (fake_sts.py): the AssumeRole request
// is the documented one, signed by the worker, with a session policy of exactly the deployment's
// objects; the answer's temporary keys replace the worker's in a build container's environment.
#include "dp/worker/build_storage_access.hpp"

#include <boost/json.hpp>

#include <set>

#include "dp/core/id.hpp"
#include "dp/http_client/client.hpp"
#include "dp/worker/launcher.hpp"
#include "fake_sts.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using dp::worker_test::fake_sts;

class BuildStorageAccess : public ::testing::Test {
 protected:
  dp::worker::build_storage_role role(std::string endpoint) const {
    return {.role_arn = "arn:aws:iam::123456789012:role/dp-build",
            .sts_endpoint = std::move(endpoint),
            .region = "eu-west-1",
            .credentials = {"AKIDPLATFORM", "platform-secret", "", "eu-west-1"},
            .bucket = "deploys",
            .key_prefix = "sites/"};
  }

  dp::result<dp::aws::temporary_credentials> open(const std::string& endpoint,
                                                  const dp::proto::job& job) {
    return dp::test::run_async(
        ioc_, [&]() -> asio::awaitable<dp::result<dp::aws::temporary_credentials>> {
          dp::worker::build_storage_access access(http_, role(endpoint));
          co_return co_await access.open(job);
        }());
  }

  static dp::proto::job job(std::string project, int64_t timeout_s) {
    dp::proto::job j;
    j.deployment_id = dp::new_deployment_id();
    j.project = std::move(project);
    j.timeout_s = timeout_s;
    return j;
  }

  asio::io_context ioc_;
  dp::http_client::client http_{ioc_.get_executor()};
};

TEST_F(BuildStorageAccess, AssumesTheRoleWithAPolicyOfTheDeploymentsObjectsOnly) {
  fake_sts sts("ASIATEMPORARY", "temporary-secret");
  auto j = job("shop", 600);
  auto creds = open(sts.endpoint(), j);
  ASSERT_TRUE(creds) << creds.error().message;
  EXPECT_EQ(creds->keys.access_key, "ASIATEMPORARY");
  EXPECT_EQ(creds->keys.secret_key, "temporary-secret");
  EXPECT_EQ(creds->keys.session_token, "token-for-dp-build-" + j.deployment_id);
  EXPECT_GT(creds->expires, std::chrono::system_clock::now());

  auto requests = sts.requests();
  ASSERT_EQ(requests.size(), 1u);
  const auto& r = requests[0];
  EXPECT_EQ(r.at("path").as_string(), "/");
  const auto& headers = r.at("headers").as_object();
  // Signed by the worker's own keys for STS in the role's region.
  auto authorization = std::string(headers.at("authorization").as_string());
  EXPECT_TRUE(authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDPLATFORM/"))
      << authorization;
  EXPECT_NE(authorization.find("/eu-west-1/sts/aws4_request"), std::string::npos) << authorization;
  EXPECT_NE(authorization.find("SignedHeaders=content-type;host;x-amz-date"), std::string::npos)
      << authorization;
  EXPECT_TRUE(headers.contains("x-amz-date"));
  EXPECT_TRUE(std::string(headers.at("content-type").as_string())
                  .starts_with("application/x-www-form-urlencoded"));
  const auto& form = r.at("form").as_object();
  EXPECT_EQ(form.at("Action").as_string(), "AssumeRole");
  EXPECT_EQ(form.at("Version").as_string(), "2011-06-15");
  EXPECT_EQ(form.at("RoleArn").as_string(), "arn:aws:iam::123456789012:role/dp-build");
  EXPECT_EQ(form.at("RoleSessionName").as_string(), "dp-build-" + j.deployment_id);
  EXPECT_EQ(form.at("DurationSeconds").as_string(), "900");  // STS's minimum, above 600

  // Every resource and list prefix the policy allows: exactly the deployment's.
  auto policy = json::parse(form.at("Policy").as_string()).as_object();
  EXPECT_EQ(policy.at("Version").as_string(), "2012-10-17");
  std::set<std::string> resources;
  std::set<std::string> actions;
  std::set<std::string> list_prefixes;
  for (const auto& s : policy.at("Statement").as_array()) {
    EXPECT_EQ(s.at("Effect").as_string(), "Allow");
    for (const auto& res : s.at("Resource").as_array()) {
      for (const auto& a : s.at("Action").as_array()) {
        actions.insert(fmt::format("{} {}", std::string_view(a.as_string()),
                                   std::string_view(res.as_string())));
      }
      resources.insert(std::string(res.as_string()));
    }
    if (const auto* c = s.as_object().if_contains("Condition")) {
      for (const auto& p : c->at("StringLike").at("s3:prefix").as_array()) {
        list_prefixes.insert(std::string(p.as_string()));
      }
    }
  }
  auto outputs = "arn:aws:s3:::deploys/sites/__outputs/" + j.deployment_id + "/*";
  auto source = "arn:aws:s3:::deploys/sites/__sources/" + j.deployment_id + ".tar.gz";
  auto cache = std::string("arn:aws:s3:::deploys/sites/__cache/shop/*");
  EXPECT_EQ(actions, (std::set<std::string>{
                         "s3:PutObject " + outputs,
                         "s3:AbortMultipartUpload " + outputs,
                         "s3:GetObject " + source,
                         "s3:GetObject " + cache,
                         "s3:PutObject " + cache,
                         "s3:DeleteObject " + cache,
                         "s3:AbortMultipartUpload " + cache,
                         "s3:ListBucket arn:aws:s3:::deploys",
                     }));
  EXPECT_EQ(list_prefixes, (std::set<std::string>{"sites/__cache/shop/*"}));
}

TEST_F(BuildStorageAccess, TheSessionLastsTheBuildsTimeLimit) {
  fake_sts sts("ASIATEMPORARY", "temporary-secret");
  ASSERT_TRUE(open(sts.endpoint(), job("shop", 3600)));
  auto requests = sts.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].at("form").at("DurationSeconds").as_string(), "3600");
}

TEST_F(BuildStorageAccess, AnUnreachableStsIsAnErrorNamingTheRole) {
  auto port = dp::test::free_port();
  auto creds = open(fmt::format("http://127.0.0.1:{}", port), job("shop", 600));
  ASSERT_FALSE(creds);
  EXPECT_NE(creds.error().message.find("arn:aws:iam::123456789012:role/dp-build"),
            std::string::npos)
      << creds.error().message;
}

TEST_F(BuildStorageAccess, TemporaryKeysReplaceEveryAwsCredentialOfTheLauncher) {
  dp::config::environment env{{"AWS_ACCESS_KEY_ID", "AKIDPLATFORM"},
                              {"AWS_SECRET_ACCESS_KEY", "platform-secret"},
                              {"AWS_SESSION_TOKEN", "platform-token"},
                              {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/x"},
                              {"AWS_REGION", "eu-west-1"},
                              {"STORAGE_URL", "s3://deploys/sites"}};
  dp::aws::credentials temporary{"ASIATEMPORARY", "temporary-secret", "temporary-token", ""};
  auto out = dp::worker::container_environment(env, job("shop", 600), std::nullopt, &temporary);
  std::map<std::string, std::string> got(out.begin(), out.end());
  EXPECT_EQ(got["AWS_ACCESS_KEY_ID"], "ASIATEMPORARY");
  EXPECT_EQ(got["AWS_SECRET_ACCESS_KEY"], "temporary-secret");
  EXPECT_EQ(got["AWS_SESSION_TOKEN"], "temporary-token");
  EXPECT_EQ(got["AWS_REGION"], "eu-west-1");
  EXPECT_EQ(got["STORAGE_URL"], "s3://deploys/sites");
  EXPECT_FALSE(got.contains("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"));
  for (const auto& [k, v] : out) {
    EXPECT_EQ(v.find("platform"), std::string::npos) << k << "=" << v;
  }
}

}  // namespace
