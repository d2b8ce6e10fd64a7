// Certificates for custom domains: the worker's ACME issuer. Every ACME_INTERVAL_S one worker
// of the fleet (the one that holds lock:acme) walks the domains and, for each verified one
// whose name the certificate store holds no certificate for, or one due for renewal
// (tls::renewal_at_ms: the stored certificate is what is served), gets one from the ACME server
// (HTTP-01 answered by every proxy from the challenge store), puts chain and key into the
// certificate store (whose event reaches running proxies) and records the outcome on the
// domain's certificate status. A failure waits first_backoff, doubled per consecutive failure up
// to max_backoff, and at least as long as a rateLimited answer's Retry-After; its reason is the
// status's error. The api publishes on events:acme when a domain is verified: every issuer
// passes at once (the lock still lets one issue), so the certificate follows within seconds.
//
// OCSP stapling: after the issuance in each pass, the same lease holder fetches the OCSP response
// of every stored certificate whose leaf names a responder, when its refresh time has come (at
// once for a new certificate, then about half-way through the last response's validity), checks
// it against the issuer and stores it with the certificate (cert_store::put_ocsp: the event
// reaches every proxy). A failure is recorded on the certificate (ocsp_error, ocsp_failures) and
// waits as an issuance failure does; the last good response stays stapled until its nextUpdate.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "dp/acme/client.hpp"
#include "dp/core/error.hpp"
#include "dp/proto/keys.hpp"
#include "dp/redis/types.hpp"
#include "dp/tls/cert_store.hpp"
#include "dp/tls/ocsp.hpp"
#include "dp/tls/platform_key.hpp"

namespace dp::redis {
class client;
}
namespace dp::state {
struct domain;
}

namespace dp::worker {

struct certificate_options {
  dp::acme::client_options acme;  // its directory_url must not be empty
  std::string ca_file;            // trusted for the ACME server's HTTPS; empty: the system's
  std::string holder;             // this worker's id: the value of lock:acme
  std::chrono::milliseconds interval{std::chrono::seconds(60)};
  std::chrono::seconds first_backoff{std::chrono::minutes(5)};
  std::chrono::seconds max_backoff{std::chrono::hours(24)};
  // lock:acme's TTL, renewed before each domain: longer than one issuance can take.
  std::chrono::milliseconds lease{std::chrono::minutes(15)};
};

// Whether the issuer should get a certificate for `d` at `now_ms`, given what the store holds
// for its name: verified, not waiting out a backoff, and without a stored certificate or past
// its renewal time.
bool certificate_due(const state::domain& d, const std::optional<tls::certificate_info>& stored,
                     int64_t now_ms);

// How long to wait after the `failures`-th consecutive failure (1 for the first).
std::chrono::seconds failure_backoff(int64_t failures, const certificate_options& o,
                                     std::optional<std::chrono::seconds> retry_after);

// When to fetch the next OCSP response after one valid over `v`: half-way through its validity,
// and not sooner than first_backoff from `now_ms` (a responder answering from an old cache).
int64_t ocsp_refresh_at(const tls::ocsp_validity& v, int64_t now_ms, const certificate_options& o);

class certificate_issuer {
 public:
  // `events`: the connection events:acme is followed on (a subscriber of its own).
  certificate_issuer(boost::asio::any_io_executor ex, redis::client& redis, redis::options events,
                     proto::keys keys, tls::platform_key key, certificate_options options);
  ~certificate_issuer();
  certificate_issuer(const certificate_issuer&) = delete;
  certificate_issuer& operator=(const certificate_issuer&) = delete;

  // Passes every interval, and at once on events:acme, until stop(); errors are logged and the
  // next pass tries again.
  boost::asio::awaitable<void> run();
  // One pass now, if this worker gets lock:acme: how many certificates it stored (0 without
  // the lock), then the OCSP responses that are due.
  boost::asio::awaitable<dp::result<int>> pass();
  void stop();

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace dp::worker
