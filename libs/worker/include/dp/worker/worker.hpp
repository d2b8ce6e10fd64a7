// `build-runner worker`: consumes queue:builds reliably (proto/README.md, "How the pieces move")
// and runs each build through a launcher.
//
// - Take: BLMOVE into the processing list on a dedicated connection, only while a slot is free
//   (concurrency); the lease is set at once and refreshed every lease_ttl/3.
// - Before a build starts: a deployment that is final already (canceled while queued) is dropped;
//   one that a newer active deployment of its project and branch supersedes ends canceled
//   ("superseded by <id>"); then the project's build lock is awaited (one build per project across
//   workers).
// - Cancel: PSUBSCRIBE cancel:* (prompt) and the cancel:<id> key at every refresh (durable).
// - After the build: a final status is acked (LREM); a build that ended without recording one
//   is re-queued with attempt + 1 when it looks like infrastructure (exit 3, killed, launcher
//   error) and attempts remain, else set failed.
// - Fencing: a worker that cannot refresh a lease for 2/3 of its TTL, or finds it taken, kills
//   the build before (or as soon as) another worker may start it.
// - Reaper: every lease_ttl/2 (jittered) a job in the processing list whose lease is missing on
//   two sweeps in a row is claimed and re-queued with attempt + 1, or failed after max_attempts
//   with "worker lost; giving up after N attempts" in its logbook.
// - Retention: at a sweep, the worker that takes lock:retention (NX, TTL RETENTION_INTERVAL_S)
//   prunes old deployments' files (retention.hpp); the others skip until it expires.
// - stop(): no more takes; running builds may finish until `drain`, then they are killed and
//   handed back to the queue with the same attempt (a shutdown is not the build's fault).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "dp/core/error.hpp"
#include "dp/proto/keys.hpp"
#include "dp/redis/types.hpp"
#include "dp/worker/retention.hpp"

namespace dp::http_client {
class client;
}

namespace dp::worker {

class launcher;

// The retention pass (retention.hpp) at the reaper's sweeps: the worker that takes the turn
// (lock:retention, which expires after `interval`) prunes every project.
struct retention_options {
  storage::object_store* store = nullptr;  // borrowed; null: this worker never prunes
  retention_policy policy;
  std::chrono::milliseconds interval{0};  // 0: never
};

struct worker_options {
  std::string id;  // the lease holder's name; empty: default_worker_id()
  int concurrency = 2;
  std::chrono::milliseconds lease_ttl{30'000};
  int max_attempts = 2;
  std::chrono::milliseconds drain{30'000};
  std::chrono::milliseconds block{2'000};      // BLMOVE's server-side wait
  std::chrono::milliseconds lock_retry{250};   // while another build of the project runs
  std::chrono::milliseconds reap_interval{0};  // 0: lease_ttl / 2
  retention_options retention;
  // Sends commit statuses (pending at start, then success or failure) to the forge of a
  // deployment a webhook made, when its project has one configured; null: none are sent.
  http_client::client* commit_status_http = nullptr;
};

// Whether ECS accepts `id` as RunTask's startedBy (which names the worker of a build task): at
// most 36 of [A-Za-z0-9_/-].
bool is_started_by(std::string_view id) noexcept;
// <hostname>-<pid>-<random>, made a valid startedBy.
std::string default_worker_id();

class worker {
 public:
  // The launcher is borrowed and must outlive the worker. Lives on `ex` (one thread).
  worker(boost::asio::any_io_executor ex, redis::options redis, proto::keys keys, launcher& l,
         worker_options o);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  // Consumes until stop(), drains, and returns once every build has ended or been handed back.
  boost::asio::awaitable<void> run();
  // Graceful shutdown; call on the worker's executor. Idempotent.
  void stop();
  // One reaper sweep (run() does these on its own).
  boost::asio::awaitable<dp::result<void>> sweep();

  const std::string& id() const noexcept;
  int active() const noexcept;  // builds held right now (running or waiting for their project)

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace dp::worker
