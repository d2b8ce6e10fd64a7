// Public site URLs: where the s3-reverse-proxy serves an alias (`<label>.<base domain>`).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dp::api {

struct site_options {
  std::string scheme = "http";  // SITE_SCHEME
  std::string base_domain = "localhost";
  uint16_t port = 8000;  // SITE_PORT; 0, or the scheme's default port, is left out of URLs
};

// "http://shop-4t6v0w1y.localhost:8000"
std::string site_url(const site_options& o, std::string_view label);

}  // namespace dp::api
