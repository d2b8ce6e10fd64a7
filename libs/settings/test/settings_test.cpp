#include "dp/settings/settings.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace {

using dp::config::environment;

struct service {
  dp::settings::common common;
  dp::settings::build build;
};

dp::config::parser::outcome parse(service& s, dp::settings::build_needs needs,
                                  const environment& env) {
  dp::config::parser p("svc", "a test service");
  dp::settings::add_common(p, s.common, {});
  dp::settings::add_build(p, s.build, needs);
  const char* argv[] = {"svc"};
  return p.parse(1, argv, env);
}

// STORAGE_URL is parsed once, here; services open the parsed form.
TEST(Settings, StorageUrlIsKeptParsed) {
  service s;
  ASSERT_TRUE(
      parse(s, {}, {{"STORAGE_URL", "s3://sites/prod?endpoint=http://127.0.0.1:4569"}}).run);
  EXPECT_EQ(s.common.storage.kind, dp::config::storage_url::scheme::s3);
  EXPECT_EQ(s.common.storage.bucket, "sites");
  EXPECT_EQ(s.common.storage.prefix, "prod/");
  EXPECT_TRUE(s.common.storage.path_style);
  EXPECT_EQ(s.common.storage_url, "s3://sites/prod?endpoint=http://127.0.0.1:4569");

  service bad;
  auto out = parse(bad, {}, {{"STORAGE_URL", "ftp://x"}});
  EXPECT_FALSE(out.run);
  EXPECT_EQ(out.exit_code, dp::settings::exit_misconfigured);
}

TEST(Settings, BuildDefaults) {
  service s;
  ASSERT_TRUE(parse(s, {.limits = true}, {}).run);
  EXPECT_EQ(s.build.allowed_git_protocols, std::vector<std::string>{"https"});
  EXPECT_EQ(s.build.timeout_s, 900);
  EXPECT_EQ(s.build.max_attempts, 2);
  EXPECT_EQ(s.build.sandbox, "bwrap");
  EXPECT_EQ(s.build.network, "egress");
  EXPECT_EQ(s.build.memory_mb, 4096);
  EXPECT_EQ(s.build.disk_mb, 10240);
  EXPECT_EQ(s.build.pids_max, 1024);
  // The build cache: 5 GiB per project, 7 days since the last use, no local copy.
  EXPECT_EQ(s.build.cache_mb, 5120);
  EXPECT_EQ(s.build.cache_days, 7);
  EXPECT_EQ(s.build.cache_dir, "");
  EXPECT_EQ(s.build.cache_local_mb, 10240);
  service off;
  ASSERT_TRUE(parse(off, {.limits = true}, {{"BUILD_CACHE_MB", "0"}}).run);
  EXPECT_EQ(off.build.cache_mb, 0);
  service bad;
  EXPECT_FALSE(parse(bad, {.limits = true}, {{"BUILD_CACHE_DAYS", "0"}}).run);
}

// 0 is no limit; a memory below 64 MiB or a disk below 16 MiB could not run npm at all.
TEST(Settings, BuildLimitsAreZeroOrUsable) {
  for (auto env : std::vector<environment>{{{"BUILD_MEMORY_MB", "32"}},
                                           {{"BUILD_DISK_MB", "8"}},
                                           {{"BUILD_MEMORY_MB", "-1"}},
                                           {{"BUILD_DISK_MB", "lots"}},
                                           {{"ALLOWED_GIT_PROTOCOLS", "ssh"}}}) {
    service s;
    auto out = parse(s, {.limits = true}, env);
    EXPECT_FALSE(out.run) << env.begin()->first;
    EXPECT_EQ(out.exit_code, dp::settings::exit_misconfigured) << env.begin()->first;
  }
  service s;
  ASSERT_TRUE(parse(s, {.limits = true}, {{"BUILD_MEMORY_MB", "0"}, {"BUILD_DISK_MB", "16"}}).run);
  EXPECT_EQ(s.build.memory_mb, 0);
  EXPECT_EQ(s.build.disk_mb, 16);
}

// Without limits (the api-server) the runner's own settings are not declared: their values do
// not matter there.
TEST(Settings, BuildWithoutLimitsIgnoresTheRunnersSettings) {
  service s;
  ASSERT_TRUE(parse(s, {}, {{"BUILD_MEMORY_MB", "32"}, {"MAX_ATTEMPTS", "3"}}).run);
  EXPECT_EQ(s.build.max_attempts, 3);
}

dp::config::parser::outcome parse_worker(dp::settings::worker_settings& w, const environment& env) {
  dp::config::parser p("build-runner", "a test service");
  dp::settings::add_worker_settings(p, w);
  const char* argv[] = {"build-runner"};
  return p.parse(1, argv, env);
}

TEST(Settings, WorkerDefaults) {
  dp::settings::worker_settings w;
  ASSERT_TRUE(parse_worker(w, {}).run);
  EXPECT_EQ(w.launcher, "process");
  EXPECT_EQ(w.concurrency, 2);
  EXPECT_EQ(w.lease_ttl_s, 30);
  EXPECT_EQ(w.drain_s, 60);
  EXPECT_EQ(w.worker_id, "");
  EXPECT_EQ(w.build_image, "deploy-platform/build-runner:latest");
  EXPECT_EQ(w.docker_socket, "/var/run/docker.sock");
  EXPECT_EQ(w.docker_memory_mb, 0);
  EXPECT_EQ(w.docker_cpus, 0);
  EXPECT_EQ(w.ecs_container_name, "build-runner");
  EXPECT_FALSE(w.ecs_assign_public_ip);
}

TEST(Settings, WorkerValuesAreChecked) {
  for (auto env : std::vector<environment>{{{"LAUNCHER", "kubernetes"}},
                                           {{"WORKER_CONCURRENCY", "0"}},
                                           {{"LEASE_TTL_S", "4"}},
                                           {{"DOCKER_CPUS", "-1"}},
                                           {{"DOCKER_CPUS", "1.5x"}},
                                           {{"DOCKER_CPUS", "many"}}}) {
    dp::settings::worker_settings w;
    auto out = parse_worker(w, env);
    EXPECT_FALSE(out.run) << env.begin()->first << "=" << env.begin()->second;
    EXPECT_EQ(out.exit_code, dp::settings::exit_misconfigured) << env.begin()->first;
  }
  dp::settings::worker_settings w;
  ASSERT_TRUE(parse_worker(w, {{"DOCKER_CPUS", "1.5"},
                               {"ECS_SUBNETS", "subnet-1,subnet-2"},
                               {"ECS_ASSIGN_PUBLIC_IP", "true"}})
                  .run);
  EXPECT_EQ(w.docker_cpus, 1.5);
  EXPECT_EQ(w.ecs_subnets, (std::vector<std::string>{"subnet-1", "subnet-2"}));
  EXPECT_TRUE(w.ecs_assign_public_ip);
}

dp::config::parser::outcome parse_acme(dp::settings::acme& a, const environment& env) {
  dp::config::parser p("svc", "a test service");
  dp::settings::add_acme(p, a);
  const char* argv[] = {"svc"};
  return p.parse(1, argv, env);
}

// Let's Encrypt unless told otherwise; an empty directory turns issuance off.
TEST(Settings, AcmeDefaultsAndOff) {
  dp::settings::acme a;
  ASSERT_TRUE(parse_acme(a, {}).run);
  EXPECT_EQ(a.directory_url, "https://acme-v02.api.letsencrypt.org/directory");
  EXPECT_EQ(a.email, "");
  EXPECT_EQ(a.ca_bundle, "");
  EXPECT_EQ(a.interval_s, 60);
  dp::settings::acme off;
  ASSERT_TRUE(parse_acme(off, {{"ACME_DIRECTORY_URL", ""}, {"ACME_INTERVAL_S", "5"}}).run);
  EXPECT_EQ(off.directory_url, "");
  EXPECT_EQ(off.interval_s, 5);
  dp::settings::acme bad;
  auto out = parse_acme(bad, {{"ACME_INTERVAL_S", "0"}});
  EXPECT_FALSE(out.run);
  EXPECT_EQ(out.exit_code, dp::settings::exit_misconfigured);
}

// api-server and s3-reverse-proxy take no arguments: one is refused like a bad setting.
TEST(Settings, AServiceRefusesArguments) {
  dp::settings::logging log;
  dp::config::parser p("svc", "a test service");
  p.add_logging(&log.level, &log.format);
  const char* none[] = {"svc"};
  EXPECT_TRUE(dp::settings::parse_service(p, 1, none, {}).run);
  const char* extra[] = {"svc", "worker"};
  testing::internal::CaptureStderr();
  auto out = dp::settings::parse_service(p, 2, extra, {});
  EXPECT_EQ(testing::internal::GetCapturedStderr(),
            "svc: unexpected argument 'worker' (see --help)\n");
  EXPECT_FALSE(out.run);
  EXPECT_EQ(out.exit_code, dp::settings::exit_misconfigured);
}

}  // namespace
