// record_deployment: a deployment built at once (build-runner build from GIT_REPOSITORY_URL) is
// recorded and its immutable alias reserved, but no job is queued.
#include <gtest/gtest.h>

#include "dp/core/clock.hpp"
#include "dp/core/id.hpp"
#include "dp/redis/client.hpp"
#include "dp/state/records.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/options.hpp"

namespace {

namespace asio = boost::asio;

TEST(record_deployment, records_without_queueing) {
  dp::test::redis_server server;
  dp::test::run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dp::redis::client redis(ex, dp::test::redis_options(server));
    dp::state::records records(redis, dp::proto::keys("r:"));
    dp::proto::deployment d;
    d.id = dp::new_deployment_id();
    d.project = "shop";
    d.git_url = "https://example.com/shop.git";
    d.created_at = dp::now_ms();
    auto r = co_await records.record_deployment(d);
    EXPECT_TRUE(r);
    EXPECT_EQ(d.alias, "shop--" + std::string(dp::short_id(d.id)));
    auto got = co_await records.get_deployment(d.id);
    EXPECT_TRUE(got && got->status == dp::proto::deployment_status::queued);
    EXPECT_EQ(*co_await records.queue_length(), 0);
    EXPECT_EQ(*co_await records.resolve_alias(*d.alias), d.id);
    EXPECT_EQ(*co_await records.deployment_count("shop"), 1);
    // The same id again: the alias is taken.
    auto again = co_await records.record_deployment(d);
    EXPECT_TRUE(!again && again.error().is(dp::errc::conflict));
    redis.close();
  });
}

}  // namespace
