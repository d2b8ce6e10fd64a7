// How a worker runs one build: a launcher starts `build-runner build --deployment <id>` somewhere
// (a child process, a Docker container, an ECS task), follows it to its end and can stop it.
// The build itself records its statuses and logs in Redis; the launcher only reports how it ended.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dp/aws/container_credentials.hpp"
#include "dp/core/config.hpp"
#include "dp/core/error.hpp"
#include "dp/proto/types.hpp"
#include "dp/worker/build_storage_access.hpp"

namespace dp::http_client {
class client;
}

namespace dp::worker {

class build_redis_users;

template <class T>
using task = boost::asio::awaitable<dp::result<T>>;

// A one-shot request to stop a launched build, and the wait for it. Lives on one executor.
class stop_flag {
 public:
  explicit stop_flag(boost::asio::any_io_executor ex);
  ~stop_flag();
  stop_flag(const stop_flag&) = delete;
  stop_flag& operator=(const stop_flag&) = delete;

  void request();  // idempotent
  bool requested() const noexcept;
  // Completes once request() was called (at once if it was already).
  boost::asio::awaitable<void> wait();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

struct build_end {
  std::optional<int> exit_code;  // the build's exit code, when it exited at all
  std::string description;       // "exited with code 1", "task stopped: Essential container..."
  bool stopped = false;          // ended because the stop_flag was raised

  // What a launcher returns when the stop_flag, not the build, ended its wait.
  static build_end stopped_by_worker() {
    return {.description = "stopped by the worker", .stopped = true};
  }
};

// A build container's environment: the launcher's `env`, then the job's DEPLOYMENT_ID and its
// BUILD_TIMEOUT_S. The runner in the container reads its job from the deployment record, which
// has no timeout: this keeps its own deadline the job's, as the launcher's wait is. With the
// REDIS_URL of the deployment's own Redis user (build_redis_users), that one replaces the
// launcher's, and BUILD_GO_LIVE=worker leaves the go-live to the worker. With `storage` (the
// deployment's temporary keys, build_storage_access), no AWS credential of the launcher's
// (keys, session token, container credentials endpoint) goes in: those keys do.
std::vector<std::pair<std::string, std::string>> container_environment(
    const config::environment& env, const proto::job& job,
    const std::optional<std::string>& build_redis_url = std::nullopt,
    const aws::credentials* storage = nullptr);

// What the runner of a build container (root, pid 1) keeps of root, every other capability
// dropped: SETUID, SETGID and SETPCAP to switch install and build to a uid of their own with no
// capability and an empty bounding set (setpriv; no_new_privs does not stop setuid() by a holder
// of CAP_SETUID), CHOWN to hand that uid the work directory, DAC_OVERRIDE and FOWNER to read
// what the build wrote (whatever its modes) and remove it, KILL to stop the build's processes.
inline constexpr std::string_view runner_capabilities[] = {
    "CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL",
    "CAP_SETGID", "CAP_SETPCAP",      "CAP_SETUID"};

// The build-runner's exit codes (libs/runner runner.hpp).
inline constexpr int exit_ready = 0;
inline constexpr int exit_failed = 1;  // failed or canceled, recorded by the build
inline constexpr int exit_bad_input = 2;
inline constexpr int exit_infrastructure = 3;  // worth another attempt

// Whether a build found running still belongs to a live job: its deployment's lease is held by
// the worker that launched it (and that worker is not this one, which has just started).
using liveness_check =
    std::function<boost::asio::awaitable<bool>(std::string deployment_id, std::string worker_id)>;

class launcher {
 public:
  virtual ~launcher() = default;
  virtual std::string_view name() const noexcept = 0;
  // At worker start and at every reaper sweep: removes builds whose worker is gone, so that a
  // re-queued job does not run beside its orphan.
  virtual task<void> clean_up(const liveness_check& live) = 0;
  // Runs the job's build to its end. When `stop` is raised the build is killed at once, with no
  // grace (a killed build records nothing, so the worker decides its status), and the call
  // returns with stopped = true once it is gone. An error means the build could not be started
  // or followed; it may be running still only if the error says so.
  virtual task<build_end> run(const proto::job& job, stop_flag& stop) = 0;
};

// `build-runner build --deployment <id>` as a child: own process group, SIGKILL when the worker
// dies (PR_SET_PDEATHSIG), an environment of exactly `env` plus TMPDIR (a work directory per
// build under work_root, removed afterwards), stdout/stderr lines in the worker's log.
struct process_launcher_options {
  std::string program;              // path of build-runner (or a stand-in with the same interface)
  std::vector<std::string> args;    // default: build --deployment <id>; "{id}" is replaced
  config::environment env;          // REDIS_URL, STORAGE_URL, AWS_*, SANDBOX, BUILD_TIMEOUT_S, ...
  std::filesystem::path work_root;  // empty: the temp directory
  // Added to the job's timeout_s: the build enforces its own limit, this one is the backstop.
  std::chrono::seconds timeout_margin{60};
  // clean_up runs `program` with these (TMPDIR the work root): default "sweep" (build-runner
  // sweep); empty: no sweep (a stand-in without one).
  std::optional<std::vector<std::string>> sweep_args;
};
std::unique_ptr<launcher> make_process_launcher(process_launcher_options o);

// The Docker Engine API over its unix socket. Containers are removed with their anonymous volumes;
// a failed build's reason ends with the container's last line on stderr.
struct docker_launcher_options {
  std::string socket = "/var/run/docker.sock";
  std::string base_url = "http://localhost";  // the host part of the URLs sent over the socket
  // "v1.41" pins the API version; empty: the engine's own (GET /version), asked once.
  std::string api_version;
  std::string image;
  config::environment env;  // the container's environment (DEPLOYMENT_ID is added)
  std::string worker_id;    // label dp.worker: orphans of this worker are removed at start
  // Label dp.scope: clean_up looks only at containers of its own scope (one platform, or one
  // test), so that two platforms on one engine leave each other's builds alone. Empty: all.
  std::string scope;
  int64_t memory_bytes = 0;  // 0: no limit
  int64_t nano_cpus = 0;     // 1e9 = one CPU; 0: no limit
  int64_t pids_limit = 0;    // processes in the container; 0: no limit
  std::string network_mode;  // empty: Docker's default
  std::chrono::seconds timeout_margin{60};
  // Each build gets temporary storage keys of its own deployment (BUILD_STORAGE_ROLE_ARN) in
  // place of `env`'s AWS credentials; nullopt: `env`'s.
  std::optional<build_storage_role> storage_role;
};
// With `users` (borrowed), each build gets a Redis user of its own (build_redis_users.hpp).
std::unique_ptr<launcher> make_docker_launcher(http_client::client& http, docker_launcher_options o,
                                               build_redis_users* users = nullptr);

// ECS RunTask on Fargate (JSON 1.1 protocol, SigV4), followed with DescribeTasks.
struct ecs_launcher_options {
  std::string endpoint;  // empty: https://ecs.<region>.amazonaws.com
  std::string region = "us-east-1";
  aws::credentials credentials;                                 // keys, or none and:
  std::optional<aws::container_endpoint> credentials_endpoint;  // the worker's own task role
  std::string cluster;
  std::string task_definition;
  std::vector<std::string> subnets;
  std::vector<std::string> security_groups;
  bool assign_public_ip = false;
  std::string container_name = "build-runner";
  // Container overrides (DEPLOYMENT_ID is added): no secret belongs here, RunTask's overrides are
  // visible to anyone who may DescribeTasks; the build task gets AWS access from its task role.
  config::environment env;
  // RunTask startedBy: the worker id (at most 36 of [A-Za-z0-9_/-]), which clean_up compares
  // with the lease holder of the task's deployment.
  std::string started_by;
  std::chrono::milliseconds poll{5000};
  std::chrono::seconds timeout_margin{300};
  // How long DescribeTasks may call the task MISSING before the build counts as lost (a task
  // just started can be MISSING for a moment; one gone for good never comes back).
  std::chrono::milliseconds missing_limit{120'000};
  // Each build gets temporary storage keys of its own deployment (BUILD_STORAGE_ROLE_ARN) in its
  // overrides; nullopt: the build task has its task role's access.
  std::optional<build_storage_role> storage_role;
};
// With `users` (borrowed), each build gets a Redis user of its own (build_redis_users.hpp).
std::unique_ptr<launcher> make_ecs_launcher(http_client::client& http, ecs_launcher_options o,
                                            build_redis_users* users = nullptr);

}  // namespace dp::worker
