#pragma once
// Private to libs/proxy: Basic credentials already checked against a stored password hash, so
// that a request pays a hash lookup instead of the KDF.

#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>

namespace dp::proxy {

// Keyed by SHA-256 of the stored hash and the Authorization header: neither the password nor
// its base64 stays in memory, and a changed password (a new stored hash) misses. Bounded: a full
// set starts over (one KDF per credential again, nothing worse).
class verified_credentials {
 public:
  bool contains(std::string_view stored_hash, std::string_view authorization);
  void add(std::string_view stored_hash, std::string_view authorization);

 private:
  static constexpr size_t capacity = 4096;
  std::mutex mu_;
  std::unordered_set<std::string> set_;
};

}  // namespace dp::proxy
