// Option structs that point a library at a harness peer, built the one way. Header-only: include
// it from tests that link the library concerned.
#pragma once

#include "dp/core/config.hpp"
#include "dp/redis/types.hpp"
#include "dp/test/harness.hpp"

#include <chrono>

namespace dp::test {

// A dp::redis client of `server`, with a command timeout that a stalled test notices (2 s);
// tests that restart Redis shorten reconnect_max themselves.
inline dp::redis::options redis_options(const redis_server& server) {
  dp::redis::options o;
  dp::config::parse_redis_url(server.url(), o.url);
  o.command_timeout = std::chrono::seconds(2);
  return o;
}

}  // namespace dp::test
