#include "dp/tls/platform_key.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <memory>

#include "dp/core/hex.hpp"

namespace dp::tls {
namespace {

constexpr std::string_view version = "v1:";
constexpr size_t nonce_size = 12;
constexpr size_t tag_size = 16;

using cipher_ctx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> unbase64(std::string_view text) {
  if (text.size() % 4 != 0) {
    return std::nullopt;
  }
  std::string out(3 * text.size() / 4, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) {
    return std::nullopt;
  }
  // EVP_DecodeBlock counts the padding as zero bytes.
  size_t pad = text.ends_with("==") ? 2 : text.ends_with("=") ? 1 : 0;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

}  // namespace

dp::result<platform_key> platform_key::from_hex(std::string_view hex) {
  platform_key k;
  if (hex.size() != 2 * k.key_.size()) {
    return make_error(errc::invalid_argument,
                      "the platform key must be 64 hex digits (openssl rand -hex 32)");
  }
  for (size_t i = 0; i < k.key_.size(); ++i) {
    int hi = hex_value(hex[2 * i]);
    int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return make_error(errc::invalid_argument,
                        "the platform key must be 64 hex digits (openssl rand -hex 32)");
    }
    k.key_[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return k;
}

dp::result<std::string> platform_key::seal(std::string_view plaintext,
                                           std::string_view context) const {
  std::string out(nonce_size + plaintext.size() + tag_size, '\0');
  auto* bytes = reinterpret_cast<unsigned char*>(out.data());
  if (RAND_bytes(bytes, nonce_size) != 1) {
    return make_error(errc::internal, "no random bytes for a nonce");
  }
  cipher_ctx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  int n = 0;
  bool ok = ctx &&
            EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_.data(), bytes) == 1 &&
            EVP_EncryptUpdate(ctx.get(), nullptr, &n,
                              reinterpret_cast<const unsigned char*>(context.data()),
                              static_cast<int>(context.size())) == 1 &&
            EVP_EncryptUpdate(ctx.get(), bytes + nonce_size, &n,
                              reinterpret_cast<const unsigned char*>(plaintext.data()),
                              static_cast<int>(plaintext.size())) == 1 &&
            EVP_EncryptFinal_ex(ctx.get(), bytes + nonce_size + n, &n) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, tag_size,
                                bytes + nonce_size + plaintext.size()) == 1;
  if (!ok) {
    return make_error(errc::internal, "AES-256-GCM sealing failed");
  }
  return std::string(version) + base64(out);
}

dp::result<std::string> platform_key::open(std::string_view sealed,
                                           std::string_view context) const {
  auto refused = [] {
    return make_error(errc::forbidden,
                      "a sealed secret does not open with this PLATFORM_KEY (another key, or "
                      "altered)");
  };
  if (!sealed.starts_with(version)) {
    return refused();
  }
  auto raw = unbase64(sealed.substr(version.size()));
  if (!raw || raw->size() < nonce_size + tag_size) {
    return refused();
  }
  const auto* bytes = reinterpret_cast<const unsigned char*>(raw->data());
  size_t length = raw->size() - nonce_size - tag_size;
  std::string out(length, '\0');
  cipher_ctx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  int n = 0;
  std::array<unsigned char, tag_size> tag{};
  std::copy(bytes + nonce_size + length, bytes + raw->size(), tag.begin());
  bool ok =
      ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_.data(), bytes) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &n,
                        reinterpret_cast<const unsigned char*>(context.data()),
                        static_cast<int>(context.size())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &n,
                        bytes + nonce_size, static_cast<int>(length)) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, tag_size, tag.data()) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + n, &n) == 1;
  if (!ok) {
    return refused();
  }
  return out;
}

}  // namespace dp::tls
