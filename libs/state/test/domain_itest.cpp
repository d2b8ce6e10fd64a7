// store::resolve_domain against a real redis-server (the proxy's custom-domain read).
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "dp/redis/client.hpp"
#include "dp/state/store.hpp"
#include "dp/test/harness.hpp"

namespace {

namespace asio = boost::asio;

TEST(state_domain, resolves_a_custom_domain_to_its_alias_label) {
  dp::test::redis_server server;
  ASSERT_TRUE(dp::test::redis_command(server.port(), {"SET", "dp:domain:www.example.com", "shop"}));
  asio::io_context ioc;
  dp::redis::options o;
  dp::config::parse_redis_url(server.url(), o.url);
  dp::redis::client redis(ioc.get_executor(), o);
  dp::state::store store(redis, dp::proto::keys{});
  auto done = asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        auto known = co_await store.resolve_domain("www.example.com");
        EXPECT_TRUE(known && *known == std::optional<std::string>("shop"));
        auto unknown = co_await store.resolve_domain("other.example.com");
        EXPECT_TRUE(unknown && !unknown->has_value());
        redis.close();
      },
      asio::use_future);
  ioc.run();
  done.get();
}

}  // namespace
