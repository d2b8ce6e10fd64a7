// OCSP for stapling: the leaf's responder (its Authority Information Access), the request, the
// check of a response against the chain, and the fetch through the one outbound HTTP client.
//
// A chain is PEM, leaf first; the certificate after the leaf is its issuer (an ACME chain always
// holds it). Requests carry no nonce: responders answer from a cache, and a staple is served to
// many clients.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "dp/core/error.hpp"

namespace dp::http_client {
class client;
}

namespace dp::tls {

// The leaf's OCSP responder URL (the first http:// one in its AIA), or empty when it has none.
std::string ocsp_responder_url(std::string_view chain_pem);

// The DER OCSP request for the leaf (SHA-1 certificate id, as responders expect).
// errc::invalid_argument when the chain holds no leaf or no issuer.
dp::result<std::string> ocsp_request(std::string_view chain_pem);

struct ocsp_validity {
  int64_t this_update_ms = 0;
  int64_t next_update_ms = 0;
};

// Whether a DER response may be stapled for this chain at `now_ms`: a successful response whose
// signature verifies (signed by the issuer, or by a responder the issuer delegated with the
// OCSPSigning usage), that answers for this leaf "good", with thisUpdate no later than five
// minutes ahead of now and a nextUpdate after now. errc::protocol with the reason otherwise
// (revoked, unknown, not this certificate, signature, expired, no nextUpdate).
dp::result<ocsp_validity> check_ocsp_response(std::string_view chain_pem,
                                              std::string_view response_der, int64_t now_ms);

struct ocsp_response {
  std::string der;
  ocsp_validity validity;
};

// POSTs the request to the leaf's responder (application/ocsp-request) and checks the answer.
// errc::not_found when the leaf names no responder, errc::unavailable when it cannot be reached
// or answers another HTTP status, errc::protocol when the answer fails check_ocsp_response.
boost::asio::awaitable<dp::result<ocsp_response>> fetch_ocsp_response(
    http_client::client& http, std::string chain_pem,
    std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace dp::tls
