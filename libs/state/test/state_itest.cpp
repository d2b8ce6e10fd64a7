// The records and the logbook against a real redis-server.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include "dp/core/clock.hpp"
#include "dp/core/id.hpp"
#include "dp/proto/json.hpp"
#include "dp/redis/client.hpp"
#include "dp/redis/subscriber.hpp"
#include "dp/state/logbook.hpp"
#include "dp/state/records.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/options.hpp"

namespace {

namespace asio = boost::asio;

using dp::proto::deployment_status;

using dp::test::run_async;

dp::proto::project make_project(std::string name) {
  dp::proto::project p;
  p.name = std::move(name);
  p.git_url = "https://example.com/" + p.name + ".git";
  p.env = {{"VITE_API", "https://api.example.com"}};
  p.build_command = "npm run build";
  p.created_at = dp::now_ms();
  return p;
}

std::pair<dp::proto::deployment, dp::proto::job> make_deployment(const std::string& project) {
  dp::proto::deployment d;
  d.id = dp::new_deployment_id();
  d.project = project;
  d.git_url = "https://example.com/x.git";
  d.created_at = dp::now_ms();
  dp::proto::job j;
  j.deployment_id = d.id;
  j.project = project;
  j.git_url = d.git_url;
  j.timeout_s = 900;
  j.enqueued_at = d.created_at;
  return {d, j};
}

class state_test : public ::testing::Test {
 protected:
  dp::test::redis_server server_;
};

TEST_F(state_test, projects) {
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dp::redis::client redis(ex, dp::test::redis_options(server_));
    dp::state::records records(redis, dp::proto::keys("t:"));
    auto p = make_project("shop");
    EXPECT_TRUE(co_await records.create_project(p));
    auto dup = co_await records.create_project(p);
    CO_ASSERT_TRUE(!dup);
    EXPECT_TRUE(dup.error().is(dp::errc::conflict));
    auto got = co_await records.get_project("shop");
    CO_ASSERT_TRUE(got);
    EXPECT_EQ(*got, p);
    p.build_command.reset();
    p.env.clear();
    EXPECT_TRUE(co_await records.save_project(p));
    got = co_await records.get_project("shop");
    CO_ASSERT_TRUE(got);
    EXPECT_EQ(*got, p);  // the removed command is gone, not left behind
    EXPECT_TRUE(co_await records.create_project(make_project("blog")));
    auto names = co_await records.project_names();
    EXPECT_EQ(*names, (std::vector<std::string>{"blog", "shop"}));
    EXPECT_TRUE(co_await records.delete_project("shop"));
    auto gone = co_await records.get_project("shop");
    EXPECT_TRUE(gone.error().is(dp::errc::not_found));
  });
}

TEST_F(state_test, deployment_lifecycle_and_events) {
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dp::redis::client redis(ex, dp::test::redis_options(server_));
    dp::redis::subscriber events(ex, dp::test::redis_options(server_));
    dp::proto::keys keys("t:");
    const std::vector<std::string> channels{keys.events_channel()};
    EXPECT_TRUE(co_await events.subscribe(channels));
    dp::state::records records(redis, keys);
    auto [d, j] = make_deployment("shop");
    EXPECT_TRUE(co_await records.create_deployment(d, j));
    CO_ASSERT_TRUE(d.alias);
    EXPECT_EQ(*d.alias, "shop--" + std::string(dp::short_id(d.id)));
    EXPECT_EQ(*co_await records.queue_length(), 1);
    EXPECT_EQ(**co_await records.resolve_alias(*d.alias), d.id);

    const dp::proto::hash_fields started{{"started_at", "1"}};
    auto t = co_await records.transition(d.id, deployment_status::cloning, started);
    CO_ASSERT_TRUE(t);
    EXPECT_TRUE(t->applied);
    EXPECT_EQ(t->previous, deployment_status::queued);
    t = co_await records.transition(d.id, deployment_status::ready);
    EXPECT_TRUE(t->applied);
    // Final states are never left.
    t = co_await records.transition(d.id, deployment_status::canceled, {}, "too late");
    EXPECT_FALSE(t->applied);
    EXPECT_EQ(t->previous, deployment_status::ready);
    auto got = co_await records.get_deployment(d.id);
    CO_ASSERT_TRUE(got);
    EXPECT_EQ(got->status, deployment_status::ready);
    EXPECT_EQ(got->started_at, 1);
    EXPECT_TRUE(got->finished_at.has_value());
    EXPECT_FALSE(got->error.has_value());

    // Two status events, in order, that parse as the contract says.
    for (auto expected : {deployment_status::cloning, deployment_status::ready}) {
      auto m = co_await events.next();
      CO_ASSERT_TRUE(m);
      auto e = dp::proto::parse_status_event(std::string_view(m->payload));
      CO_ASSERT_TRUE(e);
      EXPECT_EQ(e->status, expected);
      EXPECT_EQ(e->project, "shop");
      EXPECT_EQ(e->deployment_id, d.id);
    }
    auto missing = co_await records.transition(dp::new_deployment_id(), deployment_status::failed);
    EXPECT_TRUE(missing.error().is(dp::errc::not_found));
  });
}

TEST_F(state_test, go_live_never_moves_production_backwards) {
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dp::redis::client redis(ex, dp::test::redis_options(server_));
    dp::state::records records(redis, dp::proto::keys("t:"));
    auto [older, j1] = make_deployment("shop");
    auto [newer, j2] = make_deployment("shop");
    EXPECT_TRUE(co_await records.create_deployment(older, j1));
    EXPECT_TRUE(co_await records.create_deployment(newer, j2));
    EXPECT_TRUE(co_await records.go_live(newer));
    EXPECT_EQ(**co_await records.resolve_alias("shop"), newer.id);
    EXPECT_TRUE(co_await records.go_live(older));  // finished late
    EXPECT_EQ(**co_await records.resolve_alias("shop"), newer.id);
    EXPECT_EQ(**co_await records.resolve_alias(*older.alias), older.id);
    // A rollback is explicit.
    EXPECT_TRUE(co_await records.set_alias("shop", "shop", older.id));
    EXPECT_EQ(**co_await records.resolve_alias("shop"), older.id);
    auto ids = co_await records.deployment_ids("shop", 0, 10);
    EXPECT_EQ(*ids, (std::vector<std::string>{newer.id, older.id}));
    EXPECT_TRUE(co_await records.delete_deployment(older));
    EXPECT_FALSE(*co_await records.resolve_alias(*older.alias));
    EXPECT_EQ(*co_await records.deployment_count("shop"), 1);
  });
}

// Whoever sees `ready` (a status event, or the record) finds the site served: the status, its
// fields and the aliases change in one script, and the status event follows the alias events.
TEST_F(state_test, go_live_makes_ready_and_live_at_once) {
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dp::redis::client redis(ex, dp::test::redis_options(server_));
    dp::redis::subscriber events(ex, dp::test::redis_options(server_));
    dp::proto::keys keys("t:");
    const std::vector<std::string> channels{keys.events_channel()};
    EXPECT_TRUE(co_await events.subscribe(channels));
    dp::state::records records(redis, keys);
    auto [d, j] = make_deployment("shop");
    CO_ASSERT_OK(co_await records.create_deployment(d, j));
    CO_ASSERT_OK(co_await records.transition(d.id, deployment_status::uploading));
    const dp::proto::hash_fields fields{{"files", "3"}};
    auto live = co_await records.go_live(d, fields);
    CO_ASSERT_OK(live);
    EXPECT_TRUE(live->applied);
    EXPECT_EQ(live->previous, deployment_status::uploading);
    auto got = co_await records.get_deployment(d.id);
    CO_ASSERT_OK(got);
    EXPECT_EQ(got->status, deployment_status::ready);
    EXPECT_EQ(got->files, 3);
    EXPECT_TRUE(got->finished_at.has_value());
    EXPECT_EQ(**co_await records.resolve_alias("shop"), d.id);
    // uploading, then the aliases, then ready.
    std::vector<std::string> seen;
    for (int i = 0; i < 4; ++i) {
      auto m = co_await events.next();
      CO_ASSERT_OK(m);
      if (auto e = dp::proto::parse_status_event(std::string_view(m->payload))) {
        seen.emplace_back(dp::proto::to_string(e->status));
      } else {
        seen.emplace_back("alias");
      }
    }
    EXPECT_EQ(seen, (std::vector<std::string>{"uploading", "alias", "alias", "ready"}));
    // A retry finds it ready and changes nothing; a canceled deployment never goes live.
    live = co_await records.go_live(d);
    CO_ASSERT_OK(live);
    EXPECT_FALSE(live->applied);
    EXPECT_EQ(live->previous, deployment_status::ready);
    auto [late, j2] = make_deployment("shop");
    CO_ASSERT_OK(co_await records.create_deployment(late, j2));
    CO_ASSERT_OK(co_await records.transition(late.id, deployment_status::canceled));
    live = co_await records.go_live(late);
    CO_ASSERT_OK(live);
    EXPECT_FALSE(live->applied);
    EXPECT_EQ(live->previous, deployment_status::canceled);
    EXPECT_EQ(**co_await records.resolve_alias("shop"), d.id);
  });
}

TEST_F(state_test, cancel_and_requeue) {
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dp::redis::client redis(ex, dp::test::redis_options(server_));
    dp::state::records records(redis, dp::proto::keys("t:"));
    auto [queued, j1] = make_deployment("shop");
    auto [running, j2] = make_deployment("shop");
    EXPECT_TRUE(co_await records.create_deployment(queued, j1));
    EXPECT_TRUE(co_await records.create_deployment(running, j2));
    EXPECT_TRUE((co_await records.transition(running.id, deployment_status::building))->applied);

    // Queued: canceled at once. Running: a durable request for the worker.
    const dp::proto::cancel_request by_test{queued.id, 1, "by test"};
    auto c1 = co_await records.request_cancel(by_test);
    EXPECT_TRUE(c1->applied);
    EXPECT_EQ((co_await records.get_deployment(queued.id))->error, "by test");
    EXPECT_FALSE(*co_await records.cancel_requested(queued.id));
    const dp::proto::cancel_request stop{running.id, 2, "stop"};
    auto c2 = co_await records.request_cancel(stop);
    EXPECT_FALSE(c2->applied);
    EXPECT_EQ(c2->previous, deployment_status::building);
    auto req = co_await records.cancel_requested(running.id);
    CO_ASSERT_TRUE(*req);
    EXPECT_EQ((*req)->reason, "stop");

    // Requeue: the taken job leaves processing, attempt 2 goes back on the queue.
    std::string taken = dp::proto::to_json(j2);
    const std::vector<std::string> push_taken{"LPUSH", "t:queue:builds:processing", taken};
    const std::vector<std::string> processing_length{"LLEN", "t:queue:builds:processing"};
    EXPECT_TRUE(co_await redis.exec(push_taken));
    auto next = j2;
    next.attempt = 2;
    auto r = co_await records.requeue(taken, next);
    EXPECT_TRUE(r->applied);
    auto d = co_await records.get_deployment(running.id);
    EXPECT_EQ(d->status, deployment_status::queued);
    EXPECT_EQ(d->attempt, 2);
    EXPECT_EQ((co_await redis.exec(processing_length))->as_integer(), 0);
    // A final deployment is not requeued, and its job still leaves processing.
    EXPECT_TRUE(co_await redis.exec(push_taken));
    auto q = co_await records.requeue(taken, next);
    EXPECT_TRUE(q->applied);  // queued is not final: it may be requeued again
    EXPECT_TRUE((co_await records.transition(running.id, deployment_status::failed))->applied);
    EXPECT_TRUE(co_await redis.exec(push_taken));
    auto f = co_await records.requeue(taken, next);
    EXPECT_FALSE(f->applied);
    EXPECT_EQ((co_await redis.exec(processing_length))->as_integer(), 0);
  });
}

TEST_F(state_test, logbook_keeps_every_line_in_order) {
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dp::redis::client redis(ex, dp::test::redis_options(server_));
    dp::redis::subscriber live(ex, dp::test::redis_options(server_), 1'000'000);
    dp::proto::keys keys("t:");
    std::string id = dp::new_deployment_id();
    const std::vector<std::string> channels{keys.logs_channel(id)};
    EXPECT_TRUE(co_await live.subscribe(channels));
    {
      dp::state::log_writer writer(ex, redis, keys, id);
      for (int i = 0; i < 100'000; ++i) {
        // The second half of the lines is the build's: they carry the phase.
        if (i == 50'000) {
          writer.phase(dp::proto::log_phase::build);
        }
        writer.write(i % 2 ? dp::proto::log_stream::err : dp::proto::log_stream::out,
                     "line " + std::to_string(i));
      }
      auto flushed = co_await writer.flush(std::chrono::seconds(30));
      EXPECT_TRUE(flushed) << flushed.error().message;
    }
    int64_t seq = 0;
    while (true) {
      auto batch = co_await dp::state::read_logbook(redis, keys, id, seq, 10'000);
      CO_ASSERT_TRUE(batch);
      if (batch->empty()) {
        break;
      }
      for (const auto& e : *batch) {
        CO_ASSERT_EQ(e.seq, seq + 1);
        CO_ASSERT_EQ(e.line, "line " + std::to_string(seq));
        CO_ASSERT_EQ(e.phase,
                     seq >= 50'000 ? std::optional(dp::proto::log_phase::build) : std::nullopt);
        seq = e.seq;
      }
    }
    EXPECT_EQ(seq, 100'000);
    EXPECT_EQ(*co_await dp::state::next_log_seq(redis, keys, id), 100'001);
    // The live channel saw the same events in order.
    for (int64_t i = 1; i <= 100'000; ++i) {
      auto m = co_await live.next();
      CO_ASSERT_TRUE(m);
      auto e = dp::proto::parse_log_event(std::string_view(m->payload));
      CO_ASSERT_TRUE(e);
      CO_ASSERT_EQ(e->seq, i);
      CO_ASSERT_EQ(e->phase.has_value(), i > 50'000);
    }
  });
}

TEST_F(state_test, next_log_seq_reads_the_last_entry_and_refuses_a_foreign_id) {
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dp::redis::client redis(ex, dp::test::redis_options(server_));
    dp::proto::keys keys("t:");
    std::string id = dp::new_deployment_id();
    EXPECT_EQ(*co_await dp::state::next_log_seq(redis, keys, id), 1);
    CO_ASSERT_TRUE(co_await redis.exec("XADD", keys.logbook(id), "41-0", "e", "{}"));
    EXPECT_EQ(*co_await dp::state::next_log_seq(redis, keys, id), 42);
    // An id past int64 (written by something else) is a protocol error, not an exception.
    CO_ASSERT_TRUE(
        co_await redis.exec("XADD", keys.logbook(id), "9223372036854775808-0", "e", "{}"));
    auto seq = co_await dp::state::next_log_seq(redis, keys, id);
    CO_ASSERT_TRUE(!seq);
    EXPECT_TRUE(seq.error().is(dp::errc::protocol)) << seq.error().message;
  });
}

TEST_F(state_test, logbook_survives_a_redis_restart) {
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    dp::redis::client redis(ex, dp::test::redis_options(server_));
    dp::proto::keys keys("t:");
    std::string id = dp::new_deployment_id();
    dp::state::log_writer writer(ex, redis, keys, id);
    for (int i = 0; i < 100; ++i) {
      writer.write(dp::proto::log_stream::out, "before " + std::to_string(i));
    }
    EXPECT_TRUE(co_await writer.flush(std::chrono::seconds(10)));
    // No persistence in the test server: what was stored before is gone, but nothing written
    // while it is down may be lost.
    server_.kill();
    for (int i = 0; i < 100; ++i) {
      writer.write(dp::proto::log_stream::out, "during " + std::to_string(i));
    }
    asio::steady_timer pause(ex, std::chrono::milliseconds(300));
    co_await pause.async_wait(asio::use_awaitable);
    server_.restart();
    EXPECT_TRUE(co_await writer.flush(std::chrono::seconds(20)));
    auto events = co_await dp::state::read_logbook(redis, keys, id, 100, 1000);
    CO_ASSERT_TRUE(events);
    CO_ASSERT_EQ(events->size(), 100u);
    EXPECT_EQ(events->front().line, "during 0");
    EXPECT_EQ(events->back().seq, 200);
  });
}

}  // namespace
