#include "dp/state/domains.hpp"

#include <algorithm>

#include "dp/core/clock.hpp"
#include "dp/core/preview_alias.hpp"
#include "dp/redis/client.hpp"
#include "dp/state/records.hpp"

namespace dp::state {
namespace {

// KEYS: record, project's set, every domain's set. ARGV: fqdn, project, alias, token, now,
// branch. Returns the owner when the fqdn is taken, else "".
constexpr std::string_view add_script = R"lua(
local owner = redis.call('HGET', KEYS[1], 'project')
if owner then return owner end
redis.call('HSET', KEYS[1], 'project', ARGV[2], 'alias', ARGV[3], 'token', ARGV[4],
           'state', 'pending', 'primary', '0', 'hsts', '0', 'created_at_ms', ARGV[5],
           'branch', ARGV[6])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return ''
)lua";

// KEYS: record, project's set, every domain's set, route. ARGV: fqdn, project.
constexpr std::string_view remove_script = R"lua(
if redis.call('HGET', KEYS[1], 'project') ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1], KEYS[4])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
return 1
)lua";

// The route is set only here and by a branch change of a verified domain: an unverified
// domain is never routed.
// KEYS: record, route. ARGV: project, now, the proof.
constexpr std::string_view verify_script = R"lua(
if redis.call('HGET', KEYS[1], 'project') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'verified' then
  redis.call('HSET', KEYS[1], 'state', 'verified', 'verified_at_ms', ARGV[2],
             'verified_by', ARGV[3])
end
redis.call('HDEL', KEYS[1], 'check_error', 'check_failed_at_ms')
redis.call('SET', KEYS[2], redis.call('HGET', KEYS[1], 'alias'))
return 1
)lua";

// KEYS: record. ARGV: project, reason, now.
constexpr std::string_view check_failed_script = R"lua(
if redis.call('HGET', KEYS[1], 'project') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'check_error', ARGV[2], 'check_failed_at_ms', ARGV[3])
return 1
)lua";

// KEYS: record, route. ARGV: project, branch, alias.
constexpr std::string_view branch_script = R"lua(
if redis.call('HGET', KEYS[1], 'project') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'branch', ARGV[2], 'alias', ARGV[3])
if redis.call('HGET', KEYS[1], 'state') == 'verified' then
  redis.call('SET', KEYS[2], ARGV[3])
end
return 1
)lua";

// KEYS: record, project's set. ARGV: project, primary ("", "0", "1"), hsts ("", "0", "1"),
// the record key's prefix.
constexpr std::string_view options_script = R"lua(
if redis.call('HGET', KEYS[1], 'project') ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then
  for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    redis.call('HSET', ARGV[4] .. m, 'primary', '0')
  end
end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'primary', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'hsts', ARGV[3]) end
return 1
)lua";

// KEYS: record. ARGV: status, error, next_attempt_ms.
constexpr std::string_view certificate_script = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'cert_status', ARGV[1], 'cert_error', ARGV[2],
           'cert_next_attempt_ms', ARGV[3])
return 1
)lua";

int64_t to_int(const std::string& s) {
  try {
    return std::stoll(s);
  } catch (const std::exception&) {
    return 0;
  }
}

// A HGETALL reply as a domain; nullopt for a missing record.
std::optional<domain> from_hash(std::string_view fqdn, const redis::reply& r) {
  const auto& f = r.elements();
  if (f.empty()) {
    return std::nullopt;
  }
  domain d;
  d.fqdn = fqdn;
  for (size_t i = 0; i + 1 < f.size(); i += 2) {
    const auto& k = f[i].as_string();
    const auto& v = f[i + 1].as_string();
    if (k == "project") {
      d.project = v;
    } else if (k == "alias") {
      d.alias = v;
    } else if (k == "branch") {
      d.branch = v;
    } else if (k == "verified_by") {
      d.verified_by = v;
    } else if (k == "check_error") {
      d.check_error = v;
    } else if (k == "check_failed_at_ms") {
      d.check_failed_at_ms = to_int(v);
    } else if (k == "token") {
      d.token = v;
    } else if (k == "state") {
      d.state = v == "verified" ? domain_state::verified : domain_state::pending;
    } else if (k == "primary") {
      d.primary = v == "1";
    } else if (k == "hsts") {
      d.hsts = v == "1";
    } else if (k == "created_at_ms") {
      d.created_at_ms = to_int(v);
    } else if (k == "verified_at_ms") {
      d.verified_at_ms = to_int(v);
    } else if (k == "cert_status") {
      d.certificate.status = v;
    } else if (k == "cert_error") {
      d.certificate.error = v;
    } else if (k == "cert_next_attempt_ms") {
      d.certificate.next_attempt_ms = to_int(v);
    }
  }
  return d;
}

std::string flag(std::optional<bool> b) {
  return b ? (*b ? "1" : "0") : "";
}

dp::error not_owned(std::string_view fqdn, std::string_view project) {
  return make_error(errc::not_found,
                    "no domain " + std::string(fqdn) + " in project " + std::string(project));
}

// Runs a script that answers 1 when `project` owns the domain (and made the change), else 0.
boost::asio::awaitable<dp::result<void>> run_owned(redis::client& redis,
                                                   std::vector<std::string> command,
                                                   std::string_view fqdn,
                                                   std::string_view project) {
  auto r = co_await redis.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  if (r->as_integer() != 1) {
    co_return not_owned(fqdn, project);
  }
  co_return dp::result<void>{};
}

}  // namespace

std::string_view to_string(domain_state s) noexcept {
  return s == domain_state::verified ? "verified" : "pending";
}

std::string domain_alias(std::string_view project, std::string_view branch) {
  return branch.empty() ? std::string(project) : dp::branch_alias(project, branch);
}

std::string twin_of(std::string_view fqdn) {
  if (fqdn.starts_with("www.")) {
    return std::string(fqdn.substr(4));
  }
  return "www." + std::string(fqdn);
}

std::optional<std::string> redirect_for(const domain& d,
                                        const std::vector<domain>& project_domains) {
  if (d.primary) {
    return std::nullopt;
  }
  auto twin = twin_of(d.fqdn);
  for (const auto& o : project_domains) {
    if (o.fqdn == twin && o.primary && o.state == domain_state::verified && o.alias == d.alias) {
      return twin;
    }
  }
  return std::nullopt;
}

domains::domains(redis::client& redis, proto::keys keys) : redis_(redis), keys_(std::move(keys)) {}

boost::asio::awaitable<dp::result<void>> domains::add(const domain& d) {
  std::vector<std::string> command{"EVAL",
                                   std::string(add_script),
                                   "3",
                                   keys_.domain_record(d.fqdn),
                                   keys_.project_domains(d.project),
                                   keys_.domains(),
                                   d.fqdn,
                                   d.project,
                                   domain_alias(d.project, d.branch),
                                   d.token,
                                   std::to_string(d.created_at_ms ? d.created_at_ms : now_ms()),
                                   d.branch};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  const auto& owner = r->as_string();
  if (owner == d.project) {
    co_return make_error(errc::conflict, d.fqdn + " is already a domain of " + d.project);
  }
  if (!owner.empty()) {
    co_return make_error(errc::conflict, d.fqdn + " belongs to another project");
  }
  co_return dp::result<void>{};
}

boost::asio::awaitable<dp::result<domain>> domains::get(std::string_view fqdn) {
  std::vector<std::string> command{"HGETALL", keys_.domain_record(fqdn)};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  auto d = from_hash(fqdn, *r);
  if (!d) {
    co_return make_error(errc::not_found, "no domain " + std::string(fqdn));
  }
  co_return std::move(*d);
}

boost::asio::awaitable<dp::result<std::vector<domain>>> domains::list(std::string_view project) {
  auto listed = co_await redis_.smembers(keys_.project_domains(project));
  if (!listed) {
    co_return listed.error();
  }
  const auto& names = *listed;
  std::vector<domain> out;
  if (names.empty()) {
    co_return out;
  }
  std::vector<std::vector<std::string>> commands;
  for (const auto& n : names) {
    commands.push_back({"HGETALL", keys_.domain_record(n)});
  }
  auto replies = co_await redis_.pipeline(std::move(commands));
  if (!replies) {
    co_return replies.error();
  }
  for (size_t i = 0; i < names.size(); ++i) {
    if (auto d = from_hash(names[i], (*replies)[i]); d && d->project == project) {
      out.push_back(std::move(*d));
    }
  }
  co_return out;
}

boost::asio::awaitable<dp::result<std::vector<std::string>>> domains::all() {
  co_return co_await redis_.smembers(keys_.domains());
}

boost::asio::awaitable<dp::result<void>> domains::remove(std::string_view fqdn,
                                                         std::string_view project) {
  std::vector<std::string> command{"EVAL",
                                   std::string(remove_script),
                                   "4",
                                   keys_.domain_record(fqdn),
                                   keys_.project_domains(project),
                                   keys_.domains(),
                                   keys_.domain(fqdn),
                                   std::string(fqdn),
                                   std::string(project)};
  co_return co_await run_owned(redis_, std::move(command), fqdn, project);
}

boost::asio::awaitable<dp::result<void>> domains::verify(std::string_view fqdn,
                                                         std::string_view project,
                                                         std::string_view by) {
  std::vector<std::string> command{"EVAL",
                                   std::string(verify_script),
                                   "2",
                                   keys_.domain_record(fqdn),
                                   keys_.domain(fqdn),
                                   std::string(project),
                                   std::to_string(now_ms()),
                                   std::string(by)};
  co_return co_await run_owned(redis_, std::move(command), fqdn, project);
}

boost::asio::awaitable<dp::result<void>> domains::check_failed(std::string_view fqdn,
                                                               std::string_view project,
                                                               std::string_view why) {
  std::vector<std::string> command{"EVAL",
                                   std::string(check_failed_script),
                                   "1",
                                   keys_.domain_record(fqdn),
                                   std::string(project),
                                   std::string(why),
                                   std::to_string(now_ms())};
  co_return co_await run_owned(redis_, std::move(command), fqdn, project);
}

boost::asio::awaitable<dp::result<void>> domains::set_branch(std::string_view fqdn,
                                                             std::string_view project,
                                                             std::string_view branch) {
  std::vector<std::string> command{"EVAL",
                                   std::string(branch_script),
                                   "2",
                                   keys_.domain_record(fqdn),
                                   keys_.domain(fqdn),
                                   std::string(project),
                                   std::string(branch),
                                   domain_alias(project, branch)};
  co_return co_await run_owned(redis_, std::move(command), fqdn, project);
}

boost::asio::awaitable<dp::result<void>> domains::set_options(std::string_view fqdn,
                                                              std::string_view project,
                                                              std::optional<bool> primary,
                                                              std::optional<bool> hsts) {
  std::vector<std::string> command{"EVAL",
                                   std::string(options_script),
                                   "2",
                                   keys_.domain_record(fqdn),
                                   keys_.project_domains(project),
                                   std::string(project),
                                   flag(primary),
                                   flag(hsts),
                                   keys_.domain_record("")};
  co_return co_await run_owned(redis_, std::move(command), fqdn, project);
}

boost::asio::awaitable<dp::result<void>> domains::set_certificate(
    std::string_view fqdn, const certificate_status& status) {
  std::vector<std::string> command{"EVAL",
                                   std::string(certificate_script),
                                   "1",
                                   keys_.domain_record(fqdn),
                                   status.status,
                                   status.error,
                                   std::to_string(status.next_attempt_ms)};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  if (r->as_integer() != 1) {
    co_return make_error(errc::not_found, "no domain " + std::string(fqdn));
  }
  co_return dp::result<void>{};
}

}  // namespace dp::state
