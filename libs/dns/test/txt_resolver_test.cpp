#include <gtest/gtest.h>

#include "dp/dns/txt_resolver.hpp"

namespace {

TEST(parse_server, takes_an_ipv4_address_and_port) {
  auto s = dp::dns::parse_server("127.0.0.1:5353");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->ip, "127.0.0.1");
  EXPECT_EQ(s->port, 5353);
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
                          "localhost:53", "[::1]:53", "::1:53", "1.2.3:53", "127.0.0.1:5x"}) {
    EXPECT_FALSE(dp::dns::parse_server(bad)) << bad;
  }
}

}  // namespace
