// `build-runner worker`'s settings made into options and a launcher: what a build is handed, and
// the configurations refused before the worker starts.
#include "dp/worker/from_settings.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "dp/http_client/client.hpp"

namespace {

using dp::config::environment;

struct worker_service {
  dp::settings::common common;
  dp::settings::build build;
  dp::settings::worker_settings worker;
};

// The settings as build-runner declares them, read from `env`.
worker_service parse(const environment& env) {
  worker_service s;
  dp::config::parser p("build-runner", "a test");
  dp::settings::add_common(p, s.common, {.redis_optional = true});
  dp::settings::add_build(p, s.build, {.limits = true});
  dp::settings::add_worker_settings(p, s.worker);
  const char* argv[] = {"build-runner"};
  EXPECT_TRUE(p.parse(1, argv, env).run);
  return s;
}

const environment s3_storage = {
    {"STORAGE_URL", "s3://sites?endpoint=http://minio:9000"},
    {"AWS_ACCESS_KEY_ID", "AKID"},
    {"AWS_SECRET_ACCESS_KEY", "secret"},
};

environment with(environment env, const environment& more) {
  for (const auto& [k, v] : more) {
    env[k] = v;
  }
  return env;
}

TEST(WorkerFromSettings, TheProcessLauncherRunsAnywhere) {
  auto s = parse({{"REDIS_URL", "redis://127.0.0.1:6379"}});
  EXPECT_EQ(dp::worker::check_settings(s.common, s.worker), std::nullopt);
}

TEST(WorkerFromSettings, EcsNeedsItsClusterAndAStartedById) {
  auto base = with(s3_storage, {{"REDIS_URL", "redis://redis.internal:6379"}, {"LAUNCHER", "ecs"}});
  auto s = parse(base);
  EXPECT_EQ(dp::worker::check_settings(s.common, s.worker),
            "LAUNCHER=ecs needs ECS_CLUSTER, ECS_TASK_DEFINITION and ECS_SUBNETS");

  auto full = with(base, {{"ECS_CLUSTER", "builds"},
                          {"ECS_TASK_DEFINITION", "build:3"},
                          {"ECS_SUBNETS", "subnet-1,subnet-2"},
                          {"WORKER_ID", "host.example-1"}});
  s = parse(full);
  EXPECT_EQ(dp::worker::check_settings(s.common, s.worker),
            "WORKER_ID must be at most 36 of [A-Za-z0-9_/-] with LAUNCHER=ecs");

  s = parse(with(full, {{"WORKER_ID", "worker-1"}}));
  EXPECT_EQ(dp::worker::check_settings(s.common, s.worker), std::nullopt);
}

// A container has its own filesystem and, unless it shares the host's network, its own loopback.
TEST(WorkerFromSettings, AContainerMustReachStorageAndRedis) {
  auto s = parse({{"REDIS_URL", "redis://redis.internal:6379"}, {"LAUNCHER", "docker"}});
  auto why = dp::worker::check_settings(s.common, s.worker);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("cannot write the worker's file store"), std::string::npos) << *why;

  for (const char* host : {"127.0.0.1", "localhost", "[::1]"}) {
    s = parse(with(s3_storage,
                   {{"REDIS_URL", fmt::format("redis://{}:6379", host)}, {"LAUNCHER", "docker"}}));
    why = dp::worker::check_settings(s.common, s.worker);
    ASSERT_TRUE(why) << host;
    EXPECT_NE(why->find("(or DOCKER_NETWORK=host)"), std::string::npos) << *why;
  }

  s = parse(with(s3_storage, {{"REDIS_URL", "redis://127.0.0.1:6379"},
                              {"LAUNCHER", "docker"},
                              {"DOCKER_NETWORK", "host"}}));
  EXPECT_EQ(dp::worker::check_settings(s.common, s.worker), std::nullopt);

  s = parse(
      with(s3_storage, {{"REDIS_URL", "redis://redis.internal:6379"}, {"LAUNCHER", "docker"}}));
  EXPECT_EQ(dp::worker::check_settings(s.common, s.worker), std::nullopt);
}

TEST(WorkerFromSettings, WorkerOptions) {
  auto s = parse({{"WORKER_CONCURRENCY", "5"},
                  {"LEASE_TTL_S", "12"},
                  {"WORKER_DRAIN_S", "7"},
                  {"MAX_ATTEMPTS", "4"},
                  {"WORKER_ID", "w-1"}});
  auto wo = dp::worker::worker_options_from(s.build, s.worker);
  EXPECT_EQ(wo.id, "w-1");
  EXPECT_EQ(wo.concurrency, 5);
  EXPECT_EQ(wo.lease_ttl, std::chrono::seconds(12));
  EXPECT_EQ(wo.max_attempts, 4);
  EXPECT_EQ(wo.drain, std::chrono::seconds(7));

  s = parse({});
  wo = dp::worker::worker_options_from(s.build, s.worker);
  EXPECT_TRUE(dp::worker::is_started_by(wo.id)) << wo.id;
}

// The process launcher's build runs this binary, sandboxed, with the worker's AWS access.
TEST(WorkerFromSettings, ProcessOptions) {
  auto s = parse(with(s3_storage, {{"REDIS_URL", "redis://:p%40ss@127.0.0.1:6380/2"},
                                   {"REDIS_PREFIX", "t:"},
                                   {"ALLOWED_GIT_PROTOCOLS", "https,file"},
                                   {"BUILD_TIMEOUT_S", "60"},
                                   {"BUILD_CACHE_DIR", "/var/cache/dp"},
                                   {"BUILD_CACHE_MB", "100"},
                                   {"LOG_FORMAT", "json"}}));
  auto o = dp::worker::process_options_from(s.common, s.build, "/opt/build-runner");
  EXPECT_EQ(o.env["BUILD_CACHE_DIR"], "/var/cache/dp");
  EXPECT_EQ(o.env["BUILD_CACHE_MB"], "100");
  EXPECT_EQ(o.env["BUILD_COMPRESS"], "true");
  EXPECT_EQ(o.program, "/opt/build-runner");
  EXPECT_EQ(o.env["REDIS_URL"], s.common.redis.to_string());
  EXPECT_EQ(o.env["REDIS_PREFIX"], "t:");
  EXPECT_EQ(o.env["STORAGE_URL"], "s3://sites?endpoint=http://minio:9000");
  EXPECT_EQ(o.env["SANDBOX"], "bwrap");
  EXPECT_EQ(o.env["BUILD_TIMEOUT_S"], "60");
  EXPECT_EQ(o.env["ALLOWED_GIT_PROTOCOLS"], "https,file");
  EXPECT_EQ(o.env["LOG_FORMAT"], "json");
  EXPECT_EQ(o.env["AWS_ACCESS_KEY_ID"], "AKID");
  EXPECT_EQ(o.env["AWS_SECRET_ACCESS_KEY"], "secret");
  EXPECT_EQ(o.env["AWS_REGION"], "us-east-1");
  EXPECT_EQ(o.env["PATH"], "/usr/local/bin:/usr/bin:/bin");
  EXPECT_FALSE(o.env.contains("AWS_SESSION_TOKEN"));  // empty settings are not handed on
}

TEST(WorkerFromSettings, DockerOptions) {
  auto s = parse(with(s3_storage, {{"REDIS_URL", "redis://redis.internal:6380/3"},
                                   {"REDIS_PREFIX", "p:"},
                                   {"LAUNCHER", "docker"},
                                   {"BUILD_IMAGE", "img:1"},
                                   {"BUILD_MEMORY_MB", "512"},
                                   {"BUILD_PIDS_MAX", "99"},
                                   {"DOCKER_CPUS", "1.5"},
                                   {"BUILD_CACHE_DIR", "/var/cache/dp"},
                                   {"BUILD_COMPRESS", "false"},
                                   {"DOCKER_NETWORK", "builds"}}));
  auto o = dp::worker::docker_options_from(s.common, s.build, s.worker, "w-1");
  // The machine's copy of the build cache is not in the container: its builds download.
  EXPECT_EQ(o.env["BUILD_CACHE_DIR"], "");
  EXPECT_EQ(o.env["BUILD_COMPRESS"], "false");
  EXPECT_EQ(o.socket, "/var/run/docker.sock");
  EXPECT_EQ(o.image, "img:1");
  EXPECT_EQ(o.worker_id, "w-1");
  EXPECT_EQ(o.scope, "redis.internal:6380/3/p:");
  EXPECT_EQ(o.memory_bytes, int64_t{512} << 20);
  EXPECT_EQ(o.nano_cpus, 1'500'000'000);
  EXPECT_EQ(o.pids_limit, 99);
  EXPECT_EQ(o.network_mode, "builds");
  EXPECT_EQ(o.env["SANDBOX"], "none");  // the container is the sandbox
  EXPECT_EQ(o.env["AWS_SECRET_ACCESS_KEY"], "secret");
  EXPECT_FALSE(o.env.contains("PATH"));

  s = parse(with(s3_storage, {{"LAUNCHER", "docker"}, {"DOCKER_MEMORY_MB", "2048"}}));
  o = dp::worker::docker_options_from(s.common, s.build, s.worker, "w-1");
  EXPECT_EQ(o.memory_bytes, int64_t{2048} << 20);
}

// RunTask's overrides are visible to anyone who may DescribeTasks: no secret goes there.
TEST(WorkerFromSettings, EcsOptionsHoldNoSecret) {
  auto s = parse(with(s3_storage, {{"REDIS_URL", "redis://:hunter2@redis.internal:6379"},
                                   {"LAUNCHER", "ecs"},
                                   {"AWS_REGION", "eu-west-1"},
                                   {"ECS_CLUSTER", "builds"},
                                   {"ECS_TASK_DEFINITION", "build:3"},
                                   {"ECS_SUBNETS", "subnet-1,subnet-2"},
                                   {"ECS_SECURITY_GROUPS", "sg-1"},
                                   {"ECS_ASSIGN_PUBLIC_IP", "true"}}));
  auto o = dp::worker::ecs_options_from(s.common, s.build, s.worker, "w-1");
  EXPECT_EQ(o.region, "eu-west-1");
  EXPECT_EQ(o.credentials.access_key, "AKID");  // the worker's own, for RunTask
  EXPECT_EQ(o.cluster, "builds");
  EXPECT_EQ(o.task_definition, "build:3");
  EXPECT_EQ(o.subnets, (std::vector<std::string>{"subnet-1", "subnet-2"}));
  EXPECT_EQ(o.security_groups, std::vector<std::string>{"sg-1"});
  EXPECT_TRUE(o.assign_public_ip);
  EXPECT_EQ(o.container_name, "build-runner");
  EXPECT_EQ(o.started_by, "w-1");
  EXPECT_EQ(o.env["SANDBOX"], "none");
  EXPECT_EQ(o.env["AWS_REGION"], "eu-west-1");
  EXPECT_FALSE(o.env.contains("REDIS_URL"));  // the task definition's secrets provide it
  EXPECT_FALSE(o.env.contains("AWS_ACCESS_KEY_ID"));
  EXPECT_FALSE(o.env.contains("AWS_SECRET_ACCESS_KEY"));

  s = parse(with(s3_storage, {{"REDIS_URL", "redis://redis.internal:6379"}, {"LAUNCHER", "ecs"}}));
  o = dp::worker::ecs_options_from(s.common, s.build, s.worker, "w-1");
  EXPECT_EQ(o.env["REDIS_URL"], s.common.redis.to_string());
}

// Container builds get a Redis user each unless BUILD_REDIS_USER=shared; they reach the worker's
// Redis host without its credentials.
TEST(WorkerFromSettings, BuildRedisUsers) {
  auto s = parse(with(s3_storage, {{"LAUNCHER", "docker"},
                                   {"REDIS_URL", "redis://worker:pw@redis.internal:6380/3"}}));
  EXPECT_TRUE(dp::worker::uses_build_redis_users(s.worker));
  auto url = dp::worker::build_redis_url(s.common);
  EXPECT_EQ(url.to_string(), "redis://redis.internal:6380/3");
  s = parse(with(s3_storage, {{"LAUNCHER", "ecs"}, {"BUILD_REDIS_USER", "shared"}}));
  EXPECT_FALSE(dp::worker::uses_build_redis_users(s.worker));
  s = parse(s3_storage);
  EXPECT_FALSE(dp::worker::uses_build_redis_users(s.worker));  // the process launcher
}

TEST(WorkerFromSettings, LauncherFromSettingsMakesEachKind) {
  boost::asio::io_context ioc;
  dp::http_client::client http(ioc.get_executor());
  for (const char* kind : {"process", "docker", "ecs"}) {
    auto s = parse(with(s3_storage, {{"LAUNCHER", kind}}));
    EXPECT_NE(dp::worker::launcher_from_settings(http, s.common, s.build, s.worker, "w-1",
                                                 "/opt/build-runner", nullptr),
              nullptr)
        << kind;
  }
}

}  // namespace

namespace {

TEST(WorkerFromSettings, BuildStorageRole) {
  auto base = with(s3_storage, {{"REDIS_URL", "redis://redis:6379"}, {"LAUNCHER", "docker"}});
  auto without = parse(base);
  EXPECT_FALSE(dp::worker::docker_options_from(without.common, without.build, without.worker, "w")
                   .storage_role);
  EXPECT_NE(dp::worker::storage_access_warning(without.worker), std::nullopt);
  EXPECT_EQ(dp::worker::storage_access_warning(parse({}).worker), std::nullopt);  // process

  // MinIO: its STS is its S3 endpoint, signed with the worker's keys.
  auto minio = parse(with(base, {{"BUILD_STORAGE_ROLE_ARN", "arn:minio:iam:::role/dp-build"},
                                 {"STORAGE_URL", "s3://sites/prod?endpoint=http://minio:9000"}}));
  EXPECT_EQ(dp::worker::storage_access_warning(minio.worker), std::nullopt);
  auto role =
      dp::worker::docker_options_from(minio.common, minio.build, minio.worker, "w").storage_role;
  ASSERT_TRUE(role);
  EXPECT_EQ(role->role_arn, "arn:minio:iam:::role/dp-build");
  EXPECT_EQ(role->sts_endpoint, "http://minio:9000");
  EXPECT_EQ(role->region, "us-east-1");
  EXPECT_EQ(role->credentials.access_key, "AKID");
  EXPECT_EQ(role->bucket, "sites");
  EXPECT_EQ(role->key_prefix, "prod/");

  // AWS: the regional STS endpoint, unless BUILD_STORAGE_STS_ENDPOINT says otherwise; ECS too.
  auto aws = with(base, {{"BUILD_STORAGE_ROLE_ARN", "arn:aws:iam::1:role/dp-build"},
                         {"STORAGE_URL", "s3://sites?region=eu-west-1"},
                         {"LAUNCHER", "ecs"},
                         {"ECS_CLUSTER", "builds"},
                         {"ECS_TASK_DEFINITION", "build:3"},
                         {"ECS_SUBNETS", "subnet-1"}});
  auto s = parse(aws);
  auto ecs_role = dp::worker::ecs_options_from(s.common, s.build, s.worker, "w").storage_role;
  ASSERT_TRUE(ecs_role);
  EXPECT_EQ(ecs_role->sts_endpoint, "https://sts.eu-west-1.amazonaws.com");
  auto pinned = parse(with(aws, {{"BUILD_STORAGE_STS_ENDPOINT", "https://sts.amazonaws.com"}}));
  EXPECT_EQ(dp::worker::ecs_options_from(pinned.common, pinned.build, pinned.worker, "w")
                .storage_role->sts_endpoint,
            "https://sts.amazonaws.com");
}

}  // namespace
