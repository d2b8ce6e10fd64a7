#include "dp/settings/settings.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <exception>
#include <string>

#include "dp/core/log.hpp"
#include "dp/core/storage_url.hpp"

namespace dp::settings {

bool is_domain(std::string_view s) {
  // Stricter than a resolver: the proxy compares Host headers as written, lowercase.
  return dp::config::is_dns_name(s) && s.back() != '.' &&
         std::none_of(s.begin(), s.end(),
                      [](char c) { return c == '_' || (c >= 'A' && c <= 'Z'); });
}

void add_platform_key(dp::config::parser& p, std::string* hex) {
  p.add({.env = "PLATFORM_KEY",
         .help = "64 hex digits (openssl rand -hex 32) sealing certificate keys in Redis; "
                 "empty: no certificate store",
         .secret = true,
         .apply = [hex](std::string_view v) -> std::optional<std::string> {
           bool ok = v.empty() || (v.size() == 64 && std::all_of(v.begin(), v.end(), [](char c) {
                                     return std::isxdigit(static_cast<unsigned char>(c));
                                   }));
           if (!ok) {
             return "must be 64 hex digits (openssl rand -hex 32)";
           }
           *hex = v;
           return std::nullopt;
         }});
}

void add_common(dp::config::parser& p, common& c, needs n) {
  p.add_logging(&c.log.level, &c.log.format);
  if (n.redis) {
    std::string def = n.redis_optional ? "" : "redis://127.0.0.1:6379";
    p.add({.env = "REDIS_URL",
           .default_value = def,
           .help = n.redis_optional
                       ? "Redis URL; when empty, logs go to stdout and no state is kept"
                       : "Redis URL (redis://[user[:password]@]host[:port][/db])",
           .apply = [&c, optional = n.redis_optional](std::string_view v) {
             c.redis_set = !v.empty();
             if (v.empty() && optional) {
               return std::optional<std::string>{};
             }
             return dp::config::parse_redis_url(v, c.redis);
           }});
    p.add({.env = "REDIS_PREFIX",
           .default_value = c.key_prefix,
           .help = "Prefix of every Redis key and channel",
           .apply = [&c](std::string_view v) -> std::optional<std::string> {
             if (v.size() > 64 || v.find_first_of(" \t\r\n*?[]") != std::string_view::npos) {
               return "at most 64 characters, no spaces or glob characters";
             }
             c.key_prefix = std::string(v);
             return std::nullopt;
           }});
  }
  if (n.storage) {
    p.add(
        {.env = "STORAGE_URL",
         .default_value = "file:///var/lib/deploy-platform/storage",
         .help =
             "Object storage: file:///abs/dir or s3://bucket?endpoint=URL&region=R&path_style=true",
         .apply = [&c](std::string_view v) -> std::optional<std::string> {
           auto parsed = dp::config::parse_storage_url(v);
           if (!parsed) {
             return parsed.error().message;
           }
           c.storage_url = std::string(v);
           c.storage = std::move(*parsed);
           return std::nullopt;
         }});
    p.add_string("AWS_ACCESS_KEY_ID", &c.aws_credentials.access_key_id, "", "S3 access key", true);
    p.add_string("AWS_SECRET_ACCESS_KEY", &c.aws_credentials.secret_access_key, "", "S3 secret key",
                 true);
    p.add_string("AWS_SESSION_TOKEN", &c.aws_credentials.session_token, "",
                 "Session token for temporary credentials", true);
    p.add_string("AWS_REGION", &c.aws_credentials.region, "us-east-1",
                 "AWS region (the storage URL's region= wins for S3)");
    p.add_string(
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", &c.aws_credentials.container_relative_uri, "",
        "Set by ECS for a task role: temporary keys from 169.254.170.2 when no keys are set");
    p.add_string("AWS_CONTAINER_CREDENTIALS_FULL_URI", &c.aws_credentials.container_full_uri, "",
                 "A container credentials endpoint (when no keys and no RELATIVE_URI are set)");
    p.add_string("AWS_CONTAINER_AUTHORIZATION_TOKEN", &c.aws_credentials.container_authorization,
                 "", "Authorization header for the container credentials endpoint", true);
  }
  if (n.base_domain) {
    p.add({.env = "BASE_DOMAIN",
           .default_value = c.base_domain,
           .help = "Sites are served at <label>.<BASE_DOMAIN>",
           .apply = [&c](std::string_view v) -> std::optional<std::string> {
             if (!is_domain(v)) {
               return "expected a lowercase DNS name such as localhost or apps.example.com";
             }
             c.base_domain = std::string(v);
             return std::nullopt;
           }});
  }
}

void add_retention(dp::config::parser& p, retention& r, bool pass) {
  // Vercel never deletes a project's 10 newest production deployments; 30 days of production
  // history covers a month of rollbacks (Vercel keeps canceled deployments 30 days).
  p.add_int("RETENTION_KEEP_DEPLOYMENTS", &r.keep_deployments, 10, 1, 100000,
            "Retention: the newest this many ready deployments of a project keep their files");
  p.add_int("RETENTION_KEEP_PRODUCTION_DAYS", &r.keep_production_days, 30, 0, 36500,
            "Retention: a deployment in production within this many days keeps its files");
  if (pass) {
    p.add_int("RETENTION_INTERVAL_S", &r.interval_s, 3600, 0, 30 * 86400,
              "Retention: seconds between two passes over every project (one worker at a "
              "time); 0: never prune");
  }
}

void add_acme(dp::config::parser& p, acme& a) {
  p.add_string("ACME_DIRECTORY_URL", &a.directory_url,
               "https://acme-v02.api.letsencrypt.org/directory",
               "ACME directory that issues custom domains' certificates; empty: no issuance");
  p.add_string("ACME_EMAIL", &a.email, "", "Contact address of the ACME account (optional)");
  p.add_string("ACME_CA_BUNDLE", &a.ca_bundle, "",
               "PEM file trusted for the ACME directory's HTTPS; empty: the system's CAs");
  p.add_int("ACME_INTERVAL_S", &a.interval_s, 60, 1, 86400,
            "Seconds between two looks for custom domains that need a certificate");
}

void add_build(dp::config::parser& p, build& b, build_needs n) {
  p.add_list("ALLOWED_GIT_PROTOCOLS", &b.allowed_git_protocols, "https",
             "Git URL schemes a deployment may use (and a build may clone)",
             {"https", "http", "file"});
  p.add_int("BUILD_TIMEOUT_S", &b.timeout_s, 900, 10, 86400,
            "Wall-clock limit of one build, in seconds");
  p.add_int("MAX_ATTEMPTS", &b.max_attempts, 2, 1, 10, "Attempts per build job");
  if (!n.limits) {
    return;
  }
  p.add_choice("SANDBOX", &b.sandbox, "bwrap", {"bwrap", "none"},
               "build: run install and build under bubblewrap, or unsandboxed inside a container");
  p.add_choice("BUILD_NETWORK", &b.network, "egress", {"egress", "none"},
               "build: the sandbox's network: egress (public addresses only, through "
               "slirp4netns; needs root) or none (a loopback of its own)");
  // A size of 0 is no limit; a smaller one than `min` could not run npm at all.
  auto size = [](int64_t* target, int64_t min) {
    return [target, min](std::string_view v) -> std::optional<std::string> {
      int64_t mb = 0;
      if (auto err = dp::config::parse_int(v, 0, int64_t{1} << 20, mb)) {
        return err;
      }
      if (mb > 0 && mb < min) {
        return fmt::format("must be 0 (no limit) or at least {}", min);
      }
      *target = mb;
      return std::nullopt;
    };
  };
  // Defaults for a self-hosted box running WORKER_CONCURRENCY=2 builds: half of what the hosted
  // services give (Vercel, Netlify and Cloudflare Pages: 8 GB), which a Next.js or CRA build
  // fits in; 10 GiB holds a large node_modules, its npm cache and the output several times.
  p.add({.env = "BUILD_MEMORY_MB",
         .default_value = "4096",
         .help = "Memory of one build as a whole (install and build, every process; no swap), "
                 "in MiB; 0: no limit",
         .apply = size(&b.memory_mb, 64)});
  p.add({.env = "BUILD_DISK_MB",
         .default_value = "10240",
         .help = "Disk of one build's work directory (checkout, HOME, npm cache, /tmp), in MiB; "
                 "0: no limit",
         .apply = size(&b.disk_mb, 16)});
  p.add_int("BUILD_PIDS_MAX", &b.pids_max, 1024, 0, 1 << 22,
            "Processes and threads of one build at once; 0: no limit");
  // Cloudflare Pages keeps 10 GB per project for 7 days after its last read; half the size here,
  // as for memory.
  p.add_int("BUILD_CACHE_MB", &b.cache_mb, 5120, 0, int64_t{1} << 24,
            "Build cache of one project in the object store (node_modules, npm's cache, framework "
            "folders), in MiB; least recently used entries go first; 0: no cache");
  p.add_int("BUILD_CACHE_DAYS", &b.cache_days, 7, 1, 3650,
            "A build cache entry unused for this many days is removed");
  p.add_string("BUILD_CACHE_DIR", &b.cache_dir, "",
               "A local copy of the build cache's archives on this machine, so that a build does "
               "not download what it has; empty: none");
  p.add_int("BUILD_CACHE_LOCAL_MB", &b.cache_local_mb, 10240, 0, int64_t{1} << 24,
            "Size of BUILD_CACHE_DIR as a whole, in MiB (least recently used first)");
  p.add_choice("BUILD_GO_LIVE", &b.go_live, "runner", {"runner", "worker"},
               "build: who makes a successful build live: the runner, or the worker that "
               "launched it (container builds, whose Redis user may not touch aliases)");
  p.add_bool("BUILD_COMPRESS", &b.compress, true,
             "Brotli and gzip variants of compressible files (1 KiB to 8 MiB) written at upload, "
             "which the proxy serves by Accept-Encoding");
}

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
  p.add_choice("BUILD_REDIS_USER", &w.build_redis_user, "deployment", {"deployment", "shared"},
               "worker (docker, ecs): deployment gives each build container a Redis ACL user of "
               "its own deployment's keys (Redis 7); shared hands it the worker's REDIS_URL (a "
               "Redis without ACL SETUSER, such as ElastiCache)");
  p.add_string("BUILD_STORAGE_ROLE_ARN", &w.build_storage_role_arn, "",
               "worker (docker, ecs): role assumed through STS for each build, with a session "
               "policy of its own deployment's objects only; its temporary keys replace the "
               "worker's in the container (empty: the worker's AWS access, or ECS's task role)");
  p.add_string("BUILD_STORAGE_STS_ENDPOINT", &w.build_storage_sts_endpoint, "",
               "worker (docker, ecs): STS endpoint for BUILD_STORAGE_ROLE_ARN (empty: the "
               "STORAGE_URL endpoint when it names one, as MinIO's, else "
               "https://sts.<region>.amazonaws.com)");
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

dp::config::parser::outcome parse_service(dp::config::parser& p, int argc, const char* const* argv,
                                          const dp::config::environment& env) {
  auto outcome = p.parse(argc, argv, env);
  if (outcome.run && !p.positionals().empty()) {
    std::fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", p.program().c_str(),
                 p.positionals()[0].c_str());
    return {false, exit_misconfigured};
  }
  return outcome;
}

void configure_logging(const logging& l, std::string_view service) {
  dp::log::level level = dp::log::level::info;
  dp::log::format format = dp::log::format::text;
  dp::log::parse_level(l.level, level);
  dp::log::parse_format(l.format, format);
  dp::log::configure(level, format, service);
}

}  // namespace dp::settings
