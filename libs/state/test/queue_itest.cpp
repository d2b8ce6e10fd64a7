// The queue's lease, lock and claim operations against a real redis-server.
#include <gtest/gtest.h>

#include "dp/core/id.hpp"
#include "dp/redis/client.hpp"
#include "dp/state/queue.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/options.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

using dp::test::run_async;

TEST(queue_test, take_hold_finish_claim) {
  dp::test::redis_server server;
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dp::redis::client redis(ex, dp::test::redis_options(server));
    dp::redis::client blocking(ex, dp::test::redis_options(server));
    dp::proto::keys keys("t:");
    dp::state::queue q(redis, keys);
    auto none = co_await q.take(blocking, 100ms);
    CO_ASSERT_TRUE(none && !*none);

    const std::string text = R"({"job":1})";
    const std::string id = dp::new_deployment_id();
    EXPECT_TRUE(co_await redis.exec("LPUSH", keys.queue(), text));
    auto taken = co_await q.take(blocking, 100ms);
    CO_ASSERT_TRUE(taken && *taken == text);
    const std::vector<std::string> just_text{text};
    EXPECT_EQ(*co_await q.processing(), just_text);

    EXPECT_TRUE(*co_await q.hold(id, text, "w1", 10s));
    EXPECT_FALSE(*co_await q.hold(id, text, "w2", 10s));  // someone else's
    EXPECT_FALSE(*co_await q.claim_expired(id, text, "reaper", 10s));
    // An expired lease is taken back while the job is still in the processing list...
    EXPECT_TRUE(co_await redis.exec("DEL", keys.lease(id)));
    EXPECT_TRUE(*co_await q.hold(id, text, "w1", 10s));
    // ... but once the reaper claimed it, it is lost to the old holder.
    EXPECT_TRUE(co_await redis.exec("DEL", keys.lease(id)));
    EXPECT_TRUE(*co_await q.claim_expired(id, text, "reaper", 10s));
    EXPECT_FALSE(*co_await q.hold(id, text, "w1", 10s));
    EXPECT_TRUE(co_await q.finish(id, text, "reaper"));
    EXPECT_TRUE((*co_await q.processing()).empty());
    EXPECT_FALSE(*co_await q.has_lease(id));
    // Gone from the processing list: neither a holder nor the reaper can take it.
    EXPECT_FALSE(*co_await q.hold(id, text, "w1", 10s));
    EXPECT_FALSE(*co_await q.claim_expired(id, text, "reaper", 10s));
  });
}

TEST(queue_test, project_lock_and_newer_active) {
  dp::test::redis_server server;
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dp::redis::client redis(ex, dp::test::redis_options(server));
    dp::proto::keys keys("t:");
    dp::state::queue q(redis, keys);
    EXPECT_TRUE(*co_await q.lock_project("shop", "a", 10s));
    EXPECT_TRUE(*co_await q.lock_project("shop", "a", 10s));  // refresh
    EXPECT_FALSE(*co_await q.lock_project("shop", "b", 10s));
    EXPECT_TRUE(co_await q.unlock_project("shop", "b"));  // not b's: stays
    EXPECT_FALSE(*co_await q.lock_project("shop", "b", 10s));
    EXPECT_TRUE(co_await q.unlock_project("shop", "a"));
    EXPECT_TRUE(*co_await q.lock_project("shop", "b", 10s));

    auto old_id = dp::new_deployment_id();
    auto mid_id = dp::new_deployment_id();
    auto new_id = dp::new_deployment_id();
    const std::vector<std::pair<std::string, std::string>> records{
        {old_id, "queued"}, {mid_id, "queued"}, {new_id, "failed"}};
    for (const auto& [id, status] : records) {
      EXPECT_TRUE(co_await redis.exec("ZADD", keys.project_deployments("shop"), "1", id));
      EXPECT_TRUE(co_await redis.exec("HSET", keys.deployment(id), "status", status));
    }
    EXPECT_EQ(*co_await q.newer_active("shop", "", old_id),
              mid_id);  // the failed one does not count
    EXPECT_FALSE(*co_await q.newer_active("shop", "", mid_id));

    // Per branch: a newer preview of another branch supersedes neither production nor it.
    auto main_id = dp::new_deployment_id();
    auto feature_id = dp::new_deployment_id();
    auto other_id = dp::new_deployment_id();
    const std::vector<std::pair<std::string, std::string>> branches{
        {main_id, "main"}, {feature_id, "feature/x"}, {other_id, "feature/y"}};
    for (const auto& [id, branch] : branches) {
      EXPECT_TRUE(co_await redis.exec("ZADD", keys.project_deployments("shop"), "1", id));
      EXPECT_TRUE(
          co_await redis.exec("HSET", keys.deployment(id), "status", "queued", "branch", branch));
    }
    EXPECT_FALSE(*co_await q.newer_active("shop", "main", main_id));
    EXPECT_FALSE(*co_await q.newer_active("shop", "feature/x", feature_id));
    EXPECT_FALSE(*co_await q.newer_active("shop", "", mid_id));
    auto newer_feature = dp::new_deployment_id();
    EXPECT_TRUE(co_await redis.exec("ZADD", keys.project_deployments("shop"), "1", newer_feature));
    EXPECT_TRUE(co_await redis.exec("HSET", keys.deployment(newer_feature), "status", "cloning",
                                    "branch", "feature/x"));
    EXPECT_EQ(*co_await q.newer_active("shop", "feature/x", feature_id), newer_feature);
    EXPECT_FALSE(*co_await q.newer_active("shop", "main", main_id));
  });
}

}  // namespace
