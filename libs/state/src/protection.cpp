#include "dp/state/protection.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cctype>
#include <charconv>
#include <vector>

#include <fmt/format.h>

#include "dp/core/hex.hpp"

namespace dp::state {
namespace {

// OWASP's 2023 figure for PBKDF2-HMAC-SHA256 is 600,000; a site password guards previews, not
// accounts, and the proxy pays the KDF on each new credential, so a sixth of it.
constexpr int iterations = 100'000;
constexpr size_t key_bytes = 32;

std::optional<std::vector<unsigned char>> derive(std::string_view password,
                                                 const std::vector<unsigned char>& salt,
                                                 int rounds) {
  std::vector<unsigned char> key(key_bytes);
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt.data(),
                        static_cast<int>(salt.size()), rounds, EVP_sha256(),
                        static_cast<int>(key.size()), key.data()) != 1) {
    return std::nullopt;
  }
  return key;
}

std::string hex(const std::vector<unsigned char>& bytes) {
  std::string out;
  for (unsigned char b : bytes) {
    out += fmt::format("{:02x}", b);
  }
  return out;
}

std::optional<std::vector<unsigned char>> unhex(std::string_view s) {
  if (s.empty() || s.size() % 2 != 0) {
    return std::nullopt;
  }
  std::vector<unsigned char> out(s.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = hex_value(s[2 * i]);
    int lo = hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return std::nullopt;
    }
    out[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return out;
}

}  // namespace

dp::result<std::string> hash_password(std::string_view password) {
  std::vector<unsigned char> salt(16);
  if (RAND_bytes(salt.data(), static_cast<int>(salt.size())) != 1) {
    return make_error(errc::internal, "no random bytes for a password salt");
  }
  auto key = derive(password, salt, iterations);
  if (!key) {
    return make_error(errc::internal, "PBKDF2 failed");
  }
  return fmt::format("pbkdf2-sha256${}${}${}", iterations, hex(salt), hex(*key));
}

bool verify_password(std::string_view password, std::string_view stored) {
  constexpr std::string_view scheme = "pbkdf2-sha256$";
  if (!stored.starts_with(scheme)) {
    return false;
  }
  stored.remove_prefix(scheme.size());
  auto d1 = stored.find('$');
  auto d2 = d1 == std::string_view::npos ? d1 : stored.find('$', d1 + 1);
  if (d2 == std::string_view::npos) {
    return false;
  }
  int rounds = 0;
  auto [end, ec] = std::from_chars(stored.data(), stored.data() + d1, rounds);
  auto salt = unhex(stored.substr(d1 + 1, d2 - d1 - 1));
  auto want = unhex(stored.substr(d2 + 1));
  // Bounded, so that a stored record cannot make the proxy spin.
  if (ec != std::errc() || end != stored.data() + d1 || rounds < 1 || rounds > 10'000'000 ||
      !salt || !want || want->size() != key_bytes) {
    return false;
  }
  auto got = derive(password, *salt, rounds);
  return got && CRYPTO_memcmp(got->data(), want->data(), key_bytes) == 0;
}

std::optional<basic_credentials> parse_basic_authorization(std::string_view header) {
  auto space = header.find(' ');
  if (space == std::string_view::npos) {
    return std::nullopt;
  }
  std::string scheme(header.substr(0, space));
  for (auto& c : scheme) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  std::string_view b64 = header.substr(space + 1);
  while (!b64.empty() && b64.front() == ' ') {
    b64.remove_prefix(1);
  }
  if (scheme != "basic" || b64.empty() || b64.size() % 4 != 0 || b64.size() > 4096) {
    return std::nullopt;
  }
  std::string out(b64.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(b64.data()),
                          static_cast<int>(b64.size()));
  if (n < 0) {
    return std::nullopt;
  }
  // EVP_DecodeBlock counts the padding as zero bytes.
  size_t pad = b64.ends_with("==") ? 2 : b64.ends_with("=") ? 1 : 0;
  out.resize(static_cast<size_t>(n) - pad);
  auto colon = out.find(':');
  if (colon == std::string::npos) {
    return std::nullopt;
  }
  return basic_credentials{out.substr(0, colon), out.substr(colon + 1)};
}

bool protects(proto::protection_scope scope, std::string_view project, std::string_view alias) {
  switch (scope) {
    case proto::protection_scope::off:
      return false;
    case proto::protection_scope::previews:
      return alias != project;
    case proto::protection_scope::all:
      return true;
  }
  return true;
}

}  // namespace dp::state
