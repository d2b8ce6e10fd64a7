// The retention pass against a real redis-server and both object stores (a file:// directory and
// s3rver): what it keeps, what it prunes, that promote refuses a pruned deployment, the usage
// numbers, and that passes running at once prune each deployment once.
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include <gtest/gtest.h>

#include <cstdlib>

#include "dp/buildplan/cache.hpp"
#include "dp/core/clock.hpp"
#include "dp/core/id.hpp"
#include "dp/core/preview_alias.hpp"
#include "dp/proto/json.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/redis/client.hpp"
#include "dp/state/records.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/options.hpp"
#include "dp/worker/retention.hpp"

namespace {

namespace asio = boost::asio;
using dp::proto::deployment_status;
using namespace std::chrono_literals;

constexpr int64_t day = 86'400'000;

// One deployment of the scenario: what it is and what the policy must do with it.
struct planned {
  deployment_status status;
  bool upload;                       // built from __sources/<id>.tar.gz
  int64_t age_days;                  // created this many days ago
  std::optional<int64_t> left_days;  // production_until, this many days ago
  bool pruned;                       // what the pass must decide
  dp::proto::deployment record{};
};

// keep_deployments 3, keep_production_days 30; the newest ready one (index 7) is production.
std::vector<planned> scenario() {
  return {
      {deployment_status::ready, true, 90, 60, true},      // 0: old, an upload
      {deployment_status::ready, false, 80, 70, false},    // 1: a custom domain serves it
      {deployment_status::failed, true, 40, {}, true},     // 2: failed long ago
      {deployment_status::ready, false, 39, 50, true},     // 3: production 50 days ago
      {deployment_status::ready, false, 38, 10, false},    // 4: production 10 days ago
      {deployment_status::ready, false, 37, 40, false},    // 5: among the newest 3 ready
      {deployment_status::ready, false, 36, 35, false},    // 6: among the newest 3 ready
      {deployment_status::ready, false, 35, {}, false},    // 7: production
      {deployment_status::canceled, true, 1, {}, false},   // 8: canceled yesterday
      {deployment_status::building, false, 0, {}, false},  // 9: running
  };
}

class retention_test : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dp::storage::storage_url url;
    if (GetParam() == "s3") {
      // s3rver 3.7's continuation tokens need OpenSSL's legacy provider (see conformance_itest).
      ::setenv("NODE_OPTIONS", "--openssl-legacy-provider", 1);
      s3_.emplace();
      url = dp::storage::parse_storage_url(s3_->storage_url()).value();
      creds_ = {dp::test::s3rver::access_key(), dp::test::s3rver::secret_key(), {}, "us-east-1"};
    } else {
      url.root = dir_.path() / "store";
    }
    dp::storage::store_options opts;
    opts.fsync = false;
    auto s = dp::storage::open_storage(ioc_.get_executor(), url, creds_, opts);
    ASSERT_TRUE(s) << s.error().message;
    store_ = *s;
  }

  // Runs body(records) with a client of its own.
  template <class F>
  void run(F body) {
    dp::test::run_async(ioc_, [&]() -> asio::awaitable<void> {
      dp::redis::client redis(ioc_.get_executor(), dp::test::redis_options(redis_));
      dp::state::records records(redis, dp::proto::keys("t:"));
      co_await body(records);
      redis.close();
    }());
  }

  // Arguments by reference, named locals inside: g++ 12 frees a temporary argument of a
  // co_await twice.
  asio::awaitable<void> put(const std::string& key, const std::string& data) {
    std::string k = key;
    std::string v = data;
    dp::storage::put_options po;
    auto r = co_await store_->put_buffer(std::move(k), std::move(v), std::move(po));
    EXPECT_TRUE(r) << r.error().message;
  }

  // The project, its deployments (ready ones gone live in order), their objects and a domain.
  asio::awaitable<void> seed(dp::state::records& records, std::vector<planned>& plan) {
    int64_t now = dp::now_ms();
    dp::proto::project p;
    p.name = "shop";
    p.git_url = "https://example.com/shop.git";
    p.created_at = now - 100 * day;
    p.keep_deployments = 3;
    p.keep_production_days = 30;
    EXPECT_TRUE(co_await records.create_project(p));
    for (auto& item : plan) {
      auto& d = item.record;
      d.id = dp::new_deployment_id();
      d.project = "shop";
      d.git_url = item.upload ? "" : p.git_url;
      d.created_at = now - item.age_days * day;
      if (item.upload) {
        d.source_bytes = 300;
        auto key = dp::proto::source_archive_key(d.id);
        auto data = std::string(300, 's');
        co_await put(key, data);
      }
      EXPECT_TRUE(co_await records.record_deployment(d));
      auto index = dp::proto::output_key(d.id, "index.html");
      auto page = "<h1>" + d.id + "</h1>";
      co_await put(index, page);
      auto script = dp::proto::output_key(d.id, "assets/app.js");
      auto code = std::string(900, 'j');
      co_await put(script, code);
      if (item.status == deployment_status::ready) {
        dp::proto::manifest m;
        m.deployment_id = d.id;
        auto key = dp::proto::manifest_key(d.id);
        auto text = dp::proto::to_json(m);
        co_await put(key, text);
        dp::proto::hash_fields fields{{"files", "3"}, {"bytes", "1000"}};
        EXPECT_TRUE(co_await records.go_live(d, fields));
      } else if (item.status == deployment_status::building) {
        EXPECT_TRUE(co_await records.transition(d.id, item.status));
      } else {
        dp::proto::hash_fields none;
        std::optional<std::string> why = "x";
        EXPECT_TRUE(co_await records.transition(d.id, item.status, none, why));
      }
    }
    // Production's history as if it had happened over the last months.
    for (auto& item : plan) {
      if (item.left_days) {
        dp::proto::hash_fields f{{"production_until", std::to_string(now - *item.left_days * day)}};
        EXPECT_TRUE(co_await records.set_fields(item.record.id, f));
      }
    }
    std::vector<std::string> domain{"SET", "t:domain:www.shop.test", *plan[1].record.alias};
    EXPECT_TRUE(co_await records.redis().exec(std::move(domain)));
  }

  // Whether each deployment's objects are all there (kept) or all gone (pruned).
  asio::awaitable<void> expect_objects(const std::vector<planned>& plan) {
    for (const auto& item : plan) {
      const auto& d = item.record;
      auto prefix = dp::proto::output_prefix(d.id);
      auto outputs = co_await store_->list(prefix);
      EXPECT_TRUE(outputs);
      size_t want = item.status == deployment_status::ready ? 3 : 2;
      EXPECT_EQ(outputs ? outputs->size() : 99, item.pruned ? 0 : want) << d.id;
      if (item.upload) {
        auto key = dp::proto::source_archive_key(d.id);
        auto source = co_await store_->head(key);
        EXPECT_EQ(bool(source), !item.pruned) << d.id;
      }
    }
  }

  dp::test::redis_server redis_;
  std::optional<dp::test::s3rver> s3_;
  dp::test::temp_dir dir_{"dp-retention"};
  dp::aws::credentials creds_;
  asio::io_context ioc_;
  std::shared_ptr<dp::storage::object_store> store_;
};

TEST_P(retention_test, keeps_and_prunes_what_the_policy_says) {
  auto plan = scenario();
  run([&](dp::state::records& records) -> asio::awaitable<void> {
    co_await seed(records, plan);
    auto before = co_await records.usage("shop");
    CO_ASSERT_OK(before);
    EXPECT_EQ(before->output_files, 7 * 3);
    EXPECT_EQ(before->source_files, 3);

    // The platform's defaults would keep everything here: the project's overrides apply.
    const dp::worker::retention_policy platform{10, 30};
    auto report = co_await dp::worker::prune_deployments(records, *store_, platform);
    CO_ASSERT_OK(report);
    EXPECT_EQ(report->projects, 1);
    EXPECT_EQ(report->pruned, 3);
    co_await expect_objects(plan);
    for (const auto& item : plan) {
      auto d = co_await records.get_deployment(item.record.id);
      CO_ASSERT_OK(d);
      EXPECT_EQ(d->pruned_at.has_value(), item.pruned) << item.record.id;
      EXPECT_EQ(d->status, item.status);  // the record stays as it was
    }
    auto live = co_await records.resolve_alias("shop");
    CO_ASSERT_OK(live);
    EXPECT_EQ(*live, plan[7].record.id);

    // Usage: the five kept ready deployments' outputs, and the canceled upload's source.
    auto usage = co_await records.usage("shop");
    CO_ASSERT_OK(usage);
    EXPECT_EQ(*usage, (dp::state::storage_usage{.output_files = 15,
                                                .output_bytes = 5000,
                                                .source_files = 1,
                                                .source_bytes = 300,
                                                .deployments = 10,
                                                .pruned = 3}));
    auto pending = co_await records.pruning();
    CO_ASSERT_OK(pending);
    EXPECT_TRUE(pending->empty());

    // A second pass finds nothing more.
    auto again = co_await dp::worker::prune_deployments(records, *store_, platform);
    CO_ASSERT_OK(again);
    EXPECT_EQ(again->pruned, 0);
  });
}

TEST_P(retention_test, a_pruned_deployment_cannot_be_promoted_and_production_is_never_pruned) {
  auto plan = scenario();
  run([&](dp::state::records& records) -> asio::awaitable<void> {
    co_await seed(records, plan);
    const dp::worker::retention_policy platform{10, 30};
    CO_ASSERT_OK(co_await dp::worker::prune_deployments(records, *store_, platform));
    const auto& gone = plan[0].record;
    auto refused = co_await records.set_alias("shop", "shop", gone.id);
    CO_ASSERT_TRUE(!refused);
    EXPECT_TRUE(refused.error().is(dp::errc::conflict));
    EXPECT_NE(refused.error().message.find("pruned"), std::string::npos) << refused.error().message;
    auto live = co_await records.resolve_alias("shop");
    CO_ASSERT_OK(live);
    EXPECT_EQ(*live, plan[7].record.id);

    // Rollback to a kept one: the deployment production leaves is stamped, and whatever is in
    // production is refused by mark_pruned, whatever a pass had selected before.
    const auto& back = plan[4].record;
    CO_ASSERT_OK(co_await records.set_alias("shop", "shop", back.id));
    auto left = co_await records.get_deployment(plan[7].record.id);
    CO_ASSERT_OK(left);
    EXPECT_TRUE(left->production_until.has_value());
    auto marked = co_await records.mark_pruned(back.id, "shop");
    CO_ASSERT_OK(marked);
    EXPECT_FALSE(*marked);
    // A running build is never marked either.
    marked = co_await records.mark_pruned(plan[9].record.id, "shop");
    CO_ASSERT_OK(marked);
    EXPECT_FALSE(*marked);
  });
}

TEST_P(retention_test, passes_running_at_once_prune_each_deployment_once) {
  auto plan = scenario();
  run([&](dp::state::records& records) -> asio::awaitable<void> {
    co_await seed(records, plan);
    using namespace asio::experimental::awaitable_operators;
    const dp::worker::retention_policy platform{10, 30};
    dp::redis::client other_redis(ioc_.get_executor(), dp::test::redis_options(redis_));
    dp::state::records other(other_redis, dp::proto::keys("t:"));
    auto [a, b] = co_await (dp::worker::prune_deployments(records, *store_, platform) &&
                            dp::worker::prune_deployments(other, *store_, platform));
    other_redis.close();
    CO_ASSERT_OK(a);
    CO_ASSERT_OK(b);
    EXPECT_EQ(a->pruned + b->pruned, 3);
    co_await expect_objects(plan);
    // Workers take turns: one holder gets lock:retention until it expires.
    auto first = co_await records.take_retention_turn("worker-a", 1h);
    auto second = co_await records.take_retention_turn("worker-b", 1h);
    CO_ASSERT_OK(first);
    CO_ASSERT_OK(second);
    EXPECT_TRUE(*first);
    EXPECT_FALSE(*second);
  });
}

// A pass that marked a deployment and died before its files went: the next pass removes them.
TEST_P(retention_test, an_unfinished_removal_is_finished_by_the_next_pass) {
  auto plan = scenario();
  run([&](dp::state::records& records) -> asio::awaitable<void> {
    co_await seed(records, plan);
    auto marked = co_await records.mark_pruned(plan[0].record.id, "shop");
    CO_ASSERT_OK(marked);
    CO_ASSERT_TRUE(*marked);
    auto pending = co_await records.pruning();
    CO_ASSERT_OK(pending);
    EXPECT_EQ(*pending, std::vector<std::string>{plan[0].record.id});
    const dp::worker::retention_policy platform{10, 30};
    auto report = co_await dp::worker::prune_deployments(records, *store_, platform);
    CO_ASSERT_OK(report);
    EXPECT_EQ(report->pruned, 2);  // the other two; the first was marked before
    co_await expect_objects(plan);
    pending = co_await records.pruning();
    CO_ASSERT_OK(pending);
    EXPECT_TRUE(pending->empty());
  });
}

// What a branch's or pull request's preview alias serves keeps its files while the alias does.
TEST_P(retention_test, preview_aliases_keep_what_they_serve) {
  run([&](dp::state::records& records) -> asio::awaitable<void> {
    int64_t now = dp::now_ms();
    dp::proto::project p;
    p.name = "blog";
    p.git_url = "https://example.com/blog.git";
    p.created_at = now - 30 * day;
    p.keep_deployments = 1;
    p.keep_production_days = 0;
    EXPECT_TRUE(co_await records.create_project(p));
    std::vector<dp::proto::deployment> made;
    for (int age : {10, 5, 1}) {
      dp::proto::deployment d;
      d.id = dp::new_deployment_id();
      d.project = "blog";
      d.git_url = p.git_url;
      d.created_at = now - age * day;
      d.branch = age == 10 ? "feature/x" : "main";
      d.target = age == 10 ? dp::proto::deployment_target::preview
                           : dp::proto::deployment_target::production;
      EXPECT_TRUE(co_await records.record_deployment(d));
      EXPECT_TRUE(co_await records.go_live(d));
      made.push_back(d);
    }
    const dp::worker::retention_policy platform{10, 30};
    auto first = co_await dp::worker::prune_deployments(records, *store_, platform);
    CO_ASSERT_OK(first);
    EXPECT_EQ(first->pruned, 0);  // newest, rollback target, and the preview
    auto removed =
        co_await records.remove_preview_alias("blog", dp::branch_alias("blog", "feature/x"));
    CO_ASSERT_OK(removed);
    auto second = co_await dp::worker::prune_deployments(records, *store_, platform);
    CO_ASSERT_OK(second);
    EXPECT_EQ(second->pruned, 1);
    auto preview = co_await records.get_deployment(made[0].id);
    CO_ASSERT_OK(preview);
    EXPECT_TRUE(preview->pruned_at.has_value());
  });
}

// A project that stopped building: its build cache goes after BUILD_CACHE_DAYS unused, whole;
// one that a build used within them stays, and so does one whose index cannot be read.
TEST_P(retention_test, a_build_cache_unused_for_cache_days_goes) {
  auto plan = scenario();
  run([&](dp::state::records& records) -> asio::awaitable<void> {
    co_await seed(records, plan);
    // Named values only around co_await: GCC 12 mishandles temporaries there.
    auto put = [&](std::string key, std::string text) -> asio::awaitable<void> {
      dp::storage::put_options po;
      auto r = co_await store_->put_buffer(std::move(key), std::move(text), po);
      EXPECT_TRUE(r);
    };
    auto put_cache = [&](int64_t used_days_ago) -> asio::awaitable<void> {
      dp::buildplan::cache_index index;
      int64_t used = dp::now_ms() - used_days_ago * 86'400'000;
      index.entries.push_back({.name = "modules-a.tar.zst",
                               .key = "k",
                               .bytes = 3,
                               .created_at = used,
                               .used_at = used});
      index.entries.push_back({.name = "store-b.tar.zst",
                               .kind = dp::buildplan::cache_kind::store,
                               .bytes = 3,
                               .created_at = used,
                               .used_at = used - 1});
      for (const auto& e : index.entries) {
        co_await put(dp::proto::cache_object_key("shop", e.name), "tar");
      }
      co_await put(dp::proto::cache_index_key("shop"), dp::buildplan::to_json(index));
    };
    auto cached = [&]() -> asio::awaitable<size_t> {
      auto objects = co_await store_->list(dp::proto::cache_prefix("shop"));
      EXPECT_TRUE(objects);
      co_return objects ? objects->size() : 99;
    };
    auto prune = [&](int64_t cache_days) -> asio::awaitable<int64_t> {
      const dp::worker::retention_policy platform{10, 30, cache_days};
      auto report = co_await dp::worker::prune_deployments(records, *store_, platform);
      EXPECT_TRUE(report);
      co_return report ? report->caches : -1;
    };
    co_await put_cache(6);
    auto caches = co_await prune(7);
    auto left = co_await cached();
    EXPECT_EQ(caches, 0);
    EXPECT_EQ(left, 3u);

    co_await put_cache(8);
    caches = co_await prune(0);  // 0: never
    left = co_await cached();
    EXPECT_EQ(caches, 0);
    EXPECT_EQ(left, 3u);
    caches = co_await prune(7);
    left = co_await cached();
    EXPECT_EQ(caches, 1);
    EXPECT_EQ(left, 0u);

    co_await put(dp::proto::cache_index_key("shop"), "{nope");
    caches = co_await prune(7);
    left = co_await cached();
    EXPECT_EQ(caches, 0);
    EXPECT_EQ(left, 1u);
  });
}

INSTANTIATE_TEST_SUITE_P(stores, retention_test, ::testing::Values("file", "s3"),
                         [](const auto& info) { return info.param; });

}  // namespace
