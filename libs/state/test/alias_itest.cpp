// Project names and immutable aliases share alias:<label> (issue 14): no project may create,
// move or delete an alias that serves another project's deployment. Real redis-server.
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

// Runs `body` with the records of `server`, closing the client after.
template <class F>
void run_async(const dp::test::redis_server& server, F body) {
  dp::test::run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dp::redis::client redis(ex, dp::test::redis_options(server));
    dp::state::records records(redis, dp::proto::keys("t:"));
    co_await body(records, redis);
    redis.close();
  });
}

dp::proto::project make_project(std::string name) {
  dp::proto::project p;
  p.name = std::move(name);
  p.git_url = "https://example.com/" + p.name + ".git";
  p.created_at = dp::now_ms();
  return p;
}

dp::proto::deployment make_deployment(const std::string& project) {
  dp::proto::deployment d;
  d.id = dp::new_deployment_id();
  d.project = project;
  d.git_url = "https://example.com/x.git";
  d.created_at = dp::now_ms();
  return d;
}

asio::awaitable<std::optional<std::string>> resolve(dp::state::records& s, const std::string& l) {
  auto r = co_await s.resolve_alias(l);
  co_return r ? *r : std::nullopt;
}

asio::awaitable<void> set(dp::redis::client& redis, std::string key, std::string value) {
  std::vector<std::string> cmd{"SET", std::move(key), std::move(value)};
  auto r = co_await redis.exec(std::move(cmd));
  EXPECT_TRUE(r);
}

// shop's deployment with the alias it had before the "--" scheme, "shop-<8>", and a project of
// that very name made back then (no check existed), with a deployment of its own.
struct legacy_collision {
  dp::proto::deployment shop;
  std::string label;
  dp::proto::deployment other;
};

asio::awaitable<legacy_collision> make_collision(dp::state::records& records,
                                                 dp::redis::client& redis) {
  legacy_collision c;
  c.shop = make_deployment("shop");
  EXPECT_TRUE(co_await records.record_deployment(c.shop));
  c.label = "shop-" + std::string(dp::short_id(c.shop.id));
  co_await set(redis, records.keys().alias(c.label), c.shop.id);
  std::vector<std::vector<std::string>> cmds{{"HSET", records.keys().project(c.label), "git_url",
                                              "https://example.com/o.git", "created_at", "1"},
                                             {"SADD", records.keys().projects(), c.label}};
  EXPECT_TRUE(co_await redis.pipeline(std::move(cmds)));
  c.other = make_deployment(c.label);
  EXPECT_TRUE(co_await records.record_deployment(c.other));
  co_return c;
}

class aliases : public ::testing::Test {
 protected:
  dp::test::redis_server server_;
};

TEST_F(aliases, new_immutable_aliases_use_a_double_hyphen) {
  run_async(server_, [](dp::state::records& records, dp::redis::client&) -> asio::awaitable<void> {
    auto d = make_deployment("shop");
    EXPECT_TRUE(co_await records.record_deployment(d));
    CO_ASSERT_TRUE(d.alias);
    EXPECT_EQ(*d.alias, "shop--" + std::string(dp::short_id(d.id)));
    EXPECT_EQ(*d.alias, dp::immutable_alias("shop", d.id));
    EXPECT_EQ(co_await resolve(records, *d.alias), d.id);
  });
}

TEST_F(aliases, create_project_refuses_a_name_that_is_an_alias) {
  run_async(
      server_, [](dp::state::records& records, dp::redis::client& redis) -> asio::awaitable<void> {
        auto d = make_deployment("shop");
        EXPECT_TRUE(co_await records.record_deployment(d));
        std::string old_label = "shop-" + std::string(dp::short_id(d.id));
        co_await set(redis, records.keys().alias(old_label), d.id);
        auto r = co_await records.create_project(make_project(old_label));
        CO_ASSERT_TRUE(!r);
        EXPECT_TRUE(r.error().is(dp::errc::conflict));
        EXPECT_NE(r.error().message.find("URL"), std::string::npos) << r.error().message;
        EXPECT_TRUE((co_await records.get_project(old_label)).error().is(dp::errc::not_found));
      });
}

TEST_F(aliases, go_live_of_another_project_leaves_the_alias_alone) {
  run_async(server_,
            [](dp::state::records& records, dp::redis::client& redis) -> asio::awaitable<void> {
              auto c = co_await make_collision(records, redis);
              // The other project's build goes live: its production alias is shop's immutable one.
              auto r = co_await records.go_live(c.other);
              EXPECT_FALSE(r);
              EXPECT_TRUE(!r && r.error().is(dp::errc::conflict));
              EXPECT_EQ(co_await resolve(records, c.label), c.shop.id);
              // Its own immutable alias is set all the same.
              EXPECT_EQ(co_await resolve(records, *c.other.alias), c.other.id);
            });
}

TEST_F(aliases, set_alias_of_another_project_is_refused) {
  run_async(server_,
            [](dp::state::records& records, dp::redis::client& redis) -> asio::awaitable<void> {
              auto c = co_await make_collision(records, redis);
              auto r = co_await records.set_alias(c.label, c.label, c.other.id);
              CO_ASSERT_TRUE(!r);
              EXPECT_TRUE(r.error().is(dp::errc::conflict));
              EXPECT_EQ(co_await resolve(records, c.label), c.shop.id);
              // shop's own production alias is free to move.
              EXPECT_TRUE(co_await records.set_alias("shop", "shop", c.shop.id));
              EXPECT_EQ(co_await resolve(records, "shop"), c.shop.id);
            });
}

TEST_F(aliases, delete_project_leaves_another_projects_alias) {
  run_async(server_,
            [](dp::state::records& records, dp::redis::client& redis) -> asio::awaitable<void> {
              auto c = co_await make_collision(records, redis);
              EXPECT_TRUE(co_await records.delete_deployment(c.other));
              EXPECT_TRUE(co_await records.delete_project(c.label));
              EXPECT_EQ(co_await resolve(records, c.label), c.shop.id);
              // A project's own production alias still goes with it.
              auto blog = make_deployment("blog");
              EXPECT_TRUE(co_await records.record_deployment(blog));
              EXPECT_TRUE(co_await records.set_alias("blog", "blog", blog.id));
              EXPECT_TRUE(co_await records.delete_deployment(blog));
              EXPECT_TRUE(co_await records.delete_project("blog"));
              EXPECT_EQ(co_await resolve(records, "blog"), std::nullopt);
            });
}

TEST_F(aliases, delete_deployment_removes_only_an_alias_that_points_at_it) {
  run_async(server_,
            [](dp::state::records& records, dp::redis::client& redis) -> asio::awaitable<void> {
              auto c = co_await make_collision(records, redis);
              // A record whose alias field names shop's label (written by hand, or by an old bug).
              auto forged = c.other;
              forged.alias = c.label;
              EXPECT_TRUE(co_await records.delete_deployment(forged));
              EXPECT_EQ(co_await resolve(records, c.label), c.shop.id);
              EXPECT_TRUE(co_await records.delete_deployment(c.shop));
              EXPECT_EQ(co_await resolve(records, *c.shop.alias), std::nullopt);
            });
}

}  // namespace
