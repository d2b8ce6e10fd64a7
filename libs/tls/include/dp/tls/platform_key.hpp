// The platform key: 32 bytes that seal secrets kept in shared state (certificate private keys)
// with AES-256-GCM, so a copy of Redis alone does not hold usable keys.
//
// Sealed text is "v1:" + base64(nonce(12) | ciphertext | tag(16)); `context` (the certificate's
// name) is authenticated with it, so a sealed key moved to another name does not open.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "dp/core/error.hpp"

namespace dp::tls {

class platform_key {
 public:
  // 64 hex digits (PLATFORM_KEY; `openssl rand -hex 32` makes one). errc::invalid_argument
  // otherwise.
  static dp::result<platform_key> from_hex(std::string_view hex);

  dp::result<std::string> seal(std::string_view plaintext, std::string_view context) const;
  // errc::forbidden when the text was sealed with another key or context, or was altered.
  dp::result<std::string> open(std::string_view sealed, std::string_view context) const;

 private:
  std::array<uint8_t, 32> key_{};
};

}  // namespace dp::tls
