// Who may call the API: bearer tokens (API_TOKENS), or, with no token configured, loopback clients
// only (local mode). Pure functions, so the rules are unit-tested without a server.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dp::api {

enum class auth_result {
  ok,
  missing_token,  // 401: no "Authorization: Bearer ..." (nor access_token where accepted)
  wrong_token,    // 401: a token that is not configured
  not_loopback,   // 403: local mode serves loopback clients only
};

// Compares in time that depends on the lengths only, never on where the bytes differ.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

// 127.0.0.0/8, ::1 and IPv4-mapped loopback (::ffff:127.x.y.z).
bool is_loopback(std::string_view host) noexcept;

// The token of an "Authorization: Bearer <token>" header value (scheme case-insensitive).
std::optional<std::string_view> bearer_token(std::string_view authorization) noexcept;

// `token` is what the client presented (nullopt: none). Every configured token is compared, so
// the time does not reveal which one matched.
auth_result authorize(const std::vector<std::string>& tokens, std::optional<std::string_view> token,
                      std::string_view remote_host) noexcept;

}  // namespace dp::api
