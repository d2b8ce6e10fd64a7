// The ACME server's JSON objects (RFC 8555 section 7.1) and headers, parsed strictly into what
// the client uses. Pure functions: no I/O.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dp/core/error.hpp"

namespace dp::acme {

struct directory {
  std::string new_nonce;
  std::string new_account;
  std::string new_order;
};
dp::result<directory> parse_directory(std::string_view json);

// An RFC 7807 problem document. `type` is the full URN; is() compares the ACME short name
// ("badNonce", "rateLimited", ...).
struct problem {
  std::string type;
  std::string detail;
  int status = 0;
  bool is(std::string_view acme_type) const;
  // "urn:ietf:params:acme:error:rateLimited: too many certificates" for a log or a status.
  std::string describe() const;
};
// Empty when the body is not a problem document.
std::optional<problem> parse_problem(std::string_view json);

struct challenge {
  std::string type;  // "http-01", "dns-01", ...
  std::string url;
  std::string token;
  std::string status;  // pending, processing, valid, invalid
  std::optional<problem> error;
};

struct authorization {
  std::string identifier;  // the DNS name
  std::string status;      // pending, valid, invalid, deactivated, expired, revoked
  std::vector<challenge> challenges;
  // The challenge of `type`, if offered.
  const challenge* find(std::string_view type) const;
  // The error of the first failed challenge, if any: why the authorization is invalid.
  std::optional<problem> failure() const;
};
dp::result<authorization> parse_authorization(std::string_view json);

struct order {
  std::string status;  // pending, ready, processing, valid, invalid
  std::vector<std::string> authorizations;
  std::string finalize;
  std::string certificate;  // once valid
  std::optional<problem> error;
};
dp::result<order> parse_order(std::string_view json);

// Retry-After (RFC 9110 section 10.2.3): delay-seconds or an HTTP-date, as a delay from `now`
// (never negative). Empty when absent or unreadable.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now);

}  // namespace dp::acme
