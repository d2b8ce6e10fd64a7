#include "dp/tls/cert_store.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>

#include "dp/core/clock.hpp"
#include "dp/redis/client.hpp"
#include "dp/tls/certificate.hpp"
#include "dp/tls/ocsp.hpp"

namespace dp::tls {
namespace {

std::string certificate_event(std::string_view name) {
  boost::json::object e{{"v", 1}, {"type", "certificate"}, {"name", name}, {"ts_ms", now_ms()}};
  return boost::json::serialize(e);
}

// The record, its index and the event in one step: whoever hears the event reads the new pair.
// The previous chain's OCSP response and refresh state go: they are not this leaf's.
// KEYS: cert:<name>, certs, events:certificates. ARGV: name, chain, sealed key, not_after_ms,
// updated_at_ms, event, ocsp_url.
constexpr std::string_view put_script = R"lua(
redis.call('HDEL', KEYS[1], 'ocsp', 'ocsp_this_update_ms', 'ocsp_next_update_ms',
           'ocsp_refresh_at_ms', 'ocsp_failures', 'ocsp_error')
redis.call('HSET', KEYS[1], 'chain', ARGV[2], 'key', ARGV[3], 'not_after_ms', ARGV[4],
           'updated_at_ms', ARGV[5], 'ocsp_url', ARGV[7])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PUBLISH', KEYS[3], ARGV[6])
return 1
)lua";

// Only for the chain it was checked against: a renewal meanwhile wins.
// KEYS: cert:<name>, events:certificates. ARGV: chain, der, this_update_ms, next_update_ms,
// refresh_at_ms, event.
constexpr std::string_view put_ocsp_script = R"lua(
if redis.call('HGET', KEYS[1], 'chain') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'ocsp', ARGV[2], 'ocsp_this_update_ms', ARGV[3],
           'ocsp_next_update_ms', ARGV[4], 'ocsp_refresh_at_ms', ARGV[5])
redis.call('HDEL', KEYS[1], 'ocsp_failures', 'ocsp_error')
redis.call('PUBLISH', KEYS[2], ARGV[6])
return 1
)lua";

// KEYS: cert:<name>. ARGV: chain, reason, retry_at_ms.
constexpr std::string_view ocsp_failed_script = R"lua(
if redis.call('HGET', KEYS[1], 'chain') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'ocsp_error', ARGV[2], 'ocsp_refresh_at_ms', ARGV[3])
return redis.call('HINCRBY', KEYS[1], 'ocsp_failures', 1)
)lua";

// KEYS: cert:<name>, certs, events:certificates. ARGV: name, event.
constexpr std::string_view remove_script = R"lua(
if KEYS[4] and redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('PUBLISH', KEYS[3], ARGV[2])
return 1
)lua";

int64_t to_int(const std::string& s) {
  try {
    return std::stoll(s);
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace

std::optional<std::string> parse_certificate_event(std::string_view payload) {
  boost::system::error_code ec;
  auto v = boost::json::parse(payload, ec);
  if (ec || !v.is_object()) {
    return std::nullopt;
  }
  const auto& o = v.get_object();
  const auto* type = o.if_contains("type");
  const auto* name = o.if_contains("name");
  if (!type || !name || !type->is_string() || type->get_string() != "certificate" ||
      !name->is_string()) {
    return std::nullopt;
  }
  return std::string(name->get_string());
}

cert_store::cert_store(redis::client& redis, proto::keys keys, platform_key key)
    : redis_(redis), keys_(std::move(keys)), key_(key) {}

task<void> cert_store::put(std::string_view name, std::string_view chain_pem,
                           std::string_view key_pem) {
  if (name.empty()) {
    co_return make_error(errc::invalid_argument, "a certificate needs a name");
  }
  auto facts = inspect(chain_pem, key_pem);
  if (!facts) {
    co_return facts.error();
  }
  auto sealed = key_.seal(key_pem, name);
  if (!sealed) {
    co_return sealed.error();
  }
  std::vector<std::string> command{"EVAL",
                                   std::string(put_script),
                                   "3",
                                   keys_.certificate(name),
                                   keys_.certificates(),
                                   keys_.certificates_channel(),
                                   std::string(name),
                                   std::string(chain_pem),
                                   std::move(*sealed),
                                   std::to_string(facts->not_after_ms),
                                   std::to_string(now_ms()),
                                   certificate_event(name),
                                   ocsp_responder_url(chain_pem)};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return dp::result<void>{};
}

task<std::optional<certificate>> cert_store::get(std::string_view name) {
  std::vector<std::string> command{"HMGET",        keys_.certificate(name), "chain", "key",
                                   "not_after_ms", "updated_at_ms",         "ocsp"};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  const auto& f = r->elements();
  if (f.size() != 5 || f[0].is_nil() || f[1].is_nil()) {
    co_return std::optional<certificate>{};
  }
  auto key_pem = key_.open(f[1].as_string(), name);
  if (!key_pem) {
    co_return key_pem.error();
  }
  certificate c{.name = std::string(name),
                .chain_pem = f[0].as_string(),
                .key_pem = std::move(*key_pem),
                .not_after_ms = to_int(f[2].as_string()),
                .updated_at_ms = to_int(f[3].as_string()),
                .ocsp_der = f[4].as_string()};
  co_return std::optional<certificate>{std::move(c)};
}

task<std::vector<certificate_info>> cert_store::list() {
  auto listed = co_await redis_.smembers(keys_.certificates());
  if (!listed) {
    co_return listed.error();
  }
  auto infos = co_await certificate_infos(redis_, keys_, *listed);
  if (!infos) {
    co_return infos.error();
  }
  std::vector<certificate_info> out;
  for (auto& info : *infos) {
    if (info) {
      out.push_back(std::move(*info));  // else removed meanwhile
    }
  }
  co_return out;
}

task<std::vector<std::optional<certificate_info>>> certificate_infos(
    redis::client& redis, const proto::keys& keys, const std::vector<std::string>& names) {
  std::vector<std::optional<certificate_info>> out(names.size());
  if (names.empty()) {
    co_return out;
  }
  std::vector<std::vector<std::string>> commands;
  for (const auto& n : names) {
    // Never the key: what this returns is shown to users.
    commands.push_back({"HMGET", keys.certificate(n), "not_after_ms", "updated_at_ms", "chain",
                        "ocsp_url", "ocsp_this_update_ms", "ocsp_next_update_ms",
                        "ocsp_refresh_at_ms", "ocsp_failures", "ocsp_error"});
  }
  auto replies = co_await redis.pipeline(std::move(commands));
  if (!replies) {
    co_return replies.error();
  }
  for (size_t i = 0; i < names.size(); ++i) {
    const auto& f = (*replies)[i].elements();
    if (f.size() != 9 || f[0].is_nil() || f[2].is_nil()) {
      continue;
    }
    out[i] = certificate_info{.name = names[i],
                              .not_after_ms = to_int(f[0].as_string()),
                              .updated_at_ms = to_int(f[1].as_string()),
                              .issuer = leaf_issuer(f[2].as_string()),
                              .ocsp_url = f[3].as_string(),
                              .ocsp_this_update_ms = to_int(f[4].as_string()),
                              .ocsp_next_update_ms = to_int(f[5].as_string()),
                              .ocsp_refresh_at_ms = to_int(f[6].as_string()),
                              .ocsp_failures = to_int(f[7].as_string()),
                              .ocsp_error = f[8].as_string()};
  }
  co_return out;
}

namespace {

// KEYS: the certificate, the set of names, the channel and, optionally, the domain record that
// keeps it. ARGV: name, event.
task<bool> remove_certificate(redis::client& redis, const proto::keys& keys, std::string_view name,
                              bool unless_used) {
  std::vector<std::string> command{"EVAL",
                                   std::string(remove_script),
                                   unless_used ? "4" : "3",
                                   keys.certificate(name),
                                   keys.certificates(),
                                   keys.certificates_channel()};
  if (unless_used) {
    command.push_back(keys.domain_record(name));
  }
  command.emplace_back(name);
  command.push_back(certificate_event(name));
  auto r = co_await redis.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return r->as_integer() == 1;
}

}  // namespace

task<void> cert_store::remove(std::string_view name) {
  auto r = co_await remove_certificate(redis_, keys_, name, false);
  if (!r) {
    co_return r.error();
  }
  co_return dp::result<void>{};
}

task<bool> cert_store::put_ocsp(std::string_view name, std::string_view chain_pem,
                                std::string_view der, ocsp_validity validity,
                                int64_t refresh_at_ms) {
  std::vector<std::string> command{"EVAL",
                                   std::string(put_ocsp_script),
                                   "2",
                                   keys_.certificate(name),
                                   keys_.certificates_channel(),
                                   std::string(chain_pem),
                                   std::string(der),
                                   std::to_string(validity.this_update_ms),
                                   std::to_string(validity.next_update_ms),
                                   std::to_string(refresh_at_ms),
                                   certificate_event(name)};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return r->as_integer() == 1;
}

task<int64_t> cert_store::ocsp_failed(std::string_view name, std::string_view chain_pem,
                                      std::string_view reason, int64_t retry_at_ms) {
  std::vector<std::string> command{"EVAL",
                                   std::string(ocsp_failed_script),
                                   "1",
                                   keys_.certificate(name),
                                   std::string(chain_pem),
                                   std::string(reason),
                                   std::to_string(retry_at_ms)};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return r->as_integer();
}

task<bool> remove_unused_certificate(redis::client& redis, const proto::keys& keys,
                                     std::string_view name) {
  return remove_certificate(redis, keys, name, true);
}

challenge_store::challenge_store(redis::client& redis, proto::keys keys)
    : redis_(redis), keys_(std::move(keys)) {}

task<void> challenge_store::put(std::string_view token, std::string_view key_authorization,
                                std::chrono::seconds ttl) {
  std::vector<std::string> command{"SET", keys_.acme_challenge(token),
                                   std::string(key_authorization), "EX",
                                   std::to_string(std::max<int64_t>(ttl.count(), 1))};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return dp::result<void>{};
}

task<std::optional<std::string>> challenge_store::get(std::string_view token) {
  co_return co_await redis_.get(keys_.acme_challenge(token));
}

task<void> challenge_store::remove(std::string_view token) {
  std::vector<std::string> command{"DEL", keys_.acme_challenge(token)};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return dp::result<void>{};
}

}  // namespace dp::tls
