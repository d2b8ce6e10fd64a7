// PEM certificates as the store and the proxy read them: the leaf's names and expiry, and the
// check that a private key belongs to the leaf. Pure functions over OpenSSL.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dp/core/error.hpp"

namespace dp::tls {

struct certificate_facts {
  std::vector<std::string> dns_names;  // the leaf's DNS subjectAltNames (else its CN), lowercase
  int64_t not_after_ms = 0;            // the leaf's notAfter, Unix milliseconds
};

// Reads a chain (leaf first, then intermediates) and checks that `key_pem` is the leaf's key.
// errc::invalid_argument with the reason otherwise (no certificate, unreadable key, mismatch).
dp::result<certificate_facts> inspect(std::string_view chain_pem, std::string_view key_pem);

// The leaf's issuer as one line (RFC 2253: "CN=R11,O=Let's Encrypt,C=US"), what a user reads to
// tell which CA signed it; empty when the chain holds no readable certificate.
std::string leaf_issuer(std::string_view chain_pem);

// Whether `pattern` (an exact name or "*.base") covers `host`: a wildcard covers one label.
bool name_covers(std::string_view pattern, std::string_view host);

}  // namespace dp::tls
