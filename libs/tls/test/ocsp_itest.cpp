// OCSP requests and responses against a CA made in the test (openssl req/ca) and its responder
// (openssl ocsp, for one request file or as a server on a loopback port); the store's OCSP fields
// against a real redis-server.
#include <gtest/gtest.h>

#include <chrono>

#include "dp/core/clock.hpp"
#include "dp/http_client/client.hpp"
#include "dp/redis/client.hpp"
#include "dp/redis/subscriber.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/ocsp.hpp"
#include "dp/test/options.hpp"
#include "dp/tls/cert_store.hpp"
#include "dp/tls/ocsp.hpp"

namespace {

namespace asio = boost::asio;

using dp::now_ms;

std::string url_of(uint16_t port) {
  return "http://127.0.0.1:" + std::to_string(port);
}

std::string request_for(const dp::test::pem_pair& leaf) {
  auto der = dp::tls::ocsp_request(leaf.chain_pem);
  EXPECT_TRUE(der) << der.error().message;
  return der ? *der : std::string();
}

TEST(tls_ocsp, the_responder_url_comes_from_the_leafs_aia) {
  dp::test::temp_dir dir;
  dp::test::test_ca ca(dir.path(), "Test CA", "http://127.0.0.1:9/ocsp");
  auto with = ca.issue("with", {"with.example.com"});
  auto without = ca.issue("without", {"without.example.com"}, false);
  EXPECT_EQ(dp::tls::ocsp_responder_url(with.chain_pem), "http://127.0.0.1:9/ocsp");
  EXPECT_EQ(dp::tls::ocsp_responder_url(without.chain_pem), "");
  // A chain without its issuer cannot name the certificate to the responder.
  auto self_signed = dp::test::make_certificate(dir.path(), "self", {"self.example.com"});
  auto refused = dp::tls::ocsp_request(self_signed.chain_pem);
  EXPECT_TRUE(!refused && refused.error().is(dp::errc::invalid_argument));
}

TEST(tls_ocsp, a_good_response_from_the_issuers_responder_passes) {
  dp::test::temp_dir dir;
  dp::test::test_ca ca(dir.path(), "Test CA", url_of(9));
  auto leaf = ca.issue("leaf", {"shop.example.com"});
  auto response = ca.respond(request_for(leaf), 60);
  auto now = now_ms();
  auto v = dp::tls::check_ocsp_response(leaf.chain_pem, response, now);
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_LE(v->this_update_ms, now);
  EXPECT_GT(v->this_update_ms, now - 120'000);
  EXPECT_EQ(v->next_update_ms - v->this_update_ms, 60 * 60'000);
}

TEST(tls_ocsp, a_revoked_certificate_is_refused) {
  dp::test::temp_dir dir;
  dp::test::test_ca ca(dir.path(), "Test CA", url_of(9));
  auto leaf = ca.issue("leaf", {"shop.example.com"});
  ca.revoke("leaf");
  auto v = dp::tls::check_ocsp_response(leaf.chain_pem, ca.respond(request_for(leaf)), now_ms());
  ASSERT_FALSE(v);
  EXPECT_TRUE(v.error().is(dp::errc::protocol));
  EXPECT_NE(v.error().message.find("revoked"), std::string::npos) << v.error().message;
}

TEST(tls_ocsp, a_response_signed_for_another_issuer_is_refused) {
  dp::test::temp_dir dir;
  dp::test::temp_dir other_dir;
  dp::test::test_ca ca(dir.path(), "Test CA", url_of(9));
  dp::test::test_ca other(other_dir.path(), "Other CA", url_of(9));
  auto leaf = ca.issue("leaf", {"shop.example.com"});
  auto v = dp::tls::check_ocsp_response(leaf.chain_pem, ca.respond(request_for(leaf), 60, &other),
                                        now_ms());
  ASSERT_FALSE(v);
  EXPECT_NE(v.error().message.find("signature"), std::string::npos) << v.error().message;
}

TEST(tls_ocsp, a_response_for_another_certificate_is_refused) {
  dp::test::temp_dir dir;
  dp::test::test_ca ca(dir.path(), "Test CA", url_of(9));
  auto leaf = ca.issue("leaf", {"shop.example.com"});
  auto sibling = ca.issue("sibling", {"blog.example.com"});
  auto v = dp::tls::check_ocsp_response(leaf.chain_pem, ca.respond(request_for(sibling)), now_ms());
  ASSERT_FALSE(v);
  EXPECT_NE(v.error().message.find("does not answer for this certificate"), std::string::npos)
      << v.error().message;
}

TEST(tls_ocsp, an_expired_or_undated_response_is_refused) {
  dp::test::temp_dir dir;
  dp::test::test_ca ca(dir.path(), "Test CA", url_of(9));
  auto leaf = ca.issue("leaf", {"shop.example.com"});
  auto response = ca.respond(request_for(leaf), 60);
  auto v = dp::tls::check_ocsp_response(leaf.chain_pem, response, now_ms());
  ASSERT_TRUE(v) << v.error().message;
  auto expired = dp::tls::check_ocsp_response(leaf.chain_pem, response, v->next_update_ms);
  ASSERT_FALSE(expired);
  EXPECT_NE(expired.error().message.find("expired"), std::string::npos);
  auto early =
      dp::tls::check_ocsp_response(leaf.chain_pem, response, v->this_update_ms - 3'600'000);
  ASSERT_FALSE(early);
  EXPECT_NE(early.error().message.find("future"), std::string::npos);
  auto undated =
      dp::tls::check_ocsp_response(leaf.chain_pem, ca.respond(request_for(leaf), 0), now_ms());
  ASSERT_FALSE(undated);
  EXPECT_NE(undated.error().message.find("nextUpdate"), std::string::npos);
  auto garbage = dp::tls::check_ocsp_response(leaf.chain_pem, "not der", now_ms());
  EXPECT_FALSE(garbage);
}

TEST(tls_ocsp, fetch_asks_the_responder_over_http) {
  dp::test::temp_dir dir;
  auto port = dp::test::free_port();
  dp::test::test_ca ca(dir.path(), "Test CA", url_of(port));
  auto leaf = ca.issue("leaf", {"shop.example.com"});
  auto plain = ca.issue("plain", {"plain.example.com"}, false);
  auto revoked = ca.issue("revoked", {"old.example.com"});
  ca.revoke("revoked");
  auto responder = ca.serve(port);
  asio::io_context ioc;
  dp::http_client::client http(ioc.get_executor());
  dp::test::run_async(ioc, [&]() -> asio::awaitable<void> {
    auto got = co_await dp::tls::fetch_ocsp_response(http, leaf.chain_pem);
    CO_ASSERT_OK(got);
    auto v = dp::tls::check_ocsp_response(leaf.chain_pem, got->der, now_ms());
    EXPECT_TRUE(v);
    EXPECT_EQ(got->validity.next_update_ms - got->validity.this_update_ms, 60 * 60'000);

    auto none = co_await dp::tls::fetch_ocsp_response(http, plain.chain_pem);
    EXPECT_TRUE(!none && none.error().is(dp::errc::not_found));
    auto refused = co_await dp::tls::fetch_ocsp_response(http, revoked.chain_pem);
    EXPECT_TRUE(!refused && refused.error().message.find("revoked") != std::string::npos);
  }());
  responder->stop();
  dp::test::run_async(ioc, [&]() -> asio::awaitable<void> {
    auto down = co_await dp::tls::fetch_ocsp_response(http, leaf.chain_pem,
                                                      std::chrono::milliseconds(3000));
    EXPECT_TRUE(!down && down.error().is(dp::errc::unavailable));
  }());
}

dp::tls::platform_key test_key() {
  return *dp::tls::platform_key::from_hex(std::string(64, '7'));
}

TEST(tls_ocsp, the_store_keeps_a_response_only_for_the_chain_it_was_checked_against) {
  dp::test::redis_server server;
  dp::test::temp_dir dir;
  dp::test::test_ca ca(dir.path(), "Test CA", url_of(9));
  auto leaf = ca.issue("leaf", {"shop.example.com"});
  auto renewed = ca.issue("renewed", {"shop.example.com"});
  auto response = ca.respond(request_for(leaf), 60);
  auto validity = *dp::tls::check_ocsp_response(leaf.chain_pem, response, now_ms());
  asio::io_context ioc;
  dp::redis::client redis(ioc.get_executor(), dp::test::redis_options(server));
  dp::redis::subscriber events(ioc.get_executor(), dp::test::redis_options(server));
  dp::proto::keys keys;
  dp::tls::cert_store store(redis, keys, test_key());
  dp::test::run_async(ioc, [&]() -> asio::awaitable<void> {
    CO_ASSERT_TRUE(co_await store.put("shop.example.com", leaf.chain_pem, leaf.key_pem));
    auto listed = co_await store.list();
    CO_ASSERT_TRUE(listed && listed->size() == 1u);
    EXPECT_EQ((*listed)[0].ocsp_url, url_of(9));
    EXPECT_EQ((*listed)[0].ocsp_refresh_at_ms, 0);

    // A failure is recorded with its reason and the time of the next attempt.
    auto failures = co_await store.ocsp_failed("shop.example.com", leaf.chain_pem, "down", 123);
    EXPECT_TRUE(failures && *failures == 1);
    failures = co_await store.ocsp_failed("shop.example.com", leaf.chain_pem, "still down", 456);
    EXPECT_TRUE(failures && *failures == 2);
    listed = co_await store.list();
    CO_ASSERT_TRUE(listed && listed->size() == 1u);
    EXPECT_EQ((*listed)[0].ocsp_error, "still down");
    EXPECT_EQ((*listed)[0].ocsp_failures, 2);
    EXPECT_EQ((*listed)[0].ocsp_refresh_at_ms, 456);

    CO_ASSERT_TRUE(co_await events.subscribe(keys.certificates_channel()));
    auto stored =
        co_await store.put_ocsp("shop.example.com", leaf.chain_pem, response, validity, 789);
    EXPECT_TRUE(stored && *stored);
    auto msg = co_await events.next();
    CO_ASSERT_TRUE(msg);
    EXPECT_EQ(dp::tls::parse_certificate_event(msg->payload),
              std::optional<std::string>("shop.example.com"));
    auto got = co_await store.get("shop.example.com");
    CO_ASSERT_TRUE(got && got->has_value());
    EXPECT_EQ((*got)->ocsp_der, response);  // binary, byte for byte
    listed = co_await store.list();
    CO_ASSERT_TRUE(listed && listed->size() == 1u);
    EXPECT_EQ((*listed)[0].ocsp_next_update_ms, validity.next_update_ms);
    EXPECT_EQ((*listed)[0].ocsp_refresh_at_ms, 789);
    EXPECT_EQ((*listed)[0].ocsp_failures, 0);
    EXPECT_EQ((*listed)[0].ocsp_error, "");

    // A renewal drops the old leaf's response; a response for the old chain is not stored.
    CO_ASSERT_TRUE(co_await store.put("shop.example.com", renewed.chain_pem, renewed.key_pem));
    got = co_await store.get("shop.example.com");
    CO_ASSERT_TRUE(got && got->has_value());
    EXPECT_EQ((*got)->ocsp_der, "");
    stored = co_await store.put_ocsp("shop.example.com", leaf.chain_pem, response, validity, 789);
    EXPECT_TRUE(stored && !*stored);
    failures = co_await store.ocsp_failed("shop.example.com", leaf.chain_pem, "late", 1);
    EXPECT_TRUE(failures && *failures == 0);
    events.close();
    redis.close();
  }());
}

}  // namespace
