// The worker: the queue consumer, each job's lease heartbeat and cancel watch, and drain on stop.
// The reaper is in reaper.cpp; the state both share is worker_impl.hpp.
#include "dp/worker/worker.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>

#include <unistd.h>

#include <algorithm>

#include "dp/core/id.hpp"
#include "dp/core/log.hpp"
#include "dp/core/spawn.hpp"
#include "dp/proto/json.hpp"
#include "dp/state/logbook.hpp"
#include "worker_impl.hpp"

namespace dp::worker {

using namespace asio::experimental::awaitable_operators;
using proto::deployment_status;

namespace {

constexpr size_t max_started_by = 36;

bool is_started_by_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '/';
}

}  // namespace

bool is_started_by(std::string_view id) noexcept {
  return id.size() <= max_started_by && std::all_of(id.begin(), id.end(), is_started_by_char);
}

std::string default_worker_id() {
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  auto id = fmt::format("{}-{}-{}", host, ::getpid(), dp::random_hex(3));
  // Hostnames have dots, which startedBy refuses. Keep the unique tail.
  for (char& c : id) {
    if (!is_started_by_char(c)) {
      c = '-';
    }
  }
  return id.size() > max_started_by ? id.substr(id.size() - max_started_by) : id;
}

// ---- the job's logbook and letting go ----

asio::awaitable<void> worker::impl::note(const std::string& id, std::string line) {
  auto seq = co_await state::next_log_seq(redis, records.keys(), id);
  if (!seq) {
    dp::log::warn("cannot write to the logbook",
                  {{"deployment", id}, {"line", line}, {"error", seq.error()}});
    co_return;
  }
  state::log_writer w(ex, redis, records.keys(), id, *seq);
  w.write(proto::log_stream::system, line);
  if (auto ok = co_await w.flush(std::chrono::seconds(5)); !ok) {
    dp::log::warn("cannot write to the logbook",
                  {{"deployment", id}, {"line", line}, {"error", ok.error()}});
  }
}

asio::awaitable<void> worker::impl::finish(std::string_view id, std::string_view text,
                                           std::string_view holder) {
  if (auto r = co_await queue.finish(id, text, holder); !r) {
    dp::log::warn("cannot finish the job; the reaper will",
                  {{"deployment", id}, {"error", r.error()}});
  }
}
asio::awaitable<void> worker::impl::release(std::string_view id, std::string_view holder) {
  if (auto r = co_await queue.release(id, holder); !r) {
    dp::log::warn("cannot release the lease; it expires on its own",
                  {{"deployment", id}, {"error", r.error()}});
  }
}
asio::awaitable<void> worker::impl::unlock(const proto::job& job) {
  if (auto r = co_await queue.unlock_project(job.project, lock_holder(job)); !r) {
    dp::log::warn("cannot unlock the project; the lock expires on its own",
                  {{"deployment", job.deployment_id}, {"error", r.error()}});
  }
}

// ---- consumer ----

asio::awaitable<void> worker::impl::consume() {
  while (!stopping) {
    if (active >= opts.concurrency) {
      wake.expires_at(clock_type::time_point::max());
      co_await wake.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    auto taken = co_await queue.take(blocking, opts.block);
    if (!taken) {
      dp::log::warn("cannot take a job; retrying", {{"error", taken.error()}});
      co_await sleep_for(wake, std::chrono::milliseconds(500));
      continue;
    }
    if (!*taken) {
      continue;
    }
    ++active;
    dp::spawn(ex, handle(std::move(**taken)), "job handler", [self = shared_from_this()](bool) {
      --self->active;
      self->notify();
    });
  }
  // Drain: running builds may finish until the deadline, then they are handed back.
  auto deadline = clock_type::now() + opts.drain;
  if (active > 0) {
    dp::log::info("draining", {{"builds", active}, {"seconds", opts.drain.count() / 1000}});
  }
  while (active > 0 && clock_type::now() < deadline) {
    wake.expires_at(deadline);
    co_await wake.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  for (auto& [id, h] : jobs) {
    request_stop(*h, stop_reason::handed_back);
  }
  while (active > 0) {
    wake.expires_at(clock_type::time_point::max());
    co_await wake.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  finished = true;
  cancels.close();
  reap_timer.cancel();
}

asio::awaitable<void> worker::impl::handle(std::string text) {
  auto parsed = proto::parse_job(std::string_view(text));
  if (!parsed) {
    // It can never run: out of the processing list, or the reaper would retry it forever.
    dp::log::error("dropping an unreadable job", {{"error", parsed.error()}});
    co_await finish("", text, opts.id);
    co_return;
  }
  const std::string id = parsed->deployment_id;
  // The lease at once: the reaper grants a just-taken job one sweep of grace, no more.
  auto held = co_await queue.hold(id, text, opts.id, opts.lease_ttl, true);
  if (!held) {
    dp::log::error("cannot set the lease; the reaper will re-queue the job",
                   {{"deployment", id}, {"error", held.error()}});
    co_return;
  }
  if (jobs.contains(id)) {
    // The same deployment twice in the processing list: the other copy is ours already.
    dp::log::warn("job held already; dropping the copy", {{"deployment", id}});
    co_await finish("", text, opts.id);
    co_return;
  }
  auto h = std::make_shared<held_job>(ex, std::move(text), std::move(*parsed));
  jobs.emplace(id, h);
  dp::spawn(ex, heartbeat(h), "lease heartbeat");
  if (stopping) {
    request_stop(*h, stop_reason::handed_back);
  }
  std::optional<build_end> end;
  std::optional<dp::error> failure;
  auto ready = co_await prepare(*h);
  if (ready && *ready && h->why == stop_reason::none) {
    dp::log::info("build starting", {{"deployment", id},
                                     {"project", h->job.project},
                                     {"attempt", h->job.attempt},
                                     {"launcher", launch.name()}});
    co_await report_commit_status(id, deployment_status::building);
    auto r = co_await launch.run(h->job, h->stop);
    if (r) {
      end = std::move(*r);
    } else {
      failure = r.error();
    }
  } else if (!ready) {
    failure = ready.error();
  } else if (!*ready) {
    h->done = true;  // dropped or superseded: prepare() has finished it
  }
  std::optional<requeue_plan> again;
  if (!h->done) {
    again = co_await conclude(*h, end, failure);
  }
  h->done = true;
  h->beat.cancel();
  if (h->locked) {
    co_await unlock(h->job);
  }
  jobs.erase(id);
  // Last, once this worker has let go of the job: a re-queued job may come straight back to
  // this worker, which must then take it as new rather than as a copy of one it holds.
  if (again) {
    co_await requeue(*h, *again);
  }
}

asio::awaitable<void> worker::impl::requeue(const held_job& h, const requeue_plan& plan) {
  const auto& id = h.job.deployment_id;
  auto r = co_await records.requeue(h.text, plan.job);
  co_await release(id, opts.id);
  if (!r) {
    dp::log::error("cannot hand the job back; the reaper will",
                   {{"deployment", id}, {"error", r.error()}});
    co_return;
  }
  dp::log::info(plan.log_line, {{"deployment", id}, {"attempt", plan.job.attempt}});
  co_await note(id, plan.logbook_line);
}

// Before the build: drop a final deployment, cancel a superseded one, wait for the project's
// lock. false when the job was finished here; true when the build may start (or h.why says
// why not).
asio::awaitable<dp::result<bool>> worker::impl::prepare(held_job& h) {
  const auto& id = h.job.deployment_id;
  asio::steady_timer pause(ex);
  for (;;) {
    if (h.why != stop_reason::none) {
      co_return true;
    }
    auto d = co_await records.get_deployment(id);
    if (!d && d.error().is(errc::not_found)) {
      dp::log::warn("dropping a job whose deployment is gone", {{"deployment", id}});
      co_await finish(id, h.text, opts.id);
      co_return false;
    }
    if (!d) {
      co_return d.error();
    }
    if (proto::is_final(d->status)) {
      dp::log::info("dropping a job whose deployment is final",
                    {{"deployment", id}, {"status", proto::to_string(d->status)}});
      co_await finish(id, h.text, opts.id);
      co_return false;
    }
    std::string branch = d->branch.value_or("");
    auto newer = co_await queue.newer_active(h.job.project, branch, id);
    if (!newer) {
      co_return newer.error();
    }
    if (*newer) {
      auto why = "superseded by " + **newer;
      // The line before the status: whoever sees `canceled` (a log stream ends at it) finds why.
      co_await note(id, why);
      auto t = co_await records.transition(id, deployment_status::canceled, {}, why);
      if (!t) {
        co_return t.error();
      }
      dp::log::info("build superseded", {{"deployment", id}, {"by", **newer}});
      // Its commit may have no status yet: it gets a final one all the same.
      co_await report_commit_status(id, deployment_status::canceled, why);
      co_await finish(id, h.text, opts.id);
      co_return false;
    }
    auto locked = co_await queue.lock_project(h.job.project, lock_holder(h.job), opts.lease_ttl);
    if (!locked) {
      co_return locked.error();
    }
    if (*locked) {
      h.locked = true;
      // The durable cancel request, in case its message came before we listened.
      auto c = co_await records.cancel_requested(id);
      if (c && *c) {
        request_stop(h, stop_reason::canceled, (*c)->reason.value_or("canceled"));
      }
      co_return true;
    }
    // Another build of the project runs: wait, keeping the lease (the heartbeat refreshes it).
    pause.expires_after(opts.lock_retry);
    co_await (pause.async_wait(asio::as_tuple(asio::use_awaitable)) || h.stop.wait());
  }
}

// After the build (or a failure to run it): record the outcome and let go of the job, or say
// how to put it back on the queue.
asio::awaitable<std::optional<requeue_plan>> worker::impl::conclude(
    held_job& h, const std::optional<build_end>& end, const std::optional<dp::error>& failure) {
  const auto& id = h.job.deployment_id;
  switch (h.why) {
    case stop_reason::lease_lost:
      // Another worker may hold it now: touch nothing of the job.
      dp::log::warn("build stopped: its lease was lost", {{"deployment", id}});
      co_return std::nullopt;
    case stop_reason::handed_back:
      co_return requeue_plan{h.job, "job handed back to the queue",
                             "worker stopping; build handed back to the queue"};
    case stop_reason::canceled: {
      auto t = co_await records.transition(id, deployment_status::canceled, {}, h.cancel_reason);
      if (!t) {
        dp::log::error("cannot record the cancel", {{"deployment", id}, {"error", t.error()}});
        co_return std::nullopt;  // the lease expires and the reaper takes over
      }
      dp::log::info("build canceled", {{"deployment", id}, {"reason", h.cancel_reason}});
      co_await report_commit_status(id, deployment_status::canceled, h.cancel_reason);
      co_await finish(id, h.text, opts.id);
      co_return std::nullopt;
    }
    case stop_reason::none:
      break;
  }
  auto d = co_await records.get_deployment(id);
  if (!d) {
    dp::log::error("cannot read the deployment after its build; the reaper will decide",
                   {{"deployment", id}, {"error", d.error()}});
    co_return std::nullopt;
  }
  if (proto::is_final(d->status)) {
    co_await learn_production_branch(*d);
    co_await report_commit_status(id, d->status);
    dp::log::info("build ended", {{"deployment", id},
                                  {"status", proto::to_string(d->status)},
                                  {"exit", end ? end->description : failure->message}});
    co_await finish(id, h.text, opts.id);
    co_return std::nullopt;
  }
  // The build ended without recording a result. Infrastructure (exit 3, killed, could not
  // launch) is worth another attempt; a build that says the input was bad is not.
  std::string what = end ? end->description : failure->message;
  bool retry = !end || !end->exit_code || *end->exit_code >= exit_infrastructure;
  if (retry && h.job.attempt < opts.max_attempts) {
    auto next = h.job;
    ++next.attempt;
    co_return requeue_plan{next, fmt::format("build ended without a result ({}); re-queued", what),
                           fmt::format("build ended without a result ({}); re-queued as attempt {}",
                                       what, next.attempt)};
  }
  auto error = fmt::format("build ended without a result: {}", what);
  if (retry) {
    error += fmt::format(" (giving up after {} attempts)", h.job.attempt);
  }
  co_await note(id, error);
  auto t = co_await records.transition(id, deployment_status::failed, {}, error);
  if (!t) {
    dp::log::error("cannot record the failure", {{"deployment", id}, {"error", t.error()}});
    co_return std::nullopt;
  }
  dp::log::warn("build failed", {{"deployment", id}, {"error", error}});
  co_await report_commit_status(id, deployment_status::failed);
  co_await finish(id, h.text, opts.id);
  co_return std::nullopt;
}

// A production build of the remote's default branch (no ref) names that branch: a project
// without a production branch takes it.
asio::awaitable<void> worker::impl::learn_production_branch(const proto::deployment& d) {
  if (d.status != deployment_status::ready || d.ref || !d.branch ||
      d.target != proto::deployment_target::production) {
    co_return;
  }
  auto learned = co_await records.learn_production_branch(d.project, *d.branch);
  if (!learned) {
    dp::log::warn("cannot record the project's production branch",
                  {{"project", d.project}, {"error", learned.error()}});
  } else if (*learned) {
    dp::log::info("production branch learned", {{"project", d.project}, {"branch", *d.branch}});
  }
}

// Refreshes the lease (and the project lock) every lease_ttl/3 while the job is held, checks
// the durable cancel request, and fences: a lease that cannot be refreshed in time, or that
// another holder has, stops the build.
asio::awaitable<void> worker::impl::heartbeat(std::shared_ptr<held_job> h) {
  const auto& id = h->job.deployment_id;
  auto last_ok = clock_type::now();
  while (!h->done) {
    co_await sleep_for(h->beat, opts.lease_ttl / 3);
    if (h->done) {
      co_return;
    }
    auto held = co_await queue.hold(id, h->text, opts.id, opts.lease_ttl);
    if (h->done) {
      co_return;
    }
    if (!held) {
      if (clock_type::now() - last_ok >= opts.lease_ttl * 2 / 3 && h->why == stop_reason::none) {
        dp::log::error("cannot refresh the lease; stopping the build before it may run twice",
                       {{"deployment", id}, {"error", held.error()}});
        request_stop(*h, stop_reason::lease_lost);
      }
      continue;
    }
    if (!*held) {
      request_stop(*h, stop_reason::lease_lost);
      co_return;
    }
    last_ok = clock_type::now();
    if (h->locked) {
      auto l = co_await queue.lock_project(h->job.project, lock_holder(h->job), opts.lease_ttl);
      if (l && !*l) {
        dp::log::warn("project lock taken by another holder", {{"deployment", id}});
      }
    }
    auto c = co_await records.cancel_requested(id);
    if (c && *c && !h->done) {
      request_stop(*h, stop_reason::canceled, (*c)->reason.value_or("canceled"));
    }
  }
}

// ---- cancel requests ----

asio::awaitable<void> worker::impl::follow_cancels() {
  const auto prefix = records.keys().cancel("");
  auto subscribed = co_await cancels.psubscribe(records.keys().cancel_pattern());
  if (!subscribed) {
    // It stays requested and is renewed when the connection is back; keys still work.
    dp::log::warn("cannot subscribe to cancel requests yet", {{"error", subscribed.error()}});
  }
  while (!finished) {
    auto m = co_await cancels.next();
    if (!m) {
      if (m.error().is(errc::canceled)) {
        co_return;
      }
      continue;
    }
    if (m->kind == redis::message_kind::gap) {
      // Requests may have been missed: the heartbeat reads each job's key; nothing to do here
      // that it will not do within lease_ttl/3.
      continue;
    }
    if (!m->channel.starts_with(prefix)) {
      continue;
    }
    auto it = jobs.find(m->channel.substr(prefix.size()));
    if (it == jobs.end()) {
      continue;
    }
    auto req = proto::parse_cancel_request(std::string_view(m->payload));
    std::string reason = req && req->reason ? *req->reason : "canceled";
    request_stop(*it->second, stop_reason::canceled, std::move(reason));
  }
}

worker::worker(asio::any_io_executor ex, redis::options redis, proto::keys keys, launcher& l,
               worker_options o)
    : impl_(std::make_shared<impl>(ex, std::move(redis), std::move(keys), l, std::move(o))) {}

worker::~worker() {
  impl_->redis.close();
  impl_->blocking.close();
  impl_->cancels.close();
}

asio::awaitable<void> worker::run() {
  auto self = impl_;
  dp::log::info("worker starting", {{"worker", self->opts.id},
                                    {"launcher", self->launch.name()},
                                    {"concurrency", self->opts.concurrency}});
  co_await self->clean_up();
  co_await (self->consume() && self->follow_cancels() && self->reap());
  dp::log::info("worker stopped", {{"worker", self->opts.id}});
}

void worker::stop() {
  if (impl_->stopping) {
    return;
  }
  impl_->stopping = true;
  impl_->notify();
}

asio::awaitable<dp::result<void>> worker::sweep() {
  auto self = impl_;
  co_return co_await self->sweep();
}

const std::string& worker::id() const noexcept {
  return impl_->opts.id;
}

int worker::active() const noexcept {
  return impl_->active;
}

}  // namespace dp::worker
