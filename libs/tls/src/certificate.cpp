#include "dp/tls/certificate.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <memory>

#include "dp/core/c_ptr.hpp"

namespace dp::tls {
namespace {

using bio_ptr = c_ptr<BIO, BIO_free_all>;
using x509_ptr = c_ptr<X509, X509_free>;
using pkey_ptr = c_ptr<EVP_PKEY, EVP_PKEY_free>;

bio_ptr memory_bio(std::string_view text) {
  return bio_ptr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

dp::result<certificate_facts> inspect(std::string_view chain_pem, std::string_view key_pem) {
  auto cb = memory_bio(chain_pem);
  x509_ptr leaf(cb ? PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!leaf) {
    return make_error(errc::invalid_argument, "the chain holds no PEM certificate");
  }
  auto kb = memory_bio(key_pem);
  pkey_ptr key(kb ? PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) {
    return make_error(errc::invalid_argument, "the private key is not a readable PEM key");
  }
  if (X509_check_private_key(leaf.get(), key.get()) != 1) {
    return make_error(errc::invalid_argument, "the private key is not the certificate's");
  }
  certificate_facts facts;
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(leaf.get(), NID_subject_alt_name, nullptr, nullptr));
  if (names) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
      if (n->type == GEN_DNS) {
        const auto* s = n->d.dNSName;
        facts.dns_names.push_back(
            lower(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                              static_cast<size_t>(ASN1_STRING_length(s)))));
      }
    }
    GENERAL_NAMES_free(names);
  }
  if (facts.dns_names.empty()) {
    char cn[256];
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(leaf.get()), NID_commonName, cn,
                                  sizeof cn) > 0) {
      facts.dns_names.push_back(lower(cn));
    }
  }
  struct tm t {};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf.get()), &t) != 1) {
    return make_error(errc::invalid_argument, "the certificate's notAfter is unreadable");
  }
  facts.not_after_ms = static_cast<int64_t>(timegm(&t)) * 1000;
  return facts;
}

std::string leaf_issuer(std::string_view chain_pem) {
  auto cb = memory_bio(chain_pem);
  x509_ptr leaf(cb ? PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr) : nullptr);
  bio_ptr out(BIO_new(BIO_s_mem()));
  if (!leaf || !out ||
      X509_NAME_print_ex(out.get(), X509_get_issuer_name(leaf.get()), 0,
                         XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
    return {};
  }
  char* data = nullptr;
  long size = BIO_get_mem_data(out.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

bool name_covers(std::string_view pattern, std::string_view host) {
  if (!pattern.starts_with("*.")) {
    return pattern == host;
  }
  auto dot = host.find('.');
  return dot != std::string_view::npos && dot > 0 && host.substr(dot) == pattern.substr(1);
}

}  // namespace dp::tls
