// The reaper: finds jobs in the processing list whose worker lost its lease and re-queues or
// fails them, and asks the launcher to remove builds nobody holds any more; then, in this worker's
// turn, the retention pass (retention.hpp), inside the same loop: the next sweep waits for it.
#include <algorithm>
#include <random>
#include <set>

#include "dp/core/log.hpp"
#include "dp/proto/json.hpp"
#include "worker_impl.hpp"

namespace dp::worker {

using proto::deployment_status;

asio::awaitable<void> worker::impl::reap() {
  std::uniform_real_distribution<double> jitter(0.75, 1.25);
  while (!finished) {
    auto wait =
        std::chrono::duration_cast<std::chrono::milliseconds>(opts.reap_interval * jitter(rng));
    co_await sleep_for(reap_timer, wait);
    if (finished) {
      co_return;
    }
    co_await clean_up();
    if (auto ok = co_await sweep(); !ok) {
      dp::log::warn("reaper sweep failed", {{"error", ok.error()}});
    }
    co_await retain();
  }
}

asio::awaitable<void> worker::impl::retain() {
  const auto& r = opts.retention;
  if (!r.store || r.interval.count() <= 0) {
    co_return;
  }
  auto turn = co_await records.take_retention_turn(opts.id, r.interval);
  if (!turn || !*turn) {
    co_return;  // another worker's turn (or Redis could not say: the next sweep asks again)
  }
  auto report = co_await prune_deployments(records, *r.store, r.policy);
  if (!report) {
    dp::log::warn("retention pass failed; the next turn retries", {{"error", report.error()}});
    co_return;
  }
  dp::log::info("retention pass done", {{"projects", report->projects},
                                        {"pruned", report->pruned},
                                        {"objects", report->objects},
                                        {"caches", report->caches}});
}

asio::awaitable<void> worker::impl::clean_up() {
  auto live = [this](std::string deployment, std::string holder) -> asio::awaitable<bool> {
    if (holder == opts.id) {
      co_return jobs.contains(deployment);
    }
    auto lease = co_await redis.get(records.keys().lease(deployment));
    // When Redis cannot tell, keep the build: removing a live one is worse than waiting.
    co_return !lease || *lease == holder;
  };
  if (auto ok = co_await launch.clean_up(live); !ok) {
    dp::log::warn("cannot clean up orphaned builds", {{"error", ok.error()}});
  }
}

asio::awaitable<dp::result<void>> worker::impl::sweep() {
  auto texts = co_await queue.processing();
  if (!texts) {
    co_return texts.error();
  }
  std::set<std::string> missing;
  for (auto& text : *texts) {
    auto job = proto::parse_job(std::string_view(text));
    if (!job) {
      dp::log::error("dropping an unreadable job from the processing list",
                     {{"error", job.error()}});
      co_await finish("", text, claimer());
      continue;
    }
    const auto& id = job->deployment_id;
    if (jobs.contains(id)) {
      continue;  // ours: the heartbeat keeps its lease
    }
    auto has = co_await queue.has_lease(id);
    if (!has) {
      co_return has.error();
    }
    if (*has) {
      continue;
    }
    // Missing once may be a job taken a moment ago whose lease is on its way.
    if (!missing_last_sweep.contains(text)) {
      missing.insert(text);
      continue;
    }
    auto claimed = co_await queue.claim_expired(id, text, claimer(), opts.lease_ttl);
    if (!claimed) {
      co_return claimed.error();
    }
    if (!*claimed) {
      continue;
    }
    co_await recover(*job, text);
    co_await release(id, claimer());
  }
  missing_last_sweep = std::move(missing);
  co_return dp::result<void>{};
}

asio::awaitable<void> worker::impl::recover(const proto::job& job, const std::string& text) {
  const auto& id = job.deployment_id;
  if (job.attempt < opts.max_attempts) {
    auto next = job;
    ++next.attempt;
    auto r = co_await records.requeue(text, next);
    if (!r) {
      dp::log::error("cannot re-queue a lost job", {{"deployment", id}, {"error", r.error()}});
      co_return;
    }
    if (r->applied) {
      dp::log::warn("worker lost; job re-queued", {{"deployment", id}, {"attempt", next.attempt}});
      co_await note(id, fmt::format("worker lost; re-queued as attempt {}", next.attempt));
    }
    co_return;
  }
  auto error = fmt::format("worker lost; giving up after {} attempts", job.attempt);
  // The line before the status: whoever sees `failed` (a log stream ends at it) finds the reason.
  co_await note(id, error);
  auto t = co_await records.transition(id, deployment_status::failed, {}, error);
  if (!t && !t.error().is(errc::not_found)) {
    dp::log::error("cannot fail a lost job", {{"deployment", id}, {"error", t.error()}});
    co_return;
  }
  if (t && t->applied) {
    dp::log::warn("worker lost; job failed", {{"deployment", id}, {"attempts", job.attempt}});
  }
  co_await finish(id, text, claimer());
}

}  // namespace dp::worker
