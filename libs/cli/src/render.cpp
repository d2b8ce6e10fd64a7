#include "dp/cli/render.hpp"

#include "archive.hpp"

#include <boost/json.hpp>

#include <fmt/format.h>

#include <array>
#include <ctime>

namespace dp::cli {

namespace {

constexpr std::string_view red = "\x1b[31m";
constexpr std::string_view green = "\x1b[32m";
constexpr std::string_view dim = "\x1b[2m";
constexpr std::string_view bold = "\x1b[1m";
constexpr std::string_view reset = "\x1b[0m";

std::string paint(std::string_view text, std::string_view style, bool color) {
  if (!color) {
    return std::string(text);
  }
  return fmt::format("{}{}{}", style, text, reset);
}

// A phase as the runner's system lines show it: the line that starts it and the one that ends it.
struct phase_marks {
  std::string_view name;
  std::string_view start;
  std::string_view end;
};

// Kept in step with the say() lines of libs/runner/src/runner.cpp. An uploaded directory is
// unpacked where a git URL is cloned (both under the status "cloning").
constexpr std::array<phase_marks, 5> phases = {{
    {"cloning", "cloning ", "cloned commit "},
    {"unpacking", "unpacking ", "unpacked "},
    {"installing", "install: running", "install finished"},
    {"building", "build: running", "build finished"},
    {"uploading", "validated ", "uploaded "},
}};

std::string utc_time(int64_t unix_ms) {
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::array<char, 32> buf{};
  std::strftime(buf.data(), buf.size(), "%Y-%m-%d %H:%M:%S", &tm);
  return buf.data();
}

}  // namespace

std::string format_duration(std::chrono::milliseconds d) {
  auto ms = d.count();
  if (ms < 1000) {
    return fmt::format("{} ms", ms);
  }
  if (ms < 60'000) {
    return fmt::format("{:.1f} s", static_cast<double>(ms) / 1000.0);
  }
  return fmt::format("{} min {:02} s", ms / 60'000, (ms % 60'000) / 1000);
}

std::string render_log(const proto::log_event& e, bool color) {
  switch (e.stream) {
    case proto::log_stream::err:
      return paint(e.line, red, color) + "\n";
    case proto::log_stream::system:
      return paint("-- " + e.line, dim, color) + "\n";
    case proto::log_stream::out:
      break;
  }
  return e.line + "\n";
}

std::optional<std::string> phase_tracker::feed(const proto::log_event& e, bool color) {
  if (e.stream != proto::log_stream::system) {
    return std::nullopt;
  }
  for (const auto& p : phases) {
    if (e.line.starts_with(p.start)) {
      phase_ = p.name;
      started_ms_ = e.ts_ms;
      return std::nullopt;
    }
    if (phase_ == p.name && e.line.starts_with(p.end)) {
      phase_.clear();
      auto took = std::chrono::milliseconds(std::max<int64_t>(0, e.ts_ms - started_ms_));
      return paint(fmt::format("==> {:<11}{}", p.name, format_duration(took)), bold, color) + "\n";
    }
  }
  return std::nullopt;
}

std::string render_result(const deployment_view& v, bool color) {
  const auto& d = v.d;
  std::string took;
  if (d.finished_at) {
    took = " in " + format_duration(std::chrono::milliseconds(*d.finished_at - d.created_at));
  }
  if (d.status == proto::deployment_status::ready) {
    std::string out = paint(fmt::format("==> ready{}", took), green, color) + "\n";
    if (v.url) {
      out += fmt::format("    url:        {}\n", *v.url);
    }
    if (d.target == proto::deployment_target::preview) {
      for (const auto& u : v.preview_urls) {
        out += fmt::format("    preview:    {}\n", u);
      }
    } else {
      out += fmt::format("    production: {}\n", v.alias_url);
    }
    return out;
  }
  return paint(fmt::format("==> {}{}: {}", proto::to_string(d.status), took,
                           d.error.value_or("no reason recorded")),
               red, color) +
         "\n";
}

std::string render_queued(const deployment_view& v) {
  return fmt::format("deployment {} of {} is {}\n  follow it: deployctl logs {} -f\n", v.d.id,
                     v.d.project, proto::to_string(v.d.status), v.d.id);
}

std::string render_projects(const std::vector<project_view>& projects) {
  if (projects.empty()) {
    return "no projects yet: deployctl deploy <git-url | directory>\n";
  }
  std::string out = fmt::format("{:<24} {:<20} {:<9} {:<9} {}\n", "PROJECT", "CREATED (UTC)",
                                "STORED", "CACHE", "GIT URL");
  auto size = [](const std::optional<int64_t>& bytes) {
    return bytes ? human_size(static_cast<uint64_t>(*bytes)) : std::string("-");
  };
  for (const auto& [p, stored, cache] : projects) {
    out +=
        fmt::format("{:<24} {:<20} {:<9} {:<9} {}\n", p.name, utc_time(p.created_at), size(stored),
                    size(cache), p.git_url.empty() ? "(uploaded directories)" : p.git_url);
  }
  return out;
}

std::string render_deployments(const std::vector<deployment_view>& deployments,
                               const std::optional<std::string>& production_id) {
  if (deployments.empty()) {
    return "no deployments yet\n";
  }
  std::string out = fmt::format("  {:<26} {:<10} {:<10} {:<20} {:<20} {:<12} {}\n", "DEPLOYMENT",
                                "STATUS", "TARGET", "BRANCH", "CREATED (UTC)", "COMMIT", "URL");
  for (const auto& v : deployments) {
    const auto& d = v.d;
    std::string branch = d.branch.value_or("-");
    if (d.pull_request) {
      branch = fmt::format("#{} {}", *d.pull_request, branch);
    }
    if (branch.size() > 20) {
      branch = branch.substr(0, 19) + "~";
    }
    out += fmt::format("{} {:<26} {:<10} {:<10} {:<20} {:<20} {:<12} {}\n",
                       production_id && *production_id == d.id ? "*" : " ", d.id,
                       d.pruned_at ? "pruned" : proto::to_string(d.status),
                       proto::to_string(d.target), branch, utc_time(d.created_at),
                       d.commit ? d.commit->substr(0, 12) : "-", v.url.value_or("-"));
  }
  if (production_id) {
    out += "* in production\n";
  }
  return out;
}

std::string render_hooks(const std::vector<hook_view>& hooks) {
  if (hooks.empty()) {
    return "no deploy hooks\n";
  }
  std::string out = fmt::format("{:<22} {:<20} {}\n", "ID", "CREATED", "BRANCH");
  for (const auto& h : hooks) {
    out += fmt::format("{:<22} {:<20} {}\n", h.id, utc_time(h.created_at), h.branch);
  }
  return out;
}

namespace {

std::string text_of(const boost::json::object& o, std::string_view k) {
  const auto* v = o.if_contains(k);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

int64_t time_of(const boost::json::object& o, std::string_view k) {
  const auto* v = o.if_contains(k);
  return v && v->is_int64() ? v->get_int64() : 0;
}

std::string at_time(int64_t unix_ms) {
  return utc_time(unix_ms) + " UTC";
}

// "; next try <time>" when there is one.
std::string next_try(const boost::json::object& o, std::string_view k) {
  auto t = time_of(o, k);
  return t ? "; next try " + at_time(t) : std::string();
}

// The certificate's sentence, or empty when there is nothing to tell ("none").
std::string certificate_detail(const boost::json::object& c) {
  auto status = text_of(c, "status");
  auto error = text_of(c, "error");
  if (status == "issued" || status == "expired") {
    std::string out = fmt::format("{} {}", status == "issued" ? "valid until" : "expired",
                                  at_time(time_of(c, "not_after")));
    if (auto issuer = text_of(c, "issuer"); !issuer.empty()) {
      out += ", issuer " + issuer;
    }
    if (const auto* renewing = c.if_contains("renewing"); renewing && *renewing == true) {
      return out + ", being renewed" + (error.empty() ? "" : "; the last attempt failed: " + error);
    }
    if (!error.empty()) {
      return out + "; renewal failed: " + error + next_try(c, "next_attempt");
    }
    if (auto renew = time_of(c, "next_attempt")) {
      out += ", renewed from " + at_time(renew);
    }
    return out;
  }
  if (status == "failed") {
    return "not issued: " + error + next_try(c, "next_attempt");
  }
  if (status == "issuing") {
    return "being issued by the CA" + (error.empty() ? "" : "; the last attempt failed: " + error);
  }
  return {};
}

// The OCSP sentence, or empty when the column says it all.
std::string ocsp_detail(const boost::json::object& o) {
  auto status = text_of(o, "status");
  auto error = text_of(o, "error");
  std::string failed =
      error.empty() ? std::string()
                    : fmt::format("last fetch failed ({} in a row): {}{}", time_of(o, "failures"),
                                  error, next_try(o, "next_refresh"));
  if (status == "stapled") {
    std::string out = "response valid until " + at_time(time_of(o, "next_update"));
    return failed.empty() ? out : out + "; " + failed;
  }
  if (status == "not_available") {
    return "the CA runs no OCSP responder: nothing to staple";
  }
  return failed;
}

}  // namespace

std::string render_domains(const boost::json::array& domains) {
  std::string out = fmt::format("{:<40} {:<9} {:<20} {:<13} {:<12} {}\n", "DOMAIN", "STATE",
                                "SERVES", "FLAGS", "CERTIFICATE", "OCSP");
  for (const auto& v : domains) {
    const auto& d = v.as_object();
    std::string flags;
    if (d.at("primary").as_bool()) {
      flags += "primary ";
    }
    if (d.at("hsts").as_bool()) {
      flags += "hsts ";
    }
    if (auto to = text_of(d, "redirects_to"); !to.empty()) {
      flags += "-> " + to;
    }
    auto branch = text_of(d, "branch");
    const auto& cert = d.at("certificate").as_object();
    const auto* ocsp = cert.if_contains("ocsp");
    bool has_ocsp = ocsp && ocsp->is_object();
    out += fmt::format("{:<40} {:<9} {:<20} {:<13} {:<12} {}\n", text_of(d, "domain"),
                       text_of(d, "state"), branch.empty() ? "production" : "branch " + branch,
                       flags.empty() ? "-" : flags, text_of(cert, "status"),
                       has_ocsp ? text_of(ocsp->as_object(), "status") : "-");
    if (auto why = text_of(d.at("verification").as_object(), "error");
        !why.empty() && text_of(d, "state") != "verified") {
      out += "  last check: " + why + "\n";
    }
    if (auto line = certificate_detail(cert); !line.empty()) {
      out += "  certificate: " + line + "\n";
    }
    if (has_ocsp) {
      if (auto line = ocsp_detail(ocsp->as_object()); !line.empty()) {
        out += "  ocsp: " + line + "\n";
      }
    }
  }
  return out;
}

std::string render_link(std::string_view project, std::string_view git_url,
                        std::string_view api_url, std::string_view secret) {
  while (api_url.ends_with('/')) {
    api_url.remove_suffix(1);
  }
  auto url = [&](std::string_view forge) {
    return fmt::format("{}/v1/webhooks/{}/{}", api_url, forge, project);
  };
  std::string out = fmt::format("project {} builds {}\n\n", project, git_url);
  bool github = git_url.find("github.com") != std::string_view::npos;
  bool gitlab = git_url.find("gitlab") != std::string_view::npos;
  if (github || !gitlab) {
    out += fmt::format(
        "GitHub (Settings > Webhooks > Add webhook):\n  Payload URL:  {}\n  Content type: "
        "application/json\n  Secret:       {}\n  Events:       Pushes, Pull requests (and "
        "Branch or tag deletion)\n",
        url("github"), secret);
  }
  if (gitlab || !github) {
    out += fmt::format(
        "GitLab (Settings > Webhooks > Add new webhook):\n  URL:          {}\n  Secret token: "
        "{}\n  Trigger:      Push events, Merge request events\n",
        url("gitlab"), secret);
  }
  if (!github && !gitlab) {
    out += fmt::format(
        "Gitea / Forgejo (Settings > Webhooks > Add webhook > Gitea or Forgejo):\n  Target URL:  "
        "{}\n  HTTP method: POST, POST content type: application/json\n  Secret:      {}\n  "
        "Trigger on:  Push, Delete, Pull request events\n",
        url("gitea"), secret);
  }
  out +=
      "\nThe secret is shown this once; `deployctl link` again makes a new one (the old one "
      "stops working).\n";
  return out;
}

}  // namespace dp::cli
