// STS AssumeRole's request body and XML answers (the examples of AWS's API reference).
#include <gtest/gtest.h>

#include "dp/aws/sts.hpp"

namespace {

using namespace dp::aws;

TEST(AssumeRole, BodyNamesTheRoleThePolicyAndTheDuration) {
  assume_role_params p{.role_arn = "arn:aws:iam::123456789012:role/build",
                       .session_name = "dp-build-abc",
                       .policy = R"({"Version":"2012-10-17"})",
                       .duration = std::chrono::seconds(900)};
  EXPECT_EQ(assume_role_body(p),
            "Action=AssumeRole&Version=2011-06-15"
            "&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fbuild"
            "&RoleSessionName=dp-build-abc"
            "&Policy=%7B%22Version%22%3A%222012-10-17%22%7D&DurationSeconds=900");
}

TEST(AssumeRole, ParsesTheCredentials) {
  auto r = parse_assume_role_response(
      R"(<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <SourceIdentity>Alice</SourceIdentity>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/demo/TestAR</Arn>
      <AssumedRoleId>ARO123EXAMPLE123:TestAR</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <SessionToken>AQoDYXdzEPT//////////wEXAMPLEtc764&amp;+/=</SessionToken>
      <Expiration>2019-11-09T13:34:41Z</Expiration>
    </Credentials>
    <PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata>
    <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
  </ResponseMetadata>
</AssumeRoleResponse>)",
      "eu-west-1");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->keys.access_key, "ASIAIOSFODNN7EXAMPLE");
  EXPECT_EQ(r->keys.secret_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY");
  EXPECT_EQ(r->keys.session_token, "AQoDYXdzEPT//////////wEXAMPLEtc764&+/=");
  EXPECT_EQ(r->keys.region, "eu-west-1");
  EXPECT_EQ(std::chrono::system_clock::to_time_t(r->expires), 1573306481);
}

TEST(AssumeRole, AnErrorResponseNamesItsCodeAndMessage) {
  auto r = parse_assume_role_response(
      R"(<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>AccessDenied</Code>
    <Message>User: arn:aws:iam::1:user/w is not authorized to perform: sts:AssumeRole</Message>
  </Error>
  <RequestId>4d0c2e1f</RequestId>
</ErrorResponse>)",
      "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "sts: AssumeRole: AccessDenied: User: arn:aws:iam::1:user/w is not authorized to "
            "perform: sts:AssumeRole");
}

TEST(AssumeRole, MissingPartsAreErrors) {
  EXPECT_FALSE(parse_assume_role_response("<html>nope</html>", ""));
  EXPECT_FALSE(parse_assume_role_response(
      "<Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey>"
      "<SessionToken>T</SessionToken><Expiration>soon</Expiration></Credentials>",
      ""));
  EXPECT_FALSE(parse_assume_role_response(
      "<Credentials><AccessKeyId>A</AccessKeyId><SecretAccessKey>S</SecretAccessKey>"
      "<Expiration>2019-11-09T13:34:41Z</Expiration></Credentials>",
      ""));
}

}  // namespace
