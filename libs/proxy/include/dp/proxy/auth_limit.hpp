// Failed Basic-Auth guesses per client: each one costs the proxy a password hash (PBKDF2), so a
// client (an IPv4 address, or an IPv6 /64, what one subscriber usually holds) that fails
// `max_failures` times within a window is answered 429 until that window ends. Credentials
// verified before are looked up without a hash and never refused.
#pragma once

#include "dp/proxy/lru.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace dp::proxy {

class auth_failure_limit {
 public:
  using clock = std::chrono::steady_clock;
  struct options {
    uint32_t max_failures = 10;
    std::chrono::seconds window{60};
    // Clients tracked at once. A full table forgets the client whose last guess is the oldest
    // (an LRU), so a client that keeps guessing is never forgotten before a quieter one; only a
    // client with more addresses than this can have its count of one of them start afresh.
    size_t max_clients = 65536;
  };

  explicit auth_failure_limit(options o) : opts_(o), clients_(o.max_clients) {}

  // How long the client must wait before it may guess again, or nullopt when it may now. Asked
  // before each guess, so it also marks the client as recently seen.
  std::optional<std::chrono::seconds> blocked(const std::string& client, clock::time_point now);
  // One wrong guess: counted in the client's current window (started by its first failure).
  void failed(const std::string& client, clock::time_point now);
  size_t size();

  // The client a remote address counts for: the address itself for IPv4 (also IPv4-mapped
  // IPv6), its /64 for IPv6, the text as given for anything else.
  static std::string client_of(std::string_view address);

 private:
  struct window {
    clock::time_point start;
    uint32_t failures = 0;
  };
  options opts_;
  // Held across a lookup and the store that follows it, so concurrent failures all count.
  std::mutex mu_;
  lru_cache<window> clients_;
};

}  // namespace dp::proxy
