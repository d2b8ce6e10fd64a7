#include "dp/acme/client.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>

#include "dp/core/log.hpp"

namespace dp::acme {

namespace net = boost::asio;

namespace {

// Servers may reject any nonce (RFC 8555 section 6.5): Boulder and Pebble do so at random.
constexpr int bad_nonce_retries = 5;

// A problem the server answered: rateLimited and server trouble are worth retrying later;
// everything else (a failed validation, a refused name) needs a change first.
dp::error problem_error(std::string_view what, const problem& p) {
  bool transient = p.is("rateLimited") || p.is("serverInternal") || p.status >= 500;
  return dp::make_error(transient ? errc::unavailable : errc::forbidden, "ACME {}: {}", what,
                        p.describe());
}

}  // namespace

client::client(http_client::client& http, ec_key account_key, client_options options)
    : http_(http), key_(std::move(account_key)), options_(std::move(options)) {
  // Our own key's JWK always has the members a thumbprint needs.
  thumbprint_ = thumbprint(key_.jwk()).value();
}

net::awaitable<dp::result<void>> client::load_directory() {
  if (directory_) {
    co_return dp::result<void>{};
  }
  http_client::request req;
  req.url = options_.directory_url;
  req.timeout = options_.request_timeout;
  auto res = co_await http_.send(std::move(req));
  if (!res) {
    co_return res.error();
  }
  if (res->status != 200) {
    co_return dp::make_error(errc::unavailable, "ACME directory {} answered {}",
                             options_.directory_url, res->status);
  }
  auto dir = parse_directory(res->body);
  if (!dir) {
    co_return dir.error();
  }
  directory_ = std::move(*dir);
  co_return dp::result<void>{};
}

net::awaitable<dp::result<std::string>> client::fresh_nonce() {
  if (!nonce_.empty()) {
    co_return std::exchange(nonce_, {});
  }
  http_client::request req;
  req.method = "HEAD";
  req.url = directory_->new_nonce;
  req.timeout = options_.request_timeout;
  auto res = co_await http_.send(std::move(req));
  if (!res) {
    co_return res.error();
  }
  auto nonce = res->headers.get("Replay-Nonce");
  if (!nonce || nonce->empty()) {
    co_return dp::make_error(errc::protocol, "the ACME server's newNonce sent no Replay-Nonce");
  }
  co_return std::string(*nonce);
}

net::awaitable<dp::result<client::reply>> client::post(std::string url, std::string payload,
                                                       std::string what, std::string accept) {
  for (int attempt = 0;; ++attempt) {
    auto nonce = co_await fresh_nonce();
    if (!nonce) {
      co_return nonce.error();
    }
    http_client::request req;
    req.method = "POST";
    req.url = url;
    req.timeout = options_.request_timeout;
    req.headers.emplace_back("Content-Type", "application/jose+json");
    if (!accept.empty()) {
      req.headers.emplace_back("Accept", accept);
    }
    req.body = sign_jws(key_, account_url_, *nonce, url, payload);
    auto res = co_await http_.send(std::move(req));
    if (!res) {
      co_return res.error();
    }
    // Every answer, errors included, carries the next nonce.
    if (auto next = res->headers.get("Replay-Nonce")) {
      nonce_ = std::string(*next);
    }
    reply r{res->status, std::string(res->headers.get("Location").value_or("")),
            parse_retry_after(res->headers.get("Retry-After").value_or(""),
                              std::chrono::system_clock::now()),
            std::move(res->body)};
    if (r.status < 400) {
      co_return r;
    }
    auto p = parse_problem(r.body);
    if (!p) {
      p = problem{"", fmt::format("HTTP {}", r.status), r.status};
    }
    if (p->is("badNonce") && attempt < bad_nonce_retries) {
      continue;
    }
    // An account the server no longer knows (a CA reset, a deactivated account) is registered
    // again on the next issuance.
    if (p->is("accountDoesNotExist")) {
      account_url_.clear();
    }
    if (p->is("rateLimited") || r.status == 503) {
      retry_after_ = r.retry_after;
    }
    co_return problem_error(what, *p);
  }
}

net::awaitable<dp::result<client::reply>> client::post(std::string url, std::string payload,
                                                       std::string what) {
  co_return co_await post(std::move(url), std::move(payload), std::move(what), std::string());
}

net::awaitable<void> client::pause(std::optional<std::chrono::seconds> retry_after) {
  std::chrono::milliseconds wait = options_.poll_interval;
  if (retry_after) {
    wait = std::min<std::chrono::milliseconds>(*retry_after, options_.max_poll_interval);
  }
  net::steady_timer timer(co_await net::this_coro::executor, wait);
  co_await timer.async_wait(net::use_awaitable);
}

net::awaitable<dp::result<std::string>> client::account() {
  if (!account_url_.empty()) {
    co_return account_url_;
  }
  if (auto loaded = co_await load_directory(); !loaded) {
    co_return loaded.error();
  }
  boost::json::object payload{{"termsOfServiceAgreed", true}};
  if (!options_.contact_email.empty()) {
    payload["contact"] = boost::json::array{"mailto:" + options_.contact_email};
  }
  auto r = co_await post(directory_->new_account, boost::json::serialize(payload), "newAccount");
  if (!r) {
    co_return r.error();
  }
  if (r->location.empty()) {
    co_return dp::make_error(errc::protocol, "the ACME server's newAccount sent no Location");
  }
  account_url_ = r->location;
  co_return account_url_;
}

net::awaitable<dp::result<authorization>> client::validate(std::string url,
                                                           challenge_responder& responder) {
  auto r = co_await post(url, "", "authorization");
  if (!r) {
    co_return r.error();
  }
  auto authz = parse_authorization(r->body);
  if (!authz || authz->status != "pending") {
    co_return authz;
  }
  const challenge* http01 = authz->find("http-01");
  if (http01 == nullptr) {
    co_return dp::make_error(errc::forbidden, "ACME offers no http-01 challenge for {}",
                             authz->identifier);
  }
  std::string token = http01->token;
  std::string challenge_url = http01->url;
  if (auto published = co_await responder.publish(token, key_authorization(token, thumbprint_));
      !published) {
    co_return published.error();
  }
  // The answer is withdrawn on every path below: a token is good for one validation only.
  auto result = co_await [&]() -> net::awaitable<dp::result<authorization>> {
    auto started = co_await post(challenge_url, "{}", "challenge " + authz->identifier);
    if (!started) {
      co_return started.error();
    }
    auto deadline = std::chrono::steady_clock::now() + options_.poll_limit;
    std::optional<std::chrono::seconds> retry_after = started->retry_after;
    for (;;) {
      co_await pause(retry_after);
      auto polled = co_await post(url, "", "authorization " + authz->identifier);
      if (!polled) {
        co_return polled.error();
      }
      auto current = parse_authorization(polled->body);
      if (!current || current->status != "pending") {
        co_return current;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        co_return dp::make_error(errc::timeout, "ACME authorization of {} still pending after {}s",
                                 authz->identifier, options_.poll_limit.count());
      }
      retry_after = polled->retry_after;
    }
  }();
  if (auto withdrawn = co_await responder.withdraw(token); !withdrawn) {
    log::warn("cannot withdraw an ACME challenge answer; it stays until its TTL",
              {{"domain", authz->identifier}, {"error", withdrawn.error()}});
  }
  co_return result;
}

net::awaitable<dp::result<order>> client::poll_order(std::string url, order current,
                                                     std::string waiting_status) {
  auto deadline = std::chrono::steady_clock::now() + options_.poll_limit;
  std::optional<std::chrono::seconds> retry_after;
  while (current.status == waiting_status) {
    if (std::chrono::steady_clock::now() > deadline) {
      co_return dp::make_error(errc::timeout, "ACME order still {} after {}s", waiting_status,
                               options_.poll_limit.count());
    }
    co_await pause(retry_after);
    auto r = co_await post(url, "", "order");
    if (!r) {
      co_return r.error();
    }
    auto next = parse_order(r->body);
    if (!next) {
      co_return next.error();
    }
    current = std::move(*next);
    retry_after = r->retry_after;
  }
  co_return current;
}

net::awaitable<dp::result<issued_certificate>> client::issue(std::vector<std::string> names,
                                                             challenge_responder& responder) {
  retry_after_.reset();
  if (auto acct = co_await account(); !acct) {
    co_return acct.error();
  }
  boost::json::array identifiers;
  for (const auto& name : names) {
    identifiers.push_back(boost::json::object{{"type", "dns"}, {"value", name}});
  }
  // g++ 12: no braced initializer inside a co_await expression.
  boost::json::object new_order{{"identifiers", std::move(identifiers)}};
  auto created =
      co_await post(directory_->new_order, boost::json::serialize(new_order), "newOrder");
  if (!created) {
    co_return created.error();
  }
  std::string order_url = created->location;
  auto current = parse_order(created->body);
  if (!current) {
    co_return current.error();
  }
  if (order_url.empty()) {
    co_return dp::make_error(errc::protocol, "the ACME server's newOrder sent no Location");
  }

  for (const auto& url : current->authorizations) {
    auto authz = co_await validate(url, responder);
    if (!authz) {
      co_return authz.error();
    }
    if (authz->status != "valid") {
      auto why = authz->failure();
      co_return dp::make_error(errc::forbidden, "ACME validation of {} failed: {}",
                               authz->identifier,
                               why ? why->describe() : "authorization " + authz->status);
    }
  }

  // The server moves the order to ready once every authorization is valid.
  auto ready = co_await poll_order(order_url, std::move(*current), "pending");
  if (!ready) {
    co_return ready.error();
  }
  if (ready->status != "ready") {
    co_return dp::make_error(errc::forbidden, "ACME order is {}: {}", ready->status,
                             ready->error ? ready->error->describe() : "no reason given");
  }

  ec_key certificate_key = ec_key::generate();
  auto csr = certificate_key.make_csr(names);
  if (!csr) {
    co_return csr.error();
  }
  boost::json::object finalize{{"csr", base64url(*csr)}};
  auto finalized = co_await post(ready->finalize, boost::json::serialize(finalize), "finalize");
  if (!finalized) {
    co_return finalized.error();
  }
  auto processing = parse_order(finalized->body);
  if (!processing) {
    co_return processing.error();
  }
  auto done = co_await poll_order(order_url, std::move(*processing), "processing");
  if (!done) {
    co_return done.error();
  }
  if (done->status != "valid" || done->certificate.empty()) {
    co_return dp::make_error(errc::forbidden, "ACME order is {} after finalize: {}", done->status,
                             done->error ? done->error->describe() : "no certificate");
  }

  auto chain =
      co_await post(done->certificate, "", "certificate", "application/pem-certificate-chain");
  if (!chain) {
    co_return chain.error();
  }
  auto not_after = certificate_not_after(chain->body);
  if (!not_after) {
    co_return dp::make_error(errc::protocol, "the ACME server's certificate is not PEM");
  }
  co_return issued_certificate{std::move(chain->body), certificate_key.to_pem(), *not_after};
}

}  // namespace dp::acme
