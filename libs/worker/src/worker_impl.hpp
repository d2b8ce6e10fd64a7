#pragma once
// Private to libs/worker: the worker's state and the members that the consumer (worker.cpp) and
// the reaper (reaper.cpp) share.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>

#include "dp/redis/client.hpp"
#include "dp/redis/subscriber.hpp"
#include "dp/state/queue.hpp"
#include "dp/state/records.hpp"
#include "dp/worker/launcher.hpp"
#include "dp/worker/worker.hpp"

namespace dp::worker {

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;

// Why a build is being stopped; the first reason wins.
enum class stop_reason { none, canceled, handed_back, lease_lost };

struct held_job {
  held_job(asio::any_io_executor ex, std::string t, proto::job j)
      : text(std::move(t)), job(std::move(j)), stop(ex), beat(ex) {}
  std::string text;
  proto::job job;
  stop_flag stop;
  asio::steady_timer beat;  // the heartbeat's sleep; canceled when the job is done
  stop_reason why = stop_reason::none;
  std::string cancel_reason;
  bool locked = false;
  bool done = false;
};

// A job to put back on the queue once the worker has let go of it.
struct requeue_plan {
  proto::job job;            // with the attempt it will run as
  std::string log_line;      // for the worker's log
  std::string logbook_line;  // for the deployment's readers
};

inline asio::awaitable<void> sleep_for(asio::steady_timer& t, std::chrono::milliseconds d) {
  t.expires_after(d);
  co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
}

struct worker::impl : std::enable_shared_from_this<impl> {
  impl(asio::any_io_executor e, redis::options ro, proto::keys k, launcher& l, worker_options o)
      : ex(e),
        opts(std::move(o)),
        redis(e, ro),
        blocking(e, ro),
        cancels(e, ro),
        records(redis, k),
        queue(redis, k),
        launch(l),
        wake(e),
        reap_timer(e) {
    if (opts.id.empty()) {
      opts.id = default_worker_id();
    }
    if (opts.reap_interval.count() <= 0) {
      opts.reap_interval = opts.lease_ttl / 2;
    }
  }

  asio::any_io_executor ex;
  worker_options opts;
  redis::client redis;
  redis::client blocking;  // BLMOVE holds its connection
  redis::subscriber cancels;
  state::records records;
  state::queue queue;
  launcher& launch;
  std::map<std::string, std::shared_ptr<held_job>> jobs;  // by deployment id
  int active = 0;
  bool stopping = false;
  bool finished = false;    // the consumer is done: the other loops end
  asio::steady_timer wake;  // canceled when a slot frees or stop() is called
  asio::steady_timer reap_timer;
  std::set<std::string> missing_last_sweep;  // job texts without a lease at the last sweep
  std::mt19937 rng{std::random_device{}()};

  std::string lock_holder(const proto::job& j) const { return opts.id + "/" + j.deployment_id; }
  std::string claimer() const { return "reaper:" + opts.id; }

  void notify() { wake.cancel(); }

  void request_stop(held_job& h, stop_reason why, std::string reason = {}) {
    if (h.why != stop_reason::none) {
      return;
    }
    h.why = why;
    h.cancel_reason = std::move(reason);
    h.stop.request();
  }

  // A line in the deployment's logbook, so its reader sees what the worker decided.
  asio::awaitable<void> note(const std::string& id, std::string line);

  // Letting go of a job, its lease or its project's lock. A failure is logged and left to the
  // TTLs: the lease and the lock expire, and the reaper finishes a job still listed.
  asio::awaitable<void> finish(std::string_view id, std::string_view text, std::string_view holder);
  asio::awaitable<void> release(std::string_view id, std::string_view holder);
  asio::awaitable<void> unlock(const proto::job& job);

  // ---- consumer (worker.cpp) ----

  asio::awaitable<void> consume();
  asio::awaitable<void> handle(std::string text);
  asio::awaitable<void> requeue(const held_job& h, const requeue_plan& plan);
  asio::awaitable<dp::result<bool>> prepare(held_job& h);
  asio::awaitable<std::optional<requeue_plan>> conclude(held_job& h,
                                                        const std::optional<build_end>& end,
                                                        const std::optional<dp::error>& failure);
  asio::awaitable<void> learn_production_branch(const proto::deployment& d);
  // The deployment's state to its forge (commit_status.cpp); a failure is logged, never more.
  // `why`: a cancel's reason ("superseded by <id>"), in the description.
  asio::awaitable<void> report_commit_status(std::string id, proto::deployment_status s,
                                             std::string why = {});
  asio::awaitable<void> heartbeat(std::shared_ptr<held_job> h);
  asio::awaitable<void> follow_cancels();

  // ---- reaper (reaper.cpp) ----

  asio::awaitable<void> reap();
  // Builds the launcher finds whose worker no longer holds their lease are removed.
  asio::awaitable<void> clean_up();
  asio::awaitable<dp::result<void>> sweep();
  // A job whose worker is gone: another attempt, or failed after the last.
  asio::awaitable<void> recover(const proto::job& job, const std::string& text);
  // The retention pass, when this worker takes its turn.
  asio::awaitable<void> retain();
};

}  // namespace dp::worker
