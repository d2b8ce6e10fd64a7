// Custom domains through the REST API: input checks, one owner per domain, options, a branch's
// domain, ownership proven by a TXT record (a real DNS server on loopback), and a domain that
// cannot prove ownership staying unrouted with the reason recorded, and what the certificate store
// and the issuer report of a domain's certificate and its OCSP stapling. (Added -> verified ->
// served through the real proxy: tests/integration/domains_itest.cpp.)
#include "api_itest_support.hpp"
#include "dp/core/clock.hpp"
#include "dp/core/preview_alias.hpp"
#include "dp/state/domains.hpp"
#include "dp/test/ocsp.hpp"
#include "dp/tls/cert_store.hpp"
#include "dp/tls/ocsp.hpp"

namespace {

using namespace dp::api::test;

class api_domains : public ::testing::Test {
 protected:
  // The HTTP check connects to a port nothing listens on; the TXT check asks dns_.
  api_domains()
      : s_({.domain_verify_address = "127.0.0.1:" + std::to_string(closed_port()),
            .dns_resolver = dns_.address()}) {}

  static uint16_t closed_port() { return dp::test::free_port(); }

  void make_project(const std::string& name) {
    auto r = s_.request(
        "POST", "/v1/projects",
        R"({"name":")" + name + R"(","git_url":"https://example.com/)" + name + R"(.git"})");
    ASSERT_EQ(r.status, 201) << r.body;
  }

  std::string token_of(const std::string& fqdn) {
    auto r = s_.request("GET", "/v1/projects/shop/domains/" + fqdn);
    return std::string(body_of(r).at("verification").at("token").as_string());
  }

  dp::test::dns_server dns_;
  api_server s_;
};

TEST_F(api_domains, add_list_get_patch_delete) {
  make_project("shop");
  auto r = s_.request("POST", "/v1/projects/shop/domains", R"({"domain":"Shop.Example.COM."})");
  ASSERT_EQ(r.status, 201) << r.body;
  auto d = body_of(r).as_object();
  EXPECT_EQ(d.at("domain"), "shop.example.com");
  EXPECT_EQ(d.at("project"), "shop");
  EXPECT_EQ(d.at("state"), "pending");
  EXPECT_EQ(d.at("primary"), false);
  EXPECT_EQ(d.at("certificate").at("status"), "none");
  std::string token(d.at("verification").at("token").as_string());
  EXPECT_EQ(token.size(), 32u);
  EXPECT_EQ(d.at("verification").at("url").as_string(),
            "http://shop.example.com/.well-known/dp-verify/" + token);

  r = s_.request("POST", "/v1/projects/shop/domains",
                 R"({"domain":"www.shop.example.com","primary":true,"hsts":true})");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(body_of(r).at("primary"), true);
  EXPECT_EQ(body_of(r).at("hsts"), true);

  r = s_.request("GET", "/v1/projects/shop/domains");
  ASSERT_EQ(r.status, 200) << r.body;
  auto list = body_of(r).at("domains").as_array();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].at("domain"), "shop.example.com");
  EXPECT_EQ(list[1].at("domain"), "www.shop.example.com");

  r = s_.request("PATCH", "/v1/projects/shop/domains/shop.example.com", R"({"primary":true})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_of(r).at("primary"), true);
  r = s_.request("GET", "/v1/projects/shop/domains/www.shop.example.com");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_of(r).at("primary"), false);
  EXPECT_EQ(
      s_.request("PATCH", "/v1/projects/shop/domains/shop.example.com", R"({"alias":"x"})").status,
      400);

  EXPECT_EQ(s_.request("DELETE", "/v1/projects/shop/domains/shop.example.com").status, 204);
  EXPECT_EQ(s_.request("GET", "/v1/projects/shop/domains/shop.example.com").status, 404);
  EXPECT_EQ(s_.request("DELETE", "/v1/projects/shop/domains/shop.example.com").status, 404);
}

using dp::now_ms;

// The issuer's outcomes as the worker records them, and certificates and OCSP responses put in
// the store as the worker puts them; the API shows each, and never the key.
TEST_F(api_domains, shows_the_certificate_and_its_ocsp_stapling) {
  make_project("shop");
  for (const char* fqdn : {"shop.example.com", "plain.example.com"}) {
    ASSERT_EQ(s_.request("POST", "/v1/projects/shop/domains",
                         std::string(R"({"domain":")") + fqdn + R"("})")
                  .status,
              201);
  }
  auto certificate_of = [&](const std::string& fqdn) {
    auto r = s_.request("GET", "/v1/projects/shop/domains/" + fqdn);
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body.find("PRIVATE KEY"), std::string::npos) << r.body;
    return body_of(r).at("certificate").as_object();
  };
  auto c = certificate_of("shop.example.com");
  EXPECT_EQ(c.at("status"), "none");
  EXPECT_TRUE(c.at("issuer").is_null());
  EXPECT_TRUE(c.at("not_after").is_null());
  EXPECT_TRUE(c.at("ocsp").is_null());

  dp::state::domains domains(s_.redis(), dp::proto::keys{});
  dp::tls::cert_store store(s_.redis(), dp::proto::keys{},
                            *dp::tls::platform_key::from_hex(std::string(64, 'e')));
  auto set = [&](const std::string& fqdn, dp::state::certificate_status status) {
    auto r = s_.on_io([&]() { return domains.set_certificate(fqdn, status); });
    ASSERT_TRUE(r) << r.error().message;
  };
  // An order under way, then a failed one.
  set("shop.example.com", {"pending", "", 0});
  EXPECT_EQ(certificate_of("shop.example.com").at("status"), "issuing");
  int64_t retry_at = now_ms() + 300'000;
  set("shop.example.com", {"failed", "urn:ietf:params:acme:error:connection: refused", retry_at});
  c = certificate_of("shop.example.com");
  EXPECT_EQ(c.at("status"), "failed");
  EXPECT_EQ(c.at("error"), "urn:ietf:params:acme:error:connection: refused");
  EXPECT_EQ(c.at("next_attempt"), retry_at);
  EXPECT_TRUE(c.at("ocsp").is_null());

  // Issued by a CA that runs OCSP: the store holds it, nothing stapled yet.
  dp::test::temp_dir dir("dp-api-ocsp");
  dp::test::test_ca ca(dir.path(), "Shop Test CA", "http://127.0.0.1:9/ocsp");
  auto leaf = ca.issue("shop", {"shop.example.com"});
  auto plain = ca.issue("plain", {"plain.example.com"}, false);
  auto put = [&](const std::string& fqdn, const dp::test::pem_pair& pair) {
    auto r = s_.on_io([&]() { return store.put(fqdn, pair.chain_pem, pair.key_pem); });
    ASSERT_TRUE(r) << r.error().message;
  };
  // Stored while the domain's record still marks the order under way (the worker records the
  // outcome next): issued, and the renewal time comes from the stored expiry, never null.
  set("shop.example.com", {"pending", "", 0});
  put("shop.example.com", leaf);
  constexpr int64_t renew_before_ms = 30 * 86'400'000LL;
  c = certificate_of("shop.example.com");
  EXPECT_EQ(c.at("status"), "issued");
  EXPECT_EQ(c.at("next_attempt").as_int64(), c.at("not_after").as_int64() - renew_before_ms);
  // No worker holds lock:acme: the mark is a dead worker's, nothing is being renewed.
  EXPECT_EQ(c.at("renewing"), false);
  auto lease = [&](std::vector<std::string> command) {
    auto r = s_.on_io([&]() { return s_.redis().exec(std::move(command)); });
    ASSERT_TRUE(r) << r.error().message;
  };
  lease({"SET", dp::proto::keys{}.acme_lock(), "worker-a"});
  EXPECT_EQ(certificate_of("shop.example.com").at("renewing"), true);
  lease({"DEL", dp::proto::keys{}.acme_lock()});

  set("shop.example.com", {"issued", "", 0});
  c = certificate_of("shop.example.com");
  EXPECT_EQ(c.at("status"), "issued");
  EXPECT_EQ(c.at("issuer"), "CN=Shop Test CA");
  EXPECT_GT(c.at("not_after").as_int64(), now_ms() + 19 * 86'400'000LL);
  EXPECT_GT(c.at("stored_at").as_int64(), now_ms() - 60'000);
  EXPECT_TRUE(c.at("error").is_null());
  EXPECT_EQ(c.at("renewing"), false);
  EXPECT_EQ(c.at("next_attempt").as_int64(), c.at("not_after").as_int64() - renew_before_ms);
  auto ocsp = c.at("ocsp").as_object();
  EXPECT_EQ(ocsp.at("status"), "pending");
  EXPECT_EQ(ocsp.at("responder"), "http://127.0.0.1:9/ocsp");
  EXPECT_TRUE(ocsp.at("next_update").is_null());
  EXPECT_TRUE(ocsp.at("next_refresh").is_null());

  // The responder could not be reached: the reason and the retry.
  int64_t ocsp_retry = now_ms() + 300'000;
  auto failed = s_.on_io([&]() {
    return store.ocsp_failed("shop.example.com", leaf.chain_pem, "connection refused", ocsp_retry);
  });
  ASSERT_TRUE(failed) << failed.error().message;
  ocsp = certificate_of("shop.example.com").at("ocsp").as_object();
  EXPECT_EQ(ocsp.at("status"), "failed");
  EXPECT_EQ(ocsp.at("error"), "connection refused");
  EXPECT_EQ(ocsp.at("failures"), 1);
  EXPECT_EQ(ocsp.at("next_refresh"), ocsp_retry);

  // A response the CA's responder signed: stapled until its nextUpdate.
  auto request = dp::tls::ocsp_request(leaf.chain_pem);
  ASSERT_TRUE(request) << request.error().message;
  auto der = ca.respond(*request, 60);
  auto validity = dp::tls::check_ocsp_response(leaf.chain_pem, der, now_ms());
  ASSERT_TRUE(validity) << validity.error().message;
  int64_t refresh_at = now_ms() + 1'800'000;
  auto stapled = s_.on_io([&]() {
    return store.put_ocsp("shop.example.com", leaf.chain_pem, der, *validity, refresh_at);
  });
  ASSERT_TRUE(stapled && *stapled);
  ocsp = certificate_of("shop.example.com").at("ocsp").as_object();
  EXPECT_EQ(ocsp.at("status"), "stapled");
  EXPECT_EQ(ocsp.at("this_update"), validity->this_update_ms);
  EXPECT_EQ(ocsp.at("next_update"), validity->next_update_ms);
  EXPECT_TRUE(ocsp.at("error").is_null());
  EXPECT_EQ(ocsp.at("failures"), 0);
  EXPECT_EQ(ocsp.at("next_refresh"), refresh_at);

  // A renewal that failed keeps the certificate served: issued, with the renewal's error.
  set("shop.example.com",
      {"failed", "urn:ietf:params:acme:error:rateLimited: slow down", retry_at});
  c = certificate_of("shop.example.com");
  EXPECT_EQ(c.at("status"), "issued");
  EXPECT_EQ(c.at("error"), "urn:ietf:params:acme:error:rateLimited: slow down");
  EXPECT_EQ(c.at("next_attempt"), retry_at);
  EXPECT_EQ(c.at("ocsp").at("status"), "stapled");

  // A CA without a responder (Let's Encrypt since 2025, Pebble): nothing to staple. The list
  // shows the same objects.
  put("plain.example.com", plain);
  auto listed = body_of(s_.request("GET", "/v1/projects/shop/domains")).at("domains").as_array();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].at("domain"), "plain.example.com");
  EXPECT_EQ(listed[0].at("certificate").at("status"), "issued");
  EXPECT_EQ(listed[0].at("certificate").at("ocsp").at("status"), "not_available");
  EXPECT_TRUE(listed[0].at("certificate").at("ocsp").at("responder").is_null());
  EXPECT_EQ(listed[1].at("certificate").at("ocsp").at("status"), "stapled");
}

TEST_F(api_domains, a_domain_of_another_project_is_409) {
  make_project("shop");
  make_project("rival");
  ASSERT_EQ(
      s_.request("POST", "/v1/projects/shop/domains", R"({"domain":"shop.example.com"})").status,
      201);
  auto r = s_.request("POST", "/v1/projects/rival/domains", R"({"domain":"shop.example.com"})");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(error_code_of(r), "conflict");
  // The rival sees nothing of it and cannot verify or remove it.
  EXPECT_EQ(s_.request("GET", "/v1/projects/rival/domains/shop.example.com").status, 404);
  EXPECT_EQ(s_.request("POST", "/v1/projects/rival/domains/shop.example.com/verify").status, 404);
  EXPECT_EQ(s_.request("DELETE", "/v1/projects/rival/domains/shop.example.com").status, 404);
  EXPECT_EQ(s_.request("GET", "/v1/projects/shop/domains/shop.example.com").status, 200);
}

TEST_F(api_domains, bad_domains_are_400) {
  make_project("shop");
  for (const char* body :
       {R"({"domain":"localhost"})", R"({"domain":"a..b.com"})", R"({"domain":"-a.com"})",
        R"({"domain":"10.0.0.1"})", R"({"domain":"shop.localhost"})", R"({"domain":"a b.com"})",
        R"({"domain":"x_y.com"})", R"({"domain":1})", R"({})",
        R"({"domain":"ok.example.com","primary":"yes"})",
        R"({"domain":"ok.example.com","color":"red"})"}) {
    auto r = s_.request("POST", "/v1/projects/shop/domains", body);
    EXPECT_EQ(r.status, 400) << body << ": " << r.body;
  }
  EXPECT_EQ(s_.request("POST", "/v1/projects/nope/domains", R"({"domain":"a.example.com"})").status,
            404);
  auto r = s_.request("GET", "/v1/projects/shop/domains");
  EXPECT_TRUE(body_of(r).at("domains").as_array().empty());
}

TEST_F(api_domains, a_domain_that_does_not_prove_ownership_stays_pending_and_unrouted) {
  make_project("shop");
  ASSERT_EQ(
      s_.request("POST", "/v1/projects/shop/domains", R"({"domain":"shop.example.com"})").status,
      201);
  auto r = s_.request("POST", "/v1/projects/shop/domains/shop.example.com/verify");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(r.body.find("ownership not proven"), std::string::npos) << r.body;
  r = s_.request("GET", "/v1/projects/shop/domains/shop.example.com");
  EXPECT_EQ(body_of(r).at("state"), "pending");
  // Both proofs' reasons are kept on the domain.
  auto got = body_of(r);
  const auto& v = got.at("verification");
  std::string why(v.at("error").as_string());
  EXPECT_NE(why.find("no TXT record _dp-verify.shop.example.com"), std::string::npos) << why;
  EXPECT_NE(why.find("could not be fetched"), std::string::npos) << why;
  EXPECT_TRUE(v.at("failed_at").is_int64());
  EXPECT_TRUE(v.at("verified_by").is_null());
  auto routed = s_.on_io([&]() { return s_.records().resolve_domain("shop.example.com"); });
  ASSERT_TRUE(routed);
  EXPECT_FALSE(routed->has_value());
}

TEST_F(api_domains, a_txt_record_with_the_token_proves_ownership) {
  make_project("shop");
  auto r = s_.request("POST", "/v1/projects/shop/domains", R"({"domain":"shop.example.com"})");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(body_of(r).at("verification").at("txt_name"), "_dp-verify.shop.example.com");
  auto token = token_of("shop.example.com");

  dns_.add_txt("_dp-verify.shop.example.com", "stale-token");
  r = s_.request("POST", "/v1/projects/shop/domains/shop.example.com/verify");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(r.body.find(R"(holds \"stale-token\", not the token)"), std::string::npos) << r.body;
  r = s_.request("GET", "/v1/projects/shop/domains/shop.example.com");
  EXPECT_NE(body_of(r).at("verification").at("error").as_string().find("stale-token"),
            std::string::npos)
      << r.body;

  // One of the name's records holding the token is enough.
  dns_.add_txt("_dp-verify.shop.example.com", token);
  r = s_.request("POST", "/v1/projects/shop/domains/shop.example.com/verify");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto& d = body_of(r);
  EXPECT_EQ(d.at("state"), "verified");
  EXPECT_EQ(d.at("verification").at("verified_by"), "txt");
  EXPECT_TRUE(d.at("verification").at("error").is_null());
  auto routed = s_.on_io([&]() { return s_.records().resolve_domain("shop.example.com"); });
  ASSERT_TRUE(routed);
  EXPECT_EQ(*routed, std::optional<std::string>("shop"));
}

TEST_F(api_domains, a_domain_can_serve_a_branch) {
  make_project("shop");
  auto r = s_.request("POST", "/v1/projects/shop/domains",
                      R"({"domain":"staging.example.com","branch":"staging"})");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(body_of(r).at("branch"), "staging");
  EXPECT_EQ(body_of(r).at("alias").as_string(), dp::branch_alias("shop", "staging"));
  r = s_.request("POST", "/v1/projects/shop/domains", R"({"domain":"shop.example.com"})");
  EXPECT_TRUE(body_of(r).at("branch").is_null());
  EXPECT_EQ(body_of(r).at("alias"), "shop");

  r = s_.request("PATCH", "/v1/projects/shop/domains/staging.example.com",
                 R"({"branch":"feature/x","hsts":true})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_of(r).at("branch"), "feature/x");
  EXPECT_EQ(body_of(r).at("alias").as_string(), dp::branch_alias("shop", "feature/x"));
  EXPECT_EQ(body_of(r).at("hsts"), true);
  r = s_.request("PATCH", "/v1/projects/shop/domains/staging.example.com", R"({"branch":null})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(body_of(r).at("branch").is_null());
  EXPECT_EQ(body_of(r).at("alias"), "shop");

  for (const char* body :
       {R"({"domain":"b.example.com","branch":"a..b"})",
        R"({"domain":"b.example.com","branch":"two words"})",
        R"({"domain":"b.example.com","branch":""})", R"({"domain":"b.example.com","branch":7})"}) {
    r = s_.request("POST", "/v1/projects/shop/domains", body);
    EXPECT_EQ(r.status, 400) << body << ": " << r.body;
    EXPECT_NE(r.body.find("branch"), std::string::npos) << r.body;
  }
  r = s_.request("PATCH", "/v1/projects/shop/domains/staging.example.com", R"({"branch":"x~1"})");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(s_.request("GET", "/v1/projects/shop/domains/b.example.com").status, 404);
}

}  // namespace
