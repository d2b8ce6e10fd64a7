// The cryptography of RFC 8555 as pure functions on OpenSSL: the ES256 account key, JWS bodies
// (RFC 7515 flattened JSON), the JWK thumbprint (RFC 7638), key authorizations, and the CSR
// and certificate parsing the issuance needs.
#pragma once

#include <boost/json/object.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dp/core/error.hpp"

namespace dp::acme {

// Base64url without padding (RFC 7515 section 2).
std::string base64url(std::string_view bytes);

// A P-256 private key: the ACME account's (ES256) and each certificate's own.
class ec_key {
 public:
  static ec_key generate();
  // PKCS#8 PEM, as to_pem() writes it; other curves and key types are refused.
  static dp::result<ec_key> from_pem(std::string_view pem);
  std::string to_pem() const;
  // The public key as a JWK: {"crv":"P-256","kty":"EC","x":...,"y":...}.
  boost::json::object jwk() const;
  // ES256 (RFC 7518 section 3.4): the 64-byte r||s of an ECDSA P-256 SHA-256 signature.
  std::string sign_es256(std::string_view data) const;
  // A DER PKCS#10 request for `names` in subjectAltName (the first is also the subject's CN
  // when it fits in 64 characters), signed by this key.
  dp::result<std::string> make_csr(const std::vector<std::string>& names) const;

  struct impl;

 private:
  explicit ec_key(std::shared_ptr<impl> p) : impl_(std::move(p)) {}
  std::shared_ptr<impl> impl_;
};

// RFC 7638: base64url(SHA-256) of the JWK's required members in lexicographic order without
// whitespace (EC: crv, kty, x, y; RSA: e, kty, n). Other key types: errc::invalid_argument.
dp::result<std::string> thumbprint(const boost::json::object& jwk);

// RFC 8555 section 8.1: token "." thumbprint; the HTTP-01 response body.
std::string key_authorization(std::string_view token, std::string_view account_thumbprint);

// A JWS as RFC 8555 section 6.2 requires: alg ES256, nonce, url, and either the account's `kid`
// (its URL) or, when kid is empty (newAccount), the public `jwk`. An empty payload is a
// POST-as-GET. Returns the flattened JSON serialization.
std::string sign_jws(const ec_key& key, std::string_view kid, std::string_view nonce,
                     std::string_view url, std::string_view payload);

// The first certificate of a PEM chain: its notAfter.
dp::result<std::chrono::system_clock::time_point> certificate_not_after(std::string_view pem);

}  // namespace dp::acme
