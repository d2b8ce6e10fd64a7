// What deployctl prints, as strings (so it is tested without a terminal): log lines (stderr red,
// system dim when colors are on), one progress line per finished phase with its duration, the
// final result with its URLs, and the tables of `ls`.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/array.hpp>

#include "dp/proto/types.hpp"

namespace dp::cli {

// A deployment as the API returns it: the record plus its two site URLs.
struct deployment_view {
  proto::deployment d;
  std::optional<std::string> url;         // the immutable <project>-<short id> site
  std::string alias_url;                  // the project's production site
  std::vector<std::string> preview_urls;  // its branch and pull-request sites
};

// One log line with a trailing newline; colors are ANSI escapes.
std::string render_log(const proto::log_event& e, bool color);

// "1.2 s", "340 ms", "2 min 05 s".
std::string format_duration(std::chrono::milliseconds d);

// Recognizes the phases of a build in the runner's system lines ("cloning ...", "cloned commit
// ... in", "unpacking ...", "install: running", "install finished", ...) and returns a progress
// line when one ends, timed by the events' timestamps. Phases a build skips print nothing.
class phase_tracker {
 public:
  std::optional<std::string> feed(const proto::log_event& e, bool color);

 private:
  std::string phase_;  // the phase running now, empty between phases
  int64_t started_ms_ = 0;
};

// The end of a followed deployment: "ready" with its URLs (production's, or a preview's branch
// and pull-request sites), or the status and the error.
std::string render_result(const deployment_view& v, bool color);
// One line after `deploy` without --follow: the id, its status and where to follow it.
std::string render_queued(const deployment_view& v);

// A project as `ls` lists it: the record, the bytes it keeps in storage (GET /v1/projects'
// usage.total_bytes) and of those its build cache's (usage.cache.bytes); nullopt from a server
// that does not say.
struct project_view {
  proto::project p;
  std::optional<int64_t> stored_bytes;
  std::optional<int64_t> cache_bytes;
};
std::string render_projects(const std::vector<project_view>& projects);
// Newest first, as the API lists them; `production_id` is marked.
std::string render_deployments(const std::vector<deployment_view>& deployments,
                               const std::optional<std::string>& production_id);

// A deploy hook as `hooks ls` lists it.
struct hook_view {
  std::string id;
  std::string branch;
  int64_t created_at = 0;
};
std::string render_hooks(const std::vector<hook_view>& hooks);

// `domains ls`: the API's domains (GET /v1/projects/{name}/domains), one line each (name, state,
// what it serves, primary/hsts/redirect, certificate status, OCSP stapling status), then indented
// lines for what needs a sentence: the certificate's issuer, expiry and renewal, the last
// issuance or renewal error with the next try, the OCSP response's nextUpdate or its last error,
// and, under a pending domain, why its last ownership check failed.
std::string render_domains(const boost::json::array& domains);

// What `link` prints: the webhook URL of the repository's forge (all three when the host does
// not say: a self-hosted Gitea, Forgejo or GitLab), the secret, and what to select in the forge.
// `api_url` is the API's base URL as deployctl reaches it.
std::string render_link(std::string_view project, std::string_view git_url,
                        std::string_view api_url, std::string_view secret);

}  // namespace dp::cli
