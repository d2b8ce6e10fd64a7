// The certificate issuer against a real redis-server and Pebble: a challenge that fails (nothing
// answers where Pebble validates) is recorded on the domain with its reason and a backoff; a
// lease held by another worker means no pass; the account key is kept sealed in Redis. Issuance
// through the real proxy is tests/integration/acme_itest.cpp.
#include <boost/asio.hpp>

#include <gtest/gtest.h>

#include "dp/redis/client.hpp"
#include "dp/state/domains.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/options.hpp"
#include "dp/worker/certificates.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

const std::string platform_key_hex(64, 'a');

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

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

}  // namespace
