#include "dp/acme/jose.hpp"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <boost/json/serialize.hpp>

#include <array>
#include <ctime>
#include <stdexcept>

#include "dp/core/c_ptr.hpp"

namespace dp::acme {

namespace {

using bio_ptr = c_ptr<BIO, BIO_free_all>;
using md_ctx_ptr = c_ptr<EVP_MD_CTX, EVP_MD_CTX_free>;
using x509_ptr = c_ptr<X509, X509_free>;
using req_ptr = c_ptr<X509_REQ, X509_REQ_free>;
using name_ptr = c_ptr<X509_NAME, X509_NAME_free>;
using sig_ptr = c_ptr<ECDSA_SIG, ECDSA_SIG_free>;

void free_general_names(GENERAL_NAMES* names) {
  GENERAL_NAMES_free(names);
}
using general_names_ptr = c_ptr<GENERAL_NAMES, free_general_names>;

// OpenSSL failing here (allocation, a key we made ourselves) is a broken process, not bad input.
[[noreturn]] void openssl_failed(const char* what) {
  throw std::runtime_error(std::string("OpenSSL: ") + what + " failed");
}

std::string sha256(std::string_view data) {
  std::array<unsigned char, 32> digest{};
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest.data(), &length, EVP_sha256(), nullptr) != 1) {
    openssl_failed("SHA-256");
  }
  return std::string(reinterpret_cast<const char*>(digest.data()), length);
}

std::string serialize_string(std::string_view s) {
  return boost::json::serialize(boost::json::string_view(s.data(), s.size()));
}

}  // namespace

struct ec_key::impl {
  c_ptr<EVP_PKEY, EVP_PKEY_free> key;
};

std::string base64url(std::string_view bytes) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (size_t rest = bytes.size() - i; rest > 0) {
    uint32_t v = uint8_t(bytes[i]) << 16;
    if (rest == 2) {
      v |= uint8_t(bytes[i + 1]) << 8;
    }
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    if (rest == 2) {
      out += alphabet[(v >> 6) & 63];
    }
  }
  return out;
}

ec_key ec_key::generate() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) {
    openssl_failed("P-256 key generation");
  }
  auto p = std::make_shared<impl>();
  p->key.reset(key);
  return ec_key(std::move(p));
}

dp::result<ec_key> ec_key::from_pem(std::string_view pem) {
  bio_ptr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* key = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (key == nullptr) {
    return dp::make_error(errc::invalid_argument, "not a PEM private key");
  }
  auto p = std::make_shared<impl>();
  p->key.reset(key);
  char curve[32] = {};
  if (!EVP_PKEY_is_a(key, "EC") ||
      EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof curve,
                                     nullptr) != 1 ||
      std::string_view(curve) != "prime256v1") {
    return dp::make_error(errc::invalid_argument, "the private key is not a P-256 key");
  }
  return ec_key(std::move(p));
}

std::string ec_key::to_pem() const {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), impl_->key.get(), nullptr, nullptr, 0, nullptr,
                                       nullptr) != 1) {
    openssl_failed("PEM_write_bio_PrivateKey");
  }
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(length));
}

boost::json::object ec_key::jwk() const {
  // The uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
  std::array<unsigned char, 65> point{};
  size_t length = 0;
  if (EVP_PKEY_get_octet_string_param(impl_->key.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
                                      point.data(), point.size(), &length) != 1 ||
      length != point.size() || point[0] != 0x04) {
    openssl_failed("reading the P-256 public key");
  }
  auto coordinate = [&](size_t offset) {
    return base64url(std::string_view(reinterpret_cast<const char*>(point.data()) + offset, 32));
  };
  return {{"crv", "P-256"}, {"kty", "EC"}, {"x", coordinate(1)}, {"y", coordinate(33)}};
}

std::string ec_key::sign_es256(std::string_view data) const {
  md_ctx_ptr ctx(EVP_MD_CTX_new());
  size_t der_length = 0;
  if (!ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, impl_->key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &der_length,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    openssl_failed("ECDSA signing");
  }
  std::string der(der_length, '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  if (EVP_DigestSign(ctx.get(), out, &der_length,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    openssl_failed("ECDSA signing");
  }
  // JWS wants the fixed-width r||s, OpenSSL gives an ASN.1 SEQUENCE of two INTEGERs.
  const unsigned char* in = out;
  sig_ptr sig(d2i_ECDSA_SIG(nullptr, &in, static_cast<long>(der_length)));
  if (!sig) {
    openssl_failed("decoding the ECDSA signature");
  }
  std::string raw(64, '\0');
  auto* raw_bytes = reinterpret_cast<unsigned char*>(raw.data());
  if (BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), raw_bytes, 32) != 32 ||
      BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), raw_bytes + 32, 32) != 32) {
    openssl_failed("encoding the ECDSA signature");
  }
  return raw;
}

dp::result<std::string> ec_key::make_csr(const std::vector<std::string>& names) const {
  if (names.empty()) {
    return dp::make_error(errc::invalid_argument, "a certificate request needs a name");
  }
  req_ptr req(X509_REQ_new());
  name_ptr subject(X509_NAME_new());
  general_names_ptr alt_names(GENERAL_NAMES_new());
  if (!req || !subject || !alt_names || X509_REQ_set_version(req.get(), 0) != 1) {
    openssl_failed("X509_REQ_new");
  }
  // A CN holds at most 64 characters; a longer name is in subjectAltName only, which is what
  // CAs read.
  if (names.front().size() <= 64 &&
      X509_NAME_add_entry_by_txt(subject.get(), "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(names.front().c_str()), -1,
                                 -1, 0) != 1) {
    return dp::make_error(errc::invalid_argument, "'{}' cannot be a certificate's common name",
                          names.front());
  }
  X509_REQ_set_subject_name(req.get(), subject.get());
  for (const auto& name : names) {
    GENERAL_NAME* general = GENERAL_NAME_new();
    ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
    if (general == nullptr || ia5 == nullptr ||
        ASN1_STRING_set(ia5, name.data(), static_cast<int>(name.size())) != 1) {
      openssl_failed("building subjectAltName");
    }
    GENERAL_NAME_set0_value(general, GEN_DNS, ia5);
    sk_GENERAL_NAME_push(alt_names.get(), general);
  }
  STACK_OF(X509_EXTENSION)* extensions = nullptr;
  if (X509V3_add1_i2d(&extensions, NID_subject_alt_name, alt_names.get(), 0, X509V3_ADD_DEFAULT) !=
      1) {
    openssl_failed("adding subjectAltName");
  }
  int added = X509_REQ_add_extensions(req.get(), extensions);
  sk_X509_EXTENSION_pop_free(extensions, X509_EXTENSION_free);
  if (added != 1 || X509_REQ_set_pubkey(req.get(), impl_->key.get()) != 1 ||
      X509_REQ_sign(req.get(), impl_->key.get(), EVP_sha256()) <= 0) {
    openssl_failed("signing the certificate request");
  }
  int length = i2d_X509_REQ(req.get(), nullptr);
  std::string der(static_cast<size_t>(length), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  i2d_X509_REQ(req.get(), &out);
  return der;
}

dp::result<std::string> thumbprint(const boost::json::object& jwk) {
  auto member = [&](std::string_view name) -> const boost::json::string* {
    const auto* v = jwk.if_contains(name);
    return v != nullptr ? v->if_string() : nullptr;
  };
  const auto* kty = member("kty");
  std::vector<std::string_view> required;
  if (kty != nullptr && *kty == "EC") {
    required = {"crv", "kty", "x", "y"};
  } else if (kty != nullptr && *kty == "RSA") {
    required = {"e", "kty", "n"};
  } else {
    return dp::make_error(errc::invalid_argument, "a JWK thumbprint needs kty EC or RSA");
  }
  std::string canonical = "{";
  for (auto name : required) {
    const auto* value = member(name);
    if (value == nullptr) {
      return dp::make_error(errc::invalid_argument, "the JWK has no '{}'", name);
    }
    if (canonical.size() > 1) {
      canonical += ',';
    }
    canonical += serialize_string(name) + ':' + serialize_string(*value);
  }
  canonical += '}';
  return base64url(sha256(canonical));
}

std::string key_authorization(std::string_view token, std::string_view account_thumbprint) {
  std::string out(token);
  out += '.';
  out += account_thumbprint;
  return out;
}

std::string sign_jws(const ec_key& key, std::string_view kid, std::string_view nonce,
                     std::string_view url, std::string_view payload) {
  boost::json::object header{{"alg", "ES256"}, {"nonce", nonce}, {"url", url}};
  if (kid.empty()) {
    header["jwk"] = key.jwk();
  } else {
    header["kid"] = kid;
  }
  std::string protected_b64 = base64url(boost::json::serialize(header));
  std::string payload_b64 = base64url(payload);
  std::string signature = base64url(key.sign_es256(protected_b64 + '.' + payload_b64));
  return boost::json::serialize(boost::json::object{
      {"protected", protected_b64}, {"payload", payload_b64}, {"signature", signature}});
}

dp::result<std::chrono::system_clock::time_point> certificate_not_after(std::string_view pem) {
  bio_ptr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  x509_ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  std::tm tm{};
  if (!cert || ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &tm) != 1) {
    return dp::make_error(errc::invalid_argument, "not a PEM certificate");
  }
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

}  // namespace dp::acme
