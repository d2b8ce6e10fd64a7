// Who sent a webhook: each forge's signature header checked against the project's secret over the
// raw body, before anything parses it. Pure functions (OpenSSL's HMAC and CRYPTO_memcmp).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "dp/core/error.hpp"

namespace dp::forge {

enum class provider { github, gitlab, gitea };

// "github", "gitlab", "gitea" (Forgejo sends Gitea's headers too); nullopt for anything else.
std::optional<provider> parse_provider(std::string_view name);
std::string_view to_string(provider p);

// The request headers each forge names its event, delivery id and signature with (lower case).
struct header_names {
  std::string_view event;
  std::string_view delivery;
  std::string_view signature;
};
header_names headers_of(provider p);

// Lowercase hex of HMAC-SHA256(key, data).
std::string hmac_sha256_hex(std::string_view key, std::string_view data);
// Lowercase hex of SHA-256(data).
std::string sha256_hex(std::string_view data);
// Equal contents, in time that depends on the lengths only (CRYPTO_memcmp).
bool constant_time_equal(std::string_view a, std::string_view b);

// Checks the signature header's value (nullopt: the header was missing) for `body`:
//   github: X-Hub-Signature-256 = "sha256=" + hex HMAC-SHA256 of the body;
//   gitea:  X-Gitea-Signature   = hex HMAC-SHA256 of the body;
//   gitlab: X-Gitlab-Token      = the secret itself (GitLab signs nothing), compared through
//           SHA-256 digests so that the time taken does not depend on the secret's length.
// errc::unauthorized says which header was missing or wrong.
dp::result<void> verify(provider p, std::string_view secret,
                        std::optional<std::string_view> signature, std::string_view body);

}  // namespace dp::forge
