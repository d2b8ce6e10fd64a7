// records::resolve_domain against a real redis-server (the proxy's custom-domain read).
#include <gtest/gtest.h>

#include "dp/redis/client.hpp"
#include "dp/state/records.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/options.hpp"

namespace {

namespace asio = boost::asio;

TEST(state_domain, resolves_a_custom_domain_to_its_alias_label) {
  dp::test::redis_server server;
  ASSERT_TRUE(dp::test::redis_command(server.port(), {"SET", "dp:domain:www.example.com", "shop"}));
  asio::io_context ioc;
  dp::redis::client redis(ioc.get_executor(), dp::test::redis_options(server));
  dp::state::records records(redis, dp::proto::keys{});
  dp::test::run_async(ioc, [&]() -> asio::awaitable<void> {
    auto known = co_await records.resolve_domain("www.example.com");
    EXPECT_TRUE(known && *known == std::optional<std::string>("shop"));
    auto unknown = co_await records.resolve_domain("other.example.com");
    EXPECT_TRUE(unknown && !unknown->has_value());
    redis.close();
  }());
}

}  // namespace
