// The build queue's reliable-list operations (proto/README.md, "Take and finish"): take a job into
// the processing list, hold its lease, hold the project's build lock, finish, and claim a job
// whose lease expired. The processing list keeps every job text until it is finished, so a job
// is never lost; the lease says who holds it.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dp/core/error.hpp"
#include "dp/proto/keys.hpp"

namespace dp::redis {
class client;
}

namespace dp::state {

template <class T>
using task = boost::asio::awaitable<dp::result<T>>;

class queue {
 public:
  // The client is borrowed and must outlive the queue. BLMOVE holds its connection: give take()
  // a client of its own (see take()).
  queue(redis::client& redis, proto::keys keys);

  // BLMOVE queue:builds → queue:builds:processing (RIGHT LEFT), waiting up to `block` on the
  // server. nullopt when nothing came. `blocking` is a dedicated client whose command timeout
  // does not matter: this call allows `block` plus 5 s for the answer.
  task<std::optional<std::string>> take(redis::client& blocking, std::chrono::milliseconds block);

  // Sets or refreshes lease:<id> = holder for `ttl`. false when the job is no longer ours: the
  // lease names someone else, or it expired and the job left the processing list (re-queued).
  // `taken` (right after take()) sets it unconditionally: a job that came off the queue is held
  // by nobody else, whatever a former holder's lease still says.
  task<bool> hold(std::string_view id, std::string_view job_text, std::string_view holder,
                  std::chrono::milliseconds ttl, bool taken = false);
  // Deletes the lease if `holder` still has it (after the job went back to the queue).
  task<void> release(std::string_view id, std::string_view holder);
  // The job is done: its text leaves the processing list and the lease (if still ours) goes.
  task<void> finish(std::string_view id, std::string_view job_text, std::string_view holder);

  // lock:project:<name> = holder for `ttl`, taken when free or refreshed when ours. false when
  // another holder has it.
  task<bool> lock_project(std::string_view project, std::string_view holder,
                          std::chrono::milliseconds ttl);
  task<void> unlock_project(std::string_view project, std::string_view holder);

  // The job texts in the processing list.
  task<std::vector<std::string>> processing();
  task<bool> has_lease(std::string_view id);
  // For the reaper: takes the lease of a job whose lease is missing and which is still in the
  // processing list, in one step, so that a worker coming back cannot refresh it meanwhile.
  task<bool> claim_expired(std::string_view id, std::string_view job_text, std::string_view claimer,
                           std::chrono::milliseconds ttl);

  // The newest deployment of (`project`, `branch`) created after `id` that is not final yet, if
  // any (it supersedes `id`); branch "" is the deployments without one (the remote's default).
  // Other branches never supersede each other. Looks at the newest `window` deployments.
  task<std::optional<std::string>> newer_active(std::string_view project, std::string_view branch,
                                                std::string_view id, int window = 20);

  const proto::keys& keys() const noexcept { return keys_; }

 private:
  redis::client& redis_;
  proto::keys keys_;
};

}  // namespace dp::state
