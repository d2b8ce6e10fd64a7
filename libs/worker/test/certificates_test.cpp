// The issuer's pure decisions: which domains are due for a certificate, and the backoff.
#include <gtest/gtest.h>

#include "dp/state/domains.hpp"
#include "dp/worker/certificates.hpp"

namespace {

using namespace std::chrono_literals;
using dp::worker::certificate_due;

constexpr int64_t day_ms = 86'400'000;
constexpr int64_t now = 1'800'000'000'000;

dp::state::domain verified() {
  dp::state::domain d;
  d.fqdn = "shop.example.com";
  d.state = dp::state::domain_state::verified;
  return d;
}

TEST(CertificateDue, AVerifiedDomainWithoutACertificateIsDue) {
  EXPECT_TRUE(certificate_due(verified(), std::nullopt, now));
  auto pending = verified();
  pending.state = dp::state::domain_state::pending;
  EXPECT_FALSE(certificate_due(pending, std::nullopt, now));
}

// The stored certificate decides, whatever the domain's record says of the last order.
TEST(CertificateDue, RenewalStartsThirtyDaysBeforeTheStoredExpiry) {
  auto d = verified();
  dp::tls::certificate_info stored{.name = d.fqdn, .not_after_ms = now + 31 * day_ms};
  EXPECT_FALSE(certificate_due(d, stored, now));
  d.certificate = {"", "", 0};
  EXPECT_FALSE(certificate_due(d, stored, now));
  stored.not_after_ms = now + 30 * day_ms;
  EXPECT_TRUE(certificate_due(d, stored, now));
  stored.not_after_ms = now - day_ms;  // expired
  EXPECT_TRUE(certificate_due(d, stored, now));
  EXPECT_EQ(dp::tls::renewal_at_ms(stored), now - 31 * day_ms);
}

TEST(CertificateDue, ABackoffWaitsWithOrWithoutACertificate) {
  auto d = verified();
  d.certificate = {"failed", "connection refused", now + 1000};
  EXPECT_FALSE(certificate_due(d, std::nullopt, now));
  EXPECT_TRUE(certificate_due(d, std::nullopt, now + 1000));
  dp::tls::certificate_info stored{.name = d.fqdn, .not_after_ms = now + day_ms};
  EXPECT_FALSE(certificate_due(d, stored, now));
  EXPECT_TRUE(certificate_due(d, stored, now + 1000));
}

TEST(FailureBackoff, DoublesUpToTheMaximumAndHonoursRetryAfter) {
  dp::worker::certificate_options o;
  o.first_backoff = 300s;
  o.max_backoff = 3600s;
  EXPECT_EQ(dp::worker::failure_backoff(1, o, std::nullopt), 300s);
  EXPECT_EQ(dp::worker::failure_backoff(2, o, std::nullopt), 600s);
  EXPECT_EQ(dp::worker::failure_backoff(3, o, std::nullopt), 1200s);
  EXPECT_EQ(dp::worker::failure_backoff(5, o, std::nullopt), 3600s);
  EXPECT_EQ(dp::worker::failure_backoff(1000, o, std::nullopt), 3600s);
  // A rateLimited answer's Retry-After wins when it is longer, even beyond the maximum.
  EXPECT_EQ(dp::worker::failure_backoff(1, o, 7200s), 7200s);
  EXPECT_EQ(dp::worker::failure_backoff(3, o, 10s), 1200s);
}

TEST(OcspRefreshAt, HalfWayThroughTheValidityButNotBeforeTheFirstBackoff) {
  dp::worker::certificate_options o;
  o.first_backoff = 300s;
  // Let's Encrypt's shape: valid seven days from a moment ago.
  dp::tls::ocsp_validity week{now - 3'600'000, now - 3'600'000 + 7 * day_ms};
  EXPECT_EQ(dp::worker::ocsp_refresh_at(week, now, o), now - 3'600'000 + 7 * day_ms / 2);
  // Half-way already passed (an old cached answer): not again before the backoff.
  dp::tls::ocsp_validity stale{now - 6 * day_ms, now + day_ms};
  EXPECT_EQ(dp::worker::ocsp_refresh_at(stale, now, o), now + 300'000);
}

}  // namespace
