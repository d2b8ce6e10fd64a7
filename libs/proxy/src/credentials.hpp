#pragma once
// Private to libs/proxy: Basic credentials already checked against a stored password hash, so
// that a request pays a hash lookup instead of the KDF.

#include <cstddef>
#include <string_view>

#include "dp/proxy/lru.hpp"

namespace dp::proxy {

// Keyed by SHA-256 of the stored hash and the Authorization header: neither the password nor
// its base64 stays in memory, and a changed password (a new stored hash) misses. Bounded: a full
// set forgets the credential used longest ago (an LRU; a lookup counts as a use), so one in
// steady use keeps skipping the KDF while others come and go.
class verified_credentials {
 public:
  static constexpr size_t capacity = 4096;

  bool contains(std::string_view stored_hash, std::string_view authorization);
  void add(std::string_view stored_hash, std::string_view authorization);

 private:
  struct verified {};
  lru_cache<verified> set_{capacity};
};

}  // namespace dp::proxy
