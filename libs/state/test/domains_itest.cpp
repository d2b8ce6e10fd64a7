// Custom domain records against a real redis-server: ownership, verification before routing,
// primary and options, the issuer's status, a failed check's reason, a branch's domain.
#include <gtest/gtest.h>

#include "dp/core/preview_alias.hpp"
#include "dp/redis/client.hpp"
#include "dp/state/domains.hpp"
#include "dp/state/records.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"
#include "dp/test/options.hpp"

namespace {

namespace asio = boost::asio;
using dp::state::domain;
using dp::state::domain_state;

domain pending(std::string fqdn, std::string project) {
  return domain{.fqdn = std::move(fqdn), .project = std::move(project), .token = "tok123"};
}

// A redis-server and the two writers of domains and routes on it.
class state_domains : public ::testing::Test {
 protected:
  // Runs a test's body on the fixture's io_context, then closes the connection, which would
  // otherwise keep the io_context running.
  template <class Body>
  void run(Body body) {
    dp::test::run_async(ioc_, [&]() -> asio::awaitable<void> {
      co_await body();
      redis_.close();
    }());
  }

  dp::test::redis_server server_;
  asio::io_context ioc_;
  dp::redis::client redis_{ioc_.get_executor(), dp::test::redis_options(server_)};
  dp::state::domains domains_{redis_, dp::proto::keys{}};
  dp::state::records records_{redis_, dp::proto::keys{}};
};

TEST_F(state_domains, a_domain_is_routed_only_once_verified_and_belongs_to_one_project) {
  run([&]() -> asio::awaitable<void> {
    CO_ASSERT_OK(co_await domains_.add(pending("shop.example.com", "shop")));
    auto got = co_await domains_.get("shop.example.com");
    CO_ASSERT_OK(got);
    EXPECT_EQ(got->project, "shop");
    EXPECT_EQ(got->alias, "shop");
    EXPECT_EQ(got->token, "tok123");
    EXPECT_EQ(got->state, domain_state::pending);
    EXPECT_GT(got->created_at_ms, 0);
    // Pending: not routed.
    auto route = co_await records_.resolve_domain("shop.example.com");
    EXPECT_TRUE(route && !route->has_value());

    // Another project, or the same again: conflict.
    auto taken = co_await domains_.add(pending("shop.example.com", "other"));
    EXPECT_TRUE(!taken && taken.error().is(dp::errc::conflict));
    auto again = co_await domains_.add(pending("shop.example.com", "shop"));
    EXPECT_TRUE(!again && again.error().is(dp::errc::conflict));
    // Another project cannot verify or remove it.
    auto foreign = co_await domains_.verify("shop.example.com", "other");
    EXPECT_TRUE(!foreign && foreign.error().is(dp::errc::not_found));
    auto foreign_rm = co_await domains_.remove("shop.example.com", "other");
    EXPECT_TRUE(!foreign_rm && foreign_rm.error().is(dp::errc::not_found));

    CO_ASSERT_OK(co_await domains_.verify("shop.example.com", "shop"));
    route = co_await records_.resolve_domain("shop.example.com");
    EXPECT_TRUE(route && *route == std::optional<std::string>("shop"));
    got = co_await domains_.get("shop.example.com");
    CO_ASSERT_OK(got);
    EXPECT_EQ(got->state, domain_state::verified);
    EXPECT_GT(got->verified_at_ms, 0);

    auto all = co_await domains_.all();
    EXPECT_TRUE(all && *all == std::vector<std::string>{"shop.example.com"});

    CO_ASSERT_OK(co_await domains_.remove("shop.example.com", "shop"));
    route = co_await records_.resolve_domain("shop.example.com");
    EXPECT_TRUE(route && !route->has_value());
    auto gone = co_await domains_.get("shop.example.com");
    EXPECT_TRUE(!gone && gone.error().is(dp::errc::not_found));
    auto listed = co_await domains_.list("shop");
    EXPECT_TRUE(listed && listed->empty());
  });
}

TEST_F(state_domains, one_primary_per_project_and_its_twin_redirects) {
  run([&]() -> asio::awaitable<void> {
    CO_ASSERT_OK(co_await domains_.add(pending("example.com", "shop")));
    CO_ASSERT_OK(co_await domains_.add(pending("www.example.com", "shop")));
    CO_ASSERT_OK(co_await domains_.verify("example.com", "shop"));
    CO_ASSERT_OK(co_await domains_.verify("www.example.com", "shop"));
    CO_ASSERT_OK(co_await domains_.set_options("example.com", "shop", true, true));
    CO_ASSERT_OK(co_await domains_.set_options("www.example.com", "shop", true, std::nullopt));
    auto listed = co_await domains_.list("shop");
    CO_ASSERT_TRUE(listed && listed->size() == 2u);
    const auto& apex = (*listed)[0];
    const auto& www = (*listed)[1];
    EXPECT_EQ(apex.fqdn, "example.com");
    EXPECT_FALSE(apex.primary);  // moved to www
    EXPECT_TRUE(apex.hsts);
    EXPECT_TRUE(www.primary);
    EXPECT_FALSE(www.hsts);
    EXPECT_EQ(dp::state::redirect_for(apex, *listed),
              std::optional<std::string>("www.example.com"));
    EXPECT_EQ(dp::state::redirect_for(www, *listed), std::nullopt);

    dp::state::certificate_status cs{
        .status = "failed", .error = "challenge refused", .next_attempt_ms = 12345};
    CO_ASSERT_OK(co_await domains_.set_certificate("www.example.com", cs));
    auto got = co_await domains_.get("www.example.com");
    CO_ASSERT_OK(got);
    EXPECT_EQ(got->certificate, cs);
    auto none = co_await domains_.set_certificate("none.example.com", cs);
    EXPECT_TRUE(!none && none.error().is(dp::errc::not_found));
  });
}

TEST_F(state_domains, a_failed_check_is_recorded_until_a_pass_clears_it) {
  run([&]() -> asio::awaitable<void> {
    CO_ASSERT_OK(co_await domains_.add(pending("shop.example.com", "shop")));
    CO_ASSERT_OK(co_await domains_.check_failed("shop.example.com", "shop", "no TXT record"));
    auto foreign = co_await domains_.check_failed("shop.example.com", "other", "x");
    EXPECT_TRUE(!foreign && foreign.error().is(dp::errc::not_found));
    auto got = co_await domains_.get("shop.example.com");
    CO_ASSERT_OK(got);
    EXPECT_EQ(got->check_error, "no TXT record");
    EXPECT_GT(got->check_failed_at_ms, 0);
    EXPECT_EQ(got->state, domain_state::pending);

    CO_ASSERT_OK(co_await domains_.verify("shop.example.com", "shop", "txt"));
    got = co_await domains_.get("shop.example.com");
    CO_ASSERT_OK(got);
    EXPECT_EQ(got->state, domain_state::verified);
    EXPECT_EQ(got->verified_by, "txt");
    EXPECT_EQ(got->check_error, "");
    EXPECT_EQ(got->check_failed_at_ms, 0);
  });
}

TEST_F(state_domains, a_branch_domain_routes_to_the_branch_alias_and_follows_changes) {
  const std::string staging = dp::branch_alias("shop", "staging");
  const std::string feature = dp::branch_alias("shop", "feature/x");
  run([&]() -> asio::awaitable<void> {
    auto d = pending("staging.example.com", "shop");
    d.branch = "staging";
    CO_ASSERT_OK(co_await domains_.add(d));
    auto got = co_await domains_.get("staging.example.com");
    CO_ASSERT_OK(got);
    EXPECT_EQ(got->branch, "staging");
    EXPECT_EQ(got->alias, staging);
    // Pending: a branch change does not route it.
    CO_ASSERT_OK(co_await domains_.set_branch("staging.example.com", "shop", "feature/x"));
    auto route = co_await records_.resolve_domain("staging.example.com");
    EXPECT_TRUE(route && !route->has_value());

    CO_ASSERT_OK(co_await domains_.verify("staging.example.com", "shop"));
    route = co_await records_.resolve_domain("staging.example.com");
    EXPECT_TRUE(route && *route == std::optional<std::string>(feature));
    // Verified: the route follows the branch, and back to production.
    CO_ASSERT_OK(co_await domains_.set_branch("staging.example.com", "shop", "staging"));
    route = co_await records_.resolve_domain("staging.example.com");
    EXPECT_TRUE(route && *route == std::optional<std::string>(staging));
    CO_ASSERT_OK(co_await domains_.set_branch("staging.example.com", "shop", ""));
    route = co_await records_.resolve_domain("staging.example.com");
    EXPECT_TRUE(route && *route == std::optional<std::string>("shop"));
    got = co_await domains_.get("staging.example.com");
    CO_ASSERT_OK(got);
    EXPECT_EQ(got->branch, "");
    EXPECT_EQ(got->alias, "shop");
    auto foreign = co_await domains_.set_branch("staging.example.com", "other", "main");
    EXPECT_TRUE(!foreign && foreign.error().is(dp::errc::not_found));
  });
}

TEST(state_domain_redirects, a_twin_serving_another_alias_does_not_redirect) {
  domain www{.fqdn = "www.example.com", .project = "shop", .alias = "shop", .primary = true};
  www.state = domain_state::verified;
  domain apex{.fqdn = "example.com", .project = "shop", .alias = "shop"};
  EXPECT_EQ(dp::state::redirect_for(apex, {www}), std::optional<std::string>("www.example.com"));
  apex.alias = dp::branch_alias("shop", "staging");
  EXPECT_EQ(dp::state::redirect_for(apex, {www}), std::nullopt);
}

}  // namespace
