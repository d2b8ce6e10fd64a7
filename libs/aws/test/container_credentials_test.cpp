#include "dp/aws/container_credentials.hpp"

#include <gtest/gtest.h>

namespace {

using namespace dp::aws;

TEST(ContainerEndpoint, RelativeUriIsServedByTheEcsAgent) {
  auto e = container_endpoint_from("/v2/credentials/abc", "http://10.0.0.1/creds", "tok");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->url, "http://169.254.170.2/v2/credentials/abc");
  EXPECT_EQ(e->authorization, "tok");
}

TEST(ContainerEndpoint, FullUriOrNothing) {
  auto e = container_endpoint_from("", "http://127.0.0.1:9/creds", "");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->url, "http://127.0.0.1:9/creds");
  EXPECT_FALSE(container_endpoint_from("", "", "tok"));
}

TEST(ContainerCredentials, ParsesTheAgentsAnswer) {
  auto r = parse_container_credentials(
      R"({"RoleArn":"arn:aws:iam::1:role/build","AccessKeyId":"ASIA1","SecretAccessKey":"s",)"
      R"("Token":"t","Expiration":"2026-11-24T16:30:00Z"})",
      "eu-west-1");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->first.access_key, "ASIA1");
  EXPECT_EQ(r->first.secret_key, "s");
  EXPECT_EQ(r->first.session_token, "t");
  EXPECT_EQ(r->first.region, "eu-west-1");
  EXPECT_EQ(std::chrono::system_clock::to_time_t(r->second), 1795537800);
}

TEST(ContainerCredentials, RefusesIncompleteAnswers) {
  EXPECT_FALSE(parse_container_credentials("not json", ""));
  EXPECT_FALSE(parse_container_credentials(
      R"({"AccessKeyId":"a","Expiration":"2026-11-24T16:30:00Z"})", ""));
  EXPECT_FALSE(parse_container_credentials(
      R"({"AccessKeyId":"a","SecretAccessKey":"s","Expiration":"tomorrow"})", ""));
}

TEST(CredentialSource, KeysWinOverTheEndpoint) {
  credential_source s({"AKID", "secret", "", "us-east-1"},
                      container_endpoint{"http://127.0.0.1:9/creds", ""});
  EXPECT_FALSE(s.fetches());
  credential_source none({}, container_endpoint{"http://127.0.0.1:9/creds", ""});
  EXPECT_TRUE(none.fetches());
}

}  // namespace
