// The retention policy as a pure function: what keeps its files and what is pruned.
#include <gtest/gtest.h>

#include "dp/worker/retention.hpp"

namespace {

using dp::proto::deployment_status;
using dp::worker::retention_facts;
using dp::worker::retention_policy;
using dp::worker::select_prunable;

constexpr int64_t day = 86'400'000;
constexpr int64_t now = 1'800'000'000'000;

// Deployment n of a project, created n days after the first (ids sort the same way).
dp::proto::deployment made(int n, deployment_status s = deployment_status::ready) {
  dp::proto::deployment d;
  d.id = "d" + std::to_string(100 + n);
  d.project = "shop";
  d.status = s;
  d.created_at = now - 100 * day + n * day;
  return d;
}

TEST(retention, keeps_the_newest_ready_deployments_and_production) {
  std::vector<dp::proto::deployment> all;
  for (int n = 1; n <= 6; ++n) {
    all.push_back(made(n));
  }
  retention_facts facts{"d102", {}, now};
  // d106, d105, d104: the newest three; d102 is production.
  EXPECT_EQ(select_prunable(all, {3, 30}, facts), (std::vector<std::string>{"d101", "d103"}));
  EXPECT_EQ(select_prunable(all, {10, 30}, facts), std::vector<std::string>{});
}

TEST(retention, keeps_what_was_in_production_within_the_days) {
  std::vector<dp::proto::deployment> all;
  for (int n = 1; n <= 8; ++n) {
    all.push_back(made(n));
  }
  all[0].production_until = now - 50 * day;  // d101: left production long ago
  all[1].production_until = now - 29 * day;  // d102: within 30 days (and the rollback target)
  all[2].production_until = now - 31 * day;  // d103
  all[3].production_until = now - 45 * day;  // d104
  retention_facts facts{"d108", {}, now};
  // Production d108 and d107 are the newest two.
  EXPECT_EQ(select_prunable(all, {2, 30}, facts),
            (std::vector<std::string>{"d101", "d103", "d104", "d105", "d106"}));
  EXPECT_EQ(select_prunable(all, {2, 32}, facts),
            (std::vector<std::string>{"d101", "d104", "d105", "d106"}));
}

TEST(retention, keeps_the_rollback_target_however_old) {
  std::vector<dp::proto::deployment> all;
  for (int n = 1; n <= 6; ++n) {
    all.push_back(made(n));
  }
  all[0].production_until = now - 90 * day;  // d101
  all[2].production_until = now - 60 * day;  // d103: production left it last
  retention_facts facts{"d104", {}, now};
  EXPECT_EQ(select_prunable(all, {1, 30}, facts),
            (std::vector<std::string>{"d101", "d102", "d105"}));
}

TEST(retention, never_touches_running_pruned_or_domain_served_deployments) {
  std::vector<dp::proto::deployment> all{made(1),
                                         made(2, deployment_status::building),
                                         made(3, deployment_status::queued),
                                         made(4),
                                         made(5),
                                         made(6)};
  all[3].pruned_at = now - day;
  retention_facts facts{"d106", {"d101"}, now};
  EXPECT_EQ(select_prunable(all, {1, 30}, facts), std::vector<std::string>{"d105"});
}

TEST(retention, failed_and_canceled_ones_keep_their_files_for_the_days) {
  std::vector<dp::proto::deployment> all{made(10, deployment_status::failed),
                                         made(80, deployment_status::canceled),
                                         made(75, deployment_status::failed), made(90)};
  retention_facts facts{"d190", {}, now};
  // Created 90, 20 and 25 days ago: the first goes with a 30-day window.
  EXPECT_EQ(select_prunable(all, {1, 30}, facts), std::vector<std::string>{"d110"});
  EXPECT_EQ(select_prunable(all, {1, 21}, facts), (std::vector<std::string>{"d110", "d175"}));
}

TEST(retention, a_project_overrides_the_platform) {
  dp::proto::project p;
  retention_policy platform{10, 30};
  EXPECT_EQ(dp::worker::policy_for(p, platform).keep_deployments, 10);
  p.keep_deployments = 3;
  p.keep_production_days = 0;
  auto policy = dp::worker::policy_for(p, platform);
  EXPECT_EQ(policy.keep_deployments, 3);
  EXPECT_EQ(policy.keep_production_days, 0);
  EXPECT_EQ(dp::worker::policy_for(p, {10, 30, 3}).cache_days, 3);  // the platform's only
}

// A build cache is unused when its most recently used entry is older than the days.
TEST(retention, a_build_cache_is_unused_after_its_days) {
  dp::buildplan::cache_index index;
  EXPECT_TRUE(dp::worker::cache_unused(index, 7, now));  // an empty index
  index.entries.push_back({.name = "a", .used_at = now - 9 * day});
  index.entries.push_back({.name = "b", .used_at = now - 6 * day});
  EXPECT_FALSE(dp::worker::cache_unused(index, 7, now));
  EXPECT_TRUE(dp::worker::cache_unused(index, 5, now));
  EXPECT_FALSE(dp::worker::cache_unused(index, 0, now));  // 0: never
}

}  // namespace
