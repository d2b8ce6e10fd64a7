// The worker against a real redis-server, with the process launcher running test/fake_build.sh
// (a stand-in for `build-runner build` that moves the deployment to ready through Redis and
// records every start, so a test can see a job run twice or at once).
#include <signal.h>

#include "dp/core/clock.hpp"
#include "dp/proto/storage_layout.hpp"
#include "worker_test_support.hpp"

namespace {

using namespace dp::worker_test;
using dp::test::redis_server;

int starts(const redis_server& s, const std::string& id) {
  return std::atoi(cmd(s, {"LLEN", prefix + "fake:started:" + id}).c_str());
}

TEST(worker_test, runs_jobs_to_ready_and_acks_them) {
  redis_server server;
  threaded_worker w(server, dp::worker::make_process_launcher(fake_launcher(server)),
                    fast_options());
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    ids.push_back(enqueue(server, "site" + std::to_string(i)));
  }
  for (const auto& id : ids) {
    EXPECT_TRUE(eventually([&] { return has_status(server, id, "ready"); })) << id;
  }
  EXPECT_TRUE(eventually([&] {
    return cmd(server, {"LLEN", prefix + "queue:builds:processing"}) == "0";
  }));
  for (const auto& id : ids) {
    EXPECT_EQ(starts(server, id), 1);
    EXPECT_EQ(cmd(server, {"EXISTS", prefix + "lease:" + id}), "0");
  }
}

TEST(worker_test, cancel_stops_a_running_build) {
  redis_server server;
  auto id = enqueue(server, "shop");
  cmd(server, {"SET", prefix + "fake:mode:" + id, "hang"});
  threaded_worker w(server, dp::worker::make_process_launcher(fake_launcher(server)),
                    fast_options());
  ASSERT_TRUE(eventually([&] { return has_status(server, id, "building"); }));
  run_sync<bool>(server, [&](dp::state::records& records) -> asio::awaitable<bool> {
    const dp::proto::cancel_request req{id, dp::now_ms(), "changed my mind"};
    auto r = co_await records.request_cancel(req);
    co_return r.has_value();
  });
  ASSERT_TRUE(eventually([&] { return has_status(server, id, "canceled"); }));
  EXPECT_EQ(get(server, id).error, "changed my mind");
  EXPECT_TRUE(eventually([&] {
    return cmd(server, {"LLEN", prefix + "queue:builds:processing"}) == "0";
  }));
}

TEST(worker_test, newer_build_supersedes_an_older_queued_one) {
  redis_server server;
  auto older = enqueue(server, "shop");
  auto newer = enqueue(server, "shop");
  threaded_worker w(server, dp::worker::make_process_launcher(fake_launcher(server)),
                    fast_options());
  ASSERT_TRUE(eventually([&] { return has_status(server, older, "canceled"); }));
  // The reason is in the logbook as soon as the status is final (a log stream ends there).
  EXPECT_EQ(cmd(server, {"XLEN", prefix + "logbook:" + older}), "1");
  EXPECT_EQ(get(server, older).error, "superseded by " + newer);
  EXPECT_EQ(starts(server, older), 0);
  EXPECT_TRUE(eventually([&] { return has_status(server, newer, "ready"); }));
}

TEST(worker_test, another_branch_supersedes_nothing) {
  redis_server server;
  auto production = enqueue(server, "shop", 60, "main");
  auto preview = enqueue(server, "shop", 60, "feature/x");
  auto other = enqueue(server, "shop", 60, "feature/y");
  threaded_worker w(server, dp::worker::make_process_launcher(fake_launcher(server)),
                    fast_options());
  for (const auto& id : {production, preview, other}) {
    EXPECT_TRUE(eventually([&] { return has_status(server, id, "ready"); })) << id;
    EXPECT_EQ(starts(server, id), 1);
  }
}

// A newer deployment of a branch stops that branch's running build (records::cancel_superseded,
// as the api-server calls it with the project's cancel_superseded on), and leaves other branches.
TEST(worker_test, a_newer_push_cancels_its_branchs_running_build) {
  redis_server server;
  auto running = enqueue(server, "shop", 60, "feature/x");
  cmd(server, {"SET", prefix + "fake:mode:" + running, "hang"});
  threaded_worker w(server, dp::worker::make_process_launcher(fake_launcher(server)),
                    fast_options());
  ASSERT_TRUE(eventually([&] { return has_status(server, running, "building"); }));
  auto production = enqueue(server, "shop", 60, "main");
  auto newer = enqueue(server, "shop", 60, "feature/x");
  auto canceled = run_sync<std::vector<std::string>>(
      server, [&](dp::state::records& records) -> asio::awaitable<std::vector<std::string>> {
        auto d = co_await records.get_deployment(newer);
        auto r = co_await records.cancel_superseded(*d);
        co_return r ? *r : std::vector<std::string>{};
      });
  EXPECT_EQ(canceled, std::vector<std::string>{running});
  ASSERT_TRUE(eventually([&] { return has_status(server, running, "canceled"); }));
  EXPECT_EQ(get(server, running).error, "superseded by " + newer);
  EXPECT_TRUE(eventually([&] { return has_status(server, newer, "ready"); }));
  EXPECT_TRUE(eventually([&] { return has_status(server, production, "ready"); }));
}

TEST(worker_test, a_final_deployment_is_dropped_without_running) {
  redis_server server;
  auto id = enqueue(server, "shop");
  run_sync<bool>(server, [&](dp::state::records& records) -> asio::awaitable<bool> {
    const dp::proto::cancel_request req{id, dp::now_ms(), "no"};
    co_return (co_await records.request_cancel(req)).has_value();
  });
  threaded_worker w(server, dp::worker::make_process_launcher(fake_launcher(server)),
                    fast_options());
  EXPECT_TRUE(eventually([&] {
    return cmd(server, {"LLEN", prefix + "queue:builds"}) == "0" &&
           cmd(server, {"LLEN", prefix + "queue:builds:processing"}) == "0";
  }));
  EXPECT_EQ(starts(server, id), 0);
}

TEST(worker_test, infrastructure_exit_is_retried_then_failed) {
  redis_server server;
  auto id = enqueue(server, "shop");
  cmd(server, {"SET", prefix + "fake:mode:" + id, "exit3"});
  threaded_worker w(server, dp::worker::make_process_launcher(fake_launcher(server)),
                    fast_options());
  ASSERT_TRUE(eventually([&] { return has_status(server, id, "failed"); }));
  auto d = get(server, id);
  EXPECT_EQ(d.attempt, 2);
  EXPECT_NE(d.error.value_or("").find("giving up after 2 attempts"), std::string::npos) << *d.error;
  EXPECT_EQ(starts(server, id), 2);
}

TEST(worker_test, stop_hands_running_builds_back) {
  redis_server server;
  auto opts = fast_options();
  opts.drain = 300ms;
  auto id = enqueue(server, "shop");
  cmd(server, {"SET", prefix + "fake:mode:" + id, "hang"});
  {
    threaded_worker w(server, dp::worker::make_process_launcher(fake_launcher(server)), opts);
    ASSERT_TRUE(eventually([&] { return has_status(server, id, "building"); }));
    w.stop();
  }
  EXPECT_EQ(get(server, id).status, dp::proto::deployment_status::queued);
  EXPECT_EQ(get(server, id).attempt, 1);  // a shutdown does not count as an attempt
  EXPECT_EQ(cmd(server, {"LLEN", prefix + "queue:builds"}), "1");
  EXPECT_EQ(cmd(server, {"LLEN", prefix + "queue:builds:processing"}), "0");
  // The next worker runs it.
  cmd(server, {"DEL", prefix + "fake:mode:" + id});
  threaded_worker next(server, dp::worker::make_process_launcher(fake_launcher(server)),
                       fast_options());
  EXPECT_TRUE(eventually([&] { return has_status(server, id, "ready"); }));
}

TEST(worker_test, carries_on_after_a_redis_restart) {
  redis_server server;
  threaded_worker w(server, dp::worker::make_process_launcher(fake_launcher(server)),
                    fast_options());
  // The restart comes while the worker waits on the queue.
  ASSERT_TRUE(eventually([&] { return dp::test::redis_blocked_in(server.port(), "blmove"); }));
  server.restart();
  auto id = enqueue(server, "shop");
  EXPECT_TRUE(eventually([&] { return has_status(server, id, "ready"); }, 30s));
}

// ---- several worker processes ----

// A worker process whose builds' directories (TMPDIR is the process launcher's work root) go in
// `work`, the test's own: one killed with SIGKILL leaves its build's directory behind, which only
// `build-runner sweep` removes, and the fake build's sweep does nothing.
dp::test::process_options node(const redis_server& server, const dp::test::temp_dir& work,
                               const std::string& id,
                               std::map<std::string, std::string> extra = {}) {
  dp::test::process_options o;
  o.argv = {std::string(DP_WORKER_NODE)};
  o.env = {{"REDIS_URL", server.url()},     {"KEY_PREFIX", prefix},   {"WORKER_ID", id},
           {"FAKE_BUILD", fake_build()},    {"LEASE_TTL_MS", "1500"}, {"CONCURRENCY", "2"},
           {"TMPDIR", work.path().string()}};
  for (auto& [k, v] : extra) {
    o.env[k] = v;
  }
  return o;
}

TEST(worker_test, a_killed_workers_job_runs_elsewhere_once) {
  redis_server server;
  dp::test::temp_dir work("dp-worker-nodes");
  auto id = enqueue(server, "shop");
  dp::test::child_process a(node(server, work, "a", {{"FAKE_SLEEP", "2"}}));
  ASSERT_TRUE(eventually([&] { return has_status(server, id, "building"); }));
  a.signal(SIGKILL);
  a.wait();
  dp::test::child_process b(node(server, work, "b", {{"FAKE_SLEEP", "0"}}));
  ASSERT_TRUE(eventually([&] { return has_status(server, id, "ready"); }, 30s));
  EXPECT_EQ(get(server, id).attempt, 2);
  EXPECT_EQ(starts(server, id), 2);
  EXPECT_EQ(cmd(server, {"GET", prefix + "fake:overlap"}), "");  // never two at once
  // The worker acknowledges the job just after the build records ready.
  EXPECT_TRUE(eventually([&] {
    return cmd(server, {"LLEN", prefix + "queue:builds:processing"}) == "0";
  }));
}

TEST(worker_test, a_lost_job_fails_after_the_last_attempt) {
  redis_server server;
  dp::test::temp_dir work("dp-worker-nodes");
  auto id = enqueue(server, "shop");
  dp::test::child_process a(node(server, work, "a", {{"FAKE_SLEEP", "30"}, {"MAX_ATTEMPTS", "1"}}));
  ASSERT_TRUE(eventually([&] { return has_status(server, id, "building"); }));
  a.signal(SIGKILL);
  a.wait();
  dp::test::child_process b(node(server, work, "b", {{"MAX_ATTEMPTS", "1"}}));
  ASSERT_TRUE(eventually([&] { return has_status(server, id, "failed"); }, 30s));
  EXPECT_EQ(get(server, id).error, "worker lost; giving up after 1 attempts");
  EXPECT_EQ(starts(server, id), 1);
  // The reason is in the logbook as soon as the status is final (one system line: the fake
  // writes none).
  EXPECT_EQ(cmd(server, {"XLEN", prefix + "logbook:" + id}), "1");
}

// One build per project across workers: a newer deployment of a project whose build is running
// on one worker waits on the other for the project's lock, and starts once the first is final.
TEST(worker_test, two_workers_build_one_project_one_at_a_time) {
  redis_server server;
  dp::test::temp_dir work("dp-worker-nodes");
  std::map<std::string, std::string> one_slot{{"CONCURRENCY", "1"}, {"FAKE_SLEEP", "2"}};
  dp::test::child_process a(node(server, work, "a", one_slot));
  dp::test::child_process b(node(server, work, "b", one_slot));
  auto first = enqueue(server, "shop");
  ASSERT_TRUE(eventually([&] { return has_status(server, first, "building"); }));
  auto second = enqueue(server, "shop");  // one slot each: the other worker takes it
  ASSERT_TRUE(eventually([&] { return has_status(server, second, "ready"); }, 30s));
  EXPECT_EQ(get(server, first).status, dp::proto::deployment_status::ready);
  EXPECT_EQ(starts(server, first), 1);
  EXPECT_EQ(starts(server, second), 1);
  auto second_started = std::stoll(cmd(server, {"LINDEX", prefix + "fake:started:" + second, "0"}));
  ASSERT_TRUE(get(server, first).finished_at);
  EXPECT_GE(second_started, *get(server, first).finished_at);
  EXPECT_EQ(cmd(server, {"GET", prefix + "fake:overlap"}), "");
  EXPECT_EQ(a.stop(), 0);
  EXPECT_EQ(b.stop(), 0);
}

TEST(worker_test, fifty_jobs_three_workers_each_final_once) {
  redis_server server;
  dp::test::temp_dir work("dp-worker-nodes");
  std::vector<std::string> ids;
  for (int i = 0; i < 50; ++i) {
    ids.push_back(enqueue(server, "p" + std::to_string(i)));
  }
  std::vector<std::unique_ptr<dp::test::child_process>> nodes;
  for (auto name : {"a", "b", "c"}) {
    nodes.push_back(std::make_unique<dp::test::child_process>(node(server, work, name)));
  }
  for (const auto& id : ids) {
    EXPECT_TRUE(eventually([&] { return has_status(server, id, "ready"); }, 60s)) << id;
    EXPECT_EQ(starts(server, id), 1) << id;
  }
  EXPECT_EQ(cmd(server, {"GET", prefix + "fake:overlap"}), "");
  EXPECT_TRUE(eventually([&] {
    return cmd(server, {"LLEN", prefix + "queue:builds:processing"}) == "0";
  }));
  for (auto& n : nodes) {
    EXPECT_EQ(n->stop(), 0);  // SIGTERM: a graceful drain
  }
}

// The reaper runs the retention pass: of two workers one takes the turn (lock:retention), and the
// old deployments' files go while production and the rollback target stay.
TEST(worker_test, the_reaper_prunes_old_deployments_one_worker_at_a_time) {
  redis_server server;
  dp::test::temp_dir store_dir("dp-worker-retention");
  std::vector<std::string> ids;
  run_sync<bool>(server, [&](dp::state::records& records) -> asio::awaitable<bool> {
    dp::proto::project p;
    p.name = "shop";
    p.git_url = "https://example.com/shop.git";
    p.keep_deployments = 1;
    p.keep_production_days = 0;
    EXPECT_TRUE(co_await records.create_project(p));
    for (int i = 0; i < 4; ++i) {
      dp::proto::deployment d;
      d.id = dp::new_deployment_id();
      d.project = "shop";
      d.git_url = p.git_url;
      d.created_at = dp::now_ms();
      EXPECT_TRUE(co_await records.record_deployment(d));
      EXPECT_TRUE(co_await records.go_live(d));
      ids.push_back(d.id);
    }
    co_return true;
  });
  {
    asio::io_context ioc;
    dp::storage::storage_url url;
    url.root = store_dir.path();
    auto store = dp::storage::open_storage(ioc.get_executor(), url, {}).value();
    dp::test::run_async(ioc, [&]() -> asio::awaitable<void> {
      for (const auto& id : ids) {
        auto key = dp::proto::output_key(id, "index.html");
        std::string page = "<h1>" + id + "</h1>";
        dp::storage::put_options po;
        EXPECT_TRUE(co_await store->put_buffer(std::move(key), std::move(page), std::move(po)));
      }
    }());
  }
  auto o = fast_options("retention-a");
  o.retention.interval = 1h;
  auto p = fast_options("retention-b");
  p.retention.interval = 1h;
  threaded_worker a(server, dp::worker::make_process_launcher(fake_launcher(server)), o,
                    store_dir.path());
  threaded_worker b(server, dp::worker::make_process_launcher(fake_launcher(server)), p,
                    store_dir.path());
  auto pruned = [&](const std::string& id) { return get(server, id).pruned_at.has_value(); };
  EXPECT_TRUE(eventually([&] { return pruned(ids[0]) && pruned(ids[1]); }));
  EXPECT_FALSE(pruned(ids[2]));  // production left it last: a rollback goes there
  EXPECT_FALSE(pruned(ids[3]));  // production
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(
        std::filesystem::exists(store_dir.path() / dp::proto::output_key(ids[i], "index.html")),
        i >= 2)
        << i;
  }
  auto holder = cmd(server, {"GET", prefix + "lock:retention"});
  EXPECT_TRUE(holder == "retention-a" || holder == "retention-b") << holder;
}

}  // namespace
