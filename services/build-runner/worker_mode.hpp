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
  int64_t max_attempts = 2;
  int64_t drain_s = 60;
  std::string worker_id;
  std::string build_image;
  // what the build needs, passed on to it
  std::string sandbox = "bwrap";
  std::string build_network = "egress";
  std::vector<std::string> allowed_git_protocols;
  int64_t build_timeout_s = 900;
  int64_t build_memory_mb = 4096;
  int64_t build_disk_mb = 10240;
  int64_t build_pids_max = 1024;
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

// The settings only the worker reads (LAUNCHER, WORKER_CONCURRENCY, LEASE_TTL_S, MAX_ATTEMPTS,
// BUILD_IMAGE, SANDBOX, ... are declared by main and copied in).
void add_worker_settings(dp::config::parser& p, worker_settings& w);

// Runs the worker until SIGINT/SIGTERM and its drain. Returns the process's exit code.
int run_worker(const dp::settings::common& common, const worker_settings& w,
               const std::string& self_path);

}  // namespace build_runner
