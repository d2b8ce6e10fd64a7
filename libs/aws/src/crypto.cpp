#include "dp/aws/crypto.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdexcept>

namespace dp::aws {

struct sha256_hasher::impl {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~impl() { EVP_MD_CTX_free(ctx); }
};

namespace {
// EVP only fails on allocation failure or a broken OpenSSL: not an error a caller can handle.
void check(int ok) {
  if (ok != 1) {
    throw std::runtime_error("OpenSSL digest failed");
  }
}
}  // namespace

sha256_hasher::sha256_hasher() : impl_(std::make_unique<impl>()) {
  check(impl_->ctx != nullptr ? 1 : 0);
  check(EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr));
}
sha256_hasher::~sha256_hasher() = default;
sha256_hasher::sha256_hasher(sha256_hasher&&) noexcept = default;
sha256_hasher& sha256_hasher::operator=(sha256_hasher&&) noexcept = default;

void sha256_hasher::update(std::string_view data) {
  check(EVP_DigestUpdate(impl_->ctx, data.data(), data.size()));
}

digest sha256_hasher::finish() {
  digest out{};
  unsigned int len = 0;
  check(EVP_DigestFinal_ex(impl_->ctx, out.data(), &len));
  check(EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr));
  return out;
}

digest sha256(std::string_view data) {
  digest out{};
  unsigned int len = 0;
  check(EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr));
  return out;
}

digest hmac_sha256(std::string_view key, std::string_view data) {
  digest out{};
  unsigned int len = 0;
  auto* r =
      HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
  check(r != nullptr ? 1 : 0);
  return out;
}

std::string md5_base64(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  check(EVP_Digest(data.data(), data.size(), md, &len, EVP_md5(), nullptr));
  unsigned char out[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
  int n = EVP_EncodeBlock(out, md, static_cast<int>(len));
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

std::string hex(std::span<const uint8_t> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 0xf]);
  }
  return out;
}

}  // namespace dp::aws
