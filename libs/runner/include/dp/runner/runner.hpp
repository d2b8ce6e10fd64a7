// One build from start to finish (`build-runner build`): clone → install → build → validate →
// upload → manifest → ready → go-live, with every line of git and npm in the build log.
//
// Decisions (docs/architecture.md repeats them):
// - git runs outside the sandbox: it executes no user code (hooks off, no repository config,
//   allowed protocols only), and the clone is what the sandbox is then built around.
// - BUILD_TIMEOUT_S is one wall-clock budget for clone, install and build together.
// - mode: `static` when the output has a top-level 404.html, else `spa`.
// - A name with ".." anywhere in a path segment is skipped with a warning, as is a user file named
//   .deployment.json (the commit marker) and any key the storage refuses.
// - SIGTERM to the runner (stop()) ends the build as `failed` with "runner stopped", exit code 3:
//   the deployment is never left half-way for nobody (a plain `docker run` has no worker that
//   could requeue it). Canceled builds exit 1.
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

#include "dp/buildplan/archive.hpp"
#include "dp/buildplan/output.hpp"
#include "dp/core/error.hpp"
#include "dp/process/process.hpp"
#include "dp/proto/hash.hpp"
#include "dp/proto/types.hpp"
#include "dp/runner/compress.hpp"
#include "dp/runner/sandbox.hpp"

namespace dp::storage {
class object_store;
}
namespace dp::state {
class records;
class log_writer;
}  // namespace dp::state
namespace dp::redis {
struct options;
}

namespace dp::runner {

template <class T>
using task = boost::asio::awaitable<dp::result<T>>;

// Where a build reports: statuses and fields (Redis, or nowhere) and log lines (Redis or stdout).
class build_sink {
 public:
  virtual ~build_sink() = default;
  // Never blocks; the line gets the next seq.
  virtual void log(proto::log_stream stream, std::string_view line) = 0;
  // The phase of the lines logged from now on (proto::log_event::phase).
  virtual void phase(proto::log_phase p) = 0;
  // false when the stored status refuses the move (someone canceled the deployment).
  virtual task<bool> status(proto::deployment_status to, proto::hash_fields fields,
                            std::optional<std::string> error) = 0;
  virtual task<void> set_fields(proto::hash_fields fields) = 0;
  // Status ready with `fields`, and the production and immutable aliases, as one step (whoever
  // sees `ready` finds the site served); false when the stored status refuses it, as status().
  virtual task<bool> go_live(proto::hash_fields fields) = 0;
  // Everything logged so far is stored.
  virtual task<void> flush() = 0;
};

// Statuses, fields and aliases through the records, logs through the writer. `d` is the record.
std::unique_ptr<build_sink> make_redis_sink(state::records& records, state::log_writer& logs,
                                            proto::deployment d);
// Logs as JSON lines (proto log events) or as text on a descriptor; statuses are logged only.
std::unique_ptr<build_sink> make_stream_sink(int fd, bool json, std::string deployment_id);

// The build cache (buildplan/cache.hpp): per project in the object store under __cache/<project>/,
// with a local copy of its archives on this machine.
struct cache_options {
  uint64_t max_bytes = uint64_t{5} << 30;         // BUILD_CACHE_MB per project; 0: no cache
  std::chrono::hours max_age{24 * 7};             // BUILD_CACHE_DAYS since an entry was last used
  std::filesystem::path local_dir;                // BUILD_CACHE_DIR; empty: no local copy
  uint64_t local_max_bytes = uint64_t{10} << 30;  // BUILD_CACHE_LOCAL_MB, the whole directory
};

struct runner_options {
  std::vector<std::string> allowed_git_protocols{"https"};
  bool sandbox = true;  // bubblewrap; false: the runner is already inside a container
  std::string bwrap = "bwrap";
  // BUILD_NETWORK, for install and build (sandbox.hpp: egress needs a root runner).
  network_mode network = network_mode::egress;
  std::chrono::seconds timeout{900};  // used when the job has no timeout_s
  // Applied to each process of install and build. processes holds per uid, and never for root:
  // see build_uid_base. No address-space limit: V8 reserves ~10 GiB of address space per
  // WebAssembly memory, so RLIMIT_AS broke webpack; memory_bytes limits what is really used.
  process::resource_limits limits{
      .cpu_seconds = std::nullopt, .processes = 1024, .file_size_bytes = uint64_t{1} << 30};
  // For install and build as a whole, every process included (a cgroup: cgroup.hpp). 0: none.
  uint64_t memory_bytes = uint64_t{4} << 30;  // BUILD_MEMORY_MB; no swap
  uint64_t pids_max = 1024;                   // BUILD_PIDS_MAX (threads count too)
  // The work directory (checkout, HOME, npm's cache, the sandbox's /tmp): BUILD_DISK_MB.
  uint64_t disk_bytes = uint64_t{10} << 30;
  // A filesystem of disk_bytes per build when the runner can make one (work_fs.hpp); false: the
  // poller only.
  bool disk_filesystem = true;
  std::chrono::milliseconds kill_grace{1000};
  buildplan::output_limits output;
  buildplan::archive_limits archive;  // an uploaded source (job.source_archive)
  size_t upload_concurrency = 16;
  compress_options compress;        // Brotli and gzip variants written beside compressible files
  std::filesystem::path work_root;  // where work directories are made; empty: the temp directory
  // A runner that is root gives each build (sandboxed, or in a container with SANDBOX=none) a uid
  // and gid of its own, this base plus a number from the deployment id: the limits (processes)
  // then hold, and the build owns nothing but its work directory and reads nothing of the
  // runner's. 0 keeps root (inside bubblewrap, without capabilities). Without bubblewrap the
  // build's uid must be able to pass through work_root (/tmp is; a 0700 directory is not).
  uint32_t build_uid_base = 200000;
  cache_options cache;
  // BUILD_GO_LIVE. true (runner): a successful build ends ready and live (sink.go_live). false
  // (worker): it ends with the output and manifest uploaded, the record holding the go-live
  // fields and its status still uploading; the worker that launched it makes it live. For a
  // container build whose Redis user may touch its own deployment's keys only, not aliases.
  bool go_live = true;
};

enum class build_outcome { ready, failed, canceled, infrastructure };
// 0 ready, 1 failed or canceled, 3 infrastructure (and a stopped runner).
int exit_code(build_outcome o) noexcept;
std::string_view to_string(build_outcome o) noexcept;

struct phase_time {
  std::string name;  // clone, install, build, validate, upload, manifest, finish
  std::chrono::microseconds duration{0};
};

struct build_report {
  build_outcome outcome = build_outcome::failed;
  std::string error;  // empty when ready
  std::optional<std::string> commit;
  uint64_t files = 0;
  uint64_t bytes = 0;
  std::vector<phase_time> phases;
};

// Runs one job. Lives on one executor (an io_context run by one long-lived thread: children die
// with the thread that started them); cancel() and stop() are called on that executor.
class runner {
 public:
  runner(proto::job job, runner_options opts, storage::object_store& storage, build_sink& sink);
  ~runner();
  runner(const runner&) = delete;
  runner& operator=(const runner&) = delete;

  boost::asio::awaitable<build_report> run();
  // A cancel request: the running command's process group is stopped, the build ends `canceled`
  // with `reason` as its error. Idempotent.
  void cancel(std::string reason);
  // The runner itself is stopping (SIGTERM): as cancel, but the build ends `failed`.
  void stop(std::string reason);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// The job of a deployment recorded in Redis (--deployment): from its record and its project's.
// errc::not_found for a missing deployment, errc::conflict for one already final.
task<proto::job> job_from_deployment(state::records& records, std::string_view id);

// Follows cancel:<id>, both the durable key (checked at start() and every `poll`) and the channel
// (prompt), and calls on_cancel(reason) once. Lives on the redis client's executor.
class cancel_watch {
 public:
  cancel_watch(boost::asio::any_io_executor ex, state::records& records, const redis::options& opts,
               std::string deployment_id, std::function<void(std::string reason)> on_cancel,
               std::chrono::milliseconds poll = std::chrono::seconds(1));
  ~cancel_watch();  // stop()
  cancel_watch(const cancel_watch&) = delete;
  cancel_watch& operator=(const cancel_watch&) = delete;

  void start();
  void stop();

  struct impl;  // opaque; shared with the watch's coroutines

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace dp::runner
