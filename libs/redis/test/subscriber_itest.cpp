// dp::redis::subscriber against a real redis-server (tests/harness).
#include "redis_itest_support.hpp"

namespace dp::redis::testing {
namespace {

// Publishes through a client; returns how many subscribers received it (-1 on failure).
asio::awaitable<std::int64_t> publish(client& c, const std::string& channel,
                                      const std::string& payload) {
  auto r = co_await c.exec("PUBLISH", channel, payload);
  co_return r ? r->as_integer() : -1;
}

TEST(RedisSubscriber, ThousandMessagesInOrder) {
  dp::test::redis_server server;
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    subscriber sub(ex, options_for(server));
    client pub(ex, options_for(server));
    CO_ASSERT_OK(co_await sub.subscribe("events"));
    std::vector<std::vector<std::string>> commands;
    for (int i = 0; i < 1000; ++i) {
      commands.push_back({"PUBLISH", "events", std::to_string(i)});
    }
    auto published = co_await pub.pipeline(std::move(commands));
    CO_ASSERT_OK(published);
    for (int i = 0; i < 1000; ++i) {
      auto m = co_await next_within(sub, 5s);
      CO_ASSERT_OK(m);
      CO_ASSERT_TRUE(m->kind == message_kind::data);
      EXPECT_EQ(m->channel, "events");
      EXPECT_TRUE(m->pattern.empty());
      CO_ASSERT_TRUE(m->payload == std::to_string(i));
    }
    EXPECT_EQ(sub.dropped(), 0u);
  });
}

TEST(RedisSubscriber, PatternsAndUnsubscribe) {
  dp::test::redis_server server;
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    subscriber sub(ex, options_for(server));
    client pub(ex, options_for(server));
    CO_ASSERT_OK(co_await sub.psubscribe("logs:*"));
    CO_ASSERT_OK(co_await sub.subscribe("plain"));
    EXPECT_EQ(co_await publish(pub, "logs:a", std::string("x\0y", 3)), 1);
    EXPECT_EQ(co_await publish(pub, "other:b", "ignored"), 0);
    EXPECT_EQ(co_await publish(pub, "plain", "p"), 1);
    auto a = co_await next_within(sub, 5s);
    CO_ASSERT_OK(a);
    EXPECT_EQ(a->pattern, "logs:*");
    EXPECT_EQ(a->channel, "logs:a");
    EXPECT_EQ(a->payload, std::string("x\0y", 3));
    auto p = co_await next_within(sub, 5s);
    CO_ASSERT_OK(p);
    EXPECT_EQ(p->pattern, "");
    EXPECT_EQ(p->channel, "plain");

    sub.punsubscribe(cmd("logs:*"));
    sub.unsubscribe({});  // all channels
    // PUBLISH counts the receivers: none once Redis has processed the unsubscriptions.
    EXPECT_TRUE(co_await co_eventually([&]() -> asio::awaitable<bool> {
      co_return co_await publish(pub, "logs:b", "late") == 0;
    }));
    CO_ASSERT_OK(co_await sub.subscribe("again"));
    EXPECT_EQ(co_await publish(pub, "again", "back"), 1);
    for (;;) {  // skip the "late" messages that raced with the unsubscribe
      auto m = co_await next_within(sub, 5s);
      CO_ASSERT_OK(m);
      if (m->channel == "again") {
        EXPECT_EQ(m->payload, "back");
        break;
      }
    }
  });
}

TEST(RedisSubscriber, ComesBackAfterServerRestart) {
  dp::test::redis_server server;
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto opts = options_for(server);
    opts.command_timeout = 500ms;
    subscriber sub(ex, opts);
    client pub(ex, options_for(server));
    CO_ASSERT_OK(co_await sub.subscribe("builds"));
    CO_ASSERT_OK(co_await sub.psubscribe("logs:*"));
    EXPECT_EQ(co_await publish(pub, "builds", "before"), 1);
    auto before = co_await next_within(sub, 5s);
    CO_ASSERT_OK(before);
    EXPECT_EQ(before->payload, "before");

    server.kill();
    // Requested while the server is down: fails after its timeout but is made on reconnect.
    auto late = co_await sub.subscribe("late");
    CO_ASSERT_TRUE(!late);
    EXPECT_TRUE(late.error().is(errc::unavailable)) << late.error().describe();
    server.restart();

    // The gap comes once every subscription is renewed: what is published now must arrive.
    auto gap = co_await next_within(sub, 20s);
    CO_ASSERT_OK(gap);
    EXPECT_TRUE(gap->kind == message_kind::gap);
    EXPECT_EQ(sub.reconnects(), 1u);
    EXPECT_EQ(co_await publish(pub, "builds", "after"), 1);
    EXPECT_EQ(co_await publish(pub, "logs:42", "line"), 1);
    EXPECT_EQ(co_await publish(pub, "late", "hello"), 1);
    auto after = co_await next_within(sub, 5s);
    CO_ASSERT_OK(after);
    EXPECT_EQ(after->channel, "builds");
    EXPECT_EQ(after->payload, "after");
    auto line = co_await next_within(sub, 5s);
    CO_ASSERT_OK(line);
    EXPECT_EQ(line->pattern, "logs:*");
    EXPECT_EQ(line->channel, "logs:42");
    auto hello = co_await next_within(sub, 5s);
    CO_ASSERT_OK(hello);
    EXPECT_EQ(hello->channel, "late");
  });
}

TEST(RedisSubscriber, SlowConsumerBufferIsBoundedAndReportsTheGap) {
  dp::test::redis_server server;
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    subscriber sub(ex, options_for(server), 10);
    client pub(ex, options_for(server));
    CO_ASSERT_OK(co_await sub.subscribe("fast"));
    for (int i = 0; i < 100; ++i) {
      CO_ASSERT_TRUE(co_await publish(pub, "fast", std::to_string(i)) == 1);
    }
    EXPECT_TRUE(co_await co_eventually([&] { return sub.dropped() >= 90; }));
    EXPECT_EQ(sub.dropped(), 90u);
    for (int i = 0; i < 10; ++i) {
      auto m = co_await next_within(sub, 5s);
      CO_ASSERT_OK(m);
      EXPECT_EQ(m->payload, std::to_string(i));
    }
    auto gap = co_await next_within(sub, 5s);
    CO_ASSERT_OK(gap);
    EXPECT_TRUE(gap->kind == message_kind::gap);
    EXPECT_EQ(co_await publish(pub, "fast", "fresh"), 1);
    auto fresh = co_await next_within(sub, 5s);
    CO_ASSERT_OK(fresh);
    EXPECT_EQ(fresh->payload, "fresh");
  });
}

TEST(RedisSubscriber, CloseEndsNext) {
  dp::test::redis_server server;
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    subscriber sub(ex, options_for(server));
    CO_ASSERT_OK(co_await sub.subscribe("quiet"));
    std::optional<dp::result<message>> got;
    bool waiting = false;
    dp::spawn(
        ex,
        [&]() -> asio::awaitable<void> {
          waiting = true;
          got = co_await sub.next();
        },
        "next() that close ends");
    // One thread: once `waiting` is seen, next() is suspended, waiting for a message.
    CO_ASSERT_TRUE(co_await co_eventually([&] { return waiting; }));
    CO_ASSERT_TRUE(!got.has_value());
    sub.close();
    CO_ASSERT_TRUE(co_await co_eventually([&] { return got.has_value(); }));
    CO_ASSERT_TRUE(!*got);
    EXPECT_TRUE(got->error().is(errc::canceled));
  });
}

}  // namespace
}  // namespace dp::redis::testing
