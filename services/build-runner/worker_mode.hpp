// `build-runner worker`: its own settings and its wiring (dp::worker does the work).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dp/core/config.hpp"
#include "dp/settings/settings.hpp"

namespace build_runner {

struct worker_settings {
  std::string launcher = "process";
  int64_t concurrency = 2;
  int64_t lease_ttl_s = 30;
  int64_t drain_s = 60;
  std::string worker_id;
  std::string build_image;
  // docker
  std::string docker_socket;
  int64_t docker_memory_mb = 0;
  double docker_cpus = 0;
  std::string docker_network;
  // ecs
  std::string ecs_cluster;
  std::string ecs_task_definition;
  std::vector<std::string> ecs_subnets;
  std::vector<std::string> ecs_security_groups;
  bool ecs_assign_public_ip = false;
  std::string ecs_container_name;
  std::string ecs_endpoint;
};

// The settings only the worker reads: LAUNCHER, WORKER_CONCURRENCY, LEASE_TTL_S, BUILD_IMAGE,
// WORKER_DRAIN_S, WORKER_ID and the docker and ecs ones. MAX_ATTEMPTS and what the build needs
// (SANDBOX, BUILD_*, ALLOWED_GIT_PROTOCOLS) are dp::settings::add_build's.
void add_worker_settings(dp::config::parser& p, worker_settings& w);

// Runs the worker until SIGINT/SIGTERM and its drain. Returns the process's exit code.
int run_worker(const dp::settings::common& common, const dp::settings::build& build,
               const worker_settings& w, const std::string& self_path);

}  // namespace build_runner
