// Protection: a project's Basic-auth setting (previews or every host) checked before anything of
// the site is served. The setting is read with the alias (cached, the same TTL and generation);
// verified credentials are remembered, so only a new credential pays the KDF.
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "credentials.hpp"
#include "dp/core/log.hpp"
#include "dp/http/json.hpp"
#include "dp/state/protection.hpp"
#include "proxy_impl.hpp"

namespace dp::proxy {
namespace {

std::string credential_key(std::string_view stored_hash, std::string_view authorization) {
  std::string input;
  input.reserve(stored_hash.size() + 1 + authorization.size());
  input.append(stored_hash).append("\n").append(authorization);
  std::string digest(EVP_MAX_MD_SIZE, '\0');
  unsigned int n = 0;
  EVP_Digest(input.data(), input.size(), reinterpret_cast<unsigned char*>(digest.data()), &n,
             EVP_sha256(), nullptr);
  OPENSSL_cleanse(input.data(), input.size());
  digest.resize(n);
  return digest;
}

}  // namespace

bool verified_credentials::contains(std::string_view stored_hash, std::string_view authorization) {
  return set_.get(credential_key(stored_hash, authorization)) != nullptr;
}

void verified_credentials::add(std::string_view stored_hash, std::string_view authorization) {
  // Every entry shares one value: only the key says anything.
  static const auto mark = std::make_shared<const verified>();
  set_.put(credential_key(stored_hash, authorization), mark, 1);
}

http::response unauthorized(std::string_view realm) {
  http::response r(401, "text/html; charset=utf-8",
                   "<!doctype html><title>401 Unauthorized</title><h1>401 Unauthorized</h1>\n");
  // The realm is a project name or a path pattern: no quote or backslash reaches it unescaped.
  std::string quoted;
  for (char c : realm) {
    if (c == '"' || c == '\\') {
      quoted += '\\';
    }
    quoted += c;
  }
  r.headers.emplace_back("WWW-Authenticate",
                         fmt::format("Basic realm=\"{}\", charset=\"UTF-8\"", quoted));
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return r;
}

std::optional<http::response> proxy::impl::over_guess_limit(const http::request& req) {
  auto wait = guesses.blocked(auth_failure_limit::client_of(req.remote().host), clock::now());
  if (!wait) {
    return std::nullopt;
  }
  auto r = http::error_response(429, "too_many_requests",
                                "too many failed authentication attempts; retry later");
  r.headers.emplace_back("Retry-After", std::to_string(wait->count()));
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

void proxy::impl::guess_failed(const http::request& req) {
  guesses.failed(auth_failure_limit::client_of(req.remote().host), clock::now());
}

std::optional<http::response> proxy::impl::check_basic(const http::request& req,
                                                       std::string_view realm,
                                                       std::string_view username,
                                                       std::string_view password_hash) {
  auto header = req.header("Authorization");
  if (!header) {
    return unauthorized(realm);
  }
  if (credentials.contains(password_hash, *header)) {
    return std::nullopt;
  }
  auto given = state::parse_basic_authorization(*header);
  if (!given) {
    return unauthorized(realm);
  }
  if (auto refused = over_guess_limit(req)) {
    OPENSSL_cleanse(given->password.data(), given->password.size());
    return refused;
  }
  // Both checks always run, so the time taken does not tell a wrong user from a wrong password.
  bool user_ok = given->username.size() == username.size() &&
                 CRYPTO_memcmp(given->username.data(), username.data(), username.size()) == 0;
  bool password_ok = state::verify_password(given->password, password_hash);
  OPENSSL_cleanse(given->password.data(), given->password.size());
  if (user_ok && password_ok) {
    credentials.add(password_hash, *header);
    return std::nullopt;
  }
  guess_failed(req);
  return unauthorized(realm);
}

namespace {

// The protection of an alias label is cached as "<username>\n<password hash>", or null when it is
// not protected, under the project's name (a route event of the project drops it).
std::string guard_key(std::string_view label) {
  std::string key = "x:";
  key.append(label);
  return key;
}

}  // namespace

std::optional<http::response> proxy::impl::check_guard(const http::request& req,
                                                       std::string_view label,
                                                       const std::optional<std::string>& guard) {
  if (!guard) {
    return std::nullopt;
  }
  auto nl = guard->find('\n');
  std::string_view username(guard->data(), nl);
  std::string_view hash = std::string_view(*guard).substr(nl + 1);
  return check_basic(req, label, username, hash);
}

proxy::impl::cached_guard proxy::impl::cached_protect(const http::request& req,
                                                      std::string_view label) {
  std::optional<std::string> guard;
  if (!lookups.get(guard_key(label), guard)) {
    return {};
  }
  return {.found = true, .answer = check_guard(req, label, guard)};
}

asio::awaitable<dp::result<std::optional<http::response>>> proxy::impl::protect(
    const http::request& req, std::string label, std::string deployment_id) {
  std::string key = guard_key(label);
  uint64_t gen = lookups.generation();
  auto project = std::make_shared<std::string>();
  auto query = [this, label, deployment_id,
                project]() -> asio::awaitable<dp::result<std::optional<std::string>>> {
    auto d = co_await records.get_deployment(deployment_id);
    if (!d) {
      // An alias without a record (set by hand) belongs to no project.
      co_return d.error().is(dp::errc::not_found) ? dp::result<std::optional<std::string>>{}
                                                  : d.error();
    }
    *project = d->project;
    auto p = co_await records.get_project(d->project);
    if (!p) {
      co_return p.error().is(dp::errc::not_found) ? dp::result<std::optional<std::string>>{}
                                                  : p.error();
    }
    if (!p->protection || !state::protects(p->protection->scope, p->name, label)) {
      co_return std::optional<std::string>();
    }
    co_return p->protection->username + "\n" + p->protection->password_hash;
  };
  auto r = co_await on_backend<std::optional<std::string>>(std::move(query));
  if (!r) {
    co_return r.error();
  }
  lookups.put(key, *r, gen, opts.alias_ttl, std::move(*project));
  co_return check_guard(req, label, *r);
}

}  // namespace dp::proxy
