// Commit statuses back to the forge: the api noted the sha and URL of a deployment a webhook made
// (state::hooks), the project's forge settings say where; the request is libs/forge's.
#include "dp/core/log.hpp"
#include "dp/forge/status.hpp"
#include "dp/http_client/client.hpp"
#include "dp/state/hooks.hpp"
#include "worker_impl.hpp"

namespace dp::worker {

asio::awaitable<void> worker::impl::report_commit_status(std::string id, proto::deployment_status s,
                                                         std::string why) {
  if (!opts.commit_status_http) {
    co_return;
  }
  state::hooks hooks(redis, records.keys());
  auto target = co_await hooks.commit_status_target_of(id);
  if (!target || !*target) {
    if (!target) {
      dp::log::warn("cannot read the commit status target",
                    {{"deployment", id}, {"error", target.error()}});
    }
    co_return;
  }
  auto d = co_await records.get_deployment(id);
  if (!d) {
    dp::log::warn("cannot read the deployment", {{"deployment", id}, {"error", d.error()}});
    co_return;
  }
  // Its own statement: g++ 12 mishandles a co_await inside a conditional expression.
  auto f = co_await hooks.forge(d->project);
  if (!f || !*f) {
    if (!f) {
      dp::log::warn("cannot read the forge settings", {{"deployment", id}, {"error", f.error()}});
    }
    co_return;
  }
  auto forge = forge::parse_provider((*f)->forge);
  if (!forge) {
    co_return;
  }
  forge::commit_state state = forge::commit_state::pending;
  std::string description = "building";
  if (s == proto::deployment_status::ready) {
    state = forge::commit_state::success;
    description = "deployed";
  } else if (s == proto::deployment_status::canceled) {
    state = forge::commit_state::canceled;
    description = why.empty() ? "canceled" : "canceled: " + why;
  } else if (proto::is_final(s)) {
    state = forge::commit_state::failure;
    description = "build failed";
  }
  auto req = forge::commit_status_request(
      forge::status_target{*forge, (*f)->api_url, (*f)->repository, (*f)->token}, (*target)->sha,
      state, (*target)->target_url, description);
  http_client::request out;
  out.method = "POST";
  out.url = std::move(req.url);
  out.headers = std::move(req.headers);
  out.body = std::move(req.body);
  out.timeout = std::chrono::seconds(10);
  auto r = co_await opts.commit_status_http->send(std::move(out));
  if (!r) {
    dp::log::warn("cannot send the commit status to the forge",
                  {{"deployment", id}, {"error", r.error()}});
  } else if (r->status < 200 || r->status >= 300) {
    dp::log::warn("the forge refused the commit status: check the project's forge settings",
                  {{"deployment", id}, {"status", r->status}});
  }
}

}  // namespace dp::worker
