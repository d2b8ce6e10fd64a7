#include "dp/worker/from_settings.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <utility>

#include "dp/core/storage_url.hpp"

namespace dp::worker {

namespace {

// Why a build in a container (docker, ecs) could not reach what the worker hands it, or nullopt:
// the container has its own filesystem and, unless it shares the host's network, its own loopback.
std::optional<std::string> unreachable_from_container(const settings::common& common,
                                                      const settings::worker_settings& w) {
  if (common.storage.kind == config::storage_url::scheme::file) {
    return fmt::format(
        "LAUNCHER={} builds in a container, which cannot write the worker's file store ({}): use "
        "an s3:// STORAGE_URL (MinIO, for example)",
        w.launcher, common.storage_url);
  }
  const auto& host = common.redis.host;
  bool loopback = host == "localhost" || host.starts_with("127.") || host == "::1";
  bool shares_host_network = w.launcher == "docker" && w.docker_network == "host";
  if (common.redis_set && loopback && !shares_host_network) {
    return fmt::format(
        "LAUNCHER={} builds in a container, whose {} is not this machine's: give REDIS_URL a host "
        "the container can reach{}",
        w.launcher, host, w.launcher == "docker" ? " (or DOCKER_NETWORK=host)" : "");
  }
  return std::nullopt;
}

// Only what the build needs: its Redis and storage, the storage's AWS region, its own limits.
config::environment build_environment(const settings::common& common, const settings::build& build,
                                      bool in_container) {
  return {{"REDIS_URL", common.redis_set ? common.redis.to_string() : std::string()},
          {"REDIS_PREFIX", common.key_prefix},
          {"STORAGE_URL", common.storage_url},
          {"SANDBOX", in_container ? "none" : build.sandbox},
          {"BUILD_NETWORK", build.network},
          {"BUILD_TIMEOUT_S", std::to_string(build.timeout_s)},
          {"BUILD_MEMORY_MB", std::to_string(build.memory_mb)},
          {"BUILD_DISK_MB", std::to_string(build.disk_mb)},
          {"BUILD_PIDS_MAX", std::to_string(build.pids_max)},
          {"BUILD_CACHE_MB", std::to_string(build.cache_mb)},
          {"BUILD_CACHE_DAYS", std::to_string(build.cache_days)},
          // A container has its own filesystem: its builds fetch from the object store.
          {"BUILD_CACHE_DIR", in_container ? std::string() : build.cache_dir},
          {"BUILD_CACHE_LOCAL_MB", std::to_string(build.cache_local_mb)},
          {"BUILD_COMPRESS", build.compress ? "true" : "false"},
          {"ALLOWED_GIT_PROTOCOLS", fmt::format("{}", fmt::join(build.allowed_git_protocols, ","))},
          {"LOG_FORMAT", common.log.format},
          {"LOG_LEVEL", common.log.level},
          {"BASE_DOMAIN", common.base_domain},
          {"AWS_REGION", common.aws_credentials.region}};
}

// A build on this machine (process, docker) signs with the worker's own AWS access.
config::environment local_environment(const settings::common& common, const settings::build& build,
                                      bool in_container) {
  auto env = build_environment(common, build, in_container);
  const auto& aws = common.aws_credentials;
  for (const auto& [k, v] :
       {std::pair{"AWS_ACCESS_KEY_ID", aws.access_key_id},
        std::pair{"AWS_SECRET_ACCESS_KEY", aws.secret_access_key},
        std::pair{"AWS_SESSION_TOKEN", aws.session_token},
        std::pair{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", aws.container_relative_uri},
        std::pair{"AWS_CONTAINER_CREDENTIALS_FULL_URI", aws.container_full_uri},
        std::pair{"AWS_CONTAINER_AUTHORIZATION_TOKEN", aws.container_authorization}}) {
    if (!v.empty()) {
      env[k] = v;
    }
  }
  return env;
}

// The build role of BUILD_STORAGE_ROLE_ARN, signed for with the worker's own AWS access.
std::optional<build_storage_role> storage_role_from(const settings::common& common,
                                                    const settings::worker_settings& w) {
  if (w.build_storage_role_arn.empty()) {
    return std::nullopt;
  }
  const auto& aws = common.aws_credentials;
  const auto& storage = common.storage;
  build_storage_role r;
  r.role_arn = w.build_storage_role_arn;
  r.region = !storage.region.empty() ? storage.region
             : !aws.region.empty()   ? aws.region
                                     : std::string("us-east-1");
  r.sts_endpoint = !w.build_storage_sts_endpoint.empty() ? w.build_storage_sts_endpoint
                   : !storage.endpoint.empty()
                       ? storage.endpoint
                       : fmt::format("https://sts.{}.amazonaws.com", r.region);
  r.credentials = aws.keys();
  r.credentials_endpoint = aws.endpoint();
  r.bucket = storage.bucket;
  r.key_prefix = storage.prefix;
  return r;
}

}  // namespace

std::optional<std::string> check_settings(const settings::common& common,
                                          const settings::worker_settings& w) {
  if (w.launcher == "ecs" &&
      (w.ecs_cluster.empty() || w.ecs_task_definition.empty() || w.ecs_subnets.empty())) {
    return "LAUNCHER=ecs needs ECS_CLUSTER, ECS_TASK_DEFINITION and ECS_SUBNETS";
  }
  if (w.launcher == "ecs" && !is_started_by(w.worker_id)) {
    // It names the worker's tasks (startedBy), by which a restarted worker finds its orphans.
    return "WORKER_ID must be at most 36 of [A-Za-z0-9_/-] with LAUNCHER=ecs";
  }
  if (w.launcher != "process") {
    return unreachable_from_container(common, w);
  }
  return std::nullopt;
}

std::optional<std::string> storage_access_warning(const settings::worker_settings& w) {
  if (w.launcher == "process" || !w.build_storage_role_arn.empty()) {
    return std::nullopt;
  }
  return fmt::format(
      "LAUNCHER={} without BUILD_STORAGE_ROLE_ARN: build containers get {} storage access, which "
      "reaches every project's files; set a build role to give each build only its own "
      "deployment's (docs/security.md)",
      w.launcher, w.launcher == "ecs" ? "the build task role's" : "the worker's own");
}

worker_options worker_options_from(const settings::build& build,
                                   const settings::worker_settings& w) {
  worker_options wo;
  wo.id = w.worker_id.empty() ? default_worker_id() : w.worker_id;
  wo.concurrency = static_cast<int>(w.concurrency);
  wo.lease_ttl = std::chrono::seconds(w.lease_ttl_s);
  wo.max_attempts = static_cast<int>(build.max_attempts);
  wo.drain = std::chrono::seconds(w.drain_s);
  return wo;
}

retention_options retention_options_from(const settings::retention& r,
                                         const settings::build& build) {
  retention_options o;
  o.policy = {r.keep_deployments, r.keep_production_days, build.cache_days};
  o.interval = std::chrono::seconds(r.interval_s);
  return o;
}

certificate_options certificate_options_from(const settings::acme& a, std::string holder) {
  certificate_options o;
  o.acme.directory_url = a.directory_url;
  o.acme.contact_email = a.email;
  o.ca_file = a.ca_bundle;
  o.holder = std::move(holder);
  o.interval = std::chrono::seconds(a.interval_s);
  return o;
}

process_launcher_options process_options_from(const settings::common& common,
                                              const settings::build& build,
                                              const std::string& self_path) {
  process_launcher_options o;
  o.program = self_path;
  o.env = local_environment(common, build, false);
  o.env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  return o;
}

docker_launcher_options docker_options_from(const settings::common& common,
                                            const settings::build& build,
                                            const settings::worker_settings& w,
                                            std::string_view worker_id) {
  docker_launcher_options o;
  o.socket = w.docker_socket;
  o.image = w.build_image;
  o.env = local_environment(common, build, true);
  o.worker_id = std::string(worker_id);
  // Clean-up touches only this platform's builds: those of its Redis database and key prefix.
  o.scope = fmt::format("{}:{}/{}/{}", common.redis.host, common.redis.port, common.redis.db,
                        common.key_prefix);
  // The container is the build as a whole: BUILD_MEMORY_MB unless DOCKER_MEMORY_MB says more.
  o.memory_bytes = (w.docker_memory_mb > 0 ? w.docker_memory_mb : build.memory_mb) << 20;
  o.pids_limit = build.pids_max;
  o.nano_cpus = static_cast<int64_t>(w.docker_cpus * 1e9);
  o.network_mode = w.docker_network;
  o.storage_role = storage_role_from(common, w);
  return o;
}

ecs_launcher_options ecs_options_from(const settings::common& common, const settings::build& build,
                                      const settings::worker_settings& w,
                                      std::string_view worker_id) {
  const auto& aws = common.aws_credentials;
  ecs_launcher_options o;
  o.endpoint = w.ecs_endpoint;
  o.region = aws.region;
  o.credentials = aws.keys();
  o.credentials_endpoint = aws.endpoint();
  o.cluster = w.ecs_cluster;
  o.task_definition = w.ecs_task_definition;
  o.subnets = w.ecs_subnets;
  o.security_groups = w.ecs_security_groups;
  o.assign_public_ip = w.ecs_assign_public_ip;
  o.container_name = w.ecs_container_name;
  // The task has its task role: none of the worker's AWS access goes into RunTask's overrides.
  o.env = build_environment(common, build, true);
  if (!common.redis.password.empty()) {
    // A password stays out of RunTask's overrides: the build task definition provides
    // REDIS_URL from its secrets (deploy/ecs/task-definitions/build.json).
    o.env.erase("REDIS_URL");
  }
  o.started_by = std::string(worker_id);
  o.storage_role = storage_role_from(common, w);
  return o;
}

bool uses_build_redis_users(const settings::worker_settings& w) {
  return w.launcher != "process" && w.build_redis_user == "deployment";
}

config::redis_url build_redis_url(const settings::common& common) {
  auto url = common.redis;
  url.username.clear();
  url.password.clear();
  return url;
}

std::unique_ptr<launcher> launcher_from_settings(
    http_client::client& http, const settings::common& common, const settings::build& build,
    const settings::worker_settings& w, std::string_view worker_id, const std::string& self_path,
    build_redis_users* users) {
  if (w.launcher == "docker") {
    return make_docker_launcher(http, docker_options_from(common, build, w, worker_id), users);
  }
  if (w.launcher == "ecs") {
    return make_ecs_launcher(http, ecs_options_from(common, build, w, worker_id), users);
  }
  return make_process_launcher(process_options_from(common, build, self_path));
}

}  // namespace dp::worker
