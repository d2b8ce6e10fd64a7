// SHA-256 and HMAC-SHA256 (OpenSSL EVP), the primitives of SigV4 and of content hashes.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace dp::aws {

using digest = std::array<uint8_t, 32>;

digest sha256(std::string_view data);
digest hmac_sha256(std::string_view key, std::string_view data);
std::string hex(std::span<const uint8_t> bytes);
inline std::string sha256_hex(std::string_view data) {
  return hex(sha256(data));
}
// Base64 of the MD5 of data: the Content-MD5 header some S3 calls (DeleteObjects) require.
std::string md5_base64(std::string_view data);

// Incremental SHA-256 for data that arrives in pieces (files, streamed uploads).
class sha256_hasher {
 public:
  sha256_hasher();
  ~sha256_hasher();
  sha256_hasher(sha256_hasher&&) noexcept;
  sha256_hasher& operator=(sha256_hasher&&) noexcept;

  void update(std::string_view data);
  // Ends the hash; the hasher starts over afterwards.
  digest finish();
  std::string finish_hex() { return hex(finish()); }

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace dp::aws
