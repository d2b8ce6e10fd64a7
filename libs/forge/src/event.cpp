#include "dp/forge/event.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <initializer_list>

#include "dp/core/hex.hpp"

namespace dp::forge {
namespace {

namespace json = boost::json;

constexpr std::string_view heads = "refs/heads/";

// The value at a path of object keys, or null when any step is missing or not an object.
const json::value* at(const json::value& v, std::initializer_list<std::string_view> path) {
  const json::value* cur = &v;
  for (auto key : path) {
    const auto* o = cur->if_object();
    if (!o) {
      return nullptr;
    }
    auto it = o->find(key);
    if (it == o->end()) {
      return nullptr;
    }
    cur = &it->value();
  }
  return cur;
}

std::string text(const json::value& v, std::initializer_list<std::string_view> path) {
  const auto* found = at(v, path);
  if (found && found->is_string()) {
    return std::string(found->get_string());
  }
  return {};
}

std::optional<int64_t> number(const json::value& v, std::initializer_list<std::string_view> path) {
  const auto* found = at(v, path);
  if (found && found->is_int64()) {
    return found->get_int64();
  }
  if (found && found->is_uint64()) {
    return static_cast<int64_t>(found->get_uint64());
  }
  return std::nullopt;
}

bool flag(const json::value& v, std::string_view key) {
  const auto* found = at(v, {key});
  return found && found->is_bool() && found->get_bool();
}

// The message and author of the pushed commit from the payload's `commits` list (the one whose
// id is e.commit), for payloads without head_commit: GitLab's, and Gitea's before 1.18.
void describe_from_commits(const json::value& body, event& e) {
  if (const auto* commits = at(body, {"commits"}); commits && commits->is_array()) {
    for (const auto& c : commits->get_array()) {
      if (text(c, {"id"}) == e.commit) {
        e.commit_message = text(c, {"message"});
        e.commit_author = text(c, {"author", "name"});
      }
    }
  }
}

bool all_zeros(std::string_view sha) {
  return !sha.empty() && sha.find_first_not_of('0') == std::string_view::npos;
}

event ignored(std::string why) {
  event e;
  e.kind = event_kind::ignored;
  e.ignored_because = std::move(why);
  return e;
}

dp::error malformed(provider p, std::string_view event_name, std::string_view what) {
  return dp::make_error(dp::errc::invalid_argument, "{} '{}' event: {}", to_string(p), event_name,
                        what);
}

// A push of GitHub or Gitea (same shape): ref, after, deleted, head_commit or commits.
dp::result<event> push_event(provider p, std::string_view name, const json::value& body) {
  auto ref = text(body, {"ref"});
  if (!ref.starts_with(heads)) {
    return ref.empty() ? dp::result<event>(malformed(p, name, "no 'ref'"))
                       : ignored(fmt::format("'{}' is not a branch", ref));
  }
  event e;
  e.branch = ref.substr(heads.size());
  e.repository = text(body, {"repository", "full_name"});
  e.default_branch = text(body, {"repository", "default_branch"});
  e.commit = text(body, {"after"});
  if (flag(body, "deleted") || all_zeros(e.commit)) {
    e.kind = event_kind::branch_deleted;
    e.commit.clear();
    return e;
  }
  if (!dp::is_commit_sha(e.commit)) {
    return malformed(p, name, "'after' is not a commit sha");
  }
  e.kind = event_kind::push;
  e.commit_message = text(body, {"head_commit", "message"});
  e.commit_author = text(body, {"head_commit", "author", "name"});
  if (e.commit_message.empty()) {
    // Gitea before 1.18 sends no head_commit.
    describe_from_commits(body, e);
  }
  return e;
}

// A branch or tag deleted (GitHub's and Gitea's `delete` event): ref is the short name.
dp::result<event> delete_event(provider p, std::string_view name, const json::value& body) {
  auto ref_type = text(body, {"ref_type"});
  auto ref = text(body, {"ref"});
  if (ref.empty()) {
    return malformed(p, name, "no 'ref'");
  }
  if (ref_type != "branch") {
    return ignored(fmt::format("a {} was deleted, not a branch", ref_type));
  }
  event e;
  e.kind = event_kind::branch_deleted;
  e.branch = ref.starts_with(heads) ? ref.substr(heads.size()) : ref;
  e.repository = text(body, {"repository", "full_name"});
  e.default_branch = text(body, {"repository", "default_branch"});
  return e;
}

// GitHub's and Gitea's pull_request: action, number, pull_request.{head,title,user}.
dp::result<event> pull_request_event(provider p, std::string_view name, const json::value& body) {
  auto action = text(body, {"action"});
  auto n = number(body, {"number"});
  if (action.empty() || !n) {
    return malformed(p, name, "no 'action' or 'number'");
  }
  event e;
  e.pull_request = n;
  e.branch = text(body, {"pull_request", "head", "ref"});
  e.commit = text(body, {"pull_request", "head", "sha"});
  e.commit_message = text(body, {"pull_request", "title"});
  e.commit_author = text(body, {"pull_request", "user", "login"});
  e.repository = text(body, {"repository", "full_name"});
  e.default_branch = text(body, {"repository", "default_branch"});
  e.pull_ref = fmt::format("refs/pull/{}/head", *n);
  // A deleted fork leaves head.repo null.
  if (const auto* head_repo = at(body, {"pull_request", "head", "repo"})) {
    auto base = text(body, {"pull_request", "base", "repo", "full_name"});
    if (base.empty()) {
      base = e.repository;
    }
    e.fork = head_repo->is_null() || text(*head_repo, {"full_name"}) != base;
  }
  // Gitea's branch info carries repo_id too.
  auto head_id = number(body, {"pull_request", "head", "repo_id"});
  auto base_id = number(body, {"pull_request", "base", "repo_id"});
  e.fork = e.fork || (head_id && base_id && *head_id != *base_id);
  // Gitea says "synchronized" where GitHub says "synchronize".
  if (action == "opened" || action == "reopened" || action == "synchronize" ||
      action == "synchronized") {
    if (!dp::is_commit_sha(e.commit)) {
      return malformed(p, name, "'pull_request.head.sha' is not a commit sha");
    }
    e.kind = event_kind::pull_request_updated;
  } else if (action == "closed") {
    e.kind = event_kind::pull_request_closed;
  } else {
    return ignored(fmt::format("pull request action '{}'", action));
  }
  return e;
}

// GitLab's Push Hook: ref, after (zeros when the branch was deleted), checkout_sha, commits.
dp::result<event> gitlab_push(std::string_view name, const json::value& body) {
  auto ref = text(body, {"ref"});
  if (!ref.starts_with(heads)) {
    return ref.empty() ? dp::result<event>(malformed(provider::gitlab, name, "no 'ref'"))
                       : ignored(fmt::format("'{}' is not a branch", ref));
  }
  event e;
  e.branch = ref.substr(heads.size());
  e.repository = text(body, {"project", "path_with_namespace"});
  e.default_branch = text(body, {"project", "default_branch"});
  auto after = text(body, {"after"});
  if (all_zeros(after)) {
    e.kind = event_kind::branch_deleted;
    return e;
  }
  e.commit = text(body, {"checkout_sha"});
  if (e.commit.empty()) {
    e.commit = after;
  }
  if (!dp::is_commit_sha(e.commit)) {
    return malformed(provider::gitlab, name, "'checkout_sha' or 'after' is not a commit sha");
  }
  e.kind = event_kind::push;
  describe_from_commits(body, e);
  return e;
}

// GitLab's Merge Request Hook: object_attributes.{action, iid, source_branch, last_commit}.
dp::result<event> gitlab_merge_request(std::string_view name, const json::value& body) {
  auto action = text(body, {"object_attributes", "action"});
  auto iid = number(body, {"object_attributes", "iid"});
  if (action.empty() || !iid) {
    return malformed(provider::gitlab, name, "no 'object_attributes.action' or 'iid'");
  }
  event e;
  e.pull_request = iid;
  e.branch = text(body, {"object_attributes", "source_branch"});
  e.commit = text(body, {"object_attributes", "last_commit", "id"});
  e.commit_message = text(body, {"object_attributes", "title"});
  e.commit_author = text(body, {"user", "name"});
  e.repository = text(body, {"project", "path_with_namespace"});
  e.default_branch = text(body, {"project", "default_branch"});
  e.pull_ref = fmt::format("refs/merge-requests/{}/head", *iid);
  auto source = number(body, {"object_attributes", "source_project_id"});
  auto target = number(body, {"object_attributes", "target_project_id"});
  e.fork = source && target && *source != *target;
  // An update carries `oldrev` only when it brought new commits (a title edit does not).
  bool new_commits = action == "update" && at(body, {"object_attributes", "oldrev"});
  if (action == "open" || action == "reopen" || new_commits) {
    if (!dp::is_commit_sha(e.commit)) {
      return malformed(provider::gitlab, name,
                       "'object_attributes.last_commit.id' is not a commit sha");
    }
    e.kind = event_kind::pull_request_updated;
  } else if (action == "close" || action == "merge") {
    e.kind = event_kind::pull_request_closed;
  } else {
    return ignored(fmt::format("merge request action '{}'", action));
  }
  return e;
}

}  // namespace

std::string_view to_string(event_kind k) {
  switch (k) {
    case event_kind::ping:
      return "ping";
    case event_kind::push:
      return "push";
    case event_kind::branch_deleted:
      return "branch_deleted";
    case event_kind::pull_request_updated:
      return "pull_request_updated";
    case event_kind::pull_request_closed:
      return "pull_request_closed";
    case event_kind::ignored:
      return "ignored";
  }
  return "ignored";
}

dp::result<event> parse_event(provider p, std::string_view event_name, std::string_view body) {
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  if (ec || !v.is_object()) {
    return dp::make_error(dp::errc::invalid_argument, "the {} webhook's body is not a JSON object",
                          to_string(p));
  }
  if (p == provider::gitlab) {
    if (event_name == "Push Hook") {
      return gitlab_push(event_name, v);
    }
    if (event_name == "Merge Request Hook") {
      return gitlab_merge_request(event_name, v);
    }
    return ignored(fmt::format("GitLab event '{}'", event_name));
  }
  if (event_name == "ping") {
    event e;
    e.kind = event_kind::ping;
    e.repository = text(v, {"repository", "full_name"});
    return e;
  }
  if (event_name == "push") {
    return push_event(p, event_name, v);
  }
  if (event_name == "delete") {
    return delete_event(p, event_name, v);
  }
  if (event_name == "pull_request") {
    return pull_request_event(p, event_name, v);
  }
  return ignored(fmt::format("{} event '{}'", to_string(p), event_name));
}

}  // namespace dp::forge
