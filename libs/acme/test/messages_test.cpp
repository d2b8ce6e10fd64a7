#include "dp/acme/messages.hpp"

#include <gtest/gtest.h>

namespace {

using namespace std::chrono_literals;

TEST(AcmeMessages, DirectoryNeedsItsThreeUrls) {
  auto d = dp::acme::parse_directory(
      R"({"newNonce":"https://ca/nonce","newAccount":"https://ca/acct","newOrder":"https://ca/order","meta":{}})");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->new_order, "https://ca/order");
  EXPECT_FALSE(dp::acme::parse_directory(R"({"newNonce":"x"})").has_value());
  EXPECT_FALSE(dp::acme::parse_directory("<html>").has_value());
}

TEST(AcmeMessages, ProblemTypesCompareByTheirAcmeName) {
  auto p = dp::acme::parse_problem(
      R"({"type":"urn:ietf:params:acme:error:badNonce","detail":"stale","status":400})");
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE(p->is("badNonce"));
  EXPECT_FALSE(p->is("Nonce"));
  EXPECT_FALSE(p->is("rateLimited"));
  EXPECT_EQ(p->status, 400);
  EXPECT_EQ(p->describe(), "urn:ietf:params:acme:error:badNonce: stale");
  EXPECT_FALSE(dp::acme::parse_problem(R"({"detail":"no type"})").has_value());
}

TEST(AcmeMessages, AuthorizationNamesTheFailedChallengesError) {
  auto a = dp::acme::parse_authorization(R"({
    "identifier": {"type": "dns", "value": "example.test"},
    "status": "invalid",
    "challenges": [
      {"type": "dns-01", "url": "https://ca/c/1", "token": "t1", "status": "pending"},
      {"type": "http-01", "url": "https://ca/c/2", "token": "t2", "status": "invalid",
       "error": {"type": "urn:ietf:params:acme:error:connection", "detail": "refused"}}
    ]})");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->identifier, "example.test");
  ASSERT_NE(a->find("http-01"), nullptr);
  EXPECT_EQ(a->find("http-01")->token, "t2");
  EXPECT_EQ(a->find("tls-alpn-01"), nullptr);
  ASSERT_TRUE(a->failure().has_value());
  EXPECT_TRUE(a->failure()->is("connection"));
}

TEST(AcmeMessages, OrderListsAuthorizationsAndItsCertificate) {
  auto o = dp::acme::parse_order(R"({
    "status": "valid", "authorizations": ["https://ca/a/1", "https://ca/a/2"],
    "finalize": "https://ca/f/1", "certificate": "https://ca/cert/1"})");
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->authorizations.size(), 2u);
  EXPECT_EQ(o->certificate, "https://ca/cert/1");
  EXPECT_FALSE(o->error.has_value());
  EXPECT_FALSE(dp::acme::parse_order(R"({"status":"pending"})").has_value());
}

TEST(AcmeMessages, RetryAfterInSecondsOrAsAnHttpDate) {
  auto now = std::chrono::system_clock::from_time_t(1445412480);  // Wed, 21 Oct 2015 07:28:00
  EXPECT_EQ(dp::acme::parse_retry_after("120", now), 120s);
  EXPECT_EQ(dp::acme::parse_retry_after(" 5 ", now), 5s);
  EXPECT_EQ(dp::acme::parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now), 120s);
  EXPECT_EQ(dp::acme::parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), 0s);
  EXPECT_FALSE(dp::acme::parse_retry_after("", now).has_value());
  EXPECT_FALSE(dp::acme::parse_retry_after("soon", now).has_value());
}

}  // namespace
