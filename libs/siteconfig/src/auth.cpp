// Basic-Auth credentials: PBKDF2-HMAC-SHA256 with a random 16-byte salt at compile time, so the
// compiled file never holds a password; verify() recomputes it and compares in constant time.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <stdexcept>

#include "detail.hpp"
#include "dp/core/hex.hpp"

namespace dp::siteconfig {

namespace {

constexpr size_t salt_bytes = 16;
constexpr size_t hash_bytes = 32;

std::string to_hex(const unsigned char* p, size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(digits[p[i] >> 4]);
    out.push_back(digits[p[i] & 15]);
  }
  return out;
}

bool from_hex(std::string_view s, unsigned char* out, size_t n) {
  if (s.size() != n * 2) {
    return false;
  }
  for (size_t i = 0; i < n; ++i) {
    int hi = hex_value(s[2 * i]);
    int lo = hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return false;
    }
    out[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return true;
}

bool pbkdf2(std::string_view password, const unsigned char* salt, uint32_t iterations,
            unsigned char* out) {
  return PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt, salt_bytes,
                           static_cast<int>(iterations), EVP_sha256(), hash_bytes, out) == 1;
}

// The standard base64 alphabet's value of `c`, or -1.
int b64_value(char c) noexcept {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

std::optional<std::string> base64_decode(std::string_view s) {
  while (s.ends_with('=')) {
    s.remove_suffix(1);
  }
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    int v = b64_value(c);
    if (v < 0) {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

}  // namespace

namespace detail {

credential make_credential(std::string_view user, std::string_view password, uint32_t iterations) {
  std::array<unsigned char, salt_bytes> salt{};
  std::array<unsigned char, hash_bytes> hash{};
  if (RAND_bytes(salt.data(), salt_bytes) != 1 ||
      !pbkdf2(password, salt.data(), iterations, hash.data())) {
    // Only on an OpenSSL failure (no entropy, no memory): the runner cannot go on safely.
    throw std::runtime_error("siteconfig: OpenSSL failed to hash a Basic-Auth password");
  }
  return credential{std::string(user), to_hex(salt.data(), salt_bytes),
                    to_hex(hash.data(), hash_bytes)};
}

}  // namespace detail

bool verify(const protection_rule& rule, std::string_view authorization) {
  if (rule.users.empty() || authorization.size() < 6 ||
      !detail::iequals(authorization.substr(0, 6), "Basic ")) {
    return false;
  }
  auto decoded = base64_decode(detail::trim(authorization.substr(6)));
  if (!decoded) {
    return false;
  }
  size_t colon = decoded->find(':');
  if (colon == std::string::npos) {
    return false;
  }
  std::string_view user = std::string_view(*decoded).substr(0, colon);
  std::string_view password = std::string_view(*decoded).substr(colon + 1);
  // An unknown user still costs one PBKDF2 (the first user's), so timing does not tell names.
  const credential* c = &rule.users.front();
  bool known = false;
  for (const auto& u : rule.users) {
    if (u.user == user) {
      c = &u;
      known = true;
      break;
    }
  }
  std::array<unsigned char, salt_bytes> salt{};
  std::array<unsigned char, hash_bytes> want{};
  std::array<unsigned char, hash_bytes> got{};
  if (!from_hex(c->salt_hex, salt.data(), salt_bytes) ||
      !from_hex(c->hash_hex, want.data(), hash_bytes) || rule.iterations == 0 ||
      !pbkdf2(password, salt.data(), rule.iterations, got.data())) {
    return false;
  }
  return CRYPTO_memcmp(want.data(), got.data(), hash_bytes) == 0 && known;
}

}  // namespace dp::siteconfig
