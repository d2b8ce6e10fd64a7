// Certificates and ACME HTTP-01 answers in Redis, shared by every api-server, worker and proxy.
//
// cert_store
//   put(name, chain_pem, key_pem)  name is an fqdn ("shop.example.com") or a wildcard
//                                  ("*.example.com"). Checks that the key is the leaf's
//                                  (errc::invalid_argument otherwise), seals the key with the
//                                  platform key, writes cert:<name> {chain, key, not_after_ms,
//                                  updated_at_ms, ocsp_url}, drops any OCSP response of the
//                                  previous chain, adds the name to certs and publishes
//                                  {"v":1,"type":"certificate","name":...,"ts_ms":...} on
//                                  events:certificates, in one script: a proxy that hears the
//                                  event reads the new pair.
//   get(name)                      the pair with the key opened and the stored OCSP response,
//                                  or nullopt; errc::forbidden when the key was sealed with
//                                  another platform key.
//   list()                         every name with its expiry, issuer and OCSP state (no keys),
//                                  sorted.
//   put_ocsp(name, chain, der, validity, refresh_at_ms)
//                                  stores a checked OCSP response (ocsp, ocsp_this_update_ms,
//                                  ocsp_next_update_ms, ocsp_refresh_at_ms; clears the failure
//                                  fields) and publishes the event, only while the name still
//                                  holds that chain (false otherwise: a renewal won the race).
//   ocsp_failed(name, chain, reason, retry_at_ms)
//                                  records a failed refresh (ocsp_error, ocsp_failures + 1,
//                                  ocsp_refresh_at_ms) for that chain; no event: the staple in
//                                  use stays until its nextUpdate. The new failure count (0 when
//                                  the chain changed).
//   remove(name)                   deletes it and publishes the same event (a proxy then drops
//                                  the name).
// renewal_at_ms(info)               when the issuer renews it: renew_before its stored expiry (the
//                                  worker decides and the api shows it from the store alone).
// certificate_infos(redis, keys, names)
//                                  what list() tells of each name, or nullopt for a name without
//                                  a certificate; needs no platform key (the api shows it on its
//                                  domains), and reads no key.
// remove_unused_certificate(redis, keys, name)
//                                  remove(name) unless domain-record:<name> exists (a domain
//                                  still uses it), in one script; needs no platform key (the
//                                  api calls it when a domain is removed). True when removed.
// challenge_store
//   put(token, key_authorization, ttl)  acme-challenge:<token> with a TTL; the proxy answers
//                                  GET /.well-known/acme-challenge/<token> for any Host with it.
//   get(token), remove(token)
//
// Both borrow a redis::client: call them on its executor.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dp/core/error.hpp"
#include "dp/proto/keys.hpp"
#include "dp/tls/ocsp.hpp"
#include "dp/tls/platform_key.hpp"

namespace dp::redis {
class client;
}

namespace dp::tls {

template <class T>
using task = boost::asio::awaitable<dp::result<T>>;

struct certificate {
  std::string name;
  std::string chain_pem;
  std::string key_pem;
  int64_t not_after_ms = 0;
  int64_t updated_at_ms = 0;
  std::string ocsp_der;  // the last checked OCSP response for this chain; empty: none
};

struct certificate_info {
  std::string name;
  int64_t not_after_ms = 0;
  int64_t updated_at_ms = 0;        // when this chain was stored (issued or renewed)
  std::string issuer;               // the leaf's (leaf_issuer)
  std::string ocsp_url;             // the leaf's responder; empty: no stapling
  int64_t ocsp_this_update_ms = 0;  // the stored response's; 0: none
  int64_t ocsp_next_update_ms = 0;  // the stored response's; 0: none
  int64_t ocsp_refresh_at_ms = 0;   // when the worker fetches the next one; 0: at once
  int64_t ocsp_failures = 0;        // consecutive failed refreshes
  std::string ocsp_error;           // the last failure's reason
};

// Let's Encrypt's advice: renew a third of the way before a 90-day certificate expires.
constexpr std::chrono::hours renew_before{24 * 30};

constexpr int64_t renewal_at_ms(const certificate_info& c) {
  return c.not_after_ms - std::chrono::milliseconds(renew_before).count();
}

// What events:certificates carries: the name that changed. nullopt for anything else.
std::optional<std::string> parse_certificate_event(std::string_view payload);

task<std::vector<std::optional<certificate_info>>> certificate_infos(
    redis::client& redis, const proto::keys& keys, const std::vector<std::string>& names);

task<bool> remove_unused_certificate(redis::client& redis, const proto::keys& keys,
                                     std::string_view name);

class cert_store {
 public:
  cert_store(redis::client& redis, proto::keys keys, platform_key key);

  task<void> put(std::string_view name, std::string_view chain_pem, std::string_view key_pem);
  task<std::optional<certificate>> get(std::string_view name);
  task<std::vector<certificate_info>> list();
  task<void> remove(std::string_view name);
  task<bool> put_ocsp(std::string_view name, std::string_view chain_pem, std::string_view der,
                      ocsp_validity validity, int64_t refresh_at_ms);
  task<int64_t> ocsp_failed(std::string_view name, std::string_view chain_pem,
                            std::string_view reason, int64_t retry_at_ms);

 private:
  task<void> publish(std::string_view name);

  redis::client& redis_;
  proto::keys keys_;
  platform_key key_;
};

class challenge_store {
 public:
  challenge_store(redis::client& redis, proto::keys keys);

  task<void> put(std::string_view token, std::string_view key_authorization,
                 std::chrono::seconds ttl);
  task<std::optional<std::string>> get(std::string_view token);
  task<void> remove(std::string_view token);

 private:
  redis::client& redis_;
  proto::keys keys_;
};

}  // namespace dp::tls
