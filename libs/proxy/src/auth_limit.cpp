// The failed-guess limit per client address (see auth_limit.hpp).
#include "dp/proxy/auth_limit.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>

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
  auto it = clients_.find(client);
  if (it == clients_.end() || it->second.failures < opts_.max_failures) {
    return std::nullopt;
  }
  auto left = it->second.start + opts_.window - now;
  if (left <= clock::duration::zero()) {
    return std::nullopt;
  }
  // Rounded up: a client that waits as told is not refused again.
  return std::chrono::ceil<std::chrono::seconds>(left);
}

void auth_failure_limit::failed(const std::string& client, clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = clients_.find(client);
  if (it == clients_.end()) {
    if (clients_.size() >= opts_.max_clients) {
      std::erase_if(clients_, [&](const auto& c) { return c.second.start + opts_.window <= now; });
      if (clients_.size() >= opts_.max_clients / 4 * 3) {
        clients_.clear();
      }
    }
    it = clients_.emplace(client, window{now, 0}).first;
  } else if (it->second.start + opts_.window <= now) {
    it->second = window{now, 0};
  }
  ++it->second.failures;
}

size_t auth_failure_limit::size() {
  std::lock_guard lock(mu_);
  return clients_.size();
}

}  // namespace dp::proxy
