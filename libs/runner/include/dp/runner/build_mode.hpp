// `build-runner build`: where the job comes from (--deployment, --job, or the original design's
// GIT_REPOSITORY_URL + PROJECT_ID), the runner process's own protection, and one build from its
// record to its exit code around dp::runner::runner. The service's main parses settings, opens
// the storage and calls these.
//
// Exit codes: 0 ready, 1 failed or canceled, 2 bad input (one line on stderr: an unknown or final
// deployment, an unreadable job), 3 infrastructure (Redis unreachable, a stopped runner).
#pragma once

#include <boost/asio/io_context.hpp>

#include <optional>
#include <string>
#include <vector>

#include "dp/core/error.hpp"
#include "dp/proto/types.hpp"
#include "dp/redis/types.hpp"
#include "dp/runner/runner.hpp"

namespace dp::storage {
class object_store;
}

namespace dp::runner {

// The job's source: exactly one of deployment_id, job_file, git_repository_url (with project_id).
struct build_input {
  std::string deployment_id;       // --deployment / DEPLOYMENT_ID: the job is read from Redis
  std::string job_file;            // --job: a proto job message in JSON
  std::string git_repository_url;  // the original design's GIT_REPOSITORY_URL
  std::string project_id;          // the original design's PROJECT_ID (a project name)
};

// The job from --job, or from GIT_REPOSITORY_URL + PROJECT_ID (a new deployment id); nullopt for
// --deployment alone, which needs Redis and is resolved by run_build. errc::invalid_argument with
// a message for a person: no source or two, an unreadable or invalid job file, a git URL
// `allowed_git_protocols` refuses.
result<std::optional<proto::job>> job_from_input(
    const build_input& in, const std::vector<std::string>& allowed_git_protocols);

struct build_mode_options {
  build_input input;
  runner_options runner;
  // Statuses, logs and aliases in Redis; nullopt: nothing is recorded and the log goes to stdout.
  std::optional<redis::options> redis;
  std::string key_prefix = "dp:";
  bool json_logs = false;  // the stdout log without Redis: JSON lines, else text
};

// Before any thread starts: the runner becomes non-dumpable (the build, the same uid when the
// runner is not root, cannot read its environment through /proc or ptrace it) and, for a root
// runner with a disk limit, enters a mount namespace of its own so that the work filesystem dies
// with it even by SIGKILL.
void protect_runner_process(bool disk_filesystem);

// One build, start to finish, on `ioc` (run here until the build is over); SIGINT/SIGTERM stop
// it (failed, "runner stopped"). Returns the exit code.
int run_build(boost::asio::io_context& ioc, const build_mode_options& opts,
              std::optional<proto::job> job, storage::object_store& storage);

}  // namespace dp::runner
