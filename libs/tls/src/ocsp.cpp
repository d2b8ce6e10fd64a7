#include "dp/tls/ocsp.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "dp/core/c_ptr.hpp"
#include "dp/core/clock.hpp"
#include "dp/http_client/client.hpp"

namespace dp::tls {
namespace {

using bio_ptr = c_ptr<BIO, BIO_free_all>;
using x509_ptr = c_ptr<X509, X509_free>;
using cert_id_ptr = c_ptr<OCSP_CERTID, OCSP_CERTID_free>;
using request_ptr = c_ptr<OCSP_REQUEST, OCSP_REQUEST_free>;
using response_ptr = c_ptr<OCSP_RESPONSE, OCSP_RESPONSE_free>;
using basic_ptr = c_ptr<OCSP_BASICRESP, OCSP_BASICRESP_free>;
using store_ptr = c_ptr<X509_STORE, X509_STORE_free>;

// A response's thisUpdate may run ahead of our clock by this much (clock skew).
constexpr int64_t allowed_skew_ms = 5 * 60 * 1000;

struct leaf_and_issuer {
  x509_ptr leaf;
  x509_ptr issuer;
};

dp::result<leaf_and_issuer> read_chain(std::string_view chain_pem) {
  bio_ptr bio(BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size())));
  leaf_and_issuer c;
  c.leaf.reset(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!c.leaf) {
    ERR_clear_error();
    return make_error(errc::invalid_argument, "the chain holds no PEM certificate");
  }
  c.issuer.reset(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (!c.issuer) {
    return make_error(errc::invalid_argument,
                      "the chain holds no issuer certificate after the leaf (OCSP needs it)");
  }
  return c;
}

cert_id_ptr leaf_id(const leaf_and_issuer& c) {
  return cert_id_ptr(OCSP_cert_to_id(EVP_sha1(), c.leaf.get(), c.issuer.get()));
}

dp::result<int64_t> time_ms(const ASN1_GENERALIZEDTIME* t, std::string_view what) {
  struct tm tm {};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) {
    return make_error(errc::protocol, "the OCSP response's {} is unreadable", what);
  }
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

}  // namespace

std::string ocsp_responder_url(std::string_view chain_pem) {
  bio_ptr bio(BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size())));
  x509_ptr leaf(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  if (!leaf) {
    return {};
  }
  STACK_OF(OPENSSL_STRING)* urls = X509_get1_ocsp(leaf.get());
  std::string out;
  for (int i = 0; i < sk_OPENSSL_STRING_num(urls); ++i) {
    std::string_view url = sk_OPENSSL_STRING_value(urls, i);
    if (url.starts_with("http://")) {
      out = url;
      break;
    }
  }
  X509_email_free(urls);
  return out;
}

dp::result<std::string> ocsp_request(std::string_view chain_pem) {
  auto chain = read_chain(chain_pem);
  if (!chain) {
    return chain.error();
  }
  request_ptr req(OCSP_REQUEST_new());
  cert_id_ptr id = leaf_id(*chain);
  if (!req || !id || !OCSP_request_add0_id(req.get(), id.get())) {
    return make_error(errc::internal, "building the OCSP request failed");
  }
  id.release();  // the request owns it now
  int n = i2d_OCSP_REQUEST(req.get(), nullptr);
  if (n <= 0) {
    return make_error(errc::internal, "encoding the OCSP request failed");
  }
  std::string der(static_cast<size_t>(n), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  i2d_OCSP_REQUEST(req.get(), &p);
  return der;
}

dp::result<ocsp_validity> check_ocsp_response(std::string_view chain_pem,
                                              std::string_view response_der, int64_t now_ms) {
  auto chain = read_chain(chain_pem);
  if (!chain) {
    return chain.error();
  }
  const auto* p = reinterpret_cast<const unsigned char*>(response_der.data());
  response_ptr resp(d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(response_der.size())));
  if (!resp) {
    ERR_clear_error();
    return make_error(errc::protocol, "the OCSP response is not DER");
  }
  int status = OCSP_response_status(resp.get());
  if (status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
    return make_error(errc::protocol, "the OCSP responder answered {}",
                      OCSP_response_status_str(status));
  }
  basic_ptr basic(OCSP_response_get1_basic(resp.get()));
  if (!basic) {
    ERR_clear_error();
    return make_error(errc::protocol, "the OCSP response holds no basic response");
  }
  // The issuer is the only trust anchor (partial chain: it is usually an intermediate): the
  // signer must be the issuer itself or a responder certificate it issued.
  store_ptr store(X509_STORE_new());
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  bool verified = store && untrusted &&
                  X509_STORE_add_cert(store.get(), chain->issuer.get()) == 1 &&
                  X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN) == 1 &&
                  sk_X509_push(untrusted, chain->issuer.get()) > 0 &&
                  OCSP_basic_verify(basic.get(), untrusted, store.get(), 0) == 1;
  sk_X509_free(untrusted);  // the certificates stay the chain's
  if (!verified) {
    const char* reason = ERR_reason_error_string(ERR_peek_last_error());
    std::string why = reason ? reason : "";
    ERR_clear_error();
    return make_error(errc::protocol,
                      "the OCSP response's signature does not verify against the certificate's "
                      "issuer{}{}",
                      why.empty() ? "" : ": ", why);
  }
  cert_id_ptr id = leaf_id(*chain);
  int cert_status = -1;
  int reason = -1;
  ASN1_GENERALIZEDTIME* revoked_at = nullptr;
  ASN1_GENERALIZEDTIME* this_update = nullptr;
  ASN1_GENERALIZEDTIME* next_update = nullptr;
  if (!id || OCSP_resp_find_status(basic.get(), id.get(), &cert_status, &reason, &revoked_at,
                                   &this_update, &next_update) != 1) {
    return make_error(errc::protocol, "the OCSP response does not answer for this certificate");
  }
  if (cert_status == V_OCSP_CERTSTATUS_REVOKED) {
    return make_error(errc::protocol, "the OCSP responder says the certificate is revoked");
  }
  if (cert_status != V_OCSP_CERTSTATUS_GOOD) {
    return make_error(errc::protocol, "the OCSP responder does not know the certificate");
  }
  auto this_ms = time_ms(this_update, "thisUpdate");
  if (!this_ms) {
    return this_ms.error();
  }
  if (!next_update) {
    return make_error(errc::protocol,
                      "the OCSP response has no nextUpdate (it could not be cached)");
  }
  auto next_ms = time_ms(next_update, "nextUpdate");
  if (!next_ms) {
    return next_ms.error();
  }
  if (*this_ms > now_ms + allowed_skew_ms) {
    return make_error(errc::protocol, "the OCSP response's thisUpdate is in the future");
  }
  if (*next_ms <= *this_ms) {
    return make_error(errc::protocol, "the OCSP response's nextUpdate is not after thisUpdate");
  }
  if (*next_ms <= now_ms) {
    return make_error(errc::protocol, "the OCSP response has expired (nextUpdate has passed)");
  }
  return ocsp_validity{*this_ms, *next_ms};
}

boost::asio::awaitable<dp::result<ocsp_response>> fetch_ocsp_response(
    http_client::client& http, std::string chain_pem, std::chrono::milliseconds timeout) {
  std::string url = ocsp_responder_url(chain_pem);
  if (url.empty()) {
    co_return make_error(errc::not_found, "the certificate names no OCSP responder");
  }
  auto der = ocsp_request(chain_pem);
  if (!der) {
    co_return der.error();
  }
  http_client::request req;
  req.method = "POST";
  req.url = url;
  req.headers = {{"Content-Type", "application/ocsp-request"},
                 {"Accept", "application/ocsp-response"}};
  req.body = std::move(*der);
  req.timeout = timeout;
  req.sink = http_client::to_buffer{.max_bytes = 64 * 1024};
  auto answered = co_await http.send(std::move(req));
  if (!answered) {
    co_return answered.error();
  }
  if (answered->status != 200) {
    co_return make_error(errc::unavailable, "the OCSP responder answered HTTP {}",
                         answered->status);
  }
  auto now = dp::now_ms();
  auto validity = check_ocsp_response(chain_pem, answered->body, now);
  if (!validity) {
    co_return validity.error();
  }
  co_return ocsp_response{std::move(answered->body), *validity};
}

}  // namespace dp::tls
