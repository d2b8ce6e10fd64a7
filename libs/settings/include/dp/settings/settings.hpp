// The settings every service shares (DESIGN.md §5), declared once so that REDIS_URL or STORAGE_URL
// means the same thing, with the same default and validation, in every binary.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dp/aws/container_credentials.hpp"
#include "dp/core/config.hpp"
#include "dp/core/storage_url.hpp"

namespace dp::settings {

// The exit code of a service that cannot start as configured: a bad setting or argument, a store
// that will not open, a listener that cannot bind. Every service uses it.
inline constexpr int exit_misconfigured = 2;

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
  std::string storage_url;          // STORAGE_URL as given (handed on to builds)
  dp::config::storage_url storage;  // parsed once, here
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

// What the api-server and build-runner both know of a build: ALLOWED_GIT_PROTOCOLS,
// BUILD_TIMEOUT_S and MAX_ATTEMPTS; with `limits` (build-runner) also SANDBOX, BUILD_NETWORK,
// BUILD_MEMORY_MB, BUILD_DISK_MB and BUILD_PIDS_MAX.
struct build {
  std::vector<std::string> allowed_git_protocols;
  int64_t timeout_s = 900;
  int64_t max_attempts = 2;
  std::string sandbox = "bwrap";   // bwrap | none (already inside a container)
  std::string network = "egress";  // egress | none
  int64_t memory_mb = 4096;        // 0: no limit; else at least 64
  int64_t disk_mb = 10240;         // 0: no limit; else at least 16
  int64_t pids_max = 1024;         // 0: no limit
};

struct build_needs {
  bool limits = false;
};

void add_build(dp::config::parser& p, build& b, build_needs n);

// Applies LOG_LEVEL and LOG_FORMAT to the one logger.
void configure_logging(const logging& l, std::string_view service);

// `shop.localhost`-style DNS names: lowercase labels of [a-z0-9-], dots between.
bool is_domain(std::string_view s);

}  // namespace dp::settings
