#include "dp/runner/runner.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value_from.hpp>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <unordered_set>

#include "cache_store.hpp"
#include "dp/buildplan/beneath.hpp"
#include "dp/buildplan/cache.hpp"
#include "dp/buildplan/content_type.hpp"
#include "dp/buildplan/git.hpp"
#include "dp/buildplan/plan.hpp"
#include "dp/core/clock.hpp"
#include "dp/core/hex.hpp"
#include "dp/core/id.hpp"
#include "dp/core/log.hpp"
#include "dp/core/spawn.hpp"
#include "dp/proto/json.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/runner/cgroup.hpp"
#include "dp/runner/compress.hpp"
#include "dp/runner/sandbox.hpp"
#include "dp/runner/sweep.hpp"
#include "dp/runner/work_fs.hpp"
#include "dp/siteconfig/siteconfig.hpp"
#include "dp/storage/object_store.hpp"

namespace dp::runner {
namespace asio = boost::asio;
namespace fs = std::filesystem;
using proto::deployment_status;
using proto::log_stream;
using clock_type = std::chrono::steady_clock;

namespace {

// On the compression pool: the file's bytes (up to compress_options::max_bytes) and its variants.
asio::awaitable<dp::result<std::vector<variant>>> compress_file(unique_fd fd, uint64_t size,
                                                                variant_plan plan,
                                                                compress_options o) {
  auto data = read_file(fd.get(), size);
  if (!data) {
    co_return data.error();
  }
  co_return make_variants(*data, plan, o);
}

constexpr std::string_view mount_point = "/build";
// How far back a commit named by the job is looked for on its ref when the server does not
// serve it by id.
constexpr int commit_search_depth = 1000;

// The clone's first log line. Not in the coroutine: g++ 12 destroys some temporaries of a
// conditional expression twice there.
std::string cloning_line(const proto::job& job) {
  std::string what = " (the default branch)";
  if (job.ref) {
    what = (job.ref->starts_with("refs/") ? " (ref " : " (branch ") + *job.ref + ")";
  }
  std::string at;
  if (job.commit) {
    at = " at commit " + *job.commit;
  }
  return fmt::format(
      "cloning {}{}{} for {}", job.git_url, what, at,
      job.target == proto::deployment_target::production ? "production" : "a preview");
}

// The ref whose history must hold a commit the job names: the full ref fetched, else the branch
// cloned.
std::string history_ref(const std::string& ref, const std::string& branch) {
  if (ref.starts_with("refs/")) {
    return ref;
  }
  return branch.empty() ? std::string("HEAD") : "refs/heads/" + branch;
}

// The package managers' own caches, relative to the work directory, where sandbox_env puts them:
// npm's (npm_config_cache), pnpm's store and yarn's caches (1: ~/.cache/yarn, 2+: its global
// folder) under HOME, and corepack's downloads of pnpm and yarn with the versions it last
// installed (COREPACK_HOME; not bin/, the shims each build links again). One `store` entry.
constexpr const char* store_members[] = {".npm",
                                         ".corepack/v1",
                                         ".corepack/lastKnownGood.json",
                                         "home/.local/share/pnpm/store",
                                         "home/.cache/yarn",
                                         "home/.yarn/berry/cache"};

std::string seconds(clock_type::duration d) {
  return fmt::format("{:.2f} s", std::chrono::duration<double>(d).count());
}

std::string human_bytes(uint64_t n) {
  if (n < 1024) {
    return fmt::format("{} B", n);
  }
  if (n < (1u << 20)) {
    return fmt::format("{:.1f} KiB", n / 1024.0);
  }
  return fmt::format("{:.1f} MiB", n / 1048576.0);
}

// A key the proxy could read as traversal after some normalisation, the commit marker's own name,
// or one the storage refuses: skipped with a warning rather than failing the build.
std::optional<std::string> refuse_key(std::string_view key) {
  if (key == proto::manifest_name) {
    return "the name is reserved for the deployment manifest";
  }
  if (key == proto::rules_name) {
    return "the name is reserved for the compiled site rules";
  }
  if (key.find("..") != std::string_view::npos) {
    return "'..' in a file name is never published";
  }
  if (auto ok = storage::validate_key(key); !ok) {
    return ok.error().message;
  }
  return std::nullopt;
}

// Why a build stops, and whose fault it is.
struct stop_reason {
  build_outcome outcome;
  std::string message;
  bool ended_elsewhere = false;  // the stored status is final already: write nothing more
};

}  // namespace

int exit_code(build_outcome o) noexcept {
  switch (o) {
    case build_outcome::ready:
      return 0;
    case build_outcome::failed:
    case build_outcome::canceled:
      return 1;
    case build_outcome::infrastructure:
      return 3;
  }
  return 3;
}

std::string_view to_string(build_outcome o) noexcept {
  switch (o) {
    case build_outcome::ready:
      return "ready";
    case build_outcome::failed:
      return "failed";
    case build_outcome::canceled:
      return "canceled";
    case build_outcome::infrastructure:
      return "infrastructure";
  }
  return "?";
}

struct runner::impl {
  proto::job job;
  runner_options opts;
  storage::object_store& storage;
  build_sink& sink;

  asio::cancellation_signal cancel_signal;
  std::optional<stop_reason> interrupted;  // set by cancel() or stop()
  clock_type::time_point deadline;
  std::chrono::seconds timeout{0};
  fs::path work;                       // the job's work directory, mounted at /build in the sandbox
  std::optional<unsigned> build_uid;   // of install and build (gid the same), when root runs them
  std::optional<work_fs> disk;         // the work directory's filesystem or poller (BUILD_DISK_MB)
  bool said_disk_full = false;         // a line of the running command reported ENOSPC
  bool said_absolute_name = false;     // tar stripped a leading "/" (refused in a source)
  std::optional<build_cgroup> cgroup;  // install and build as a whole (BUILD_MEMORY_MB...)
  // Without a cgroup of the build's own, in a container (SANDBOX=none, root): the container's
  // limits and their counters before install, which name a limit the build hit.
  std::optional<container_limits> container;
  cgroup_counters container_before;
  build_report report;
  proto::build_settings settings;  // what the plan decided, recorded on the deployment
  // The build cache: off when BUILD_CACHE_MB=0 or its index cannot be read.
  std::optional<cache_store> cache;
  unique_fd cache_work_fd;  // the work directory, opened by the runner before install ran
  buildplan::cache_index cache_index;
  std::vector<buildplan::cache_entry> cache_dropped;  // failed to restore: removed at the save
  std::string cache_scope, cache_fallback;            // the branch built, the production branch
  std::string cloned_branch;  // the job's ref, or the remote's default branch when it had none
  std::optional<std::string> modules_key;  // of this install, when it has a lockfile
  std::string cache_state = "off";         // the deployment's `cache` field
  bool modules_restored = false, store_restored = false, dirs_restored = false;
  bool installed = false;  // the install ran and succeeded
  int64_t install_ms = 0;
  std::optional<std::string> rules_file;  // the compiled site rules beside the manifest, if any
  // Precompressed variants (compress.hpp), made on their own threads during the upload and listed
  // in the manifest beside their files.
  std::optional<asio::thread_pool> compress_pool;
  std::vector<std::pair<std::string, proto::manifest_entry>> variant_entries;
  uint64_t compressed_files = 0, compressed_bytes = 0, br_bytes = 0, gzip_bytes = 0;
  uint64_t compress_planned = 0;  // the sizes of the files planned for compression
  uint64_t compress_skipped = 0;  // files past compress_options::max_total_bytes

  impl(proto::job j, runner_options o, storage::object_store& s, build_sink& k)
      : job(std::move(j)), opts(std::move(o)), storage(s), sink(k) {}

  void say(std::string_view line) { sink.log(log_stream::system, buildplan::redact_text(line)); }
  // A phase starts with its first line (its time is the phase's start, proto::log_event::phase),
  // so each says at once what it is doing.
  void begin(proto::log_phase p, std::string_view line) {
    sink.phase(p);
    say(line);
  }

  void interrupt(build_outcome o, std::string message) {
    if (interrupted) {
      return;
    }
    interrupted = stop_reason{o, std::move(message)};
    // Stops the command running now (its whole process group); later steps check `interrupted`.
    cancel_signal.emit(asio::cancellation_type::terminal);
  }

  // One phase's duration, for the report and the benchmark.
  void timed(std::string name, clock_type::time_point start) {
    report.phases.push_back({std::move(name), std::chrono::duration_cast<std::chrono::microseconds>(
                                                  clock_type::now() - start)});
  }

  // Runs a command with the build's remaining time, cancelable by cancel()/stop().
  asio::awaitable<result<process::exit_status>> exec(process::options o, bool redact) {
    co_return co_await exec(std::move(o), redact, std::nullopt);
  }
  // With a sandbox, o.argv is the command to run inside it.
  asio::awaitable<result<process::exit_status>> exec(process::options o, bool redact,
                                                     std::optional<sandbox_options> sandbox) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    o.timeout = std::max(left, std::chrono::milliseconds(1));
    o.kill_grace = opts.kill_grace;
    auto on_line = [this, redact](process::stream s, std::string_view line) {
      auto st = s == process::stream::out ? log_stream::out : log_stream::err;
      // ENOSPC as the command reports it: git removes a failed clone, leaving the disk free.
      said_disk_full = said_disk_full || line.find("No space left on device") != line.npos;
      // GNU tar unpacks an absolute name beneath its directory, saying only this (C locale):
      // "Removing leading `/' (or `//', `/../') from member names (or hard link targets)".
      said_absolute_name = said_absolute_name || line.starts_with("tar: Removing leading `/");
      if (redact) {
        sink.log(st, buildplan::redact_text(line));
      } else {
        sink.log(st, line);
      }
    };
    auto ex = co_await asio::this_coro::executor;
    auto child = [&]() -> asio::awaitable<result<process::exit_status>> {
      if (!sandbox) {
        return process::run(std::move(o), std::move(on_line));
      }
      auto command = std::move(o.argv);
      return run_sandboxed(std::move(*sandbox), std::move(command), std::move(o),
                           std::move(on_line));
    };
    co_return co_await asio::co_spawn(
        ex, child(), asio::bind_cancellation_slot(cancel_signal.slot(), asio::use_awaitable));
  }

  // A command that ended badly, as the build's error.
  stop_reason failure(std::string_view what, const process::exit_status& st) {
    if (st.timed_out) {
      return {build_outcome::failed,
              fmt::format("{} timed out: the build's time limit is {} s (BUILD_TIMEOUT_S)", what,
                          timeout.count())};
    }
    return {build_outcome::failed, fmt::format("{} failed: {}", what, st.describe())};
  }

  asio::awaitable<std::optional<stop_reason>> set_status(deployment_status to,
                                                         proto::hash_fields fields = {}) {
    if (interrupted) {
      co_return interrupted;
    }
    auto r = co_await sink.status(to, std::move(fields), std::nullopt);
    if (!r) {
      co_return stop_reason{build_outcome::infrastructure, "redis: " + r.error().message};
    }
    if (!*r) {
      // Someone else ended the deployment (a cancel while queued, a lease sweep): stop quietly.
      co_return stop_reason{build_outcome::canceled, "the deployment was ended elsewhere", true};
    }
    co_return std::nullopt;
  }

  asio::awaitable<std::optional<stop_reason>> record_settings() {
    proto::hash_fields fields{
        {"build_settings", boost::json::serialize(boost::json::value_from(settings))}};
    if (auto r = co_await sink.set_fields(std::move(fields)); !r) {
      co_return stop_reason{build_outcome::infrastructure, "redis: " + r.error().message};
    }
    co_return std::nullopt;
  }

  // A quick git command in the checkout (rev-parse, show): its first line of output, or null
  // when it failed.
  asio::awaitable<std::optional<std::string>> git_line(std::vector<std::string> argv) {
    process::options o;
    o.argv = std::move(argv);
    o.env = buildplan::git_env((work / "home").string());
    std::string line;
    auto st = co_await process::run(std::move(o), [&line](process::stream s, std::string_view l) {
      if (s == process::stream::out && line.empty()) {
        line = l;
      }
    });
    if (!st || !st->success() || line.empty()) {
      co_return std::nullopt;
    }
    co_return line;
  }

  // A git command that talks to the remote or writes the checkout: logged (redacted), bounded by
  // the build's time, cancelable. An error when git could not run at all.
  asio::awaitable<result<process::exit_status>> git(std::vector<std::string> argv) {
    process::options o;
    o.argv = std::move(argv);
    o.env = buildplan::git_env((work / "home").string());
    o.cwd = work.string();
    said_disk_full = false;
    co_return co_await exec(o, true);
  }

  // A command that fetched the source and failed (git, tar): the disk quota by name when that
  // was it, else its status.
  stop_reason fetch_failure(std::string_view what, const process::exit_status& st) {
    if (disk && disk->kind() != disk_quota::none && (said_disk_full || disk->full())) {
      return {build_outcome::failed,
              fmt::format("{} stopped: disk quota of {} MiB (BUILD_DISK_MB) reached", what,
                          disk->quota_bytes() >> 20)};
    }
    return failure(what, st);
  }

  // Each git command below is built as a named variable first: g++ 12 mishandles temporaries
  // and conditional expressions around a co_await.
  asio::awaitable<std::optional<stop_reason>> clone(const fs::path& repo) {
    auto start = clock_type::now();
    auto ref = job.ref.value_or("");
    // A full ref (a pull request's) is fetched into an empty repository: clone takes branches
    // and tags only.
    bool full_ref = ref.starts_with("refs/");
    // Which branch goes where, so a log read later says what this build was for.
    say(cloning_line(job));
    if (auto ok = buildplan::check_git_url(job.git_url, opts.allowed_git_protocols); !ok) {
      co_return stop_reason{build_outcome::failed, ok.error().message};
    }
    if (!ref.empty()) {
      if (auto ok = buildplan::check_git_ref(ref); !ok) {
        co_return stop_reason{build_outcome::failed, ok.error().message};
      }
    }
    if (job.commit && !dp::is_commit_sha(*job.commit)) {
      co_return stop_reason{
          build_outcome::failed,
          fmt::format("commit '{}' refused: not 40 or 64 lowercase hex digits", *job.commit)};
    }
    const auto dir = repo.string();
    if (full_ref) {
      auto init_argv = buildplan::git_init_argv(dir);
      auto init = co_await git(std::move(init_argv));
      if (!init) {
        co_return stop_reason{build_outcome::infrastructure, "git: " + init.error().message};
      }
      if (!init->success()) {
        co_return failure("git init", *init);
      }
      buildplan::fetch_request req{job.git_url, ref, dir, 1, 0, opts.allowed_git_protocols};
      auto fetch_argv = buildplan::git_fetch_argv(req);
      auto st = co_await git(std::move(fetch_argv));
      if (!st) {
        co_return stop_reason{build_outcome::infrastructure, "git: " + st.error().message};
      }
      if (!st->success()) {
        co_return fetch_failure("git fetch of " + ref, *st);
      }
      auto checkout_argv = buildplan::git_checkout_argv(dir, "FETCH_HEAD");
      auto out = co_await git(std::move(checkout_argv));
      if (!out || !out->success()) {
        co_return stop_reason{build_outcome::failed, "git checkout of " + ref + " failed"};
      }
    } else {
      buildplan::clone_request req{job.git_url, ref, dir, opts.allowed_git_protocols};
      auto clone_argv = buildplan::git_clone_argv(req);
      auto st = co_await git(std::move(clone_argv));
      if (!st) {
        co_return stop_reason{build_outcome::infrastructure, "git: " + st.error().message};
      }
      // A repository larger than the disk quota: the limit by name, as for install and build.
      if (disk && disk->kind() != disk_quota::none &&
          ((!st->success() && said_disk_full) || disk->full())) {
        co_return fetch_failure("git clone", *st);
      }
      if (!st->success()) {
        co_return failure("git clone", *st);
      }
    }
    auto head_argv = buildplan::git_head_argv(dir);
    auto head = co_await git_line(std::move(head_argv));
    if (!head) {
      co_return stop_reason{build_outcome::failed, "git rev-parse HEAD failed after the clone"};
    }
    // Without a ref the remote's default branch was cloned: its name goes on the record (the
    // worker learns the project's production branch from it).
    std::string branch = ref;
    proto::hash_fields commit;
    if (ref.empty()) {
      auto branch_argv = buildplan::git_branch_argv(dir);
      auto b = co_await git_line(std::move(branch_argv));
      if (b) {
        branch = *b;
        commit.emplace_back("branch", branch);
      }
    }
    std::string sha = *head;
    if (job.commit && *job.commit != sha) {
      auto on = history_ref(ref, branch);
      auto stop = co_await check_out_commit(dir, on);
      if (stop) {
        co_return stop;
      }
      sha = *job.commit;
    }
    report.commit = sha;
    commit.emplace_back("commit", sha);
    cloned_branch = branch;
    say(fmt::format("cloned commit {}{} in {}", sha, branch.empty() ? "" : " of " + branch,
                    seconds(clock_type::now() - start)));
    timed("clone", start);
    if (auto r = co_await sink.set_fields(std::move(commit)); !r) {
      co_return stop_reason{build_outcome::infrastructure, "redis: " + r.error().message};
    }
    co_return std::nullopt;
  }

  // `git fetch` of `what` (a ref or the job's commit) into the checkout: true when it worked.
  asio::awaitable<bool> fetch_into(std::string dir, std::string what, int depth, int64_t since) {
    buildplan::fetch_request req{job.git_url, std::move(what), std::move(dir),
                                 depth,       since,           opts.allowed_git_protocols};
    auto argv = buildplan::git_fetch_argv(req);
    auto st = co_await git(std::move(argv));
    co_return st && st->success();
  }

  // The job's commit is in the history of what was fetched last (FETCH_HEAD).
  asio::awaitable<bool> commit_is_fetched_ancestor(std::string dir) {
    auto argv = buildplan::git_is_ancestor_argv(dir, *job.commit);
    auto st = co_await git(std::move(argv));
    co_return st && st->success();
  }

  // The job names a commit that is not the ref's head (an older push, a commit named through
  // the API): fetched by its id where the server allows it (uploadpack.allowReachableSHA1InWant
  // or allowAnySHA1InWant, and protocol v2), with the ref's history since its date to prove it
  // is on the ref; else the ref's last commit_search_depth commits. Then checked out, detached.
  asio::awaitable<std::optional<stop_reason>> check_out_commit(std::string dir, std::string ref) {
    const std::string sha = *job.commit;
    say(fmt::format("fetching commit {} (the head of {} is another)", sha, ref));
    bool found = false;
    bool direct = co_await fetch_into(dir, sha, 1, 0);
    if (direct) {
      auto time_argv = buildplan::git_commit_time_argv(dir, sha);
      auto when = co_await git_line(std::move(time_argv));
      int64_t since = 0;
      bool dated = when && std::from_chars(when->data(), when->data() + when->size(), since).ec ==
                               std::errc();
      if (dated) {
        bool history = co_await fetch_into(dir, ref, 0, since);
        if (history) {
          found = co_await commit_is_fetched_ancestor(dir);
        }
      }
    }
    if (!found && !interrupted) {
      say(fmt::format("fetching the last {} commits of {}", commit_search_depth, ref));
      bool deeper = co_await fetch_into(dir, ref, commit_search_depth, 0);
      if (deeper) {
        found = co_await commit_is_fetched_ancestor(dir);
      }
    }
    if (interrupted) {
      co_return interrupted;
    }
    if (!found) {
      co_return stop_reason{
          build_outcome::failed,
          fmt::format("commit {} is not on {}: not among its last {} commits, or the server does "
                      "not have it",
                      sha, ref, commit_search_depth)};
    }
    auto checkout_argv = buildplan::git_checkout_argv(dir, sha);
    auto st = co_await git(std::move(checkout_argv));
    if (!st || !st->success()) {
      co_return stop_reason{build_outcome::failed, "git checkout of commit " + sha + " failed"};
    }
    co_return std::nullopt;
  }

  // An uploaded directory instead of a clone, step 1: the archive downloaded into the work
  // directory (before any user code has run there).
  asio::awaitable<std::optional<stop_reason>> download_source(const fs::path& file) {
    const std::string& key = *job.source_archive;
    say(fmt::format("unpacking the uploaded source {}", key));
    auto got = co_await storage.get(key);
    if (!got) {
      co_return stop_reason{
          got.error().is(errc::not_found) ? build_outcome::failed : build_outcome::infrastructure,
          fmt::format("storage: source archive {}: {}", key, got.error().message)};
    }
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    std::vector<char> buf(256 * 1024);
    for (;;) {
      auto n = co_await got->body->read_some(buf);
      if (!n) {
        co_return stop_reason{
            build_outcome::infrastructure,
            fmt::format("storage: source archive {}: {}", key, n.error().message)};
      }
      if (*n == 0) {
        break;
      }
      out.write(buf.data(), static_cast<std::streamsize>(*n));
    }
    out.close();
    if (!out) {
      co_return stop_reason{build_outcome::infrastructure,
                            "cannot write the source archive to the work directory"};
    }
    co_return std::nullopt;
  }

  // Step 2, once the build is confined: tar unpacks `file` into `repo` inside the sandbox as the
  // build's uid (buildplan/archive.hpp), within the build's disk quota and time limit; the tree is
  // then checked without following it. No commit is recorded.
  asio::awaitable<std::optional<stop_reason>> unpack_source(const fs::path& file,
                                                            const fs::path& repo) {
    auto start = clock_type::now();
    said_disk_full = false;
    said_absolute_name = false;
    auto argv = buildplan::source_unpack_argv(inside(file), inside(repo));
    auto st = co_await exec_user(phase::install, std::move(argv), work, no_env, "unpack");
    if (!st) {
      co_return stop_reason{build_outcome::infrastructure, "unpack: " + st.error().message};
    }
    if (interrupted) {
      co_return interrupted;
    }
    // Before the archive goes: its removal would free the disk the quota's check looks at.
    if (auto hit = limit_hit("unpack", &*st)) {
      co_return stop_reason{build_outcome::failed, "source archive: " + *hit};
    }
    if (!st->success()) {
      // tar names each member it refused on lines of its own above.
      auto f = fetch_failure("unpack", *st);
      f.message = "source archive: " + f.message;
      co_return f;
    }
    std::error_code ec;
    fs::remove(file, ec);
    if (said_absolute_name) {
      co_return stop_reason{build_outcome::failed,
                            "source archive: a member with an absolute name refused (tar unpacked "
                            "it beneath the tree)"};
    }
    auto r = buildplan::check_unpacked_tree(repo, opts.archive);
    if (!r) {
      co_return stop_reason{
          r.error().is(errc::io) ? build_outcome::infrastructure : build_outcome::failed,
          "source archive: " + r.error().message};
    }
    say(fmt::format("unpacked {} files ({}) in {}", r->files, human_bytes(r->bytes),
                    seconds(clock_type::now() - start)));
    timed("unpack", start);
    co_return std::nullopt;
  }

  // A path of the work directory as the sandbox sees it.
  std::string inside(const fs::path& host) const {
    if (!opts.sandbox) {
      return host.string();
    }
    return (fs::path(mount_point) / host.lexically_relative(work)).lexically_normal().string();
  }

  // `argv` as the build's user, in the sandbox unless the runner is the sandbox, in `cwd` (a
  // directory of the work directory), with the environment of phase `p` and `project_env`.
  // An error: the environment is refused (errc::invalid_argument) or the command could not run.
  asio::awaitable<result<process::exit_status>> exec_user(phase p, std::vector<std::string> argv,
                                                          const fs::path& cwd,
                                                          const config::environment& project_env,
                                                          std::string_view what) {
    std::string mount = opts.sandbox ? std::string(mount_point) : work.string();
    auto env = sandbox_env(p, mount, project_env);
    if (!env) {
      co_return env.error();
    }
    process::options o;
    o.limits = opts.limits;
    if (!o.limits.cpu_seconds) {
      o.limits.cpu_seconds = static_cast<uint64_t>(timeout.count());
    }
    std::optional<sandbox_options> sandbox;
    if (opts.sandbox) {
      sandbox_options so;
      so.bwrap = opts.bwrap;
      so.work_dir = work;
      so.mount_point = mount;
      so.cwd = inside(cwd);
      so.env = std::move(*env);
      so.uid = build_uid;
      so.tmp_dir = work / "tmp";
      so.network = opts.network;
      o.argv = std::move(argv);  // run_sandboxed puts bwrap around it
      o.cwd = work.string();
      sandbox = std::move(so);
    } else {
      (*env)["TMPDIR"] = (work / "tmp").string();  // inside the disk quota, as in the sandbox
      o.argv = build_uid ? switch_uid_argv(*build_uid, std::move(argv)) : std::move(argv);
      o.env = std::move(*env);
      o.cwd = cwd.string();
    }
    co_return co_await exec_limited(std::move(o), what, std::move(sandbox));
  }

  // install or build, in the sandbox unless the runner is the sandbox.
  asio::awaitable<std::optional<stop_reason>> run_user(phase p, const buildplan::command& cmd,
                                                       const fs::path& project_dir) {
    auto start = clock_type::now();
    std::string_view what = p == phase::install ? "install" : "build";
    say(fmt::format("{}: running `{}`", what, cmd.display));
    // The plan's defaults (YARN_NODE_LINKER...), beneath the project's own variables.
    config::environment project_env(cmd.env.begin(), cmd.env.end());
    for (const auto& [k, v] : job.env) {
      project_env[k] = v;
    }
    // The project's variables are its own fault; what fails after this is the platform's.
    if (auto env = sandbox_env(p, std::string(mount_point), project_env); !env) {
      co_return stop_reason{build_outcome::failed, env.error().message};
    }
    auto st = co_await exec_user(p, cmd.argv, project_dir, project_env, what);
    if (!st) {
      co_return stop_reason{build_outcome::infrastructure,
                            fmt::format("{}: {}", what, st.error().message)};
    }
    if (interrupted) {
      co_return interrupted;
    }
    if (auto hit = limit_hit(what, &*st)) {
      co_return stop_reason{build_outcome::failed, *hit};
    }
    if (!st->success()) {
      co_return failure(fmt::format("{} (`{}`)", what, cmd.display), *st);
    }
    say(fmt::format("{} finished in {}", what, seconds(clock_type::now() - start)));
    timed(std::string(what), start);
    co_return std::nullopt;
  }

  // ---- The build cache (buildplan/cache.hpp, src/cache_store.hpp) ----
  // Nothing of it can fail the build: a cache that cannot be read or written is a warning, and
  // the build goes on cold.

  // tar and rm run without the project's variables (TAR_OPTIONS and the like).
  const config::environment no_env;

  // `node --version` as the sandbox will run it (the same /usr): part of the modules key.
  asio::awaitable<std::string> node_version() {
    process::options o;
    o.argv = {"node", "--version"};
    o.env = sandbox_runner_env();
    o.timeout = std::chrono::seconds(10);
    std::string version;
    auto st = co_await process::run(std::move(o), [&](process::stream s, std::string_view l) {
      if (s == process::stream::out && version.empty()) {
        version = l;
      }
    });
    co_return st && st->success() ? version : std::string("none");
  }

  // The archives' compression: zstd when the sandbox's PATH has it (it sees the host's /usr).
  buildplan::cache_compression compression() const {
    return process::find_program("zstd", sandbox_runner_env()) ? buildplan::cache_compression::zstd
                                                               : buildplan::cache_compression::gzip;
  }

  buildplan::cache_entry* cache_entry_named(const std::string& name) {
    for (auto& e : cache_index.entries) {
      if (e.name == name) {
        return &e;
      }
    }
    return nullptr;
  }

  // `rm -rf` of `paths` (of the work directory) as the build's user: what a failed unpack left.
  asio::awaitable<void> remove_as_build(std::vector<fs::path> paths) {
    std::vector<std::string> argv{"rm", "-rf", "--"};
    for (const auto& p : paths) {
      argv.push_back(inside(p));
    }
    auto st = co_await exec_user(phase::install, std::move(argv), work, no_env, "cache");
    if (!st || !st->success()) {
      say("warning: cache: cannot remove what a failed restore left");
    }
  }

  // Fetches entry `e` into the work directory and unpacks it into `dest` inside the sandbox as
  // the build's user. On failure, `restores` (what it would have created) is removed again.
  asio::awaitable<bool> restore_entry(const buildplan::cache_entry& e, const fs::path& dest,
                                      std::vector<fs::path> restores) {
    auto start = clock_type::now();
    std::string name = e.name;
    // The entry's name keeps its suffix, which tells tar the compression.
    std::string file = fmt::format(".dp-cache-in-{}-{}", dp::random_hex(6), name);
    auto fetched = co_await cache->fetch(name, cache_work_fd.get(), file);
    std::optional<std::string> failed;
    if (!fetched) {
      failed = "fetch: " + fetched.error().message;
    } else {
      auto st = co_await exec_user(phase::install,
                                   buildplan::cache_unpack_argv(inside(work / file), inside(dest)),
                                   work, no_env, "cache restore");
      if (!st) {
        failed = st.error().message;
      } else if (!st->success()) {
        failed = "tar " + st->describe();
      }
    }
    ::unlinkat(cache_work_fd.get(), file.c_str(), 0);
    if (interrupted) {
      co_return false;
    }
    if (failed) {
      say(fmt::format("warning: cache: {} not restored: {}", buildplan::to_string(e.kind),
                      *failed));
      // An entry that does not unpack would fail every build: it goes at the next save.
      auto& entries = cache_index.entries;
      for (auto it = entries.begin(); it != entries.end(); ++it) {
        if (it->name == name) {
          cache_dropped.push_back(*it);
          entries.erase(it);
          break;
        }
      }
      if (fetched) {
        co_await remove_as_build(std::move(restores));
      }
      co_return false;
    }
    auto took = clock_type::now() - start;
    if (auto* stored = cache_entry_named(name)) {
      stored->used_at = now_ms();
      stored->restore_ms = std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
    }
    say(fmt::format("cache: restored {} ({}) in {}", buildplan::to_string(e.kind),
                    human_bytes(*fetched), seconds(took)));
    co_return true;
  }

  // Before install: node_modules on an exact hit (the install is then skipped), else npm's
  // cache directory (the install then runs --prefer-offline); the framework's cache folders.
  asio::awaitable<void> restore_cache(const buildplan::build_plan& plan) {
    if (opts.cache.max_bytes == 0) {
      cache_state = "off";
      begin(proto::log_phase::restore_cache, "cache: off (BUILD_CACHE_MB=0)");
      co_return;
    }
    if (job.fork) {
      cache_state = "off";
      begin(proto::log_phase::restore_cache,
            "cache: off (a fork's pull request neither reads nor writes the project's cache)");
      co_return;
    }
    begin(proto::log_phase::restore_cache,
          fmt::format("cache: reading the build cache of project {}", job.project));
    auto start = clock_type::now();
    auto dir = buildplan::open_directory(work.string());
    if (!dir) {
      cache_state = "off";
      say("warning: cache: off: " + dir.error().message);
      co_return;
    }
    cache_work_fd = std::move(*dir);
    cache.emplace(storage, opts.cache, job.project);
    // The branch actually built: a build of the default branch without a ref shares its cache
    // with the later builds that name that branch (once the production branch is learned).
    cache_scope = cloned_branch.empty() ? job.ref.value_or("") : cloned_branch;
    cache_fallback = job.production_branch.value_or("");
    if (plan.install) {
      auto id = buildplan::read_install_identity(plan.project_fd.get(), plan.install->display,
                                                 co_await node_version());
      if (id && *id) {
        modules_key = buildplan::modules_key(**id);
      }
    }
    auto index = co_await cache->load_index();
    if (!index) {
      say("warning: cache: the index cannot be read: " + index.error().message);
      cache.reset();  // nothing is written either: the index might hold what we cannot see
      cache_state = "miss";
      co_return;
    }
    cache_index = std::move(*index);
    if (job.no_cache) {
      cache_state = "off";
      say("cache: not restored (deployed with --no-cache); a new cache is written after the build");
      co_return;
    }
    const fs::path& project = plan.project_dir;
    if (modules_key) {
      if (const auto* e = buildplan::find_modules(cache_index, *modules_key)) {
        if (buildplan::restore_does_not_pay(*e)) {
          say(
              fmt::format("cache: node_modules not restored: its last restore took {} ms, more "
                          "than the install ({} ms)",
                          e->restore_ms, e->install_ms));
        } else {
          std::vector<fs::path> restores{project / "node_modules"};
          modules_restored = co_await restore_entry(*e, project, std::move(restores));
        }
      }
    }
    // After a node_modules hit pnpm and yarn still run the build through corepack, which needs
    // its download of them: the store comes back too.
    if (plan.install && (!modules_restored || plan.package_manager != "npm")) {
      if (const auto* e = buildplan::find_latest(cache_index, buildplan::cache_kind::store,
                                                 cache_scope, cache_fallback)) {
        std::vector<fs::path> restores;
        for (const char* m : store_members) {
          restores.push_back(work / m);
        }
        store_restored = co_await restore_entry(*e, work, std::move(restores));
      }
    }
    if (!plan.cache_dirs.empty()) {
      if (const auto* e = buildplan::find_latest(cache_index, buildplan::cache_kind::dirs,
                                                 cache_scope, cache_fallback)) {
        std::vector<fs::path> dirs;
        for (const auto& d : plan.cache_dirs) {
          dirs.push_back(project / d);
        }
        dirs_restored = co_await restore_entry(*e, project, std::move(dirs));
      }
    }
    cache_state = modules_restored ? "hit" : (store_restored || dirs_restored) ? "partial" : "miss";
    say(fmt::format("cache: {} ({} cached for project {}{})", cache_state,
                    human_bytes(cache_index.total_bytes()), job.project,
                    modules_key ? fmt::format(", install key {}", modules_key->substr(0, 12))
                                : std::string(", no lockfile: node_modules is not cached")));
    timed("cache restore", start);
  }

  // Packs `members` of `dir` inside the sandbox into one archive, uploads it and returns its
  // entry (nullopt, with a warning, when it cannot).
  asio::awaitable<std::optional<buildplan::cache_entry>> pack_entry(
      buildplan::cache_kind kind, const fs::path& dir, std::vector<std::string> members) {
    auto c = compression();
    std::string name = buildplan::cache_archive_name(kind, c, dp::random_hex(8));
    std::string file = ".dp-cache-out-" + name;
    auto st = co_await exec_user(
        phase::install, buildplan::cache_pack_argv(inside(work / file), inside(dir), members, c),
        work, no_env, "cache save");
    std::optional<std::string> failed;
    if (!st) {
      failed = st.error().message;
    } else if (!st->success()) {
      failed = "tar " + st->describe();
    } else {
      // One regular file beneath the work directory, never followed: the rest is the build's.
      auto fd = cache->open_packed(cache_work_fd.get(), file, opts.cache.max_bytes);
      auto stored = fd ? co_await cache->store(name, std::move(*fd)) : result<uint64_t>(fd.error());
      if (!stored) {
        failed = stored.error().message;
      } else {
        ::unlinkat(cache_work_fd.get(), file.c_str(), 0);
        auto now = now_ms();
        buildplan::cache_entry e;
        e.name = name;
        e.kind = kind;
        e.scope = cache_scope;
        e.bytes = *stored;
        e.created_at = now;
        e.used_at = now;
        say(fmt::format("cache: saved {} ({})", buildplan::to_string(kind), human_bytes(*stored)));
        co_return e;
      }
    }
    ::unlinkat(cache_work_fd.get(), file.c_str(), 0);
    say(fmt::format("warning: cache: {} not saved: {}", buildplan::to_string(kind), *failed));
    co_return std::nullopt;
  }

  // After the build: what the install made (node_modules on a miss, npm's cache) and the
  // framework's cache folders; then the index, with eviction (size cap, expiry).
  asio::awaitable<void> save_cache(const buildplan::build_plan& plan) {
    if (!cache || interrupted) {
      co_return;
    }
    begin(proto::log_phase::save_cache, "cache: saving what this build made");
    auto start = clock_type::now();
    auto has_dir = [](int base, const std::string& rel) {
      return static_cast<bool>(buildplan::open_beneath(base, rel, O_RDONLY | O_DIRECTORY));
    };
    std::vector<buildplan::cache_entry> added;
    if (installed && modules_key && !modules_restored &&
        has_dir(plan.project_fd.get(), "node_modules")) {
      std::vector<std::string> members{"node_modules"};
      if (auto e = co_await pack_entry(buildplan::cache_kind::modules, plan.project_dir,
                                       std::move(members))) {
        e->key = *modules_key;
        e->install_ms = install_ms;
        added.push_back(std::move(*e));
      }
    }
    if (installed) {
      std::vector<std::string> members;
      for (const char* m : store_members) {
        if (buildplan::open_beneath(cache_work_fd.get(), m, O_PATH)) {
          members.emplace_back(m);
        }
      }
      if (!members.empty()) {
        if (auto e = co_await pack_entry(buildplan::cache_kind::store, work, std::move(members))) {
          added.push_back(std::move(*e));
        }
      }
    }
    if (!plan.cache_dirs.empty()) {
      std::vector<std::string> present;
      for (const auto& d : plan.cache_dirs) {
        if (has_dir(plan.project_fd.get(), d)) {
          present.push_back(d);
        }
      }
      if (!present.empty()) {
        if (auto e = co_await pack_entry(buildplan::cache_kind::dirs, plan.project_dir,
                                         std::move(present))) {
          added.push_back(std::move(*e));
        }
      }
    }
    for (auto& e : added) {
      cache_index.entries.push_back(std::move(e));
    }
    auto now = now_ms();
    auto gone = buildplan::evict(
        cache_index, now, {.max_bytes = opts.cache.max_bytes, .max_age = opts.cache.max_age});
    gone.insert(gone.end(), cache_dropped.begin(), cache_dropped.end());
    if (auto r = co_await cache->save_index(cache_index, gone, now); !r) {
      say("warning: cache: the index was not saved: " + r.error().message);
      co_return;
    }
    uint64_t total = cache_index.total_bytes();
    say(fmt::format("cache: {} in {} entries (cap {} MiB per project){} in {}", human_bytes(total),
                    cache_index.entries.size(), opts.cache.max_bytes >> 20,
                    gone.empty() ? std::string() : fmt::format(", {} evicted", gone.size()),
                    seconds(clock_type::now() - start)));
    timed("cache save", start);
    proto::hash_fields fields{{"cache_bytes", std::to_string(total)}};
    if (auto r = co_await sink.set_fields(std::move(fields)); !r) {
      dp::log::warn("cannot record the cache's size",
                    {{"deployment", job.deployment_id}, {"error", r.error().message}});
    }
  }

  // The site's _redirects, _headers and vercel.json compiled here, in the trusted runner (the
  // files are read beneath the validated descriptors, never by path), and uploaded beside the
  // manifest. Rules that do not compile are dropped with their file:line in the log; the
  // deployment goes on without them.
  asio::awaitable<std::optional<stop_reason>> compile_rules(int out_dir, int project_dir) {
    auto start = clock_type::now();
    siteconfig::options compile_opts;
    compile_opts.shadow = job.shadowing == proto::redirects_shadowing::rules
                              ? siteconfig::shadowing::rules_win
                              : siteconfig::shadowing::files_win;
    auto c = siteconfig::compile_at(out_dir, compile_opts, project_dir);
    bool errors = false;
    for (const auto& d : c.diagnostics) {
      say(siteconfig::to_string(d));
      errors = errors || d.level == siteconfig::diagnostic::severity::error;
    }
    if (errors) {
      say("site rules: a file above could not be compiled: the deployment goes live without its "
          "rules");
    }
    if (c.rules.empty()) {
      co_return std::nullopt;
    }
    storage::put_options po;
    po.content_type = "application/json";
    po.cache_control = std::string(buildplan::cache_revalidate);
    auto r = co_await storage.put_buffer(proto::output_key(job.deployment_id, proto::rules_name),
                                         siteconfig::to_json(c.rules), std::move(po));
    if (!r) {
      co_return stop_reason{build_outcome::infrastructure,
                            "storage: site rules: " + r.error().message};
    }
    rules_file = std::string(proto::rules_name);
    const auto& rs = c.rules;
    say(fmt::format(
        "site rules: {} redirects and rewrites ({} static, {} dynamic), {} header rules, {} "
        "protected paths{}{}{}",
        rs.static_redirects.size() + rs.dynamic_redirects.size(), rs.static_redirects.size(),
        rs.dynamic_redirects.size(), rs.header_rules.size(), rs.protections.size(),
        rs.trailing_slash == siteconfig::trailing_slash_mode::keep  ? ""
        : rs.trailing_slash == siteconfig::trailing_slash_mode::add ? ", trailing slash added"
                                                                    : ", trailing slash removed",
        rs.clean_urls ? ", clean URLs" : "",
        job.shadowing == proto::redirects_shadowing::rules
            ? ", _redirects rules apply over files (redirects_shadowing: rules)"
            : ""));
    timed("rules", start);
    co_return std::nullopt;
  }

  // Up to upload_concurrency puts at a time; the first error stops the others. Each file is
  // reopened beneath the output directory's descriptor and must be the inode validated.
  asio::awaitable<std::optional<stop_reason>> upload(
      const std::vector<buildplan::output_file>& files, int out_dir) {
    auto start = clock_type::now();
    std::string prefix = proto::output_prefix(job.deployment_id);
    size_t next = 0;
    std::optional<stop_reason> failed;
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer done(ex, asio::steady_timer::time_point::max());
    size_t workers = std::max<size_t>(1, std::min(opts.upload_concurrency, files.size()));
    size_t left = workers;
    std::unordered_set<std::string_view> keys;
    for (const auto& f : files) {
      keys.insert(f.key);
    }
    auto listed = [&](const std::string& key) { return keys.contains(key); };
    auto worker = [&]() -> asio::awaitable<void> {
      while (next < files.size() && !failed && !interrupted) {
        const auto& f = files[next++];
        storage::put_options po;
        po.content_type = std::string(buildplan::content_type(f.key));
        po.cache_control = std::string(buildplan::cache_control(f.key));
        auto fd = buildplan::open_output_file(out_dir, f);
        if (!fd) {
          if (!failed) {
            failed = stop_reason{build_outcome::failed, "output rejected: " + fd.error().message};
          }
          break;
        }
        auto r = co_await storage.put_file(prefix + f.key, std::move(*fd), std::move(po));
        if (!r && !failed) {
          failed = stop_reason{build_outcome::infrastructure,
                               fmt::format("storage: upload of {}: {}", f.key, r.error().message)};
        }
        auto plan = plan_variants(f.key, f.size, compress_planned, opts.compress, listed);
        if (plan.any()) {
          compress_planned += f.size;
        } else if (compress_planned + f.size > opts.compress.max_total_bytes &&
                   plan_variants(f.key, f.size, 0, opts.compress, listed).any()) {
          ++compress_skipped;
        }
        if (r && plan.any() && !failed && !interrupted) {
          auto s = co_await upload_variants(f, plan, out_dir, prefix);
          if (s && !failed) {
            failed = std::move(s);
          }
        }
      }
    };
    for (size_t i = 0; i < workers; ++i) {
      dp::spawn(ex, worker(), "upload worker", [&](bool threw) {
        if (threw && !failed) {
          failed = stop_reason{build_outcome::infrastructure, "storage: upload worker failed"};
        }
        if (--left == 0) {
          done.cancel();
        }
      });
    }
    boost::system::error_code ec;
    co_await done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (failed || interrupted) {
      co_return failed ? failed : interrupted;
    }
    if (compressed_files > 0) {
      say(fmt::format("compressed {} files ({}): {} variants, br {}, gzip {}", compressed_files,
                      human_bytes(compressed_bytes), variant_entries.size(), human_bytes(br_bytes),
                      human_bytes(gzip_bytes)));
    }
    if (compressed_bytes > opts.compress.best_quality_bytes) {
      say(fmt::format("compression: Brotli {} after the first {} (Brotli {}), to stay fast",
                      opts.compress.fast_brotli_quality,
                      human_bytes(opts.compress.best_quality_bytes), opts.compress.brotli_quality));
    }
    if (compress_skipped > 0) {
      say(fmt::format("warning: compression: {} files past the first {} are served uncompressed",
                      compress_skipped, human_bytes(opts.compress.max_total_bytes)));
    }
    say(fmt::format("uploaded {} files ({}) to {} in {}", files.size() + variant_entries.size(),
                    human_bytes(report.bytes), prefix, seconds(clock_type::now() - start)));
    timed("upload", start);
    co_return std::nullopt;
  }

  // The Brotli and gzip variants of one uploaded file: read from the inode validated and
  // compressed on the compression pool, uploaded as `<key>.br` and `<key>.gz`, and listed in the
  // manifest as files beside it (the proxy pairs them, as it does a user's own x.br).
  asio::awaitable<std::optional<stop_reason>> upload_variants(const buildplan::output_file& f,
                                                              variant_plan plan, int out_dir,
                                                              const std::string& prefix) {
    auto fd = buildplan::open_output_file(out_dir, f);
    if (!fd) {
      co_return stop_reason{build_outcome::failed, "output rejected: " + fd.error().message};
    }
    if (!compress_pool) {
      compress_pool.emplace(std::max(1u, opts.compress.threads));
    }
    auto made = co_await asio::co_spawn(*compress_pool,
                                        compress_file(std::move(*fd), f.size, plan, opts.compress),
                                        asio::use_awaitable);
    if (!made) {
      co_return stop_reason{build_outcome::failed,
                            fmt::format("output rejected: {}: {}", f.key, made.error().message)};
    }
    ++compressed_files;
    compressed_bytes += f.size;
    for (auto& v : *made) {
      std::string key = f.key + v.suffix;
      proto::manifest_entry e{static_cast<int64_t>(v.data.size()), std::move(v.sha256),
                              std::string(buildplan::content_type(key)),
                              std::string(buildplan::cache_control(f.key))};
      (v.suffix == ".br" ? br_bytes : gzip_bytes) += v.data.size();
      report.bytes += v.data.size();
      storage::put_options po;
      po.content_type = e.content_type;
      po.cache_control = e.cache_control;
      auto r = co_await storage.put_buffer(prefix + key, std::move(v.data), std::move(po));
      if (!r) {
        co_return stop_reason{build_outcome::infrastructure,
                              fmt::format("storage: upload of {}: {}", key, r.error().message)};
      }
      variant_entries.emplace_back(std::move(key), std::move(e));
    }
    co_return std::nullopt;
  }

  asio::awaitable<std::optional<stop_reason>> write_manifest(
      const std::vector<buildplan::output_file>& files) {
    auto start = clock_type::now();
    proto::manifest m;
    m.deployment_id = job.deployment_id;
    m.created_at = now_ms();
    // From the validated listing, not the host path: the output is the build's tree.
    bool has_404 = std::any_of(files.begin(), files.end(),
                               [](const buildplan::output_file& f) { return f.key == "404.html"; });
    m.mode = job.mode.value_or(has_404 ? proto::serve_mode::static_files : proto::serve_mode::spa);
    m.rules = rules_file;
    for (const auto& f : files) {
      m.files[f.key] = proto::manifest_entry{static_cast<int64_t>(f.size), f.sha256,
                                             std::string(buildplan::content_type(f.key)),
                                             std::string(buildplan::cache_control(f.key))};
    }
    for (const auto& [key, e] : variant_entries) {
      m.files.emplace(key, e);
    }
    storage::put_options po;
    po.content_type = "application/json";
    po.cache_control = std::string(buildplan::cache_revalidate);
    auto r = co_await storage.put_buffer(proto::manifest_key(job.deployment_id), proto::to_json(m),
                                         std::move(po));
    if (!r) {
      co_return stop_reason{build_outcome::infrastructure,
                            "storage: manifest: " + r.error().message};
    }
    say(fmt::format("manifest written: {} files, mode {} ({}: {})", files.size(),
                    proto::to_string(m.mode),
                    job.mode  ? "the project's serve_mode"
                    : has_404 ? "404.html found"
                              : "no 404.html",
                    m.mode == proto::serve_mode::spa
                        ? "unknown paths serve index.html"
                        : "unknown paths get the nearest 404.html, else a plain 404"));
    timed("manifest", start);
    co_return std::nullopt;
  }

  // The build's uid (the work directory handed to it), the sandbox and the cgroup: what every
  // command of the build's runs within, from the unpack of an uploaded source on.
  asio::awaitable<std::optional<stop_reason>> confine() {
    // A root runner never runs user code as root, sandbox or not: in a container (SANDBOX=none)
    // the runner is root with the few capabilities the switch needs, the build gets none, and
    // what only the runner may read (its files, its environment) is closed to the build's uid.
    if (::geteuid() == 0 && opts.build_uid_base != 0) {
      // FNV-1a of the id: concurrent builds get different uids, each with its own limits.
      uint32_t h = 2166136261u;
      for (unsigned char c : job.deployment_id) {
        h = (h ^ c) * 16777619u;
      }
      build_uid = opts.build_uid_base + h % 100000;
      if (auto owned = give_work_to(*build_uid); !owned) {
        co_return stop_reason{build_outcome::infrastructure, owned.error().message};
      }
    }
    if (opts.sandbox) {
      if (auto ok = co_await probe_bwrap(opts.bwrap); !ok) {
        co_return stop_reason{
            build_outcome::infrastructure,
            ok.error().message + " (inside a container that is the sandbox, use --sandbox none)"};
      }
      say(fmt::format(
          "sandbox: bubblewrap (own mount, pid, ipc, uts and network namespaces; read-only "
          "system; no host home; network {}){}",
          opts.network == network_mode::egress ? "egress: public addresses only" : "none",
          build_uid ? fmt::format("; as uid {}, no capabilities", *build_uid) : std::string()));
    } else {
      say(fmt::format(
          "warning: sandbox none: install and build run WITHOUT bubblewrap{}; this is "
          "safe only inside a container that is itself the sandbox",
          build_uid ? fmt::format(" (as uid {}, no capabilities)", *build_uid) : std::string()));
    }

    make_cgroup();
    co_return std::nullopt;
  }

  asio::awaitable<std::optional<stop_reason>> pipeline() {
    auto fields = proto::hash_fields{{"started_at", std::to_string(now_ms())}};
    if (auto s = co_await set_status(deployment_status::cloning, std::move(fields))) {
      co_return s;
    }
    begin(proto::log_phase::clone,
          fmt::format("build {} of project {} (attempt {}), time limit {} s", job.deployment_id,
                      job.project, job.attempt, timeout.count()));
    // The work directory: the checkout (src), HOME and npm's cache, all removed afterwards.
    std::error_code ec;
    auto root = opts.work_root.empty() ? fs::temp_directory_path(ec) : opts.work_root;
    // Named after this runner too (pid and start time): the cgroup takes the same name, and the
    // sweep of a later runner or worker removes both once this process is gone (sweep.hpp).
    work = root / owned_name(fmt::format("dp-build-{}-{}", job.deployment_id, dp::random_hex(4)));
    if (auto s = co_await make_work_dir(root)) {
      co_return s;
    }
    fs::create_directories(work / "home", ec);
    if (!ec) {
      work = fs::canonical(work, ec);
    }
    if (ec) {
      co_return stop_reason{build_outcome::infrastructure,
                            fmt::format("cannot create the work directory: {}", ec.message())};
    }
    auto repo = work / "src";
    std::optional<stop_reason> fetched;
    if (job.source_archive) {
      // Unpacked by the build's uid in the sandbox: confined first.
      auto archive = work / "source.tar.gz";
      if (fs::create_directory(repo, ec); ec) {
        co_return stop_reason{build_outcome::infrastructure,
                              fmt::format("cannot create the source directory: {}", ec.message())};
      }
      fetched = co_await download_source(archive);
      if (!fetched) {
        fetched = co_await confine();
      }
      if (!fetched) {
        fetched = co_await unpack_source(archive, repo);
      }
    } else {
      fetched = co_await clone(repo);
      if (!fetched) {
        fetched = co_await confine();
      }
    }
    if (fetched) {
      co_return fetched;
    }

    // Opens the checkout (nothing of it has run yet) and the project directory within it.
    auto plan = buildplan::make_plan(repo, {job.root_dir, job.install_command, job.build_command,
                                            job.output_dir, job.install_scripts});
    if (!plan) {
      co_return stop_reason{build_outcome::failed, plan.error().message};
    }
    for (const auto& note : plan->notes) {
      say(note);
    }
    // What runs, on the deployment (GET /v1/projects/{name} shows the latest).
    settings = proto::build_settings{
        .framework = plan->framework,
        .package_manager = plan->package_manager,
        .install_command = {plan->install ? plan->install->display : "",
                            job.install_command.has_value()},
        .build_command = {plan->build ? plan->build->display : "", job.build_command.has_value()},
        .output_dir = std::nullopt};
    if (auto s = co_await record_settings()) {
      co_return s;
    }
    if (auto s = co_await set_status(deployment_status::installing)) {
      co_return s;
    }
    co_await restore_cache(*plan);
    if (interrupted) {
      co_return interrupted;
    }
    {
      proto::hash_fields fields{{"cache", cache_state}};
      if (auto r = co_await sink.set_fields(std::move(fields)); !r) {
        co_return stop_reason{build_outcome::infrastructure, "redis: " + r.error().message};
      }
    }
    sink.phase(proto::log_phase::install);
    if (plan->install && modules_restored) {
      say(
          fmt::format("install: skipped: node_modules restored from the build cache (same "
                      "lockfile, package.json, Node version and `{}`)",
                      plan->install->display));
    } else if (plan->install) {
      auto install = *plan->install;
      // npm's own cache came back: take packages from it, ask the registry only for the rest.
      if (store_restored && install.argv.front() == "npm") {
        install.argv.push_back("--prefer-offline");
        install.display += " --prefer-offline";
      }
      auto install_start = clock_type::now();
      if (auto s = co_await run_user(phase::install, install, plan->project_dir)) {
        co_return s;
      }
      installed = true;
      install_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - install_start)
              .count();
    }
    sink.phase(proto::log_phase::build);
    if (auto s = co_await set_status(deployment_status::building)) {
      co_return s;
    }
    if (plan->build) {
      if (auto s = co_await run_user(phase::build, *plan->build, plan->project_dir)) {
        co_return s;
      }
    }

    // Validate: the build has ended, but the tree is its own: everything is read beneath the
    // project directory's descriptor, opened by buildplan::make_plan before install ran (plan.hpp).
    auto start = clock_type::now();
    auto out = buildplan::find_output_dir(*plan);
    if (!out) {
      co_return stop_reason{build_outcome::failed, out.error().message};
    }
    say(out->note);
    settings.output_dir = {out->rel.empty() ? "." : out->rel, job.output_dir.has_value()};
    if (auto s = co_await record_settings()) {
      co_return s;
    }
    auto listing = buildplan::scan_output(out->fd.get(), opts.output);
    if (!listing) {
      co_return stop_reason{build_outcome::failed, "output rejected: " + listing.error().message};
    }
    for (const auto& w : listing->warnings) {
      say("warning: " + w);
    }
    std::vector<buildplan::output_file> files;
    files.reserve(listing->files.size());
    for (auto& f : listing->files) {
      // Read as the site's rules, never served (as Cloudflare Pages and Netlify do).
      if (f.key == "_redirects" || f.key == "_headers") {
        continue;
      }
      if (auto why = refuse_key(f.key)) {
        say(fmt::format("warning: skipped '{}': {}", f.key, *why));
        continue;
      }
      report.bytes += f.size;
      files.push_back(std::move(f));
    }
    report.files = files.size();
    if (files.empty()) {
      co_return stop_reason{build_outcome::failed,
                            fmt::format("the output directory {} holds no file to publish",
                                        out->dir.lexically_relative(repo).string())};
    }
    // It still goes live (an API or assets-only output is a site too), but a site whose home
    // page is missing has most likely been looked for in the wrong directory.
    if (std::none_of(files.begin(), files.end(),
                     [](const buildplan::output_file& f) { return f.key == "index.html"; })) {
      say(
          fmt::format("warning: the output directory {} has no index.html: the site's home page "
                      "(/) will answer 404; set output_dir if the site is built elsewhere",
                      settings.output_dir->value));
    }
    say(fmt::format("validated {} files, {}", files.size(), human_bytes(report.bytes)));
    timed("validate", start);

    begin(proto::log_phase::upload,
          fmt::format("uploading {} files ({})", files.size(), human_bytes(report.bytes)));
    if (auto s = co_await set_status(deployment_status::uploading)) {
      co_return s;
    }
    if (auto s = co_await compile_rules(out->fd.get(), plan->project_fd.get())) {
      co_return s;
    }
    if (auto s = co_await upload(files, out->fd.get())) {
      co_return s;
    }
    if (interrupted) {
      co_return interrupted;
    }
    // The commit marker, last: without it the proxy serves nothing of this deployment.
    if (auto s = co_await write_manifest(files)) {
      co_return s;
    }
    co_await save_cache(*plan);
    co_return std::nullopt;
  }

  // The work directory and everything in it (the checkout) now belong to the build's user.
  result<void> give_work_to(unsigned id) {
    std::error_code ec;
    auto chown = [&](const fs::path& p) -> result<void> {
      if (::lchown(p.c_str(), id, id) != 0) {
        return make_error(std::error_code(errno, std::generic_category()),
                          fmt::format("cannot hand the work directory to uid {}", id));
      }
      return {};
    };
    // bwrap (root, without capabilities) must still enter it to mount it. Before the chown: the
    // mode of what another uid owns takes CAP_FOWNER to change.
    fs::permissions(work,
                    fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                        fs::perms::others_read | fs::perms::others_exec,
                    ec);
    if (ec) {
      return make_error(ec, "cannot open the work directory to bubblewrap");
    }
    if (auto r = chown(work); !r) {
      return r;
    }
    for (auto it = fs::recursive_directory_iterator(work, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (auto r = chown(it->path()); !r) {
        return r;
      }
    }
    if (ec) {
      return make_error(ec, "cannot hand the work directory to the build's user");
    }
    return {};
  }

  // ---- Limits of the build as a whole (BUILD_MEMORY_MB, BUILD_PIDS_MAX, BUILD_DISK_MB) ----

  // The work directory, with its disk quota: a filesystem of its own when one can be made.
  asio::awaitable<std::optional<stop_reason>> make_work_dir(const fs::path& root) {
    std::error_code ec;
    fs::create_directories(root, ec);
    // A named local: g++ 12 frees a temporary argument of a co_await twice.
    work_fs_options wo{
        .dir = work, .quota_bytes = opts.disk_bytes, .allow_filesystem = opts.disk_filesystem};
    auto made = co_await work_fs::make(std::move(wo));
    if (!made) {
      co_return stop_reason{build_outcome::infrastructure, made.error().message};
    }
    disk.emplace(std::move(*made));
    // The sandbox's /tmp, inside the quota (bubblewrap binds it; sticky as a /tmp should be).
    fs::create_directory(work / "tmp", ec);
    fs::permissions(work / "tmp", fs::perms::all | fs::perms::sticky_bit, ec);
    if (ec) {
      co_return stop_reason{build_outcome::infrastructure,
                            fmt::format("cannot create the build's /tmp: {}", ec.message())};
    }
    co_return std::nullopt;
  }

  // The cgroup that install and build run in; without one the build runs on, with a warning.
  void make_cgroup() {
    auto mib = [](uint64_t b) {
      return b == 0 ? std::string("none") : fmt::format("{} MiB", b >> 20);
    };
    std::optional<std::string> no_cgroup;
    if (opts.memory_bytes != 0 || opts.pids_max != 0) {
      auto cg = build_cgroup::create(work.filename().string(),
                                     {.memory_bytes = opts.memory_bytes, .pids = opts.pids_max});
      if (cg) {
        cgroup.emplace(std::move(*cg));
      } else {
        no_cgroup = cg.error().message;
      }
    }
    if (!cgroup && !opts.sandbox && build_uid) {
      // In a container, whose cgroup is read-only inside: the container's limits
      // (DOCKER_MEMORY_MB or BUILD_MEMORY_MB, BUILD_PIDS_MAX; ECS: the task's size) are what the
      // build meets, and its counters say which one it hit.
      container = read_container_limits();
    }
    if (container) {
      container_before = container->counters();
      say(fmt::format("limits: memory {}, processes {} (the container's); disk {} ({}); time {} s",
                      mib(container->memory_bytes),
                      container->pids == 0 ? std::string("none") : std::to_string(container->pids),
                      mib(opts.disk_bytes), disk ? disk->describe() : std::string("none"),
                      timeout.count()));
      return;
    }
    if (no_cgroup) {
      say(fmt::format("warning: memory and process limits of the build are not enforced: {}",
                      *no_cgroup));
      dp::log::warn("no cgroup for the build",
                    {{"deployment", job.deployment_id}, {"error", *no_cgroup}});
    }
    say(fmt::format(
        "limits: memory {}, processes {}{}; disk {} ({}); time {} s", mib(opts.memory_bytes),
        opts.pids_max == 0 ? std::string("none") : std::to_string(opts.pids_max),
        cgroup ? fmt::format(" ({})", cgroup->describe()) : std::string(), mib(opts.disk_bytes),
        disk ? disk->describe() : std::string("none"), timeout.count()));
  }

  // The limit the build has reached, as the build's error; `st` is the command that ended, or
  // null while it runs (then only the cgroup's counters and the poller's walk count).
  std::optional<std::string> limit_hit(std::string_view what, const process::exit_status* st) {
    if (container) {
      auto c = container->counters();
      if (c.oom_kills > container_before.oom_kills) {
        return fmt::format("{} stopped: memory limit of {} MiB (the container's) reached", what,
                           container->memory_bytes >> 20);
      }
      if (c.pids_refused > container_before.pids_refused) {
        return fmt::format("{} stopped: process limit of {} (the container's) reached", what,
                           container->pids);
      }
    }
    if (cgroup) {
      auto c = cgroup->counters();
      if (c.oom_kills > 0) {
        return fmt::format("{} stopped: memory limit of {} MiB (BUILD_MEMORY_MB) reached", what,
                           opts.memory_bytes >> 20);
      }
      if (c.pids_refused > 0) {
        return fmt::format("{} stopped: process limit of {} (BUILD_PIDS_MAX) reached", what,
                           opts.pids_max);
      }
    }
    if (!disk || disk->kind() == disk_quota::none) {
      return std::nullopt;
    }
    bool over = false;
    if (st == nullptr) {
      over = disk->kind() == disk_quota::poller && disk->full();
    } else {
      // ENOSPC from the filesystem, SIGXFSZ from the file size limit, or the poller's total.
      // Even after a command that succeeded: a tool that ignored ENOSPC leaves cut files.
      over = disk->full() || st->signal == SIGXFSZ;
    }
    if (over) {
      return fmt::format("{} stopped: disk quota of {} MiB (BUILD_DISK_MB) reached", what,
                         disk->quota_bytes() >> 20);
    }
    return std::nullopt;
  }

  // While a command runs: an OOM kill or a refused fork stops the build at once, and so does
  // the poller's total when no filesystem enforces the quota. Ends only when canceled (the
  // command has ended), so that the command's own end is what the caller sees.
  asio::awaitable<void> watch_limits(std::string_view what) {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer t(ex);
    for (int tick = 1;; ++tick) {
      if (interrupted) {
        t.expires_at(asio::steady_timer::time_point::max());
        boost::system::error_code ec;
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        co_return;
      }
      t.expires_after(std::chrono::milliseconds(250));
      boost::system::error_code ec;
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        co_return;
      }
      // The walk of a large node_modules costs tens of milliseconds: once a second.
      bool walk = disk && disk->kind() == disk_quota::poller && tick % 4 == 0;
      if (!cgroup && !container && !walk) {
        continue;
      }
      auto hit = cgroup || container ? limit_hit(what, nullptr) : std::nullopt;
      if (!hit && walk && disk->full()) {
        hit = fmt::format("{} stopped: disk quota of {} MiB (BUILD_DISK_MB) reached", what,
                          disk->quota_bytes() >> 20);
      }
      if (hit) {
        say(*hit);
        interrupt(build_outcome::failed, *hit);
      }
    }
  }

  // exec() inside the build's cgroup, watched; whatever the command left running is killed.
  asio::awaitable<result<process::exit_status>> exec_limited(
      process::options o, std::string_view what, std::optional<sandbox_options> sandbox) {
    bool sandboxed = sandbox.has_value();
    if (cgroup) {
      o.cgroup_procs = cgroup->procs_fds();
    }
    if (disk && disk->kind() == disk_quota::poller) {
      o.limits.file_size_bytes =
          std::min(o.limits.file_size_bytes.value_or(UINT64_MAX), disk->quota_bytes());
    }
    using namespace asio::experimental::awaitable_operators;
    auto r = co_await (exec(std::move(o), false, std::move(sandbox)) || watch_limits(what));
    // Nothing a command started outlives it: daemons, double forks, a fork bomb's remains.
    if (cgroup) {
      if (auto k = co_await cgroup->kill_all(); !k) {
        dp::log::warn("cannot empty the build's cgroup",
                      {{"deployment", job.deployment_id}, {"error", k.error().message}});
      }
    } else if (build_uid && !sandboxed) {
      // In a container: every process of the build's own uid (bwrap's pid namespace ends with
      // the sandbox otherwise).
      if (int n = kill_processes_of(*build_uid); n > 0) {
        say(fmt::format("{}: killed {} process{} it left running", what, n, n == 1 ? "" : "es"));
      }
    }
    if (r.index() != 0) {
      co_return make_error(errc::internal, "the limit watch ended before the command");
    }
    co_return std::get<0>(std::move(r));
  }

  // The cgroup (its last processes killed) and the work directory's filesystem go.
  asio::awaitable<void> release_limits() {
    cache_work_fd.reset();  // a descriptor inside the filesystem would keep it busy
    if (cgroup) {
      if (auto r = co_await cgroup->remove(); !r) {
        dp::log::warn("cannot remove the build's cgroup",
                      {{"deployment", job.deployment_id}, {"error", r.error().message}});
      }
      cgroup.reset();
    }
    if (disk) {
      if (auto r = disk->release(); !r) {
        dp::log::warn("cannot unmount the work directory",
                      {{"deployment", job.deployment_id}, {"error", r.error().message}});
      }
      disk.reset();
    }
  }

  // Removes the work directory; a failure is logged, not fatal.
  void clean_up() {
    if (work.empty()) {
      return;
    }
    std::error_code ec;
    fs::remove_all(work, ec);
    if (ec) {
      dp::log::warn("cannot remove the work directory",
                    {{"dir", work.string()}, {"error", ec.message()}});
    }
  }

  asio::awaitable<build_report> run() {
    auto started = clock_type::now();
    timeout = job.timeout_s > 0 ? std::chrono::seconds(job.timeout_s) : opts.timeout;
    deadline = started + timeout;
    auto stopped = co_await pipeline();
    co_await release_limits();
    clean_up();
    auto finish_start = clock_type::now();
    if (!stopped && interrupted) {
      stopped = interrupted;
    }
    if (!stopped) {
      begin(
          proto::log_phase::go_live,
          fmt::format("{} in {}: {} files, {}{}",
                      opts.go_live ? "deployment ready" : "built and uploaded",
                      seconds(clock_type::now() - started), report.files, human_bytes(report.bytes),
                      opts.go_live ? "" : "; the worker makes it live"));
      proto::hash_fields fields{{"files", std::to_string(report.files)},
                                {"bytes", std::to_string(report.bytes)}};
      // A follower that sees the final status must already have every line.
      if (auto r = co_await sink.flush(); !r) {
        stopped = stop_reason{build_outcome::infrastructure, "redis: logs: " + r.error().message};
      } else if (!opts.go_live) {
        // The worker's records::go_live finds the fields on the record.
        if (auto r = co_await sink.set_fields(std::move(fields)); !r) {
          stopped = stop_reason{build_outcome::infrastructure, "redis: " + r.error().message};
        } else {
          report.outcome = build_outcome::ready;
          timed("finish", finish_start);
          co_return report;
        }
      } else {
        auto live = co_await sink.go_live(std::move(fields));
        if (!live) {
          // An alias of another project's (the status is ready, the files and manifest are
          // there: promote goes around it), or Redis failed.
          report.outcome = build_outcome::infrastructure;
          report.error = "infrastructure: redis: go-live: " + live.error().message;
          dp::log::error("go-live failed",
                         {{"deployment", job.deployment_id}, {"error", live.error().message}});
          co_return report;
        }
        if (*live) {
          report.outcome = build_outcome::ready;
          timed("finish", finish_start);
          co_return report;
        }
        // Someone else ended the deployment (a cancel at the last moment): stop quietly.
        stopped = stop_reason{build_outcome::canceled, "the deployment was ended elsewhere", true};
      }
    }
    report.outcome = stopped->outcome;
    report.error = buildplan::redact_text(stopped->outcome == build_outcome::infrastructure &&
                                                  !stopped->message.starts_with("runner stopped")
                                              ? "infrastructure: " + stopped->message
                                              : stopped->message);
    if (stopped->ended_elsewhere) {
      say("stopped: the deployment was ended elsewhere");
      if (auto flushed = co_await sink.flush(); !flushed) {
        dp::log::warn("build log lines not stored",
                      {{"deployment", job.deployment_id}, {"error", flushed.error()}});
      }
      co_return report;
    }
    say(fmt::format("build {}: {}",
                    stopped->outcome == build_outcome::canceled ? "canceled" : "failed",
                    report.error));
    auto flushed = co_await sink.flush();
    auto to = stopped->outcome == build_outcome::canceled ? deployment_status::canceled
                                                          : deployment_status::failed;
    auto r = co_await sink.status(to, proto::hash_fields(), report.error);
    if (!flushed || !r) {
      dp::log::error("cannot record the build's end", {{"deployment", job.deployment_id},
                                                       {"status", proto::to_string(to)},
                                                       {"error", report.error}});
      if (report.outcome != build_outcome::canceled) {
        report.outcome = build_outcome::infrastructure;
      }
    }
    co_return report;
  }
};

runner::runner(proto::job job, runner_options opts, storage::object_store& storage,
               build_sink& sink)
    : impl_(std::make_unique<impl>(std::move(job), std::move(opts), storage, sink)) {}

runner::~runner() = default;

asio::awaitable<build_report> runner::run() {
  return impl_->run();
}

void runner::cancel(std::string reason) {
  impl_->interrupt(build_outcome::canceled, std::move(reason));
}

void runner::stop(std::string reason) {
  impl_->interrupt(build_outcome::infrastructure, "runner stopped: " + std::move(reason));
}

}  // namespace dp::runner
