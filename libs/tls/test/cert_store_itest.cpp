// cert_store and challenge_store against a real redis-server.
#include <gtest/gtest.h>

#include "dp/redis/client.hpp"
#include "dp/redis/subscriber.hpp"
#include "dp/test/async.hpp"
#include "dp/test/certificates.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/options.hpp"
#include "dp/tls/cert_store.hpp"

namespace {

namespace asio = boost::asio;

dp::tls::platform_key test_key(char digit = '7') {
  return *dp::tls::platform_key::from_hex(std::string(64, digit));
}

TEST(tls_cert_store, put_seals_the_key_publishes_and_get_opens_it) {
  dp::test::redis_server server;
  dp::test::temp_dir dir;
  auto pair = dp::test::make_certificate(dir.path(), "shop", {"shop.example.com"});
  asio::io_context ioc;
  dp::redis::client redis(ioc.get_executor(), dp::test::redis_options(server));
  dp::redis::subscriber events(ioc.get_executor(), dp::test::redis_options(server));
  dp::proto::keys keys;
  dp::tls::cert_store store(redis, keys, test_key());
  dp::test::run_async(ioc, [&]() -> asio::awaitable<void> {
    CO_ASSERT_TRUE(co_await events.subscribe(keys.certificates_channel()));
    auto put = co_await store.put("shop.example.com", pair.chain_pem, pair.key_pem);
    CO_ASSERT_TRUE(put);
    auto msg = co_await events.next();
    CO_ASSERT_TRUE(msg);
    EXPECT_EQ(dp::tls::parse_certificate_event(msg->payload),
              std::optional<std::string>("shop.example.com"));

    // At rest the key is sealed: no PEM in Redis.
    auto raw = co_await redis.exec("HGET", keys.certificate("shop.example.com"), "key");
    CO_ASSERT_TRUE(raw);
    EXPECT_TRUE(raw->as_string().starts_with("v1:"));
    EXPECT_EQ(raw->as_string().find("PRIVATE KEY"), std::string::npos);

    auto got = co_await store.get("shop.example.com");
    CO_ASSERT_TRUE(got && got->has_value());
    EXPECT_EQ((*got)->chain_pem, pair.chain_pem);
    EXPECT_EQ((*got)->key_pem, pair.key_pem);
    EXPECT_GT((*got)->not_after_ms, 0);

    auto listed = co_await store.list();
    CO_ASSERT_TRUE(listed && listed->size() == 1u);
    EXPECT_EQ((*listed)[0].name, "shop.example.com");
    EXPECT_EQ((*listed)[0].not_after_ms, (*got)->not_after_ms);

    // Another platform key cannot open it.
    dp::tls::cert_store other(redis, keys, test_key('8'));
    auto refused = co_await other.get("shop.example.com");
    EXPECT_TRUE(!refused && refused.error().is(dp::errc::forbidden));

    auto missing = co_await store.get("none.example.com");
    EXPECT_TRUE(missing && !missing->has_value());

    CO_ASSERT_TRUE(co_await store.remove("shop.example.com"));
    auto removed = co_await events.next();
    CO_ASSERT_TRUE(removed);
    EXPECT_EQ(dp::tls::parse_certificate_event(removed->payload),
              std::optional<std::string>("shop.example.com"));
    auto gone = co_await store.get("shop.example.com");
    EXPECT_TRUE(gone && !gone->has_value());
    events.close();
    redis.close();
  }());
}

TEST(tls_cert_store, put_refuses_a_key_that_is_not_the_certificates) {
  dp::test::redis_server server;
  dp::test::temp_dir dir;
  auto a = dp::test::make_certificate(dir.path(), "a", {"a.example.com"});
  auto b = dp::test::make_certificate(dir.path(), "b", {"b.example.com"});
  asio::io_context ioc;
  dp::redis::client redis(ioc.get_executor(), dp::test::redis_options(server));
  dp::tls::cert_store store(redis, dp::proto::keys{}, test_key());
  dp::test::run_async(ioc, [&]() -> asio::awaitable<void> {
    auto put = co_await store.put("a.example.com", a.chain_pem, b.key_pem);
    EXPECT_TRUE(!put && put.error().is(dp::errc::invalid_argument));
    auto listed = co_await store.list();
    EXPECT_TRUE(listed && listed->empty());
    redis.close();
  }());
}

TEST(tls_challenge_store, answers_expire_with_their_ttl) {
  dp::test::redis_server server;
  asio::io_context ioc;
  dp::redis::client redis(ioc.get_executor(), dp::test::redis_options(server));
  dp::proto::keys keys;
  dp::tls::challenge_store challenges(redis, keys);
  dp::test::run_async(ioc, [&]() -> asio::awaitable<void> {
    CO_ASSERT_TRUE(co_await challenges.put("tok", "tok.thumb", std::chrono::seconds(300)));
    auto got = co_await challenges.get("tok");
    EXPECT_TRUE(got && *got == std::optional<std::string>("tok.thumb"));
    auto ttl = co_await redis.exec("TTL", keys.acme_challenge("tok"));
    CO_ASSERT_TRUE(ttl);
    EXPECT_GT(ttl->as_integer(), 0);
    EXPECT_LE(ttl->as_integer(), 300);
    CO_ASSERT_TRUE(co_await challenges.remove("tok"));
    auto gone = co_await challenges.get("tok");
    EXPECT_TRUE(gone && !gone->has_value());
    redis.close();
  }());
}

}  // namespace
