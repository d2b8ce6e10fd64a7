// dp::redis::client against a real redis-server (tests/harness).
#include "redis_itest_support.hpp"

#include <random>

namespace dp::redis::testing {
namespace {

TEST(RedisClient, BinarySafeValues) {
  dp::test::redis_server server;
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    client c(ex, options_for(server));
    // Every byte value, NUL included, in the key and the value.
    std::string all_bytes;
    for (int i = 0; i < 256; ++i) {
      all_bytes.push_back(static_cast<char>(i));
    }
    const std::string key("k\0ey\r\n", 6);
    CO_ASSERT_OK(co_await c.exec("SET", key, all_bytes));
    auto got = co_await c.exec("GET", key);
    CO_ASSERT_OK(got);
    EXPECT_TRUE(got->is_string());
    EXPECT_EQ(got->as_string(), all_bytes);

    std::string big(1 << 20, '\0');
    std::mt19937 gen(42);
    for (auto& ch : big) {
      ch = static_cast<char>(gen());
    }
    CO_ASSERT_OK(co_await c.exec("SET", "big", big));
    auto big_got = co_await c.exec("GET", "big");
    CO_ASSERT_OK(big_got);
    EXPECT_EQ(big_got->as_string().size(), big.size());
    EXPECT_TRUE(big_got->as_string() == big);
  });
}

// get, hget and smembers: nil is nullopt (an empty value is not), sets come back sorted, and a
// key of another type is Redis's WRONGTYPE error, not an empty answer.
TEST(RedisClient, ReadHelpers) {
  dp::test::redis_server server;
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    client c(ex, options_for(server));
    auto missing = co_await c.get("missing");
    CO_ASSERT_OK(missing);
    EXPECT_EQ(*missing, std::nullopt);
    CO_ASSERT_OK(co_await c.exec("SET", "empty", ""));
    auto empty = co_await c.get("empty");
    CO_ASSERT_OK(empty);
    EXPECT_EQ(*empty, std::optional<std::string>(""));
    const std::string binary("v\0\r\n", 4);
    CO_ASSERT_OK(co_await c.exec("SET", "k", binary));
    auto value = co_await c.get("k");
    CO_ASSERT_OK(value);
    EXPECT_EQ(*value, std::optional<std::string>(binary));

    CO_ASSERT_OK(co_await c.exec("HSET", "h", "field", "x"));
    auto field = co_await c.hget("h", "field");
    CO_ASSERT_OK(field);
    EXPECT_EQ(*field, std::optional<std::string>("x"));
    auto no_field = co_await c.hget("h", "other");
    CO_ASSERT_OK(no_field);
    EXPECT_EQ(*no_field, std::nullopt);
    auto no_hash = co_await c.hget("missing", "field");
    CO_ASSERT_OK(no_hash);
    EXPECT_EQ(*no_hash, std::nullopt);

    CO_ASSERT_OK(co_await c.exec("SADD", "set", "pear", "apple", "fig", "banana"));
    auto members = co_await c.smembers("set");
    CO_ASSERT_OK(members);
    EXPECT_EQ(*members, (std::vector<std::string>{"apple", "banana", "fig", "pear"}));
    auto none = co_await c.smembers("missing");
    CO_ASSERT_OK(none);
    EXPECT_TRUE(none->empty());

    auto wrong_get = co_await c.get("set");
    CO_ASSERT_TRUE(!wrong_get);
    EXPECT_TRUE(wrong_get.error().is(errc::protocol));
    auto wrong_hget = co_await c.hget("k", "field");
    CO_ASSERT_TRUE(!wrong_hget);
    EXPECT_TRUE(wrong_hget.error().is(errc::protocol));
    auto wrong_smembers = co_await c.smembers("k");
    CO_ASSERT_TRUE(!wrong_smembers);
    EXPECT_TRUE(wrong_smembers.error().is(errc::protocol));
  });
}

TEST(RedisClient, TypedReplies) {
  dp::test::redis_server server;
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    client c(ex, options_for(server));
    auto nil = co_await c.exec("GET", "missing");
    CO_ASSERT_OK(nil);
    EXPECT_TRUE(nil->is_nil());

    auto ok = co_await c.exec("SET", "s", "v");
    CO_ASSERT_OK(ok);
    EXPECT_TRUE(ok->is_status());
    EXPECT_EQ(ok->as_string(), "OK");

    auto n = co_await c.exec("INCRBY", "counter", "41");
    CO_ASSERT_OK(n);
    EXPECT_TRUE(n->is_integer());
    EXPECT_EQ(n->as_integer(), 41);

    CO_ASSERT_OK(co_await c.exec("RPUSH", "list", "a", "b", "c"));
    auto list = co_await c.exec("LRANGE", "list", "0", "-1");
    CO_ASSERT_OK(list);
    CO_ASSERT_TRUE(list->is_array());
    CO_ASSERT_TRUE(list->elements().size() == 3);
    EXPECT_EQ(list->elements()[2].as_string(), "c");

    // An error reply fails exec() with the server's message...
    auto wrong = co_await c.exec("INCR", "list");
    CO_ASSERT_TRUE(!wrong);
    EXPECT_TRUE(wrong.error().is(errc::protocol));
    EXPECT_NE(wrong.error().message.find("WRONGTYPE"), std::string::npos) << wrong.error().message;

    // ...while pipeline() returns it in place, and a MULTI/EXEC block goes through as one batch.
    std::vector<std::vector<std::string>> block{
        {"MULTI"}, {"INCR", "counter"}, {"LPUSH", "s", "x"}, {"GET", "s"}, {"EXEC"}};
    auto replies = co_await c.pipeline(std::move(block));
    CO_ASSERT_OK(replies);
    CO_ASSERT_TRUE(replies->size() == 5);
    EXPECT_EQ((*replies)[1].as_string(), "QUEUED");
    const reply& exec = (*replies)[4];
    CO_ASSERT_TRUE(exec.is_array() && exec.elements().size() == 3);
    EXPECT_EQ(exec.elements()[0].as_integer(), 42);
    EXPECT_TRUE(exec.elements()[1].is_error());
    EXPECT_EQ(exec.elements()[2].as_string(), "v");

    auto empty = co_await c.exec(std::vector<std::string>{});
    CO_ASSERT_TRUE(!empty);
    EXPECT_TRUE(empty.error().is(errc::invalid_argument));
  });
}

TEST(RedisClient, TenThousandPipelinedCommands) {
  dp::test::redis_server server;
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    client c(ex, options_for(server));
    constexpr int n = 10'000;
    std::vector<std::vector<std::string>> sets;
    for (int i = 0; i < n; ++i) {
      sets.push_back({"SET", fmt::format("key:{}", i), fmt::format("value:{}", i)});
    }
    auto set_replies = co_await c.pipeline(std::move(sets));
    CO_ASSERT_OK(set_replies);
    CO_ASSERT_TRUE(set_replies->size() == n);
    EXPECT_TRUE(std::all_of(set_replies->begin(), set_replies->end(),
                            [](const reply& r) { return r.as_string() == "OK"; }));

    // 10,000 coroutines at once share the connection; each must get its own reply.
    int remaining = n;
    int mismatches = 0;
    asio::steady_timer all_done(ex, asio::steady_timer::time_point::max());
    for (int i = 0; i < n; ++i) {
      dp::spawn(
          ex,
          [&, i]() -> asio::awaitable<void> {
            auto r = co_await c.exec("GET", fmt::format("key:{}", i));
            if (!r || r->as_string() != fmt::format("value:{}", i)) {
              ++mismatches;
            }
            if (--remaining == 0) {
              all_done.cancel();
            }
          },
          "GET of its own key");
    }
    co_await all_done.async_wait(asio::as_tuple(asio::use_awaitable));
    EXPECT_EQ(remaining, 0);
    EXPECT_EQ(mismatches, 0);
  });
}

TEST(RedisClient, CommandWhileServerDownFailsAfterItsTimeoutThenRecovers) {
  dp::test::redis_server server;
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    client c(ex, options_for(server));
    CO_ASSERT_OK(co_await c.connect());
    CO_ASSERT_OK(co_await c.exec("SET", "k", "before"));
    server.kill();

    // The first command may still meet the dying connection; either way it fails, never hangs.
    auto first = co_await c.exec(cmd("GET", "k"), 300ms);
    CO_ASSERT_TRUE(!first);
    EXPECT_TRUE(first.error().is(errc::unavailable) || first.error().is(errc::timeout))
        << first.error().describe();
    // The client has seen the connection go.
    CO_ASSERT_TRUE(co_await co_eventually([&] { return !c.connected(); }));
    const auto start = std::chrono::steady_clock::now();
    auto down = co_await c.exec(cmd("GET", "k"), 300ms);
    CO_ASSERT_TRUE(!down);
    EXPECT_TRUE(down.error().is(errc::unavailable)) << down.error().describe();
    EXPECT_NE(down.error().message.find("unavailable"), std::string::npos);
    EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);  // it waited for a reconnect
    EXPECT_FALSE(c.connected());

    server.restart();
    auto after = co_await c.exec("SET", "k", "after");  // waits for the reconnect
    CO_ASSERT_OK(after);
    EXPECT_TRUE(c.connected());
    auto got = co_await c.exec("GET", "k");
    CO_ASSERT_OK(got);
    EXPECT_EQ(got->as_string(), "after");
  });
}

TEST(RedisClient, CommandInFlightFailsWhenTheConnectionDrops) {
  dp::test::redis_server server;
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    client c(ex, options_for(server));
    CO_ASSERT_OK(co_await c.connect());
    std::optional<dp::result<reply>> blocked;
    dp::spawn(
        ex,
        [&]() -> asio::awaitable<void> {
          blocked = co_await c.exec(cmd("BLPOP", "nothing", "30"), 60s);
        },
        "BLPOP the dropped connection fails");
    // BLPOP is on the wire and blocking.
    CO_ASSERT_TRUE(
        co_await co_eventually([&] { return dp::test::redis_blocked_in(server.port(), "blpop"); }));
    server.kill();
    CO_ASSERT_TRUE(co_await co_eventually([&] { return blocked.has_value(); }));
    CO_ASSERT_TRUE(!*blocked);
    EXPECT_TRUE(blocked->error().is(errc::unavailable)) << blocked->error().describe();

    server.restart();
    CO_ASSERT_OK(co_await c.exec("PING"));
  });
}

TEST(RedisClient, TimeoutResetsTheConnectionAndBlockingCommandsTakeLongerTimeouts) {
  dp::test::redis_server server;
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto opts = options_for(server);
    opts.command_timeout = 300ms;
    client c(ex, opts);
    // A server-side block longer than the client's timeout: errc::timeout, then a fresh connection.
    auto late = co_await c.exec("BLPOP", "nothing", "5");
    CO_ASSERT_TRUE(!late);
    EXPECT_TRUE(late.error().is(errc::timeout)) << late.error().describe();
    CO_ASSERT_OK(co_await c.exec(cmd("PING"), 5s));

    // The same kind of command with a per-call timeout above the server's one returns normally.
    auto empty = co_await c.exec(cmd("BLMOVE", "src", "dst", "LEFT", "RIGHT", "1"), 5s);
    CO_ASSERT_OK(empty);
    EXPECT_TRUE(empty->is_nil());
    client producer(ex, options_for(server));
    dp::spawn(
        ex,
        [&]() -> asio::awaitable<void> {
          // Pushed once the consumer is blocked in BLMOVE.
          if (co_await co_eventually(
                  [&] { return dp::test::redis_blocked_in(server.port(), "blmove"); })) {
            (void)co_await producer.exec("RPUSH", "src", "job");
          }
        },
        "RPUSH once BLMOVE blocks");
    auto moved = co_await c.exec(cmd("BLMOVE", "src", "dst", "LEFT", "RIGHT", "5"), 10s);
    CO_ASSERT_OK(moved);
    EXPECT_EQ(moved->as_string(), "job");
  });
}

TEST(RedisClient, AuthWithPasswordAndUsername) {
  dp::test::redis_server server;
  ASSERT_TRUE(dp::test::redis_command(
      server.port(), {"ACL", "SETUSER", "alice", "on", ">wonderland", "~*", "&*", "+@all"}));
  ASSERT_TRUE(dp::test::redis_command(server.port(), {"CONFIG", "SET", "requirepass", "s3cret"}));
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto opts = options_for(server);
    opts.url.password = "s3cret";
    client with_password(ex, opts);
    CO_ASSERT_OK(co_await with_password.exec("SET", "k", "v"));

    opts.url.username = "alice";
    opts.url.password = "wonderland";
    client as_alice(ex, opts);
    auto who = co_await as_alice.exec("ACL", "WHOAMI");
    CO_ASSERT_OK(who);
    EXPECT_EQ(who->as_string(), "alice");

    client anonymous(ex, options_for(server));
    auto refused = co_await anonymous.exec("GET", "k");
    CO_ASSERT_TRUE(!refused);
    EXPECT_NE(refused.error().message.find("NOAUTH"), std::string::npos) << refused.error().message;

    // A wrong password fails every connect; commands end after their timeout with the reason.
    opts.url.password = "wrong";
    client wrong(ex, opts);
    auto denied = co_await wrong.exec(cmd("GET", "k"), 500ms);
    CO_ASSERT_TRUE(!denied);
    EXPECT_TRUE(denied.error().is(errc::unavailable));
    EXPECT_NE(denied.error().message.find("WRONGPASS"), std::string::npos)
        << denied.error().message;
    EXPECT_EQ(denied.error().message.find("wrong"), std::string::npos) << "password leaked";
  });
}

TEST(RedisClient, SelectDatabase) {
  dp::test::redis_server server;
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    auto opts = options_for(server);
    opts.url.db = 5;
    client db5(ex, opts);
    client db0(ex, options_for(server));
    CO_ASSERT_OK(co_await db5.exec("SET", "k", "in-5"));
    auto in0 = co_await db0.exec("GET", "k");
    CO_ASSERT_OK(in0);
    EXPECT_TRUE(in0->is_nil());
    auto in5 = co_await db5.exec("GET", "k");
    CO_ASSERT_OK(in5);
    EXPECT_EQ(in5->as_string(), "in-5");

    // The database is selected again after a reconnect. Each client's first command may still
    // meet its dead connection (the loop did not run during the restart) and fail: not retried.
    server.restart();
    (void)co_await db5.exec("PING");
    (void)co_await db0.exec("PING");
    CO_ASSERT_OK(co_await db5.exec("SET", "k2", "again"));
    auto moved = co_await db0.exec("EXISTS", "k2");
    CO_ASSERT_OK(moved);
    EXPECT_EQ(moved->as_integer(), 0);
  });
}

TEST(RedisClient, CloseCancelsWaitingCommands) {
  run_async([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    options opts;
    opts.url.port = dp::test::free_port();  // nothing listens there
    client c(ex, opts);
    std::optional<dp::result<reply>> waiting;
    bool sent = false;
    dp::spawn(
        ex,
        [&]() -> asio::awaitable<void> {
          sent = true;
          waiting = co_await c.exec(cmd("PING"), 30s);
        },
        "PING waiting to connect");
    // One thread: once `sent` is seen, the PING is suspended inside exec(), waiting.
    CO_ASSERT_TRUE(co_await co_eventually([&] { return sent; }));
    CO_ASSERT_TRUE(!waiting.has_value());
    c.close();
    CO_ASSERT_TRUE(co_await co_eventually([&] { return waiting.has_value(); }));
    CO_ASSERT_TRUE(!*waiting);
    EXPECT_TRUE(waiting->error().is(errc::canceled)) << waiting->error().describe();
    auto after = co_await c.exec("PING");
    CO_ASSERT_TRUE(!after);
    EXPECT_TRUE(after.error().is(errc::canceled));
  });
}

}  // namespace
}  // namespace dp::redis::testing
