#include "dp/acme/jose.hpp"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <boost/json/parse.hpp>

namespace {

using dp::acme::base64url;
using dp::acme::ec_key;

std::string base64url_decode(std::string_view in) {
  static const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  for (char c : in) {
    auto v = alphabet.find(c);
    EXPECT_NE(v, std::string::npos) << "not base64url: " << in;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xff);
    }
  }
  return out;
}

TEST(AcmeJose, Base64urlHasNoPaddingAndUrlAlphabet) {
  EXPECT_EQ(base64url(""), "");
  EXPECT_EQ(base64url("f"), "Zg");
  EXPECT_EQ(base64url("fo"), "Zm8");
  EXPECT_EQ(base64url("foo"), "Zm9v");
  EXPECT_EQ(base64url("foob"), "Zm9vYg");
  EXPECT_EQ(base64url("\xfb\xff"), "-_8");
}

// RFC 7638 section 3.1: the example RSA key and its thumbprint.
TEST(AcmeJose, ThumbprintOfRfc7638Example) {
  auto jwk = boost::json::parse(R"({
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29"
  })")
                 .as_object();
  auto t = dp::acme::thumbprint(jwk);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(*t, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}

TEST(AcmeJose, ThumbprintRefusesUnknownKeyTypes) {
  EXPECT_FALSE(dp::acme::thumbprint(boost::json::object{{"kty", "oct"}, {"k", "x"}}).has_value());
  EXPECT_FALSE(dp::acme::thumbprint(boost::json::object{{"kty", "EC"}, {"crv", "P-256"}}));
}

TEST(AcmeJose, EcKeyRoundTripsThroughPem) {
  ec_key key = ec_key::generate();
  auto jwk = key.jwk();
  EXPECT_EQ(jwk.at("kty"), "EC");
  EXPECT_EQ(jwk.at("crv"), "P-256");
  EXPECT_EQ(jwk.at("x").as_string().size(), 43u);  // 32 bytes
  EXPECT_EQ(jwk.at("y").as_string().size(), 43u);
  auto again = ec_key::from_pem(key.to_pem());
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->jwk(), jwk);
  EXPECT_FALSE(ec_key::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"));
}

TEST(AcmeJose, KeyAuthorizationIsTokenDotThumbprint) {
  EXPECT_EQ(dp::acme::key_authorization("tok", "thumb"), "tok.thumb");
}

// The ES256 signature of `signing_input`, checked with OpenSSL against the JWK's public key.
bool verifies(const boost::json::object& jwk, const std::string& signing_input,
              const std::string& raw_signature) {
  std::string point = "\x04" + base64url_decode(jwk.at("x").as_string()) +
                      base64url_decode(jwk.at("y").as_string());
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>("P-256"), 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()),
      OSSL_PARAM_construct_end()};
  EVP_PKEY_CTX* from = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY* pub = nullptr;
  EVP_PKEY_fromdata_init(from);
  EVP_PKEY_fromdata(from, &pub, EVP_PKEY_PUBLIC_KEY, params);
  EVP_PKEY_CTX_free(from);
  // JWS's r||s back to the DER that OpenSSL verifies.
  ECDSA_SIG* sig = ECDSA_SIG_new();
  auto* raw = reinterpret_cast<const unsigned char*>(raw_signature.data());
  ECDSA_SIG_set0(sig, BN_bin2bn(raw, 32, nullptr), BN_bin2bn(raw + 32, 32, nullptr));
  unsigned char* der = nullptr;
  int der_length = i2d_ECDSA_SIG(sig, &der);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = pub != nullptr && EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, pub) == 1 &&
            EVP_DigestVerify(ctx, der, static_cast<size_t>(der_length),
                             reinterpret_cast<const unsigned char*>(signing_input.data()),
                             signing_input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  OPENSSL_free(der);
  ECDSA_SIG_free(sig);
  EVP_PKEY_free(pub);
  return ok;
}

TEST(AcmeJose, NewAccountJwsCarriesTheJwkAndVerifies) {
  ec_key key = ec_key::generate();
  auto jws = boost::json::parse(dp::acme::sign_jws(key, "", "nonce-1", "https://ca/new-acct",
                                                   R"({"termsOfServiceAgreed":true})"))
                 .as_object();
  ASSERT_EQ(jws.size(), 3u);
  std::string protected_b64(jws.at("protected").as_string());
  std::string payload_b64(jws.at("payload").as_string());
  auto header = boost::json::parse(base64url_decode(protected_b64)).as_object();
  EXPECT_EQ(header.at("alg"), "ES256");
  EXPECT_EQ(header.at("nonce"), "nonce-1");
  EXPECT_EQ(header.at("url"), "https://ca/new-acct");
  EXPECT_EQ(header.at("jwk").as_object(), key.jwk());
  EXPECT_FALSE(header.contains("kid"));
  EXPECT_EQ(base64url_decode(payload_b64), R"({"termsOfServiceAgreed":true})");
  std::string signature = base64url_decode(jws.at("signature").as_string());
  ASSERT_EQ(signature.size(), 64u);
  EXPECT_TRUE(verifies(key.jwk(), protected_b64 + "." + payload_b64, signature));
}

TEST(AcmeJose, AccountJwsCarriesTheKidAndPostAsGetHasAnEmptyPayload) {
  ec_key key = ec_key::generate();
  auto jws = boost::json::parse(
                 dp::acme::sign_jws(key, "https://ca/acct/1", "n2", "https://ca/order/7", ""))
                 .as_object();
  auto header = boost::json::parse(base64url_decode(jws.at("protected").as_string())).as_object();
  EXPECT_EQ(header.at("kid"), "https://ca/acct/1");
  EXPECT_FALSE(header.contains("jwk"));
  EXPECT_EQ(jws.at("payload"), "");
  EXPECT_TRUE(verifies(key.jwk(), std::string(jws.at("protected").as_string()) + ".",
                       base64url_decode(jws.at("signature").as_string())));
}

TEST(AcmeJose, CsrNamesEveryDomainAndIsSignedByTheKey) {
  ec_key key = ec_key::generate();
  auto der = key.make_csr({"example.test", "www.example.test"});
  ASSERT_TRUE(der.has_value());
  auto* p = reinterpret_cast<const unsigned char*>(der->data());
  X509_REQ* req = d2i_X509_REQ(nullptr, &p, static_cast<long>(der->size()));
  ASSERT_NE(req, nullptr);
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req);
  EXPECT_EQ(X509_REQ_verify(req, pub), 1);
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req), NID_commonName, cn, sizeof cn);
  EXPECT_STREQ(cn, "example.test");
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req);
  auto* names =
      static_cast<GENERAL_NAMES*>(X509V3_get_d2i(exts, NID_subject_alt_name, nullptr, nullptr));
  ASSERT_NE(names, nullptr);
  std::vector<std::string> dns;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    ASSERT_EQ(n->type, GEN_DNS);
    dns.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.dNSName)),
                     static_cast<size_t>(ASN1_STRING_length(n->d.dNSName)));
  }
  EXPECT_EQ(dns, (std::vector<std::string>{"example.test", "www.example.test"}));
  GENERAL_NAMES_free(names);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  X509_REQ_free(req);
  EXPECT_FALSE(key.make_csr({}).has_value());
  // A name longer than a CN can hold is only in subjectAltName.
  std::string long_name = std::string(70, 'a') + ".example.test";
  auto long_der = key.make_csr({long_name});
  ASSERT_TRUE(long_der.has_value());
  p = reinterpret_cast<const unsigned char*>(long_der->data());
  req = d2i_X509_REQ(nullptr, &p, static_cast<long>(long_der->size()));
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(X509_NAME_entry_count(X509_REQ_get_subject_name(req)), 0);
  X509_REQ_free(req);
}

TEST(AcmeJose, NotAfterOfAPemThatIsNoCertificateIsAnError) {
  EXPECT_FALSE(dp::acme::certificate_not_after("not a certificate").has_value());
}

}  // namespace
