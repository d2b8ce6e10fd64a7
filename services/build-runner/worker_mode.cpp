#include "worker_mode.hpp"

#include <boost/asio/io_context.hpp>

#include <optional>
#include <string>

#include "dp/core/log.hpp"
#include "dp/core/shutdown.hpp"
#include "dp/core/spawn.hpp"
#include "dp/http_client/client.hpp"
#include "dp/worker/launcher.hpp"
#include "dp/worker/worker.hpp"

namespace build_runner {

void add_worker_settings(dp::config::parser& p, worker_settings& w) {
  p.add_choice("LAUNCHER", &w.launcher, "process", {"process", "docker", "ecs"},
               "worker: how builds are launched");
  p.add_int("WORKER_CONCURRENCY", &w.concurrency, 2, 1, 256, "worker: builds run at once");
  p.add_int("LEASE_TTL_S", &w.lease_ttl_s, 30, 5, 3600,
            "worker: a job whose lease is not refreshed for this long is re-queued");
  p.add_string("BUILD_IMAGE", &w.build_image, "deploy-platform/build-runner:latest",
               "worker (docker, ecs): the build container image");
  p.add_int("WORKER_DRAIN_S", &w.drain_s, 60, 0, 86400,
            "worker: on SIGTERM, how long running builds may finish before they are handed back");
  p.add_string("WORKER_ID", &w.worker_id, "",
               "worker: its name in leases and container labels (default: host-pid-random)");
  p.add_string("DOCKER_SOCKET", &w.docker_socket, "/var/run/docker.sock",
               "worker (docker): the Docker Engine API socket");
  p.add_int("DOCKER_MEMORY_MB", &w.docker_memory_mb, 0, 0, 1 << 20,
            "worker (docker): memory limit of a build container (0: BUILD_MEMORY_MB)");
  p.add({.env = "DOCKER_CPUS",
         .default_value = "0",
         .help = "worker (docker): CPUs of a build container, e.g. 1.5 (0: no limit)",
         .apply = [&w](std::string_view v) -> std::optional<std::string> {
           try {
             size_t used = 0;
             w.docker_cpus = std::stod(std::string(v), &used);
             if (used != v.size() || w.docker_cpus < 0) {
               return "must be a non-negative number";
             }
           } catch (const std::exception&) {
             return "must be a non-negative number";
           }
           return std::nullopt;
         }});
  p.add_string("DOCKER_NETWORK", &w.docker_network, "",
               "worker (docker): network mode of build containers (empty: Docker's default)");
  p.add_string("ECS_CLUSTER", &w.ecs_cluster, "", "worker (ecs): cluster name or ARN");
  p.add_string("ECS_TASK_DEFINITION", &w.ecs_task_definition, "",
               "worker (ecs): task definition (family[:revision] or ARN)");
  p.add_list("ECS_SUBNETS", &w.ecs_subnets, "", "worker (ecs): subnet ids, comma-separated");
  p.add_list("ECS_SECURITY_GROUPS", &w.ecs_security_groups, "",
             "worker (ecs): security group ids, comma-separated");
  p.add_bool("ECS_ASSIGN_PUBLIC_IP", &w.ecs_assign_public_ip, false,
             "worker (ecs): give the task a public IP (needed without a NAT gateway)");
  p.add_string("ECS_CONTAINER_NAME", &w.ecs_container_name, "build-runner",
               "worker (ecs): the container in the task definition that runs the build");
  p.add_string("ECS_ENDPOINT", &w.ecs_endpoint, "",
               "worker (ecs): API endpoint (default https://ecs.<AWS_REGION>.amazonaws.com)");
}

namespace {

// Why a build in a container (docker, ecs) could not reach what the worker hands it, or nullopt:
// the container has its own filesystem and, unless it shares the host's network, its own loopback.
std::optional<std::string> unreachable_from_container(const dp::settings::common& common,
                                                      const worker_settings& w) {
  if (common.storage.kind == dp::config::storage_url::scheme::file) {
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

}  // namespace

int run_worker(const dp::settings::common& common, const dp::settings::build& build,
               const worker_settings& w, const std::string& self_path) {
  if (w.launcher == "ecs" &&
      (w.ecs_cluster.empty() || w.ecs_task_definition.empty() || w.ecs_subnets.empty())) {
    std::fprintf(stderr,
                 "build-runner: LAUNCHER=ecs needs ECS_CLUSTER, ECS_TASK_DEFINITION and "
                 "ECS_SUBNETS\n");
    return dp::settings::exit_misconfigured;
  }
  if (w.launcher == "ecs" && !dp::worker::is_started_by(w.worker_id)) {
    // It names the worker's tasks (startedBy), by which a restarted worker finds its orphans.
    std::fprintf(
        stderr, "build-runner: WORKER_ID must be at most 36 of [A-Za-z0-9_/-] with LAUNCHER=ecs\n");
    return dp::settings::exit_misconfigured;
  }
  if (w.launcher != "process") {
    if (auto why = unreachable_from_container(common, w)) {
      std::fprintf(stderr, "build-runner: %s\n", why->c_str());
      return dp::settings::exit_misconfigured;
    }
  }
  boost::asio::io_context ioc;
  dp::redis::options ro;
  ro.url = common.redis;
  dp::worker::worker_options wo;
  wo.id = w.worker_id.empty() ? dp::worker::default_worker_id() : w.worker_id;
  wo.concurrency = static_cast<int>(w.concurrency);
  wo.lease_ttl = std::chrono::seconds(w.lease_ttl_s);
  wo.max_attempts = static_cast<int>(build.max_attempts);
  wo.drain = std::chrono::seconds(w.drain_s);

  // Only what the build needs: its Redis and storage, the storage's AWS keys, its own limits.
  dp::config::environment env{
      {"REDIS_URL", common.redis_set ? common.redis.to_string() : std::string()},
      {"REDIS_PREFIX", common.key_prefix},
      {"STORAGE_URL", common.storage_url},
      {"SANDBOX", w.launcher == "process" ? build.sandbox : "none"},
      {"BUILD_NETWORK", build.network},
      {"BUILD_TIMEOUT_S", std::to_string(build.timeout_s)},
      {"BUILD_MEMORY_MB", std::to_string(build.memory_mb)},
      {"BUILD_DISK_MB", std::to_string(build.disk_mb)},
      {"BUILD_PIDS_MAX", std::to_string(build.pids_max)},
      {"ALLOWED_GIT_PROTOCOLS", fmt::format("{}", fmt::join(build.allowed_git_protocols, ","))},
      {"LOG_FORMAT", common.log.format},
      {"LOG_LEVEL", common.log.level},
      {"BASE_DOMAIN", common.base_domain}};
  const auto& aws = common.aws_credentials;
  env["AWS_REGION"] = aws.region;
  // A build on this machine (process, docker) signs with the worker's own AWS access; an ECS
  // task has its task role, and RunTask's overrides are no place for a secret.
  dp::config::environment local_env = env;
  for (const auto& [k, v] :
       {std::pair{"AWS_ACCESS_KEY_ID", aws.access_key_id},
        std::pair{"AWS_SECRET_ACCESS_KEY", aws.secret_access_key},
        std::pair{"AWS_SESSION_TOKEN", aws.session_token},
        std::pair{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", aws.container_relative_uri},
        std::pair{"AWS_CONTAINER_CREDENTIALS_FULL_URI", aws.container_full_uri},
        std::pair{"AWS_CONTAINER_AUTHORIZATION_TOKEN", aws.container_authorization}}) {
    if (!v.empty()) {
      local_env[k] = v;
    }
  }

  dp::http_client::client http(ioc.get_executor());
  std::unique_ptr<dp::worker::launcher> launcher;
  if (w.launcher == "docker") {
    dp::worker::docker_launcher_options o;
    o.socket = w.docker_socket;
    o.image = w.build_image;
    o.env = local_env;
    o.worker_id = wo.id;
    // Clean-up touches only this platform's builds: those of its Redis database and key prefix.
    o.scope = fmt::format("{}:{}/{}/{}", common.redis.host, common.redis.port, common.redis.db,
                          common.key_prefix);
    // The container is the build as a whole: BUILD_MEMORY_MB unless DOCKER_MEMORY_MB says more.
    o.memory_bytes = (w.docker_memory_mb > 0 ? w.docker_memory_mb : build.memory_mb) << 20;
    o.pids_limit = build.pids_max;
    o.nano_cpus = static_cast<int64_t>(w.docker_cpus * 1e9);
    o.network_mode = w.docker_network;
    launcher = dp::worker::make_docker_launcher(http, std::move(o));
  } else if (w.launcher == "ecs") {
    dp::worker::ecs_launcher_options o;
    o.endpoint = w.ecs_endpoint;
    o.region = aws.region;
    o.credentials = aws.keys();
    o.credentials_endpoint = aws.endpoint();
    if (!common.redis.password.empty()) {
      // A password stays out of RunTask's overrides: the build task definition provides
      // REDIS_URL from its secrets (deploy/ecs/task-definitions/build.json).
      env.erase("REDIS_URL");
    }
    o.cluster = w.ecs_cluster;
    o.task_definition = w.ecs_task_definition;
    o.subnets = w.ecs_subnets;
    o.security_groups = w.ecs_security_groups;
    o.assign_public_ip = w.ecs_assign_public_ip;
    o.container_name = w.ecs_container_name;
    o.env = env;
    o.started_by = wo.id;
    launcher = dp::worker::make_ecs_launcher(http, std::move(o));
  } else {
    dp::worker::process_launcher_options o;
    o.program = self_path;
    o.env = local_env;
    o.env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
    launcher = dp::worker::make_process_launcher(std::move(o));
  }

  dp::worker::worker worker(ioc.get_executor(), ro, dp::proto::keys(common.key_prefix), *launcher,
                            wo);
  dp::on_shutdown_signal(ioc, [&](int signo) {
    dp::log::info("stopping: no new builds", {{"signal", signo}});
    worker.stop();
  });
  int code = 0;
  dp::spawn(ioc.get_executor(), worker.run(), "worker", [&](bool threw) {
    if (threw) {
      dp::log::error("the worker failed unexpectedly");
      code = 3;
    }
    ioc.stop();
  });
  ioc.run();
  return code;
}

}  // namespace build_runner
