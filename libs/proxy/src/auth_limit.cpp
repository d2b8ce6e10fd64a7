// The failed-guess limit per client address (see auth_limit.hpp).
#include "dp/proxy/auth_limit.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <memory>

namespace dp::proxy {

std::string auth_failure_limit::client_of(std::string_view address) {
  std::string text(address);
  if (text.size() > 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  std::array<unsigned char, 16> a{};
  if (::inet_pton(AF_INET, text.c_str(), a.data()) == 1) {
    return text;
  }
  if (::inet_pton(AF_INET6, text.c_str(), a.data()) != 1) {
    return text;
  }
  static constexpr std::array<unsigned char, 12> v4_mapped{0, 0, 0, 0, 0,    0,
                                                           0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(v4_mapped.begin(), v4_mapped.end(), a.begin())) {
    char buf[INET_ADDRSTRLEN];
    return ::inet_ntop(AF_INET, a.data() + 12, buf, sizeof buf);
  }
  std::fill(a.begin() + 8, a.end(), 0);
  char buf[INET6_ADDRSTRLEN];
  return std::string(::inet_ntop(AF_INET6, a.data(), buf, sizeof buf)) + "/64";
}

std::optional<std::chrono::seconds> auth_failure_limit::blocked(const std::string& client,
                                                                clock::time_point now) {
  std::lock_guard lock(mu_);
  auto w = clients_.get(client);
  if (!w || w->failures < opts_.max_failures) {
    return std::nullopt;
  }
  auto left = w->start + opts_.window - now;
  if (left <= clock::duration::zero()) {
    return std::nullopt;
  }
  // Rounded up: a client that waits as told is not refused again.
  return std::chrono::ceil<std::chrono::seconds>(left);
}

void auth_failure_limit::failed(const std::string& client, clock::time_point now) {
  std::lock_guard lock(mu_);
  auto w = clients_.get(client);
  window next{now, 1};
  if (w && now < w->start + opts_.window) {
    next = window{w->start, w->failures + 1};
  }
  // A new client in a full table evicts the one whose last guess is the oldest.
  clients_.put(client, std::make_shared<const window>(next), 1);
}

size_t auth_failure_limit::size() {
  return clients_.size();
}

}  // namespace dp::proxy
