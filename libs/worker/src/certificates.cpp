#include "dp/worker/certificates.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

#include "dp/core/clock.hpp"
#include "dp/core/log.hpp"
#include "dp/http_client/client.hpp"
#include "dp/redis/client.hpp"
#include "dp/redis/subscriber.hpp"
#include "dp/state/domains.hpp"
#include "dp/tls/cert_store.hpp"
#include "dp/tls/ocsp.hpp"

namespace dp::worker {

namespace net = boost::asio;
using namespace std::chrono_literals;

namespace {

// The account key is sealed under this context: it opens nowhere else.
constexpr std::string_view account_key_context = "acme-account";
// An answer outlives any validation; the issuer removes it as soon as the authorization is done.
constexpr std::chrono::seconds challenge_ttl = 1h;
// One OCSP exchange at most: a slow responder delays the pass by this much per certificate.
constexpr std::chrono::milliseconds ocsp_timeout = 10s;

// Extends or releases lock:acme only while this worker holds it.
constexpr std::string_view extend_script =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";
constexpr std::string_view release_script =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
    "return 0";

// HTTP-01 answers through the challenge store, where every proxy finds them.
class store_responder : public acme::challenge_responder {
 public:
  explicit store_responder(tls::challenge_store& store) : store_(store) {}
  net::awaitable<dp::result<void>> publish(std::string token, std::string key_auth) override {
    co_return co_await store_.put(token, key_auth, challenge_ttl);
  }
  net::awaitable<dp::result<void>> withdraw(std::string token) override {
    co_return co_await store_.remove(token);
  }

 private:
  tls::challenge_store& store_;
};

}  // namespace

bool certificate_due(const state::domain& d, const std::optional<tls::certificate_info>& stored,
                     int64_t now) {
  if (d.state != state::domain_state::verified || d.certificate.next_attempt_ms > now) {
    return false;
  }
  return !stored || tls::renewal_at_ms(*stored) <= now;
}

std::chrono::seconds failure_backoff(int64_t failures, const certificate_options& o,
                                     std::optional<std::chrono::seconds> retry_after) {
  auto wait = o.first_backoff;
  for (int64_t i = 1; i < failures && wait < o.max_backoff; ++i) {
    wait *= 2;
  }
  wait = std::min(wait, o.max_backoff);
  return retry_after ? std::max(wait, *retry_after) : wait;
}

int64_t ocsp_refresh_at(const tls::ocsp_validity& v, int64_t now, const certificate_options& o) {
  auto half_way = v.this_update_ms + (v.next_update_ms - v.this_update_ms) / 2;
  auto soonest =
      now + std::chrono::duration_cast<std::chrono::milliseconds>(o.first_backoff).count();
  return std::max(half_way, soonest);
}

struct certificate_issuer::impl {
  impl(net::any_io_executor ex, redis::client& r, redis::options ev, proto::keys k,
       tls::platform_key key, certificate_options o)
      : redis(r),
        wakes(ex, std::move(ev), 64),
        keys(std::move(k)),
        platform_key(key),
        options(std::move(o)),
        http(ex, http_client::client_options{.ca_file = options.ca_file}),
        domains(redis, keys),
        certificates(redis, keys, platform_key),
        challenges(redis, keys),
        responder(challenges),
        timer(ex) {}

  net::awaitable<dp::result<bool>> hold_lease() {
    auto lease_ms = std::to_string(options.lease.count());
    std::vector<std::string> take{"SET", keys.acme_lock(), options.holder, "NX", "PX", lease_ms};
    auto taken = co_await redis.exec(std::move(take));
    if (!taken) {
      co_return taken.error();
    }
    if (!taken->is_nil()) {
      co_return true;
    }
    std::vector<std::string> extend{
        "EVAL", std::string(extend_script), "1", keys.acme_lock(), options.holder, lease_ms};
    auto extended = co_await redis.exec(std::move(extend));
    if (!extended) {
      co_return extended.error();
    }
    co_return extended->as_integer() == 1;
  }

  net::awaitable<void> release_lease() {
    std::vector<std::string> release{"EVAL", std::string(release_script), "1", keys.acme_lock(),
                                     options.holder};
    if (auto r = co_await redis.exec(std::move(release)); !r) {
      log::warn("cannot release the ACME lease; it expires", {{"error", r.error()}});
    }
  }

  // The account key from Redis, made and stored by the first issuer that needs one.
  net::awaitable<dp::result<acme::client*>> account_client() {
    if (client) {
      co_return &*client;
    }
    auto stored = co_await redis.hget(keys.acme_account(), "key");
    if (!stored) {
      co_return stored.error();
    }
    if (!*stored) {
      auto fresh = acme::ec_key::generate();
      auto sealed = platform_key.seal(fresh.to_pem(), account_key_context);
      if (!sealed) {
        co_return sealed.error();
      }
      // HSETNX: when two first issuers race, both go on with the key that was stored first.
      auto set = co_await redis.exec("HSETNX", keys.acme_account(), "key", *sealed);
      if (!set) {
        co_return set.error();
      }
      stored = co_await redis.hget(keys.acme_account(), "key");
      if (!stored) {
        co_return stored.error();
      }
      if (!*stored) {
        co_return dp::make_error(errc::protocol, "the ACME account key vanished from Redis");
      }
    }
    auto pem = platform_key.open(**stored, account_key_context);
    if (!pem) {
      co_return dp::make_error(errc::forbidden,
                               "the ACME account key in Redis was sealed with another "
                               "PLATFORM_KEY: {}",
                               pem.error());
    }
    auto key = acme::ec_key::from_pem(*pem);
    if (!key) {
      co_return key.error();
    }
    client.emplace(http, std::move(*key), options.acme);
    co_return &*client;
  }

  // One domain: issue, store, record the outcome. A Redis error is returned; an ACME failure is
  // recorded on the domain (and the pass goes on).
  net::awaitable<dp::result<bool>> issue(const state::domain& d) {
    auto acme_client = co_await account_client();
    if (!acme_client) {
      co_return acme_client.error();
    }
    state::certificate_status status = d.certificate;
    status.status = "pending";
    if (auto set = co_await domains.set_certificate(d.fqdn, status); !set) {
      co_return set.error();
    }
    log::info("requesting a certificate", {{"domain", d.fqdn}});
    std::vector<std::string> names{d.fqdn};
    auto issued = co_await (*acme_client)->issue(names, responder);
    dp::result<void> stored;
    if (issued) {
      stored = co_await certificates.put(d.fqdn, issued->chain_pem, issued->key_pem);
    }
    if (issued && stored) {
      // The expiry and the renewal time are the store's: nothing of them goes on the domain.
      status = {"issued", "", 0};
      if (auto set = co_await domains.set_certificate(d.fqdn, status); !set) {
        co_return set.error();
      }
      if (auto cleared = co_await redis.exec("HDEL", keys.acme_failures(), d.fqdn); !cleared) {
        co_return cleared.error();
      }
      log::info("certificate stored",
                {{"domain", d.fqdn}, {"not_after_ms", dp::epoch_ms(issued->not_after)}});
      co_return true;
    }
    const dp::error& why = issued ? stored.error() : issued.error();
    auto failures = co_await redis.exec("HINCRBY", keys.acme_failures(), d.fqdn, "1");
    if (!failures) {
      co_return failures.error();
    }
    auto wait = failure_backoff(failures->as_integer(), options, (*acme_client)->retry_after());
    status = {"failed", why.message,
              now_ms() + std::chrono::duration_cast<std::chrono::milliseconds>(wait).count()};
    if (auto set = co_await domains.set_certificate(d.fqdn, status); !set) {
      co_return set.error();
    }
    log::warn("certificate not issued; retrying later",
              {{"domain", d.fqdn},
               {"error", why},
               {"failures", failures->as_integer()},
               {"retry_in_s", static_cast<int64_t>(wait.count())}});
    co_return false;
  }

  // The due OCSP responses (see certificates.hpp). A responder's failure is recorded on the
  // certificate and the pass goes on; a Redis error ends it.
  net::awaitable<dp::result<void>> refresh_ocsp() {
    auto listed = co_await certificates.list();
    if (!listed) {
      co_return listed.error();
    }
    for (const auto& info : *listed) {
      if (stopping) {
        break;
      }
      if (info.ocsp_url.empty() || info.ocsp_refresh_at_ms > now_ms()) {
        continue;
      }
      auto still = co_await hold_lease();
      if (!still) {
        co_return still.error();
      }
      if (!*still) {
        break;
      }
      auto c = co_await certificates.get(info.name);
      if (!c) {
        if (!c.error().is(errc::forbidden)) {
          co_return c.error();
        }
        log::warn("OCSP not refreshed: the certificate does not open",
                  {{"name", info.name}, {"error", c.error()}});
        continue;
      }
      if (!c->has_value()) {
        continue;  // removed since list()
      }
      const std::string& chain = (*c)->chain_pem;
      auto fetched = co_await tls::fetch_ocsp_response(http, chain, ocsp_timeout);
      if (fetched) {
        const auto& v = fetched->validity;
        auto stored = co_await certificates.put_ocsp(info.name, chain, fetched->der, v,
                                                     ocsp_refresh_at(v, now_ms(), options));
        if (!stored) {
          co_return stored.error();
        }
        log::info("OCSP response stored",
                  {{"name", info.name}, {"next_update_ms", v.next_update_ms}});
        continue;
      }
      auto wait = failure_backoff(info.ocsp_failures + 1, options, std::nullopt);
      auto retry_at =
          now_ms() + std::chrono::duration_cast<std::chrono::milliseconds>(wait).count();
      auto failures =
          co_await certificates.ocsp_failed(info.name, chain, fetched.error().message, retry_at);
      if (!failures) {
        co_return failures.error();
      }
      log::warn("OCSP response not refreshed; retrying later",
                {{"name", info.name},
                 {"error", fetched.error()},
                 {"failures", *failures},
                 {"retry_in_s", static_cast<int64_t>(wait.count())}});
    }
    co_return dp::result<void>{};
  }

  redis::client& redis;
  redis::subscriber wakes;
  proto::keys keys;
  tls::platform_key platform_key;
  certificate_options options;
  http_client::client http;
  state::domains domains;
  tls::cert_store certificates;
  tls::challenge_store challenges;
  store_responder responder;
  std::optional<acme::client> client;
  net::steady_timer timer;
  bool stopping = false;
  bool woken = false;  // a wake came during a pass: pass again at once
};

certificate_issuer::certificate_issuer(net::any_io_executor ex, redis::client& redis,
                                       redis::options events, proto::keys keys,
                                       tls::platform_key key, certificate_options options)
    : impl_(std::make_unique<impl>(ex, redis, std::move(events), std::move(keys), key,
                                   std::move(options))) {}

certificate_issuer::~certificate_issuer() = default;

net::awaitable<dp::result<int>> certificate_issuer::pass() {
  auto& s = *impl_;
  auto held = co_await s.hold_lease();
  if (!held || !*held) {
    co_return held ? dp::result<int>(0) : dp::result<int>(held.error());
  }
  int stored = 0;
  dp::result<int> outcome = co_await [&]() -> net::awaitable<dp::result<int>> {
    auto fqdns = co_await s.domains.all();
    if (!fqdns) {
      co_return fqdns.error();
    }
    // What is served decides a renewal; only this lease holder stores, so it stays current.
    auto stored_certificates = co_await tls::certificate_infos(s.redis, s.keys, *fqdns);
    if (!stored_certificates) {
      co_return stored_certificates.error();
    }
    for (size_t i = 0; i < fqdns->size(); ++i) {
      const auto& fqdn = (*fqdns)[i];
      if (s.stopping) {
        break;
      }
      auto d = co_await s.domains.get(fqdn);
      if (!d) {
        if (d.error().is(errc::not_found)) {
          continue;  // removed since all() listed it
        }
        co_return d.error();
      }
      if (!certificate_due(*d, (*stored_certificates)[i], now_ms())) {
        continue;
      }
      // Still ours? Another worker takes over only after the lease expired.
      auto still = co_await s.hold_lease();
      if (!still) {
        co_return still.error();
      }
      if (!*still) {
        break;
      }
      auto issued = co_await s.issue(*d);
      if (!issued) {
        co_return issued.error();
      }
      stored += *issued ? 1 : 0;
    }
    // After issuance: a slow responder never delays a certificate.
    if (auto refreshed = co_await s.refresh_ocsp(); !refreshed) {
      co_return refreshed.error();
    }
    co_return stored;
  }();
  co_await s.release_lease();
  co_return outcome;
}

net::awaitable<void> certificate_issuer::run() {
  using namespace net::experimental::awaitable_operators;
  auto& s = *impl_;
  log::info("certificate issuer started", {{"directory", s.options.acme.directory_url}});
  auto passes = [&]() -> net::awaitable<void> {
    while (!s.stopping) {
      s.woken = false;
      if (auto r = co_await pass(); !r) {
        log::warn("certificate pass failed; the next one retries", {{"error", r.error()}});
      }
      if (s.stopping) {
        break;
      }
      if (s.woken) {
        continue;
      }
      s.timer.expires_after(s.options.interval);
      boost::system::error_code ec;
      co_await s.timer.async_wait(net::redirect_error(net::use_awaitable, ec));
    }
    s.wakes.close();
  };
  // A verified domain, or a gap (a wake may be lost in it), starts a pass now.
  auto follow_wakes = [&]() -> net::awaitable<void> {
    if (auto r = co_await s.wakes.subscribe(s.keys.acme_wake_channel()); !r) {
      log::warn("events:acme not followed yet; the ticks issue meanwhile", {{"error", r.error()}});
    }
    while (!s.stopping) {
      auto m = co_await s.wakes.next();
      if (!m) {
        break;
      }
      s.woken = true;
      s.timer.cancel();
    }
  };
  co_await (passes() && follow_wakes());
}

void certificate_issuer::stop() {
  impl_->stopping = true;
  impl_->timer.cancel();
  impl_->wakes.close();
}

}  // namespace dp::worker
