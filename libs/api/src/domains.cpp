// Custom domains: add, list, get, change, remove, and the ownership check that makes one routed:
// a TXT record _dp-verify.<fqdn> holding the token, or the token served over HTTP by our proxy.
#include <openssl/rand.h>

#include <boost/json.hpp>

#include <chrono>

#include "dp/buildplan/git.hpp"
#include "dp/core/clock.hpp"
#include "dp/core/hex.hpp"
#include "dp/core/log.hpp"
#include "dp/tls/cert_store.hpp"
#include "service_impl.hpp"

namespace dp::api {
namespace {

constexpr std::string_view verify_path = "/.well-known/dp-verify/";
constexpr std::string_view txt_prefix = "_dp-verify.";

std::string txt_name(const std::string& fqdn) {
  return std::string(txt_prefix) + fqdn;
}

json::value null_if_empty(const std::string& s) {
  return s.empty() ? json::value(nullptr) : json::value(s);
}

json::value null_if_zero(int64_t v) {
  return v ? json::value(v) : json::value(nullptr);
}

// The optional "branch" of a body: a git branch name, or null for production.
dp::result<std::string> branch_field(const json::value& v) {
  if (v.is_null()) {
    return std::string();
  }
  if (!v.is_string()) {
    return make_error(errc::invalid_argument,
                      "field 'branch' must be a branch name, or null to serve production");
  }
  std::string branch(v.get_string());
  if (auto r = buildplan::check_git_ref(branch); !r) {
    return make_error(errc::invalid_argument, "field 'branch': " + r.error().message);
  }
  return branch;
}

// 128 random bits, hex: what the owner's domain must echo.
dp::result<std::string> new_token() {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    return make_error(errc::internal, "no random bytes for a verification token");
  }
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : raw) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

// OCSP stapling of a stored certificate: "not_available" when its leaf names no responder (Let's
// Encrypt's since 2025, Pebble's), "stapled" while the stored response is before its nextUpdate
// (the proxies staple it until then), else "failed" after a failed fetch or "pending" until the
// worker's first one.
json::object ocsp_json(const tls::certificate_info& c, int64_t now) {
  std::string status = c.ocsp_url.empty()            ? "not_available"
                       : c.ocsp_next_update_ms > now ? "stapled"
                       : !c.ocsp_error.empty()       ? "failed"
                                                     : "pending";
  json::object o{{"status", status}, {"responder", null_if_empty(c.ocsp_url)}};
  o["this_update"] = null_if_zero(c.ocsp_this_update_ms);
  o["next_update"] = null_if_zero(c.ocsp_next_update_ms);
  o["error"] = null_if_empty(c.ocsp_error);
  o["failures"] = c.ocsp_failures;
  // When the worker fetches the next response (a refresh or, after a failure, the retry); null
  // for its next pass.
  o["next_refresh"] = null_if_zero(c.ocsp_url.empty() ? 0 : c.ocsp_refresh_at_ms);
  return o;
}

// What serves the domain's HTTPS, from the certificate store, and what the issuer last did, from
// the domain: "issued" (or "expired") while the store holds a certificate for the name, whatever
// the issuer does meanwhile; without one "issuing" (an order is under way), "failed" (the last
// order failed: error and next_attempt say why and when it is tried again) or "none".
// `issuer_active`: a worker holds lock:acme, so an order marked under way is one (a worker that
// died mid-order leaves the mark until its lease expires).
json::object certificate_json(const state::certificate_status& issuer,
                              const std::optional<tls::certificate_info>& stored,
                              bool issuer_active, int64_t now) {
  std::string status = stored ? (stored->not_after_ms > now ? "issued" : "expired")
                       : issuer.status == "pending" ? "issuing"
                       : issuer.status == "failed"  ? "failed"
                                                    : "none";
  json::object o{{"status", status}};
  o["issuer"] = stored ? null_if_empty(stored->issuer) : json::value(nullptr);
  o["not_after"] = null_if_zero(stored ? stored->not_after_ms : 0);
  o["stored_at"] = null_if_zero(stored ? stored->updated_at_ms : 0);
  // The last failure, of a first order or of a renewal (the old certificate still serves then).
  o["error"] = null_if_empty(issuer.error);
  o["renewing"] = stored && issuer.status == "pending" && issuer_active;
  // The retry's time after a failure, else the renewal's, from the stored expiry (which the
  // worker decides by too).
  o["next_attempt"] = null_if_zero(issuer.status == "failed" ? issuer.next_attempt_ms
                                   : stored                  ? tls::renewal_at_ms(*stored)
                                                             : 0);
  o["ocsp"] = stored ? json::value(ocsp_json(*stored, now)) : json::value(nullptr);
  return o;
}

json::object domain_json(const state::domain& d, const std::vector<state::domain>& siblings,
                         const std::optional<tls::certificate_info>& stored, bool issuer_active,
                         int64_t now) {
  json::object o{{"domain", d.fqdn},
                 {"project", d.project},
                 {"branch", null_if_empty(d.branch)},
                 {"alias", d.alias},
                 {"state", state::to_string(d.state)},
                 {"primary", d.primary},
                 {"hsts", d.hsts},
                 {"created_at", d.created_at_ms},
                 {"verification",
                  {{"url", "http://" + d.fqdn + std::string(verify_path) + d.token},
                   {"token", d.token},
                   {"txt_name", txt_name(d.fqdn)},
                   {"verified_by", null_if_empty(d.verified_by)},
                   {"error", null_if_empty(d.check_error)},
                   {"failed_at", null_if_zero(d.check_failed_at_ms)}}}};
  o["verified_at"] = null_if_zero(d.verified_at_ms);
  auto redirect = state::redirect_for(d, siblings);
  o["redirects_to"] = redirect ? json::value(*redirect) : json::value(nullptr);
  o["certificate"] = certificate_json(d.certificate, stored, issuer_active, now);
  return o;
}

// The JSON of a project's domains (`all` of them, or only the one named `only`), each with what
// the certificate store holds for its name, read in one pipeline, and lock:acme read only when a
// stored certificate is marked as being renewed.
asio::awaitable<dp::result<json::array>> domains_json(redis::client& redis, const proto::keys& keys,
                                                      const std::vector<state::domain>& all,
                                                      std::string_view only = {}) {
  std::vector<const state::domain*> shown;
  std::vector<std::string> names;
  for (const auto& d : all) {
    if (only.empty() || d.fqdn == only) {
      shown.push_back(&d);
      names.push_back(d.fqdn);
    }
  }
  auto stored = co_await tls::certificate_infos(redis, keys, names);
  if (!stored) {
    co_return stored.error();
  }
  bool issuer_active = false;
  for (size_t i = 0; i < shown.size(); ++i) {
    if ((*stored)[i] && shown[i]->certificate.status == "pending") {
      auto held = co_await redis.exec("EXISTS", keys.acme_lock());
      if (!held) {
        co_return held.error();
      }
      issuer_active = held->as_integer() == 1;
      break;
    }
  }
  json::array out;
  auto now = now_ms();
  for (size_t i = 0; i < shown.size(); ++i) {
    out.push_back(domain_json(*shown[i], all, (*stored)[i], issuer_active, now));
  }
  co_return out;
}

}  // namespace

asio::awaitable<dp::result<state::domain>> service::impl::find_domain(http::request& req) {
  auto p = co_await find_project(req.param("name"));
  if (!p) {
    co_return p.error();
  }
  auto fqdn = check_domain_name(req.param("domain"), opts_.site.base_domain);
  if (!fqdn) {
    co_return fqdn.error();
  }
  auto d = co_await domains_.get(*fqdn);
  if (!d || d->project != p->name) {
    // Another project's domain reads as absent here: its owner is not this caller's business.
    co_return make_error(errc::not_found, "no domain " + *fqdn + " in project " + p->name);
  }
  co_return d;
}

asio::awaitable<response> service::impl::domain_response(unsigned status, const std::string& fqdn,
                                                         const std::string& project) {
  auto all = co_await domains_.list(project);
  if (!all) {
    co_return error(all.error());
  }
  auto shown = co_await domains_json(redis_, opts_.keys, *all, fqdn);
  if (!shown) {
    co_return error(shown.error());
  }
  if (shown->empty()) {
    co_return error(errc::not_found, "no domain " + fqdn + " in project " + project);
  }
  co_return http::json_response(status, std::move(shown->front()));
}

asio::awaitable<response> service::impl::add_domain(http::request& req) {
  auto p = co_await find_project(req.param("name"));
  if (!p) {
    co_return error(p.error());
  }
  boost::system::error_code ec;
  auto body = json::parse(req.body(), ec);
  if (ec || !body.is_object()) {
    co_return error(errc::invalid_argument, "the body must be a JSON object");
  }
  const auto& o = body.get_object();
  const auto* name = o.if_contains("domain");
  if (!name || !name->is_string()) {
    co_return error(errc::invalid_argument, "field 'domain' is required (a string)");
  }
  std::string branch;
  for (const auto& [k, v] : o) {
    if (k != "domain" && k != "primary" && k != "hsts" && k != "branch") {
      co_return error(errc::invalid_argument, "unknown field '" + std::string(k) + "'");
    }
    if (k == "branch") {
      auto b = branch_field(v);
      if (!b) {
        co_return error(b.error());
      }
      branch = std::move(*b);
    } else if (k != "domain" && !v.is_bool()) {
      co_return error(errc::invalid_argument, "field '" + std::string(k) + "' must be a boolean");
    }
  }
  auto fqdn = check_domain_name(name->get_string(), opts_.site.base_domain);
  if (!fqdn) {
    co_return error(fqdn.error());
  }
  auto token = new_token();
  if (!token) {
    co_return error(token.error());
  }
  state::domain d{.fqdn = *fqdn,
                  .project = p->name,
                  .branch = branch,
                  .token = *token,
                  .created_at_ms = dp::now_ms()};
  if (auto r = co_await domains_.add(d); !r) {
    co_return error(r.error());
  }
  std::optional<bool> primary, hsts;
  if (const auto* v = o.if_contains("primary")) {
    primary = v->as_bool();
  }
  if (const auto* v = o.if_contains("hsts")) {
    hsts = v->as_bool();
  }
  if (primary || hsts) {
    if (auto r = co_await domains_.set_options(*fqdn, p->name, primary, hsts); !r) {
      co_return error(r.error());
    }
  }
  // Not routed yet, but a proxy may hold a negative lookup, and its twin's redirect may change.
  proto::route_event changed{.project = p->name, .domains = {*fqdn}};
  co_await announce_routes(std::move(changed));
  co_return co_await domain_response(201, *fqdn, p->name);
}

asio::awaitable<response> service::impl::list_domains(http::request& req) {
  auto p = co_await find_project(req.param("name"));
  if (!p) {
    co_return error(p.error());
  }
  auto all = co_await domains_.list(p->name);
  if (!all) {
    co_return error(all.error());
  }
  auto out = co_await domains_json(redis_, opts_.keys, *all);
  if (!out) {
    co_return error(out.error());
  }
  co_return http::json_response(200, json::object{{"domains", std::move(*out)}});
}

asio::awaitable<response> service::impl::get_domain(http::request& req) {
  auto d = co_await find_domain(req);
  if (!d) {
    co_return error(d.error());
  }
  co_return co_await domain_response(200, d->fqdn, d->project);
}

asio::awaitable<response> service::impl::patch_domain(http::request& req) {
  auto d = co_await find_domain(req);
  if (!d) {
    co_return error(d.error());
  }
  boost::system::error_code ec;
  auto body = json::parse(req.body(), ec);
  if (ec || !body.is_object()) {
    co_return error(errc::invalid_argument, "the body must be a JSON object");
  }
  std::optional<bool> primary, hsts;
  std::optional<std::string> branch;
  for (const auto& [k, v] : body.get_object()) {
    if (k == "branch") {
      auto b = branch_field(v);
      if (!b) {
        co_return error(b.error());
      }
      branch = std::move(*b);
      continue;
    }
    if ((k != "primary" && k != "hsts") || !v.is_bool()) {
      co_return error(errc::invalid_argument,
                      "only 'primary', 'hsts' (booleans) and 'branch' (a branch name or null) can "
                      "change; got '" +
                          std::string(k) + "'");
    }
    (k == "primary" ? primary : hsts) = v.as_bool();
  }
  if (branch) {
    if (auto r = co_await domains_.set_branch(d->fqdn, d->project, *branch); !r) {
      co_return error(r.error());
    }
  }
  if (primary || hsts) {
    if (auto r = co_await domains_.set_options(d->fqdn, d->project, primary, hsts); !r) {
      co_return error(r.error());
    }
  }
  proto::route_event changed{.project = d->project, .domains = {d->fqdn}};
  co_await announce_routes(std::move(changed));
  co_return co_await domain_response(200, d->fqdn, d->project);
}

asio::awaitable<response> service::impl::delete_domain(http::request& req) {
  auto d = co_await find_domain(req);
  if (!d) {
    co_return error(d.error());
  }
  if (auto r = co_await domains_.remove(d->fqdn, d->project); !r) {
    co_return error(r.error());
  }
  proto::route_event changed{.project = d->project, .domains = {d->fqdn}};
  co_await announce_routes(std::move(changed));
  // Its certificate goes too (the proxies drop it on the event), unless the name was added
  // again meanwhile. A failure here leaves a certificate nothing routes to: logged, not fatal.
  if (auto r = co_await tls::remove_unused_certificate(redis_, opts_.keys, d->fqdn); !r) {
    log::warn("the removed domain's certificate stays in the store",
              {{"domain", d->fqdn}, {"error", r.error()}});
  }
  co_return response(204);
}

asio::awaitable<std::string> service::impl::txt_proof_failure(const state::domain& d) {
  auto name = txt_name(d.fqdn);
  auto records = co_await txt_resolver_.lookup(name);
  if (!records) {
    co_return "TXT " + name + " not read (" + records.error().message + ")";
  }
  if (records->empty()) {
    co_return "no TXT record " + name;
  }
  for (const auto& r : *records) {
    if (r == d.token) {
      co_return std::string();
    }
  }
  // The first value helps spot a stale or mistyped token; cut short, it is the user's own text.
  co_return "TXT " + name + " holds \"" + records->front().substr(0, 64) + "\", not the token";
}

asio::awaitable<std::string> service::impl::http_proof_failure(const state::domain& d) {
  // The domain must reach our proxy and the proxy must echo the token: that proves both the DNS
  // record and that this project's owner controls it.
  std::string target = std::string(verify_path) + d.token;
  http_client::request check;
  if (opts_.domain_verify_address.empty()) {
    check.url = "http://" + d.fqdn + target;
  } else {
    check.url = "http://" + opts_.domain_verify_address + target;
    check.headers.emplace_back("Host", d.fqdn);
  }
  check.timeout = std::chrono::seconds(10);
  check.sink = http_client::to_buffer{.max_bytes = 4096};
  auto answer = co_await outbound_.send(std::move(check));
  if (!answer) {
    co_return "http://" + d.fqdn + target + " could not be fetched (" +
        std::string(answer.error().message) + ")";
  }
  if (answer->status != 200 || answer->body != d.token) {
    co_return "http://" + d.fqdn + target + " answered " + std::to_string(answer->status) +
        " without the token";
  }
  co_return std::string();
}

asio::awaitable<response> service::impl::verify_domain(http::request& req) {
  auto d = co_await find_domain(req);
  if (!d) {
    co_return error(d.error());
  }
  if (d->state != state::domain_state::verified) {
    // Either proof will do. The TXT record first: it works before the domain points here.
    std::string by = "txt";
    auto txt_why = co_await txt_proof_failure(*d);
    std::string http_why;
    if (!txt_why.empty()) {
      by = "http";
      http_why = co_await http_proof_failure(*d);
    }
    if (!http_why.empty()) {
      std::string why = txt_why + "; " + http_why;
      if (auto r = co_await domains_.check_failed(d->fqdn, d->project, why); !r) {
        co_return error(r.error());
      }
      co_return error(errc::conflict, "ownership not proven: " + why + "; add the TXT record " +
                                          txt_name(d->fqdn) +
                                          " with the token, or point the domain at the platform "
                                          "(A/AAAA or CNAME), and retry");
    }
    if (auto r = co_await domains_.verify(d->fqdn, d->project, by); !r) {
      co_return error(r.error());
    }
    proto::route_event changed{.project = d->project, .domains = {d->fqdn}};
    co_await announce_routes(std::move(changed));
    // The issuers pass now rather than at their next tick; without a listener the tick does.
    if (auto r = co_await redis_.exec("PUBLISH", opts_.keys.acme_wake_channel(), d->fqdn); !r) {
      log::warn("issuers not woken; the next tick issues",
                {{"domain", d->fqdn}, {"error", r.error()}});
    }
  }
  co_return co_await domain_response(200, d->fqdn, d->project);
}

}  // namespace dp::api
