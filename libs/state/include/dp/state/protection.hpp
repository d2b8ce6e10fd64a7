// Project protection's credentials: the password is stored only as a salted PBKDF2-HMAC-SHA256
// hash (the api-server makes it, the proxy checks Basic credentials against it), and which hosts
// a scope covers.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "dp/core/error.hpp"
#include "dp/proto/types.hpp"

namespace dp::state {

// "pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>" with a random 16-byte salt.
dp::result<std::string> hash_password(std::string_view password);

// Whether `password` matches a stored hash; the derived keys are compared in constant time.
// A malformed stored hash matches nothing.
bool verify_password(std::string_view password, std::string_view stored);

// The user and password of an `Authorization: Basic <base64(user:password)>` header; nullopt
// for another scheme or malformed base64.
struct basic_credentials {
  std::string username;
  std::string password;
};
std::optional<basic_credentials> parse_basic_authorization(std::string_view header);

// Whether a host serving `alias` (a label, production's is the project's name) of `project`
// asks for credentials under `scope`.
bool protects(proto::protection_scope scope, std::string_view project, std::string_view alias);

}  // namespace dp::state
