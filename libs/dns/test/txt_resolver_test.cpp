#include <gtest/gtest.h>

#include "dp/dns/txt_resolver.hpp"

namespace {

TEST(parse_server, takes_an_ipv4_address_and_port) {
  auto s = dp::dns::parse_server("127.0.0.1:5353");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->ip, "127.0.0.1");
  EXPECT_EQ(s->port, 5353);
  EXPECT_FALSE(s->ipv6);
  auto bare = dp::dns::parse_server("10.0.0.2");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->ip, "10.0.0.2");
  EXPECT_EQ(bare->port, 53);
}

TEST(parse_server, takes_an_ipv6_address_bare_or_in_brackets_with_a_port) {
  auto bracketed = dp::dns::parse_server("[::1]:5353");
  ASSERT_TRUE(bracketed);
  EXPECT_EQ(bracketed->ip, "::1");
  EXPECT_EQ(bracketed->port, 5353);
  EXPECT_TRUE(bracketed->ipv6);
  auto bare = dp::dns::parse_server("::1");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->ip, "::1");
  EXPECT_EQ(bare->port, 53);
  EXPECT_TRUE(bare->ipv6);
  auto no_port = dp::dns::parse_server("[2001:db8::53]");
  ASSERT_TRUE(no_port);
  EXPECT_EQ(no_port->ip, "2001:db8::53");
  EXPECT_EQ(no_port->port, 53);
  // Without brackets the last group is the address's, not a port.
  auto all_address = dp::dns::parse_server("::1:53");
  ASSERT_TRUE(all_address);
  EXPECT_EQ(all_address->ip, "::1:53");
  EXPECT_EQ(all_address->port, 53);
}

TEST(parse_server, refuses_anything_else_with_the_forms_it_takes) {
  for (const char* bad : {"",
                          "127.0.0.1:",
                          "127.0.0.1:0",
                          "127.0.0.1:65536",
                          "localhost:53",
                          "localhost",
                          "1.2.3:53",
                          "127.0.0.1:5x",
                          ":53",
                          "[::1]:",
                          "[::1]:0",
                          "[::1]:70000",
                          "[::1]53",
                          "[::1",
                          "::1]:53",
                          "[127.0.0.1]:53",
                          "[localhost]:53",
                          "[::g]:53",
                          "::g",
                          "1::2::3"}) {
    auto r = dp::dns::parse_server(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_TRUE(r.error().is(dp::errc::invalid_argument)) << bad;
    EXPECT_NE(r.error().message.find("[::1]:port"), std::string::npos) << r.error().message;
  }
}

}  // namespace
