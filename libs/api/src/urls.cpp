#include "dp/api/urls.hpp"

#include <fmt/format.h>

namespace dp::api {

std::string site_url(const site_options& o, std::string_view label) {
  bool default_port =
      o.port == 0 || (o.scheme == "http" && o.port == 80) || (o.scheme == "https" && o.port == 443);
  if (default_port) {
    return fmt::format("{}://{}.{}", o.scheme, label, o.base_domain);
  }
  return fmt::format("{}://{}.{}:{}", o.scheme, label, o.base_domain, o.port);
}

}  // namespace dp::api
