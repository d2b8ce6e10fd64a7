#include "dp/forge/signature.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace dp::forge {
namespace {

std::string to_hex(const unsigned char* bytes, size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(n * 2, '\0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 0xf];
  }
  return out;
}

}  // namespace

std::optional<provider> parse_provider(std::string_view name) {
  if (name == "github") {
    return provider::github;
  }
  if (name == "gitlab") {
    return provider::gitlab;
  }
  if (name == "gitea") {
    return provider::gitea;
  }
  return std::nullopt;
}

std::string_view to_string(provider p) {
  switch (p) {
    case provider::github:
      return "github";
    case provider::gitlab:
      return "gitlab";
    case provider::gitea:
      return "gitea";
  }
  return "github";
}

header_names headers_of(provider p) {
  switch (p) {
    case provider::github:
      return {"x-github-event", "x-github-delivery", "x-hub-signature-256"};
    case provider::gitlab:
      return {"x-gitlab-event", "x-gitlab-event-uuid", "x-gitlab-token"};
    case provider::gitea:
      return {"x-gitea-event", "x-gitea-delivery", "x-gitea-signature"};
  }
  return {};
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  return to_hex(mac, len);
}

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return to_hex(digest, len);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

dp::result<void> verify(provider p, std::string_view secret,
                        std::optional<std::string_view> signature, std::string_view body) {
  auto header = headers_of(p).signature;
  if (!signature) {
    return dp::make_error(dp::errc::unauthorized,
                          "the {} header is missing: set the webhook's "
                          "secret in the forge",
                          header);
  }
  bool ok = false;
  switch (p) {
    case provider::github:
      ok = constant_time_equal(*signature, "sha256=" + hmac_sha256_hex(secret, body));
      break;
    case provider::gitea:
      ok = constant_time_equal(*signature, hmac_sha256_hex(secret, body));
      break;
    case provider::gitlab:
      ok = constant_time_equal(sha256_hex(*signature), sha256_hex(secret));
      break;
  }
  if (!ok) {
    return dp::make_error(dp::errc::unauthorized,
                          "the {} header does not match the project's webhook secret", header);
  }
  return {};
}

}  // namespace dp::forge
