// Previews (issue 17): go-live of a preview sets its branch and pull-request aliases and never
// production; they move forward only and never onto another project's alias; a branch's newer
// deployment supersedes only that branch's. Real redis-server.
#include <gtest/gtest.h>

#include "dp/core/clock.hpp"
#include "dp/core/id.hpp"
#include "dp/core/preview_alias.hpp"
#include "dp/redis/client.hpp"
#include "dp/state/records.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/options.hpp"

namespace {

// feature/x's alias (hashed: its slug "feature-x" lost the '/').
std::string feature_alias() {
  return dp::branch_alias("shop", "feature/x");
}

namespace asio = boost::asio;
using dp::proto::deployment_status;
using dp::proto::deployment_target;

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

dp::proto::deployment make_deployment(const std::string& project, std::optional<std::string> branch,
                                      deployment_target target = deployment_target::preview) {
  dp::proto::deployment d;
  d.id = dp::new_deployment_id();
  d.project = project;
  d.git_url = "https://example.com/x.git";
  d.branch = std::move(branch);
  d.ref = d.branch;
  d.target = target;
  d.created_at = dp::now_ms();
  return d;
}

asio::awaitable<std::optional<std::string>> resolve(dp::state::records& s, const std::string& l) {
  auto r = co_await s.resolve_alias(l);
  co_return r ? *r : std::nullopt;
}

asio::awaitable<dp::proto::deployment> recorded(dp::state::records& s, dp::proto::deployment d) {
  EXPECT_TRUE(co_await s.record_deployment(d));
  co_return d;
}

class previews : public ::testing::Test {
 protected:
  dp::test::redis_server server_;
};

TEST_F(previews, go_live_sets_branch_and_pull_request_aliases_never_production) {
  run_async(server_, [](dp::state::records& s, dp::redis::client&) -> asio::awaitable<void> {
    EXPECT_TRUE(co_await s.create_project(make_project("shop")));
    auto prod =
        co_await recorded(s, make_deployment("shop", "main", deployment_target::production));
    EXPECT_TRUE(co_await s.go_live(prod));
    EXPECT_EQ(co_await resolve(s, "shop"), prod.id);
    EXPECT_EQ(co_await resolve(s, "shop--main"), prod.id);

    auto pr = make_deployment("shop", "feature/x");
    pr.pull_request = 7;
    pr = co_await recorded(s, pr);
    auto live = co_await s.go_live(pr);
    CO_ASSERT_TRUE(live);
    EXPECT_TRUE(live->applied);
    EXPECT_EQ(co_await resolve(s, "shop"), prod.id);  // production untouched
    EXPECT_EQ(co_await resolve(s, feature_alias()), pr.id);
    EXPECT_EQ(co_await resolve(s, "shop--pr-7"), pr.id);
    EXPECT_EQ(co_await resolve(s, *pr.alias), pr.id);
    auto labels = co_await s.preview_labels("shop");
    EXPECT_EQ(*labels, (std::vector<std::string>{feature_alias(), "shop--main", "shop--pr-7"}));
    auto got = co_await s.get_deployment(pr.id);
    EXPECT_EQ(got->target, deployment_target::preview);
    EXPECT_EQ(got->branch, "feature/x");
    EXPECT_EQ(got->pull_request, 7);
  });
}

TEST_F(previews, branch_aliases_move_forward_only) {
  run_async(server_, [](dp::state::records& s, dp::redis::client&) -> asio::awaitable<void> {
    EXPECT_TRUE(co_await s.create_project(make_project("shop")));
    auto older = co_await recorded(s, make_deployment("shop", "feature/x"));
    auto newer = co_await recorded(s, make_deployment("shop", "feature/x"));
    EXPECT_TRUE(co_await s.go_live(newer));
    // The older build finishes late: ready, and served at its immutable URL only.
    auto late = co_await s.go_live(older);
    CO_ASSERT_TRUE(late);
    EXPECT_TRUE(late->applied);
    EXPECT_EQ(co_await resolve(s, feature_alias()), newer.id);
    EXPECT_EQ(co_await resolve(s, *older.alias), older.id);
    EXPECT_EQ((co_await s.get_deployment(older.id))->status, deployment_status::ready);
  });
}

TEST_F(previews, never_set_on_another_projects_alias) {
  run_async(server_, [](dp::state::records& s, dp::redis::client& redis) -> asio::awaitable<void> {
    EXPECT_TRUE(co_await s.create_project(make_project("shop")));
    EXPECT_TRUE(co_await s.create_project(make_project("blog")));
    // A label of shop's that serves blog's deployment (as a project made before the "--" rule
    // could have had): go-live of shop's preview leaves it alone and says so.
    auto theirs = co_await recorded(s, make_deployment("blog", std::nullopt));
    std::vector<std::string> cmd{"SET", s.keys().alias(feature_alias()), theirs.id};
    EXPECT_TRUE(co_await redis.exec(std::move(cmd)));
    auto ours = co_await recorded(s, make_deployment("shop", "feature/x"));
    auto live = co_await s.go_live(ours);
    CO_ASSERT_TRUE(!(live));
    EXPECT_TRUE(live.error().is(dp::errc::conflict)) << live.error().message;
    EXPECT_EQ(co_await resolve(s, feature_alias()), theirs.id);
    EXPECT_EQ((co_await s.get_deployment(ours.id))->status, deployment_status::ready);
    auto removed = co_await s.remove_preview_alias("shop", feature_alias());
    CO_ASSERT_TRUE(!(removed));
    EXPECT_TRUE(removed.error().is(dp::errc::conflict));
    EXPECT_EQ(co_await resolve(s, feature_alias()), theirs.id);
  });
}

TEST_F(previews, removing_an_alias_and_deleting_the_project) {
  run_async(server_, [](dp::state::records& s, dp::redis::client&) -> asio::awaitable<void> {
    EXPECT_TRUE(co_await s.create_project(make_project("shop")));
    auto d = make_deployment("shop", "feature/x");
    d.pull_request = 3;
    d = co_await recorded(s, d);
    EXPECT_TRUE(co_await s.go_live(d));
    EXPECT_TRUE(*co_await s.remove_preview_alias("shop", dp::pull_request_alias("shop", 3)));
    EXPECT_FALSE(*co_await s.remove_preview_alias("shop", dp::pull_request_alias("shop", 3)));
    EXPECT_FALSE(co_await resolve(s, "shop--pr-3"));
    EXPECT_EQ(co_await resolve(s, feature_alias()), d.id);
    auto left = co_await s.preview_labels("shop");
    const std::vector<std::string> expected{feature_alias()};
    EXPECT_EQ(*left, expected);
    // Retention leaves what a preview alias serves.
    EXPECT_FALSE(*co_await s.mark_pruned(d.id, "shop"));
    EXPECT_TRUE(co_await s.delete_project("shop"));
    EXPECT_FALSE(co_await resolve(s, feature_alias()));
    EXPECT_TRUE((co_await s.preview_labels("shop"))->empty());
  });
}

TEST_F(previews, learn_production_branch_only_once) {
  run_async(server_, [](dp::state::records& s, dp::redis::client&) -> asio::awaitable<void> {
    EXPECT_FALSE(*co_await s.learn_production_branch("nope", "main"));  // no such project
    EXPECT_TRUE(co_await s.create_project(make_project("shop")));
    EXPECT_TRUE(*co_await s.learn_production_branch("shop", "trunk"));
    EXPECT_FALSE(*co_await s.learn_production_branch("shop", "main"));
    EXPECT_EQ((co_await s.get_project("shop"))->production_branch, "trunk");
  });
}

TEST_F(previews, a_newer_deployment_supersedes_its_branch_only) {
  run_async(server_, [](dp::state::records& s, dp::redis::client&) -> asio::awaitable<void> {
    EXPECT_TRUE(co_await s.create_project(make_project("shop")));
    auto prod =
        co_await recorded(s, make_deployment("shop", "main", deployment_target::production));
    auto x_running = co_await recorded(s, make_deployment("shop", "feature/x"));
    EXPECT_TRUE(co_await s.transition(x_running.id, deployment_status::building));
    auto x_queued = co_await recorded(s, make_deployment("shop", "feature/x"));
    auto y = co_await recorded(s, make_deployment("shop", "feature/y"));
    auto x_new = co_await recorded(s, make_deployment("shop", "feature/x"));

    // The running build of the branch is asked to stop (its worker records canceled); the
    // queued one is the worker's to cancel before it starts.
    auto canceled = co_await s.cancel_superseded(x_new);
    CO_ASSERT_TRUE(canceled);
    EXPECT_EQ(*canceled, std::vector<std::string>{x_running.id});
    auto asked = co_await s.cancel_requested(x_running.id);
    CO_ASSERT_TRUE(asked && *asked);
    EXPECT_EQ((*asked)->reason, "superseded by " + x_new.id);
    EXPECT_EQ((co_await s.get_deployment(x_queued.id))->status, deployment_status::queued);
    EXPECT_FALSE(*co_await s.cancel_requested(x_queued.id));
    // Production and the other branch are left alone.
    EXPECT_EQ((co_await s.get_deployment(prod.id))->status, deployment_status::queued);
    EXPECT_EQ((co_await s.get_deployment(y.id))->status, deployment_status::queued);
    EXPECT_FALSE(*co_await s.cancel_requested(prod.id));
    EXPECT_EQ((co_await s.get_deployment(x_new.id))->status, deployment_status::queued);
  });
}

}  // namespace
