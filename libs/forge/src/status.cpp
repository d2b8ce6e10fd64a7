#include "dp/forge/status.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace dp::forge {
namespace {

std::string_view state_name(provider p, commit_state s) {
  switch (s) {
    case commit_state::pending:
      return "pending";
    case commit_state::success:
      return "success";
    case commit_state::failure:
      return p == provider::gitlab ? "failed" : "failure";
    case commit_state::canceled:
      return p == provider::gitlab ? "canceled" : "error";
  }
  return "pending";
}

constexpr size_t description_max = 140;

std::string_view short_description(std::string_view d) {
  if (d.size() <= description_max) {
    return d;
  }
  size_t end = description_max;
  // Not inside a UTF-8 sequence: back off continuation bytes (10xxxxxx).
  while (end > 0 && (static_cast<unsigned char>(d[end]) & 0xC0) == 0x80) {
    --end;
  }
  return d.substr(0, end);
}

// GitLab takes a project's path in place of its id, URL-encoded ("group%2Fproject").
std::string encode_path(std::string_view path) {
  std::string out;
  for (char c : path) {
    if (c == '/') {
      out += "%2F";
    } else {
      out += c;
    }
  }
  return out;
}

std::string trimmed(std::string_view url) {
  while (url.ends_with('/')) {
    url.remove_suffix(1);
  }
  return std::string(url);
}

}  // namespace

status_request commit_status_request(const status_target& t, std::string_view sha,
                                     commit_state state, std::string_view target_url,
                                     std::string_view description, std::string_view context) {
  status_request r;
  boost::json::object body{{"state", state_name(t.forge, state)},
                           {"target_url", target_url},
                           {"description", short_description(description)}};
  auto base = trimmed(t.api_url);
  switch (t.forge) {
    case provider::github:
      r.url = fmt::format("{}/repos/{}/statuses/{}", base, t.repository, sha);
      r.headers = {{"authorization", "Bearer " + t.token},
                   {"accept", "application/vnd.github+json"},
                   {"x-github-api-version", "2022-11-28"}};
      body["context"] = context;
      break;
    case provider::gitlab:
      r.url = fmt::format("{}/projects/{}/statuses/{}", base, encode_path(t.repository), sha);
      r.headers = {{"private-token", t.token}};
      body["name"] = context;
      break;
    case provider::gitea:
      r.url = fmt::format("{}/repos/{}/statuses/{}", base, t.repository, sha);
      r.headers = {{"authorization", "token " + t.token}};
      body["context"] = context;
      break;
  }
  r.headers.emplace_back("content-type", "application/json");
  r.body = boost::json::serialize(body);
  return r;
}

}  // namespace dp::forge
