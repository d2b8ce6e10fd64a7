#include "dp/api/auth.hpp"

#include <openssl/crypto.h>

#include <boost/asio/ip/address.hpp>

namespace dp::api {

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) {
    return false;
  }
  return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool is_loopback(std::string_view host) noexcept {
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(host, ec);
  if (ec) {
    return false;
  }
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6())
        .is_loopback();
  }
  return address.is_loopback();
}

std::optional<std::string_view> bearer_token(std::string_view authorization) noexcept {
  constexpr std::string_view scheme = "bearer ";
  if (authorization.size() <= scheme.size()) {
    return std::nullopt;
  }
  for (size_t i = 0; i < scheme.size(); ++i) {
    char c = authorization[i];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != scheme[i]) {
      return std::nullopt;
    }
  }
  auto token = authorization.substr(scheme.size());
  while (!token.empty() && token.front() == ' ') {
    token.remove_prefix(1);
  }
  while (!token.empty() && token.back() == ' ') {
    token.remove_suffix(1);
  }
  if (token.empty()) {
    return std::nullopt;
  }
  return token;
}

auth_result authorize(const std::vector<std::string>& tokens, std::optional<std::string_view> token,
                      std::string_view remote_host) noexcept {
  if (tokens.empty()) {
    return is_loopback(remote_host) ? auth_result::ok : auth_result::not_loopback;
  }
  if (!token) {
    return auth_result::missing_token;
  }
  bool match = false;
  for (const auto& t : tokens) {
    match |= constant_time_equal(t, *token);
  }
  return match ? auth_result::ok : auth_result::wrong_token;
}

}  // namespace dp::api
