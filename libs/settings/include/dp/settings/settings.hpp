// The settings every service shares (DESIGN.md §5), declared once so that REDIS_URL or STORAGE_URL
// means the same thing, with the same default and validation, in every binary.
#pragma once

#include <string>
#include <vector>

#include "dp/aws/container_credentials.hpp"
#include "dp/core/config.hpp"

namespace dp::settings {

struct logging {
  std::string level = "info";
  std::string format = "text";
};

struct aws {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  std::string region = "us-east-1";
  // Without keys: temporary ones from the container endpoint (an ECS task role).
  std::string container_relative_uri;
  std::string container_full_uri;
  std::string container_authorization;

  dp::aws::credentials keys() const {
    return {access_key_id, secret_access_key, session_token, region};
  }
  std::optional<dp::aws::container_endpoint> endpoint() const {
    return dp::aws::container_endpoint_from(container_relative_uri, container_full_uri,
                                            container_authorization);
  }
};

struct common {
  logging log;
  dp::config::redis_url redis;
  bool redis_set = true;  // false when REDIS_URL is optional and was left empty
  std::string key_prefix = "dp:";
  std::string storage_url;  // validated by dp::storage::parse_storage_url
  aws aws_credentials;
  std::string base_domain = "localhost";
};

// What a service asks for; every service gets logging and the key prefix.
struct needs {
  bool redis = true;
  bool redis_optional = false;  // build-runner build: without REDIS_URL logs go to stdout
  bool storage = true;
  bool base_domain = false;
};

void add_common(dp::config::parser& p, common& c, needs n);

// Applies LOG_LEVEL and LOG_FORMAT to the one logger.
void configure_logging(const logging& l, std::string_view service);

// `shop.localhost`-style DNS names: lowercase labels of [a-z0-9-], dots between.
bool is_domain(std::string_view s);

}  // namespace dp::settings
