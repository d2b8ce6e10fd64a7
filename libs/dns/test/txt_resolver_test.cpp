#include <gtest/gtest.h>

#include "dp/dns/txt_resolver.hpp"

namespace {

// `text` parses to `ip`, `port` and the address family.
void expect_server(std::string_view text, std::string_view ip, int port, bool ipv6) {
  auto s = dp::dns::parse_server(text);
  ASSERT_TRUE(s) << text;
  EXPECT_EQ(s->ip, ip) << text;
  EXPECT_EQ(s->port, port) << text;
  EXPECT_EQ(s->ipv6, ipv6) << text;
}

TEST(parse_server, takes_an_ipv4_address_and_port) {
  expect_server("127.0.0.1:5353", "127.0.0.1", 5353, false);
  expect_server("10.0.0.2", "10.0.0.2", 53, false);
}

TEST(parse_server, takes_an_ipv6_address_bare_or_in_brackets_with_a_port) {
  expect_server("[::1]:5353", "::1", 5353, true);
  expect_server("::1", "::1", 53, true);
  expect_server("[2001:db8::53]", "2001:db8::53", 53, true);
  // Without brackets the last group is the address's, not a port.
  expect_server("::1:53", "::1:53", 53, true);
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
