// `build-runner worker`'s settings (dp::settings::worker_settings) made into a worker's options
// and a launcher, and the checks a configuration must pass before the worker starts. The service
// only wires these together.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "dp/settings/settings.hpp"
#include "dp/worker/certificates.hpp"
#include "dp/worker/launcher.hpp"
#include "dp/worker/worker.hpp"

namespace dp::worker {

// Why the worker cannot run as configured (one line for stderr; exit_misconfigured), or nullopt:
// LAUNCHER=ecs without its cluster, task definition, subnets or a startedBy-shaped WORKER_ID; a
// build in a container (docker, ecs) that could not reach the worker's file store or loopback
// Redis.
std::optional<std::string> check_settings(const settings::common& common,
                                          const settings::worker_settings& w);

// What the worker should warn about at start-up, or nullopt: a container launcher without
// BUILD_STORAGE_ROLE_ARN hands its builds storage access to every project's files.
std::optional<std::string> storage_access_warning(const settings::worker_settings& w);

// Its id (WORKER_ID, or default_worker_id()), concurrency, lease, attempts and drain.
worker_options worker_options_from(const settings::build& build,
                                   const settings::worker_settings& w);
// RETENTION_* and BUILD_CACHE_DAYS as the worker's retention options (the store is the caller's
// to set).
retention_options retention_options_from(const settings::retention& r,
                                         const settings::build& build);

// ACME_* as the certificate issuer's options; `holder` is worker_options::id.
certificate_options certificate_options_from(const settings::acme& a, std::string holder);

// The launcher LAUNCHER names. `worker_id` is worker_options::id; `self_path` is the
// build-runner binary the process launcher runs (`build --deployment <id>`). `users`, when the
// container launchers give each build a Redis user of its own (uses_build_redis_users), borrowed.
std::unique_ptr<launcher> launcher_from_settings(
    http_client::client& http, const settings::common& common, const settings::build& build,
    const settings::worker_settings& w, std::string_view worker_id, const std::string& self_path,
    build_redis_users* users);

// Whether builds get a Redis user each: a container launcher with BUILD_REDIS_USER=deployment.
bool uses_build_redis_users(const settings::worker_settings& w);
// The Redis as a build container reaches it: REDIS_URL without the worker's user and password.
config::redis_url build_redis_url(const settings::common& common);

// The three launchers' options, as launcher_from_settings makes them. A build gets only what it
// needs: its Redis and storage, its own limits and, on this machine (process, docker), the
// worker's AWS access; an ECS task has its task role. With BUILD_STORAGE_ROLE_ARN, docker and ECS
// builds get temporary keys of their own deployment's objects instead (storage_role).
process_launcher_options process_options_from(const settings::common& common,
                                              const settings::build& build,
                                              const std::string& self_path);
docker_launcher_options docker_options_from(const settings::common& common,
                                            const settings::build& build,
                                            const settings::worker_settings& w,
                                            std::string_view worker_id);
ecs_launcher_options ecs_options_from(const settings::common& common, const settings::build& build,
                                      const settings::worker_settings& w,
                                      std::string_view worker_id);

}  // namespace dp::worker
