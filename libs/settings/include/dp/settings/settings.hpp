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

// PLATFORM_KEY: 64 hex digits (`openssl rand -hex 32`) that seal the certificates' private keys
// in Redis (dp::tls::platform_key::from_hex reads it). Empty: none (the proxy then serves only
// PROXY_TLS_CERT_FILE, and certificates cannot be stored). Secret.
void add_platform_key(dp::config::parser& p, std::string* hex);

// What the api-server and build-runner both know of a build: ALLOWED_GIT_PROTOCOLS,
// BUILD_TIMEOUT_S and MAX_ATTEMPTS; with `limits` (build-runner) also SANDBOX, BUILD_NETWORK,
// BUILD_MEMORY_MB, BUILD_DISK_MB, BUILD_PIDS_MAX, BUILD_GO_LIVE and the cache's BUILD_CACHE_MB,
// BUILD_CACHE_DAYS, BUILD_CACHE_DIR and BUILD_CACHE_LOCAL_MB, and BUILD_COMPRESS.
struct build {
  std::vector<std::string> allowed_git_protocols;
  int64_t timeout_s = 900;
  int64_t max_attempts = 2;
  std::string sandbox = "bwrap";   // bwrap | none (already inside a container)
  std::string network = "egress";  // egress | none
  int64_t memory_mb = 4096;        // 0: no limit; else at least 64
  int64_t disk_mb = 10240;         // 0: no limit; else at least 16
  int64_t pids_max = 1024;         // 0: no limit
  // The build cache (libs/runner: cache_options).
  int64_t cache_mb = 5120;         // per project; 0: no cache
  int64_t cache_days = 7;          // an entry unused this long is removed
  std::string cache_dir;           // the local copy on this machine; empty: none
  int64_t cache_local_mb = 10240;  // the local copy as a whole
  std::string go_live = "runner";  // runner | worker (a container build's worker makes it live)
  bool compress = true;            // Brotli and gzip variants at upload (runner/compress.hpp)
};

struct build_needs {
  bool limits = false;
};

void add_build(dp::config::parser& p, build& b, build_needs n);

// What only `build-runner worker` reads: LAUNCHER, WORKER_CONCURRENCY, LEASE_TTL_S, BUILD_IMAGE,
// WORKER_DRAIN_S, WORKER_ID and the docker and ecs ones. MAX_ATTEMPTS and what the build needs
// (SANDBOX, BUILD_*, ALLOWED_GIT_PROTOCOLS) are add_build's; dp::worker turns these into a
// launcher (dp/worker/from_settings.hpp).
struct worker_settings {
  std::string launcher = "process";  // process | docker | ecs
  int64_t concurrency = 2;
  int64_t lease_ttl_s = 30;
  int64_t drain_s = 60;
  std::string worker_id;  // empty: host-pid-random
  std::string build_image = "deploy-platform/build-runner:latest";
  // docker, ecs: deployment (a Redis ACL user per build) | shared (the worker's REDIS_URL)
  std::string build_redis_user = "deployment";
  // docker, ecs: the role whose temporary keys, narrowed to one deployment's objects by a
  // session policy, each build container gets (empty: the worker's own AWS access, or ECS's task
  // role), and the STS endpoint to assume it at (empty: MinIO's STORAGE_URL endpoint, else
  // https://sts.<region>.amazonaws.com).
  std::string build_storage_role_arn;
  std::string build_storage_sts_endpoint;
  // docker
  std::string docker_socket = "/var/run/docker.sock";
  int64_t docker_memory_mb = 0;  // 0: BUILD_MEMORY_MB
  double docker_cpus = 0;        // 0: no limit
  std::string docker_network;    // empty: Docker's default
  // ecs
  std::string ecs_cluster;
  std::string ecs_task_definition;
  std::vector<std::string> ecs_subnets;
  std::vector<std::string> ecs_security_groups;
  bool ecs_assign_public_ip = false;
  std::string ecs_container_name = "build-runner";
  std::string ecs_endpoint;  // empty: https://ecs.<AWS_REGION>.amazonaws.com
};

void add_worker_settings(dp::config::parser& p, worker_settings& w);

// What is kept of old deployments (the api-server shows it, `build-runner worker` applies it):
// per project the newest RETENTION_KEEP_DEPLOYMENTS ready deployments and every one that was in
// production within RETENTION_KEEP_PRODUCTION_DAYS keep their files; a project's
// keep_deployments / keep_production_days override them. With `pass` (the worker) also
// RETENTION_INTERVAL_S: how often one worker of the fleet applies it (0: never).
struct retention {
  int64_t keep_deployments = 10;
  int64_t keep_production_days = 30;
  int64_t interval_s = 3600;
};
void add_retention(dp::config::parser& p, retention& r, bool pass);

// Certificates for custom domains (`build-runner worker`): ACME_DIRECTORY_URL (Let's Encrypt's
// production directory by default; empty: no issuance), ACME_EMAIL (the account's contact),
// ACME_CA_BUNDLE (a PEM file trusted for the directory's HTTPS instead of the system store: a
// private or test CA such as Pebble) and ACME_INTERVAL_S (seconds between two looks for domains
// that need a certificate).
struct acme {
  std::string directory_url = "https://acme-v02.api.letsencrypt.org/directory";
  std::string email;
  std::string ca_bundle;
  int64_t interval_s = 60;
};
void add_acme(dp::config::parser& p, acme& a);

// Parses a service that takes no arguments (api-server, s3-reverse-proxy): argv and `env` through
// `p`, then refuses a positional argument with one line on stderr ("<program>: unexpected argument
// 'x' (see --help)") and exit_misconfigured. `run` is false when the service should exit now.
dp::config::parser::outcome parse_service(dp::config::parser& p, int argc, const char* const* argv,
                                          const dp::config::environment& env);

// Applies LOG_LEVEL and LOG_FORMAT to the one logger.
void configure_logging(const logging& l, std::string_view service);

// `shop.localhost`-style DNS names: lowercase labels of [a-z0-9-], dots between.
bool is_domain(std::string_view s);

}  // namespace dp::settings
