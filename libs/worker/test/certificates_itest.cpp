// The certificate issuer against a real redis-server and Pebble: a challenge that fails (nothing
// answers where Pebble validates) is recorded on the domain with its reason and a backoff; a
// lease held by another worker means no pass; the stored certificate, not the domain's record,
// decides a renewal; the account key is kept sealed in Redis. Issuance through the real proxy is
// tests/integration/acme_itest.cpp.
#include <boost/asio.hpp>

#include <gtest/gtest.h>

#include "dp/core/clock.hpp"
#include "dp/redis/client.hpp"
#include "dp/state/domains.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/ocsp.hpp"
#include "dp/test/options.hpp"
#include "dp/tls/cert_store.hpp"
#include "dp/worker/certificates.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

const std::string platform_key_hex(64, 'a');

using dp::now_ms;

class certificate_issuer_test : public ::testing::Test {
 protected:
  dp::worker::certificate_options options() const {
    dp::worker::certificate_options o;
    o.acme.directory_url = ca_.directory_url();
    o.acme.poll_interval = 100ms;
    o.ca_file = ca_.ca_file().string();
    o.holder = "worker-a";
    o.first_backoff = 600s;
    return o;
  }

  // A verified domain, as the api leaves it.
  asio::awaitable<void> add_verified(dp::state::domains& domains, const std::string& fqdn) {
    dp::state::domain d;
    d.fqdn = fqdn;
    d.project = "shop";
    d.alias = "shop";
    d.token = "t";
    d.created_at_ms = now_ms();
    auto added = co_await domains.add(d);
    CO_ASSERT_OK(added);
    auto verified = co_await domains.verify(fqdn, "shop");
    CO_ASSERT_OK(verified);
  }

  dp::test::redis_server redis_;
  // Pebble validates at a port where nothing listens: every challenge fails.
  dp::test::pebble ca_{dp::test::free_port()};
  dp::tls::platform_key key_ = *dp::tls::platform_key::from_hex(platform_key_hex);
};

TEST_F(certificate_issuer_test, AFailedChallengeIsRecordedWithItsReasonAndABackoff) {
  dp::test::run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dp::redis::client redis(ex, dp::test::redis_options(redis_));
    dp::proto::keys keys;
    dp::state::domains domains(redis, keys);
    co_await add_verified(domains, "down.example.test");
    dp::worker::certificate_issuer issuer(ex, redis, dp::test::redis_options(redis_), keys, key_,
                                          options());
    int64_t before = now_ms();
    auto stored = co_await issuer.pass();
    CO_ASSERT_OK(stored);
    EXPECT_EQ(*stored, 0);
    auto d = co_await domains.get("down.example.test");
    CO_ASSERT_OK(d);
    EXPECT_EQ(d->certificate.status, "failed");
    EXPECT_NE(d->certificate.error.find("down.example.test"), std::string::npos)
        << d->certificate.error;
    EXPECT_NE(d->certificate.error.find("connection"), std::string::npos) << d->certificate.error;
    EXPECT_GE(d->certificate.next_attempt_ms, before + 600'000);
    auto failures = co_await redis.exec("HGET", keys.acme_failures(), "down.example.test");
    CO_ASSERT_OK(failures);
    EXPECT_EQ(failures->as_string(), "1");
    // Within its backoff the domain is not tried again.
    auto again = co_await issuer.pass();
    CO_ASSERT_OK(again);
    auto failures_after = co_await redis.exec("HGET", keys.acme_failures(), "down.example.test");
    CO_ASSERT_OK(failures_after);
    EXPECT_EQ(failures_after->as_string(), "1");
    // The lease is given back after each pass.
    auto lock = co_await redis.exec("EXISTS", keys.acme_lock());
    CO_ASSERT_OK(lock);
    EXPECT_EQ(lock->as_integer(), 0);
    // The account key is in Redis, sealed (no PEM in the clear).
    auto account = co_await redis.exec("HGET", keys.acme_account(), "key");
    CO_ASSERT_OK(account);
    EXPECT_TRUE(account->as_string().starts_with("v1:"));
    EXPECT_EQ(account->as_string().find("PRIVATE KEY"), std::string::npos);
    redis.close();
  });
}

TEST_F(certificate_issuer_test, NoPassWhileAnotherWorkerHoldsTheLease) {
  dp::test::run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dp::redis::client redis(ex, dp::test::redis_options(redis_));
    dp::proto::keys keys;
    dp::state::domains domains(redis, keys);
    co_await add_verified(domains, "busy.example.test");
    auto held = co_await redis.exec("SET", keys.acme_lock(), "worker-b", "PX", "60000");
    CO_ASSERT_OK(held);
    dp::worker::certificate_issuer issuer(ex, redis, dp::test::redis_options(redis_), keys, key_,
                                          options());
    auto stored = co_await issuer.pass();
    CO_ASSERT_OK(stored);
    EXPECT_EQ(*stored, 0);
    auto d = co_await domains.get("busy.example.test");
    CO_ASSERT_OK(d);
    EXPECT_EQ(d->certificate.status, "");
    auto holder = co_await redis.exec("GET", keys.acme_lock());
    CO_ASSERT_OK(holder);
    EXPECT_EQ(holder->as_string(), "worker-b");
    redis.close();
  });
}

// What the store holds decides a renewal, not what the domain's record says of the last order:
// a certificate 60 days from expiry is left alone, one within 30 days is renewed (Pebble's
// challenge fails here, so the attempt shows as a failure, and the stored certificate stays).
TEST_F(certificate_issuer_test, RenewalIsDecidedByTheStoredCertificate) {
  dp::test::temp_dir dir;
  dp::test::test_ca ca(dir.path(), "Test CA", "http://127.0.0.1:9/ocsp");
  auto leaf = ca.issue("kept", {"kept.example.test"}, false);
  dp::test::run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dp::redis::client redis(ex, dp::test::redis_options(redis_));
    dp::proto::keys keys;
    dp::state::domains domains(redis, keys);
    dp::tls::cert_store store(redis, keys, key_);
    co_await add_verified(domains, "kept.example.test");
    CO_ASSERT_OK(co_await store.put("kept.example.test", leaf.chain_pem, leaf.key_pem));
    auto set_expiry = [&](int64_t not_after_ms) -> asio::awaitable<void> {
      auto r = co_await redis.exec("HSET", keys.certificate("kept.example.test"), "not_after_ms",
                                   std::to_string(not_after_ms));
      CO_ASSERT_OK(r);
    };
    co_await set_expiry(now_ms() + 60 * 86'400'000LL);
    dp::worker::certificate_issuer issuer(ex, redis, dp::test::redis_options(redis_), keys, key_,
                                          options());
    auto passed = co_await issuer.pass();
    CO_ASSERT_OK(passed);
    auto d = co_await domains.get("kept.example.test");
    CO_ASSERT_OK(d);
    EXPECT_EQ(d->certificate.status, "") << d->certificate.error;

    co_await set_expiry(now_ms() + 29 * 86'400'000LL);
    passed = co_await issuer.pass();
    CO_ASSERT_OK(passed);
    d = co_await domains.get("kept.example.test");
    CO_ASSERT_OK(d);
    EXPECT_EQ(d->certificate.status, "failed");
    auto kept = co_await store.get("kept.example.test");
    CO_ASSERT_TRUE(kept && kept->has_value());
    EXPECT_EQ((*kept)->chain_pem, leaf.chain_pem);
    redis.close();
  });
}

// OCSP under the lease: a stored certificate whose responder answers gets its response (checked,
// with a refresh time half-way through its validity); one whose responder is down records the
// reason and backs off; neither is asked again before its time.
TEST_F(certificate_issuer_test, OcspResponsesAreStoredAndFailuresBackOff) {
  dp::test::temp_dir dir;
  dp::test::temp_dir down_dir;
  auto port = dp::test::free_port();
  dp::test::test_ca ca(dir.path(), "Test CA", "http://127.0.0.1:" + std::to_string(port));
  dp::test::test_ca down_ca(down_dir.path(), "Down CA",
                            "http://127.0.0.1:" + std::to_string(dp::test::free_port()));
  auto shop = ca.issue("shop", {"shop.example.test"});
  auto down = down_ca.issue("down", {"down.example.test"});
  auto plain = ca.issue("plain", {"plain.example.test"}, false);
  auto responder = ca.serve(port);
  dp::test::run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dp::redis::client redis(ex, dp::test::redis_options(redis_));
    dp::proto::keys keys;
    dp::tls::cert_store store(redis, keys, key_);
    CO_ASSERT_OK(co_await store.put("shop.example.test", shop.chain_pem, shop.key_pem));
    CO_ASSERT_OK(co_await store.put("down.example.test", down.chain_pem, down.key_pem));
    CO_ASSERT_OK(co_await store.put("plain.example.test", plain.chain_pem, plain.key_pem));
    dp::worker::certificate_issuer issuer(ex, redis, dp::test::redis_options(redis_), keys, key_,
                                          options());
    int64_t before = now_ms();
    auto passed = co_await issuer.pass();
    CO_ASSERT_OK(passed);

    auto got = co_await store.get("shop.example.test");
    CO_ASSERT_TRUE(got && got->has_value());
    auto v = dp::tls::check_ocsp_response(shop.chain_pem, (*got)->ocsp_der, now_ms());
    CO_ASSERT_OK(v);
    auto listed = co_await store.list();
    CO_ASSERT_OK(listed);
    CO_ASSERT_EQ(listed->size(), 3u);
    const auto& down_info = (*listed)[0];
    const auto& plain_info = (*listed)[1];
    const auto& shop_info = (*listed)[2];
    EXPECT_EQ(shop_info.ocsp_next_update_ms, v->next_update_ms);
    EXPECT_EQ(shop_info.ocsp_refresh_at_ms, v->this_update_ms + 30 * 60'000);  // -nmin 60
    EXPECT_EQ(shop_info.ocsp_failures, 0);
    EXPECT_EQ(down_info.ocsp_failures, 1);
    EXPECT_NE(down_info.ocsp_error.find("127.0.0.1"), std::string::npos) << down_info.ocsp_error;
    EXPECT_GE(down_info.ocsp_refresh_at_ms, before + 600'000);
    EXPECT_EQ(plain_info.ocsp_url, "");
    EXPECT_EQ(plain_info.ocsp_refresh_at_ms, 0);
    auto plain_got = co_await store.get("plain.example.test");
    CO_ASSERT_TRUE(plain_got && plain_got->has_value());
    EXPECT_EQ((*plain_got)->ocsp_der, "");

    // Nothing is due in the next pass: the responder's absence changes nothing.
    responder->stop();
    passed = co_await issuer.pass();
    CO_ASSERT_OK(passed);
    auto again = co_await store.list();
    CO_ASSERT_OK(again);
    CO_ASSERT_EQ(again->size(), 3u);
    EXPECT_EQ((*again)[0].ocsp_failures, 1);
    EXPECT_EQ((*again)[2].ocsp_error, "");
    redis.close();
  });
}

}  // namespace
